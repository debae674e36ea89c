"""`explorer demo` as a newcomer meets it: usable from a second terminal, stopped cleanly."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import read_until

ROOT = Path(__file__).resolve().parent.parent


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment-free argv mentions ``text`` (like `ps aux`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAWP_", "MEILI_"))}
    env.pop("EXPLORER_STATE_DIR", None)
    return {**env, **extra}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, list[str]]]:
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "demo", "--chats", "300", "--meili-port", "0",
         "--data-dir", str(data)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        found, lines = read_until(proc, "keeps running until", 120)
        assert found, "".join(lines[-15:])
        yield proc, data, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in processes_mentioning(str(data)):
            os.kill(pid, signal.SIGKILL)
        proc.stdout.close()


def test_demo_env_file_makes_every_command_work_from_a_second_terminal(
    demo: tuple[subprocess.Popen[str], Path, list[str]], tmp_path: Path
) -> None:
    proc, data, lines = demo
    page = re.search(
        r"agent page \(explorer serve\): (http://127\.0\.0\.1:\d+/agent/)#key=\S+", "".join(lines)
    )
    assert page, "".join(lines)
    assert "Find a chat" in httpx.get(page.group(1), timeout=10).text
    env_file = data / "env"
    assert f". {env_file}" in "".join(lines)
    assert env_file.stat().st_mode & 0o777 == 0o600
    exports = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in env_file.read_text().splitlines()
        if line.startswith("export ")
    )
    for name in ("WAWP_BASE_URL", "WAWP_INSTANCE_ID", "WAWP_ACCESS_TOKEN", "MEILI_URL",
                 "MEILI_API_KEY", "EXPLORER_STATE_DIR"):  # fmt: skip
        assert exports.get(name), name
    second = tmp_path / "second-terminal"
    second.mkdir()
    script = (
        f". {shlex.quote(str(env_file))}"
        f' && explorer() {{ {shlex.quote(sys.executable)} -m explorer.cli "$@"; }}'
        " && explorer check && explorer stats && explorer reindex --dry-run"
        " && explorer search --groups --limit 2 && explorer sync && explorer keys create-agent"
    )
    out = subprocess.run(
        ["bash", "-c", script], cwd=second, env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "last reindex: none recorded" not in out.stdout
    assert re.search(r"last reindex: \d{4}-", out.stdout)
    # Some people are listed twice (LID and phone): more chats than documents.
    assert re.search(r"dry run: 3\d\d chats .*chats: 29\d -> 29\d;", out.stdout), out.stdout
    assert re.search(r"would add 0, remove 0, change 0;", out.stdout), out.stdout  # same docs
    assert exports["WAWP_ACCESS_TOKEN"] not in out.stdout + out.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_demo_stops_everything_on_sigterm_and_sighup(
    demo: tuple[subprocess.Popen[str], Path, list[str]], sig: signal.Signals
) -> None:
    proc, data, _ = demo
    children = processes_mentioning(str(data))
    assert children, "Meilisearch is not running under the demo"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while processes_mentioning(str(data)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(data)) == []
    assert proc.returncode == 0


def test_meilisearch_dies_with_a_parent_that_was_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no handler to run: the kernel must take the child down."""
    data = tmp_path / "orphan"
    code = (
        "import sys, time; from pathlib import Path\n"
        "from explorer.dev.meili_server import MeiliServer\n"
        f"MeiliServer(Path({str(data)!r})).start(); print('up', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    assert processes_mentioning(str(data))
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while processes_mentioning(str(data)) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover = processes_mentioning(str(data))
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    proc.stdout.close()
    assert leftover == []
