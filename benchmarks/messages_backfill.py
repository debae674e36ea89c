"""Messages backfill benchmark (issue 33): the first backfill of about 1,000,000 messages
over 100,000 chats against its latency bound, a second reindex where nothing moved, and
what the messages cost Meilisearch.

Starts a sandbox (own process, 100 ms a request, 10 messages per chat) and a local
Meilisearch, then runs `explorer reindex` with messages on twice, each in a child process
that reports its own figures. The latency bound is message page requests x latency /
concurrency: no client can do better. Where the backfill's wall time goes is read on the
thread that runs it: time blocked on Wawp replies, time in Meilisearch calls (sending
batches, confirming them, the final wait), and the rest, the client's own work.

Meilisearch's cost of the messages: its data directory's growth (disk), its RSS after
the backfill and its peak (RAM), and the CPU time its process used during the backfill.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/messages_backfill.py                 # 100,000 chats
    .venv/bin/python benchmarks/messages_backfill.py --chats 10000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.crawl import INSTANCE, TOKEN, rss_of, run_json_child  # noqa: E402
from benchmarks.measure import cpu_seconds  # noqa: E402
from explorer.config import MessagesSettings, load_config  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402

LATENCY = 0.1
CONCURRENCY = 16
PER_CHAT = 10
RETENTION_DAYS = 3650  # every chat of the sandbox's five years but the oldest: the whole load


class _Clock:
    """Wall time the main thread spends inside wrapped calls, by kind."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._inside = False

    def wrap(self, owner: Any, name: str, kind: str) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside or threading.current_thread() is not threading.main_thread():
                return real(*args, **kwargs)
            self._inside = True
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self._inside = False
                self.spent[kind] = self.spent.get(kind, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)


def child(wawp_url: str, meili_url: str, index: str, state: str) -> None:
    import explorer.jobs.messages as messages
    from explorer.jobs.reindex import reindex
    from explorer.meili.client import IndexStore

    os.environ["EXPLORER_STATE_DIR"] = state
    key = os.environ["BENCH_MEILI_KEY"]  # through the environment: argv shows in `ps`
    cfg = load_config(
        env={
            "WAWP_BASE_URL": wawp_url, "WAWP_INSTANCE_ID": INSTANCE, "WAWP_ACCESS_TOKEN": TOKEN,
            "MEILI_URL": meili_url, "MEILI_API_KEY": key, "EXPLORER_INDEX": index,
        },
        overrides={},
    )  # fmt: skip
    cfg = replace(
        cfg,
        wawp=replace(cfg.wawp, concurrency=CONCURRENCY, warmup_seconds=0),
        messages=MessagesSettings(enabled=True, retention_days=RETENTION_DAYS),
    )
    clock = _Clock()
    clock.wrap(messages, "_wait_some", "wawp")
    for name in dir(IndexStore):
        if not name.startswith("_") and callable(getattr(IndexStore, name)):
            clock.wrap(IndexStore, name, "meili")
    started_at: list[float] = []
    real_backfill = messages.backfill

    meili_pid = int(os.environ["BENCH_MEILI_PID"])
    meili_dir = Path(os.environ["BENCH_MEILI_DIR"])
    meili_at: list[float] = []

    def timed_backfill(*args: Any, **kwargs: Any) -> Any:
        clock.spent.clear()  # only the backfill's share
        started_at.append(time.perf_counter())
        started_at.append(time.process_time())
        meili_at.extend((cpu_seconds(meili_pid), du(meili_dir)))
        try:
            return real_backfill(*args, **kwargs)
        finally:
            meili_at.extend((cpu_seconds(meili_pid), du(meili_dir), rss_of(meili_pid)[0]))

    import explorer.jobs.reindex as reindex_mod

    reindex_mod.backfill = timed_backfill  # type: ignore[assignment]
    started = time.perf_counter()
    report = reindex(cfg)
    assert report.messages is not None
    m = report.messages
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "backfill_seconds": m.seconds,
        "backfill_cpu": time.process_time() - started_at[1],
        "on_wawp": clock.spent.get("wawp", 0.0),
        "on_meili": clock.spent.get("meili", 0.0),
        "requests": m.requests,
        "retries": m.retries,
        "messages": m.messages,
        "listings": m.listings,
        "unchanged": m.unchanged,
        "malformed": m.malformed,
        "chats": report.chats,
        "peak_rss_mb": rss_of(os.getpid())[1],
        "meili_cpu": meili_at[2] - meili_at[0],
        "meili_disk_before": meili_at[1],
        "meili_disk_after": meili_at[3],
        "meili_rss": meili_at[4],
    }))  # fmt: skip


