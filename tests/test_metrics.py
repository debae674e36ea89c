"""GET /metrics and /healthz on listen and schedule, parsed with Prometheus's own parser."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import meilisearch
from prometheus_client.parser import text_string_to_metric_families

from explorer.dev.meili_server import MeiliServer, free_port
from explorer.dev.sandbox import Sandbox
from explorer.dev.webhooks import message
from explorer.jobs.reindex import last_report
from tests.conftest import SANDBOX_INSTANCE, explorer_env
from tests.test_listen import SESSION, World, wait_until, world  # noqa: F401 - the fixture

Families = dict[str, tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]


@contextmanager
def explorer_running(env: dict[str, str], *args: str, port_option: str = "--port") -> Iterator[str]:
    """``explorer <args>`` in its own process on a free port; yields its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "explorer.cli", *args, port_option, str(port)]
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def config_env(
    sb: Sandbox, token: str, meili: MeiliServer, index_name: str, tmp_path: Path
) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "explorer.toml"
    path.write_text("[wawp]\nwarmup_seconds = 0\n")
    env = explorer_env(sb, token, meili.url, meili.master_key, index_name,
                       EXPLORER_CONFIG=str(path))  # fmt: skip
    return path, env


def scrape(url: str) -> Families:
    """Every family: its type and samples keyed by (sample name, sorted labels)."""
    resp = httpx.get(f"{url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    found: Families = {}
    for family in text_string_to_metric_families(resp.text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        found[family.name] = (family.type, samples)
    return found


def value(families: Families, name: str, sample: str | None = None, **labels: str) -> float:
    kind, samples = families[name]
    return samples[(sample or name, tuple(sorted(labels.items())))]


def test_listen_exports_events_queue_latency_and_index_state(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
) -> None:
    w = world()
    jids = [f"4915100009{n:03d}@c.us" for n in range(5)]
    for jid in jids:
        w.hooks.send(message(SESSION, jid, 1_765_000_000))
    for jid in jids:
        wait_until(lambda jid=jid: w.doc(jid), "the events applied")
    m = scrape(w.url)
    assert m["explorer_webhook_events_received"][0] == "counter"
    assert value(m, "explorer_webhook_events_received", "explorer_webhook_events_received_total",
                 event="message.any") == 5  # fmt: skip
    assert value(m, "explorer_webhook_events_applied", "explorer_webhook_events_applied_total",
                 event="message.any") == 5  # fmt: skip
    assert m["explorer_webhook_queue_depth"][0] == "gauge"
    assert value(m, "explorer_webhook_queue_depth") == 0
    assert m["explorer_webhook_apply_latency_seconds"][0] == "histogram"
    assert value(m, "explorer_webhook_apply_latency_seconds",
                 "explorer_webhook_apply_latency_seconds_count") == 5  # fmt: skip
    indexed = meilisearch.Client(w.meili.url, w.meili.master_key).index(w.index).get_stats()
    assert value(m, "explorer_documents", instance=SANDBOX_INSTANCE) == indexed.number_of_documents
    assert value(m, "explorer_last_reindex_timestamp_seconds") == last_report(w.cfg)["finished_at"]  # type: ignore[index]
    health = httpx.get(f"{w.url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "queue_depth": 0, "meilisearch": "ok",
                             "dead_letters": 0, "last_dead_letter": None}  # fmt: skip


def test_schedule_exports_its_runs_and_next_reindex(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer, index_name: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    _, env = config_env(make_sandbox(chats=60), token, meili, index_name, tmp_path)
    schedule = ("schedule", "--run-now", "--reindex-at", "03:15", "--timezone", "Europe/Berlin")
    started = time.time()
    with explorer_running(env, *schedule, port_option="--metrics-port") as url:

        def reindexed() -> Families | None:
            try:
                m = scrape(url)
            except httpx.HTTPError:
                return None
            runs = m["explorer_schedule_runs"][1]
            done = ("explorer_schedule_runs_total", (("exit_code", "0"), ("job", "reindex")))
            return m if runs.get(done) == 1 else None

        m = wait_until(reindexed, "the first reindex in the metrics")
        assert value(m, "explorer_job_last_exit_code", job="reindex") == 0
        indexed = meilisearch.Client(meili.url, meili.master_key).index(index_name).get_stats()
        assert value(m, "explorer_documents", instance=SANDBOX_INSTANCE) == (
            indexed.number_of_documents
        )
        due = value(m, "explorer_schedule_next_reindex_timestamp_seconds")
        # The next 03:15 in Berlin after the reindex that ran at start.
        assert dt.datetime.fromtimestamp(due, ZoneInfo("Europe/Berlin")).time() == dt.time(3, 15)
        assert started < due <= time.time() + 86_400
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_serve_exports_the_index_state_beside_the_door(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer, index_name: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    from explorer.config import load_config
    from explorer.jobs.reindex import reindex

    path, env = config_env(make_sandbox(chats=40), token, meili, index_name, tmp_path)
    cfg = load_config(path, env=env)
    reindex(cfg)
    with explorer_running(env, "serve") as url:

        def up() -> Families | None:
            try:
                return scrape(url)
            except httpx.HTTPError:
                return None

        m = wait_until(up, "serve's metrics")
        indexed = meilisearch.Client(meili.url, meili.master_key).index(index_name).get_stats()
        assert value(m, "explorer_documents", instance=SANDBOX_INSTANCE) == (
            indexed.number_of_documents
        )
        assert (
            value(m, "explorer_last_reindex_timestamp_seconds") == last_report(cfg)["finished_at"]
        )  # type: ignore[index]
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/").status_code == 200  # the page is still there
