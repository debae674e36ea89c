"""Reindex benchmark: how close a full reindex gets to the API's latency limit, where its
wall time goes, where the client's CPU goes, and whether memory stays flat.

Starts a sandbox (own process) and a local Meilisearch, then runs, each in a fresh child
process that reports its own CPU time and peak RSS (VmHWM): the crawl alone and a full
reindex. The latency limit is pages x latency / concurrency: no client can do better.

Where the wall time goes is read on the thread that runs the reindex: time blocked on
the next page (waiting on Wawp), time in Meilisearch calls (sending batches, settings,
the final wait for indexing, the swap), and the rest, the client's own work. The
client's CPU (every thread) and Meilisearch's CPU over the run are printed beside it.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/reindex.py            # 10,000, 100,000, 1,000,000 (~15 min)
    .venv/bin/python benchmarks/reindex.py --quick    # 10,000 and 100,000, no sequential run
    .venv/bin/python benchmarks/reindex.py --sizes 100000 --no-cpu   # the targets only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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

import orjson  # noqa: E402

from benchmarks.crawl import (  # noqa: E402
    INSTANCE,
    TOKEN,
    rss_of,
    run_child,
    run_json_child,
    sandbox,
)
from explorer.config import MeiliSettings, load_config  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.synthetic import Generator, render  # noqa: E402
from explorer.jobs.reindex import reindex  # noqa: E402
from explorer.meili.client import IndexStore  # noqa: E402
from explorer.records.chats import normalize_chat  # noqa: E402
from explorer.records.documents import to_document  # noqa: E402
from explorer.secrets import Secret  # noqa: E402

LATENCY = 0.1
SHAPES = ("webjs", "noweb", "gows")


class _Clock:
    """Wall time the main thread spends inside wrapped calls, by kind (calls from other
    threads, such as the crawl's prefetch, are not its waiting)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._inside = False

    def wrap(self, owner: type, name: str, kind: str) -> None:
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
                took = time.perf_counter() - started
                self.spent[kind] = self.spent.get(kind, 0.0) + took

        setattr(owner, name, timed)


def child(wawp_url: str, meili_url: str, index: str, state: str, concurrency: str) -> None:
    from explorer.source.crawl import PageSource

    os.environ["EXPLORER_STATE_DIR"] = state
    key = os.environ["BENCH_MEILI_KEY"]  # through the environment: argv shows in `ps`
    cfg = load_config(
        env={
            "WAWP_BASE_URL": wawp_url, "WAWP_INSTANCE_ID": INSTANCE, "WAWP_ACCESS_TOKEN": TOKEN,
            "MEILI_URL": meili_url, "MEILI_API_KEY": key, "EXPLORER_INDEX": index,
        },
        overrides={},
    )  # fmt: skip
    cfg = replace(cfg, wawp=replace(cfg.wawp, concurrency=int(concurrency), warmup_seconds=0))
    clock = _Clock()
    for name in ("get", "fetch"):
        clock.wrap(PageSource, name, "wawp")
    for name in dir(IndexStore):
        if not name.startswith("_") and callable(getattr(IndexStore, name)):
            clock.wrap(IndexStore, name, "meili")
    started = time.perf_counter()
    cpu = time.process_time()
    report = reindex(cfg)
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "crawl_seconds": report.crawl_seconds,
        "wait_seconds": report.wait_seconds,
        "on_wawp": clock.spent.get("wawp", 0.0),
        "on_meili": clock.spent.get("meili", 0.0),
        "requests": report.requests,
        "chats": report.chats,
        "new_count": report.new_count,
        "peak_rss_mb": rss_of(os.getpid())[1],
    }))  # fmt: skip


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_reindex(
    wawp_url: str, meili: MeiliServer, index: str, state: str, concurrency: int = 8
) -> dict[str, float]:
    return run_json_child(
        [__file__, "--child", wawp_url, meili.url, index, state, str(concurrency)],
        env={**os.environ, "BENCH_MEILI_KEY": meili.master_key},
    )