def du(path: Path) -> float:
    """MB of files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run(url: str, meili: MeiliServer, index: str, state: str) -> dict[str, float]:
    assert meili.proc is not None
    env = {**os.environ, "BENCH_MEILI_KEY": meili.master_key}
    env.update(BENCH_MEILI_PID=str(meili.proc.pid), BENCH_MEILI_DIR=str(meili.db_path))
    return run_json_child([__file__, "--child", url, meili.url, index, state], env=env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    n = args.chats
    print(f"{n:,} chats, {PER_CHAT} messages each, {LATENCY * 1000:.0f} ms a request, "
          f"concurrency {CONCURRENCY}, page size 100; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 shared cores)")  # fmt: skip
    epoch = int(time.time())
    extra = ("--messages-per-chat", str(PER_CHAT))
    with (
        tempfile.TemporaryDirectory() as tmp,
        MeiliServer(Path(tmp) / "meili") as meili,
        sandbox_process(n, {INSTANCE: TOKEN}, latency_ms=LATENCY * 1000, epoch=epoch,
                        prerender=True, extra=extra, start_timeout=600) as (url, _),
    ):  # fmt: skip
        assert meili.proc is not None
        pid = meili.proc.pid
        state = str(Path(tmp) / "state")
        disk0, cpu0 = du(meili.db_path), cpu_seconds(pid)
        first = run(url, meili, "bench", state)
        load_after = os.getloadavg()
        meili_cpu = cpu_seconds(pid) - cpu0
        disk1 = du(meili.db_path)
        rss, peak = rss_of(pid)
        bound = first["requests"] * LATENCY / CONCURRENCY
        rest = first["backfill_seconds"] - first["on_wawp"] - first["on_meili"]
        per_message = first["backfill_cpu"] / max(1, first["messages"]) * 1e6
        print(
            f"first reindex: {first['seconds']:.1f} s, of which the backfill "
            f"{first['backfill_seconds']:.1f} s: {first['messages']:,.0f} messages from "
            f"{first['listings']:,.0f} chats ({first['malformed']:.0f} malformed skipped)\n"
            f"  latency bound {first['requests']:,.0f} message requests x "
            f"{LATENCY * 1000:.0f} ms / {CONCURRENCY} = {bound:.1f} s; backfill / bound: "
            f"{first['backfill_seconds'] / bound:.2f}x ({first['retries']:.0f} retries)\n"
            f"  backfill wall time: waiting on Wawp {first['on_wawp']:.1f} s, on Meilisearch "
            f"{first['on_meili']:.1f} s, client work {rest:.1f} s; client CPU "
            f"{first['backfill_cpu']:.1f} s ({per_message:.1f} µs per message, every thread), "
            f"client peak RSS {first['peak_rss_mb']:.0f} MB\n"
            f"  Meilisearch during the backfill (the messages): CPU {first['meili_cpu']:.1f} s, "
            f"disk {first['meili_disk_before']:.0f} -> {first['meili_disk_after']:.0f} MB "
            f"(+{first['meili_disk_after'] - first['meili_disk_before']:.0f} MB), RSS after "
            f"{first['meili_rss']:.0f} MB\n"
            f"  Meilisearch over the whole first reindex (chats + messages): CPU {meili_cpu:.1f} "
            f"s, disk {disk0:.0f} -> {disk1:.0f} MB, RSS {rss:.0f} MB (peak {peak:.0f} MB); "
            f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}"
        )
        cpu1 = cpu_seconds(pid)
        second = run(url, meili, "bench", state)
        print(
            f"second reindex, nothing moved: {second['seconds']:.1f} s, backfill "
            f"{second['backfill_seconds']:.1f} s, {second['requests']:.0f} message requests, "
            f"{second['unchanged']:,.0f} chats unchanged, {second['messages']:.0f} messages "
            f"written; Meilisearch CPU {cpu_seconds(pid) - cpu1:.1f} s, disk "
            f"{du(meili.db_path):.0f} MB"
        )


if __name__ == "__main__":
    main()
