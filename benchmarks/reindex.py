"""Reindex benchmark: is indexing hidden behind crawling, and is memory flat?

Starts a sandbox (own process) and a local Meilisearch, then runs, each in a fresh child
process that reports its own peak RSS (VmHWM): the crawl alone, and a full reindex.
Prints figures; asserts nothing.

    python benchmarks/reindex.py            # 100,000 chats, then 1,000,000 (about 10 min)
    python benchmarks/reindex.py --quick    # 20,000 and 100,000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.crawl import (  # noqa: E402
    INSTANCE,
    TOKEN,
    rss_of,
    run_child,
    run_json_child,
    sandbox,
)
from explorer.config import load_config  # noqa: E402
from explorer.meili_server import MeiliServer  # noqa: E402
from explorer.reindex import reindex  # noqa: E402


def child(wawp_url: str, meili_url: str, index: str, state: str) -> None:
    os.environ["EXPLORER_STATE_DIR"] = state
    key = os.environ["BENCH_MEILI_KEY"]  # through the environment: argv shows in `ps`
    cfg = load_config(
        env={
            "WAWP_BASE_URL": wawp_url,
            "WAWP_INSTANCE_ID": INSTANCE,
            "WAWP_ACCESS_TOKEN": TOKEN,
            "MEILI_URL": meili_url,
            "MEILI_API_KEY": key,
            "EXPLORER_INDEX": index,
        },
        overrides={},
    )
    from dataclasses import replace

    cfg = replace(cfg, wawp=replace(cfg.wawp, concurrency=8, warmup_seconds=0))
    started = time.perf_counter()
    report = reindex(cfg)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "chats": report.chats,
                "new_count": report.new_count,
                "peak_rss_mb": rss_of(os.getpid())[1],
            }
        )
    )


def run_reindex(wawp_url: str, meili: MeiliServer, index: str, state: str) -> dict[str, float]:
    return run_json_child(
        [__file__, "--child", wawp_url, meili.url, index, state],
        env={**os.environ, "BENCH_MEILI_KEY": meili.master_key},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        peaks = {}
        for n in sizes:
            print(f"{n:,} chats, 100 ms latency per request, concurrency 8, page size 100")
            with sandbox(n, 100) as (url, _):
                crawl = run_child(url, 8)
                full = run_reindex(url, meili, f"bench{n}", str(Path(tmp) / "state"))
            peaks[n] = full["peak_rss_mb"]
            print(
                f"  crawl alone: {crawl['seconds']:.1f} s (peak RSS {crawl['peak_rss_mb']:.0f} MB)"
                f"\n  reindex:     {full['seconds']:.1f} s (peak RSS {full['peak_rss_mb']:.0f} MB),"
                f" {full['new_count']:.0f} documents live"
                f"\n  reindex / crawl: {full['seconds'] / crawl['seconds']:.2f}x"
            )
            meili_rss = rss_of(meili.proc.pid)[1] if meili.proc else 0
            print(f"  Meilisearch peak RSS so far: {meili_rss:.0f} MB")
        small, big = sizes
        print(
            f"reindex peak RSS {small:,} -> {big:,}: {(peaks[big] / peaks[small] - 1) * 100:+.1f}%"
        )


if __name__ == "__main__":
    main()
