"""Logs, the scheduler and the demo."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.jobs.schedule import next_run, run_schedule
from tests.conftest import explorer_env, ground_truth, read_until

ROOT = Path(__file__).resolve().parent.parent


def test_next_run() -> None:
    tz = dt.UTC
    at = dt.time(3, 15)
    assert next_run(dt.datetime(2026, 1, 1, 1, 0, tzinfo=tz), at) == dt.datetime(
        2026, 1, 1, 3, 15, tzinfo=tz
    )
    assert next_run(dt.datetime(2026, 1, 1, 3, 15, tzinfo=tz), at) == dt.datetime(
        2026, 1, 2, 3, 15, tzinfo=tz
    )
    assert next_run(dt.datetime(2026, 12, 31, 23, 0, tzinfo=tz), at).year == 2027


def test_json_logs_are_json_and_hold_no_token(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer, index_name: str
) -> None:
    sb = make_sandbox(chats=50, error_rate=0.3, fault_seed=4)
    env = explorer_env(sb, token, meili.url, meili.master_key, index_name)
    Path("explorer.toml").write_text("[wawp]\nwarmup_seconds = 0\n")
    result = CliRunner().invoke(cli, ["-vv", "--log-format", "json", "reindex", "-q"], env=env)
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert entries and all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["message"].startswith("GET /v2/chats: ") for e in entries)  # each request
    # by path; httpx's own lines (the whole URL, at -vv) with the token masked
    assert not any("access_token=" in e["message"].replace("access_token=***", "") for e in entries)
    assert token not in result.output and meili.master_key not in result.output


def test_schedule_runs_reindex_then_syncs(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer, index_name: str
) -> None:
    from explorer.config import load_config

    sb = make_sandbox(chats=80)
    Path("explorer.toml").write_text("[wawp]\nwarmup_seconds = 0\n")
    cfg = load_config(env=explorer_env(sb, token, meili.url, meili.master_key, index_name))
    clock = [dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)]
    stop = threading.Event()
    code = run_schedule(
        cfg,
        at=dt.time(4, 0),
        sync_every=0.01,
        run_now=True,
        max_runs=2,
        stop=stop,
        now=lambda: clock[0],
    )
    assert code == 0
    assert (Path(os.environ["EXPLORER_STATE_DIR"]) / f"sync-{index_name}.json").exists()
    assert len(ground_truth(sb)) > 0


def test_schedule_keeps_going_after_a_refused_swap(
    make_sandbox: Callable[..., Sandbox],
    token: str,
    meili: MeiliServer,
    index_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from explorer.config import load_config

    full, empty = make_sandbox(chats=40), make_sandbox(chats=0)
    Path("explorer.toml").write_text("[wawp]\nwarmup_seconds = 0\n")
    clock = [dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)]

    def reindex_once_against(sb: Sandbox) -> int:
        cfg = load_config(env=explorer_env(sb, token, meili.url, meili.master_key, index_name))
        return run_schedule(
            cfg, at=dt.time(4, 0), sync_every=None, run_now=True, max_runs=1, now=lambda: clock[0]
        )

    assert reindex_once_against(full) == 0
    with caplog.at_level(logging.WARNING, logger="explorer.jobs.schedule"):
        code = reindex_once_against(empty)
    assert code == 3 and "refusing to swap" in caplog.text


@pytest.mark.slow
@pytest.mark.usefixtures("sigint_heard")
def test_make_demo_serves_the_ui_and_answers_searches(tmp_path: Path) -> None:
    """The README's first command, as written, on this machine (a short run)."""
    env = {**os.environ, "DEMO_ARGS": f"--chats 1500 --meili-port 0 --data-dir {tmp_path / 'demo'}"}
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        found, lines = read_until(proc, r"(http://127\.0\.0\.1:\d+)/\?api_key=(\S+)", 240)
        assert found, "demo never printed the web UI address:\n" + "".join(lines[-20:])
        url, key = found.group(1), found.group(2)
        page = httpx.get(f"{url}/?api_key={key}", timeout=10)
        assert page.status_code == 200 and "Meilisearch" in page.text
        hits = httpx.post(
            f"{url}/indexes/chats/search",
            headers={"Authorization": f"Bearer {key}"},
            json={"q": "a"},
            timeout=10,
        ).json()["hits"]
        assert hits
        text = "".join(lines)
        assert "reindexed: " in text and "NAME" in text
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0 or proc.returncode == -signal.SIGINT, proc.returncode
    assert sys.executable


def test_demo_stops_meilisearch_when_the_sandbox_fails_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import explorer.dev.demo as demo

    started: list[MeiliServer] = []
    real_start = MeiliServer.start

    def tracked(self: MeiliServer, timeout: float = 30.0) -> MeiliServer:
        started.append(self)
        return real_start(self, timeout)

    def broken(self: Sandbox, host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        raise OSError("address in use")

    monkeypatch.setattr(MeiliServer, "start", tracked)
    monkeypatch.setattr(demo.Sandbox, "start", broken)
    with pytest.raises(OSError):
        demo.start(tmp_path / "demo", 10, 0, 0)
    assert started and started[0].proc is not None
    assert started[0].proc.poll() is not None  # the process is gone