def stages(n: int, repeats: int = 3) -> None:
    """Client CPU per chat by stage, without HTTP (the end-to-end figure includes it).

    Page by page, as reindex works (a page is decoded, normalised, built and encoded
    while it is in the CPU's caches). Each
    stage's best of ``repeats`` runs: a shared machine only ever adds time."""
    gen = Generator(1, INSTANCE, 1_764_000_000)
    print(f"Client CPU per chat by stage ({n:,} chats per shape, no HTTP, best of {repeats}):")
    for shape in SHAPES:
        pages = [
            orjson.dumps([render(gen.spec(i), shape) for i in range(s, min(n, s + 100))])
            for s in range(0, n, 100)
        ]
        best: dict[str, float] = {}
        for _ in range(repeats):
            took = dict.fromkeys(("decode", "normalise", "document", "encode"), 0.0)
            for body in pages:
                t0 = time.process_time()
                raws = orjson.loads(body)
                t1 = time.process_time()
                chats = [c for raw in raws if (c := normalize_chat(raw, INSTANCE))]
                t2 = time.process_time()
                docs = [to_document(c, label="Bench", crawled_at=1) for c in chats]
                t3 = time.process_time()
                orjson.dumps(docs)
                t4 = time.process_time()
                took["decode"] += t1 - t0
                took["normalise"] += t2 - t1
                took["document"] += t3 - t2
                took["encode"] += t4 - t3
            best = {k: min(v, best.get(k, v)) for k, v in took.items()}
        text = ", ".join(f"{k} {v / n * 1e6:.1f}" for k, v in best.items())
        print(f"  {shape:6}: {text}; sum {sum(best.values()) / n * 1e6:.1f} µs")


def end_to_end(meili: MeiliServer, tmp: str, n: int, repeats: int = 3) -> None:
    """Each shape's full reindex ``repeats`` times, at the issue's 100 ms a request (pauses
    between replies make each page dearer, so replies at once would flatter the client).
    A shared machine's speed varies from one run to the next: the best and the median are
    printed with every run."""
    print(f"\nClient CPU per chat end to end (full reindex, {n:,} chats, "
          f"{LATENCY * 1000:.0f} ms a request, HTTP both ways, {repeats} runs; "
          "target 20 µs):")  # fmt: skip
    for shape in SHAPES:
        runs = []
        with sandbox(n, LATENCY * 1000, shape) as (url, _):
            for k in range(repeats):
                r = run_reindex(url, meili, f"cpu_{shape}_{k}", str(Path(tmp) / f"cpu-{shape}"))
                runs.append(r["cpu_seconds"] / r["chats"] * 1e6)
                drop_index(meili, f"cpu_{shape}_{k}")  # the next run indexes as much, no more
        print(f"  {shape:6}: best {min(runs):.1f}, median {statistics.median(runs):.1f} µs "
              f"CPU per chat (runs: {', '.join(f'{x:.1f}' for x in runs)})")  # fmt: skip


def drop_index(meili: MeiliServer, uid: str) -> None:
    settings = MeiliSettings(url=meili.url, api_key=Secret(meili.master_key))
    IndexStore(settings).delete(uid)  # waits for the deletion


def meili_tasks(meili: MeiliServer, since: str) -> tuple[float, int]:
    """Seconds Meilisearch spent on document batches enqueued after ``since``, and how many
    batches (tasks it processed together share one batch and its duration: counted once)."""
    import httpx

    headers = {"Authorization": f"Bearer {meili.master_key}"}
    busy: dict[int, float] = {}
    start = None
    while True:
        params: dict[str, Any] = {"types": "documentAdditionOrUpdate", "afterEnqueuedAt": since,
                                  "limit": 1000}  # fmt: skip
        if start is not None:
            params["from"] = start
        page = httpx.get(f"{meili.url}/tasks", params=params, headers=headers).json()
        for task in page["results"]:
            duration = task.get("duration") or "PT0S"
            batch = task.get("batchUid")
            key = -1 - task["uid"] if batch is None else batch
            busy[key] = float(duration.removeprefix("PT").removesuffix("S") or 0)
        start = page.get("next")
        if start is None:
            return sum(busy.values()), len(busy)


