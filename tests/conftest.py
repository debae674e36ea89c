"""Shared fixtures: an isolated environment, a real Meilisearch, and Wawp sandboxes."""

from __future__ import annotations

import json
import logging
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import meilisearch
import pytest
from hypothesis import settings

from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions

# No per-example deadline: a deadline is a timed assertion, and with two workers on two
# cores an example that takes 266 ms under load failed CI (Hypothesis' default is 200 ms).
settings.register_profile("explorer", deadline=None)
settings.load_profile("explorer")


ENV_VARS = (
    "WAWP_BASE_URL",
    "WAWP_INSTANCE_ID",
    "WAWP_ACCESS_TOKEN",
    "MEILI_URL",
    "MEILI_API_KEY",
    "EXPLORER_INDEX",
    "EXPLORER_CONFIG",
    "EXPLORER_STATE_DIR",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's config, environment or working directory."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("EXPLORER_STATE_DIR", str(tmp_path / "state"))
    return work


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    """The CLI configures logging globally; each test starts from pytest's own setup."""
    yield
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_explorer", False)]
    logging.getLogger("httpx").setLevel(logging.NOTSET)


SECRETS_USED: set[str] = set()


def register_secret(value: str) -> str:
    """Secrets the end-of-run scan of every indexed document looks for."""
    SECRETS_USED.add(value)
    return value


def leaked_documents(server: MeiliServer) -> list[str]:
    """Indexes holding a document in which any registered secret appears."""
    client = meilisearch.Client(server.url, server.master_key)
    found = []
    for index in client.get_raw_indexes({"limit": 10_000})["results"]:
        offset = 0
        while True:
            page = client.http.get(f"indexes/{index['uid']}/documents?limit=1000&offset={offset}")
            text = json.dumps(page["results"], ensure_ascii=False)
            if any(secret in text for secret in SECRETS_USED | {server.master_key}):
                found.append(index["uid"])
                break
            offset += len(page["results"])
            if not page["results"] or offset >= page["total"]:
                break
    return found


@pytest.fixture
def sigint_heard() -> Iterator[None]:
    """Children started in the test hear Ctrl-C. A runner started in the background by a
    shell without job control ignores SIGINT, and an ignored signal stays ignored in every
    child; a handler, as here, is reset to the default in a child instead."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def meili(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeiliServer]:
    """One real Meilisearch 1.21.0 for the whole run, with a random master key.

    At the end of the run every document of every index the tests built is scanned for the
    tokens the tests used and the master key; a hit fails the run.
    """
    server = MeiliServer(tmp_path_factory.mktemp("meili"), master_key=secrets.token_urlsafe(24))
    with server:
        yield server
        leaks = leaked_documents(server)
        assert not leaks, f"a secret was indexed in: {', '.join(leaks)}"


@pytest.fixture
def meili_client(meili: MeiliServer) -> meilisearch.Client:
    return meilisearch.Client(meili.url, meili.master_key)


@pytest.fixture
def index_name() -> str:
    """A fresh index name per test, so tests sharing the server never see each other."""
    return f"t_{secrets.token_hex(6)}"


@pytest.fixture
def token() -> str:
    return register_secret("tok-" + secrets.token_urlsafe(24))


@pytest.fixture
def make_sandbox(token: str) -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def make(
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> Sandbox:
        options.setdefault("instances", {SANDBOX_INSTANCE: token})
        options.setdefault("epoch", 1_764_000_000)
        sb = Sandbox(SandboxOptions(**options), clock=clock, sleep=sleep).start()
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(chats=250)


SANDBOX_INSTANCE = "INST00000001"  # the instance make_sandbox creates unless told otherwise


def explorer_env(
    sb: Sandbox, token: str, meili_url: str, meili_key: str, index: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment that points `explorer` at a sandbox instance and a Meilisearch."""
    env = {
        "WAWP_BASE_URL": sb.url,
        "WAWP_INSTANCE_ID": SANDBOX_INSTANCE,
        "WAWP_ACCESS_TOKEN": token,
        "MEILI_URL": meili_url,
        "MEILI_API_KEY": meili_key,
    }
    if index is not None:
        env["EXPLORER_INDEX"] = index
    return {**env, **extra}


def ground_truth(sb: Sandbox, instance: str = "INST00000001") -> set[str]:
    """The sandbox's own word, over HTTP, on which JIDs a complete crawl yields."""
    resp = httpx.get(f"{sb.url}/_sandbox/ids", params={"instance_id": instance})
    resp.raise_for_status()
    return set(resp.text.split())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Fail any test whose captured stdout, stderr or log output holds a secret it used."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.passed:
        return
    funcargs = getattr(item, "funcargs", {})
    secrets_used = [funcargs.get("token")]
    server = funcargs.get("meili")
    if isinstance(server, MeiliServer):
        secrets_used.append(server.master_key)
    captured = report.capstdout + report.capstderr + report.caplog
    leaked = [s for s in secrets_used if isinstance(s, str) and s and s in captured]
    if leaked:
        report.outcome = "failed"
        report.longrepr = f"a secret appeared in captured output ({len(leaked)} secret(s))"


def read_until(
    proc: subprocess.Popen[str], pattern: str, seconds: float
) -> tuple[re.Match[str] | None, list[str]]:
    """Read a child's output line by line until ``pattern`` matches (or it ends or times out)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(pattern, line)
        if found:
            return found, lines
    return None, lines


# -- the fast tier ------------------------------------------------------------------------------

# What `make test-fast` leaves out: tests that start a real Meilisearch (the `meili` fixture) or
# drive programs outside Python (Chromium, nginx, docker-compose, Prometheus, `explorer demo`).
# The whole suite (`make test`, what CI runs) still runs everything.
EXTERNAL_FIXTURES = frozenset({"meili", "browser", "nginx"})
EXTERNAL_MODULES = frozenset({
    "tests.test_agent_page", "tests.test_alerts", "tests.test_demo", "tests.test_deploy",
    "tests.test_door", "tests.test_meilisearch_server",
})  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "external: starts Meilisearch, Chromium, nginx or a subprocess server "
        "(left out by `make test-fast`)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if (
            EXTERNAL_FIXTURES & set(getattr(item, "fixturenames", ()))
            or getattr(module, "__name__", "") in EXTERNAL_MODULES
        ):
            item.add_marker(pytest.mark.external)