def report_run(run: dict[str, float], concurrency: int, meili_cpu: float) -> None:
    limit = run["requests"] * LATENCY / concurrency
    rest = run["seconds"] - run["on_wawp"] - run["on_meili"]
    print(
        f"  reindex, concurrency {concurrency}: {run['seconds']:.1f} s; latency limit "
        f"{run['requests']:.0f} requests x {LATENCY * 1000:.0f} ms / {concurrency} = "
        f"{limit:.1f} s; reindex / limit: {run['seconds'] / limit:.2f}x\n"
        f"    wall time: waiting on Wawp {run['on_wawp']:.1f} s, on Meilisearch "
        f"{run['on_meili']:.1f} s (of which the final wait {run['wait_seconds']:.1f} s), "
        f"client work {rest:.1f} s\n"
        f"    CPU: client {run['cpu_seconds']:.1f} s "
        f"({run['cpu_seconds'] / run['chats'] * 1e6:.1f} µs per chat, every thread), "
        f"Meilisearch {meili_cpu:.1f} s; client peak RSS {run['peak_rss_mb']:.0f} MB; "
        f"{run['new_count']:,.0f} documents live"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")])
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU-per-chat sections")
    ap.add_argument("--sequential", action="store_true", help="concurrency 1 at every size")
    ap.add_argument("--child", nargs=5)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = args.sizes or ((10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000))
    if not args.no_cpu:
        stages(20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        assert meili.proc is not None
        if not args.no_cpu:
            end_to_end(meili, tmp, 50_000 if args.quick else 100_000)
        peaks = {}
        for n in sizes:
            print(f"\n{n:,} chats, {LATENCY * 1000:.0f} ms latency per request, page size 100")
            with sandbox(n, LATENCY * 1000) as (url, _):
                crawl = run_child(url, 8)
                print(f"  crawl alone, concurrency 8: {crawl['seconds']:.1f} s "
                      f"(peak RSS {crawl['peak_rss_mb']:.0f} MB)")  # fmt: skip
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                meili_cpu = cpu_of(meili.proc.pid)
                full = run_reindex(url, meili, f"bench{n}", str(Path(tmp) / "state"))
                meili_cpu = cpu_of(meili.proc.pid) - meili_cpu
                meili_busy, batches = meili_tasks(meili, since)
                report_run(full, 8, meili_cpu)
                print(
                    f"  Meilisearch: {meili_busy:.1f} s indexing in {batches} batches; "
                    f"peak RSS so far {rss_of(meili.proc.pid)[1]:.0f} MB\n"
                    f"  Meilisearch indexing time per 100,000 chats: "
                    f"{meili_busy * 100_000 / full['chats']:.1f} s, "
                    f"{meili_cpu * 100_000 / full['chats']:.1f} s CPU"
                )
                peaks[n] = full["peak_rss_mb"]
                if args.sequential or (n == 100_000 and not args.quick):
                    meili_cpu = cpu_of(meili.proc.pid)
                    seq = run_reindex(url, meili, f"seq{n}", str(Path(tmp) / "state"), 1)
                    meili_cpu = cpu_of(meili.proc.pid) - meili_cpu
                    report_run(seq, 1, meili_cpu)
                    print(f"  concurrency 8 is {seq['seconds'] / full['seconds']:.1f}x faster "
                          "than concurrency 1")  # fmt: skip
        if len(sizes) > 1:
            small, big = sizes[0], sizes[-1]
            growth = (peaks[big] / peaks[small] - 1) * 100
            print(f"\nreindex peak RSS {' -> '.join(f'{n:,}' for n in sizes)}: "
                  f"{' -> '.join(f'{peaks[n]:.0f}' for n in sizes)} MB "
                  f"({growth:+.1f}% from {small:,} to {big:,})")  # fmt: skip


if __name__ == "__main__":
    main()
