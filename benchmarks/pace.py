"""Many instances under one request budget, and the adaptive pace against a rate limit.

1. A business with 50 WhatsApp numbers x 2,000 chats, 100 ms per request: a full reindex
   with a total concurrency of 8, next to the latency limit of the whole job (requests x
   latency / concurrency), instances in parallel.
2. One instance behind an account rate limit (40 requests/s), 20 ms per request: a crawl at
   a fixed concurrency of 8, then with the adaptive pace; retries (429s), time, and the
   window over time.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/pace.py            # 50 x 2,000
    .venv/bin/python benchmarks/pace.py --quick    # 10 x 2,000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.crawl import instances_config, rss_of  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.jobs.reindex import reindex  # noqa: E402
from explorer.secrets import Secret  # noqa: E402
from explorer.source.crawl import Crawler, CrawlOptions  # noqa: E402
from explorer.source.pace import Pace  # noqa: E402
from explorer.source.wawp import RetryPolicy, WawpClient  # noqa: E402

LATENCY = 0.1


def many_instances(count: int, per: int, total: int) -> None:
    tokens = {f"MANY{n:08d}": f"many-bench-token-{n:04d}-xyz" for n in range(count)}
    print(f"{count} instances x {per:,} chats, {LATENCY * 1000:.0f} ms per request, "
          f"total concurrency {total}, at most {total} per instance")  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as tmp,
        MeiliServer(Path(tmp) / "meili") as meili,
        sandbox_process(per, tokens, latency_ms=LATENCY * 1000, prerender=True) as (url, _),
    ):
        budget = f"concurrency = {total}\ntotal_concurrency = {total}\n"
        cfg = instances_config(Path(tmp), url, meili, tokens, budget)
        started = time.perf_counter()
        report = reindex(cfg)
        seconds = time.perf_counter() - started
        limit = report.requests * LATENCY / total
        print(f"  reindex: {seconds:.1f} s for {report.new_count:,} chats, {report.requests} "
              f"requests; latency limit {limit:.1f} s; ratio {seconds / limit:.2f}x")  # fmt: skip
        print(f"  peak RSS: this process {rss_of(os.getpid())[1]:.0f} MB")


def rate_limited(rate: float, chats: int) -> None:
    print(f"\nOne instance, {chats:,} chats, account limit {rate:.0f} requests/s, 20 ms replies, "
          "concurrency 8")  # fmt: skip
    for adaptive in (False, True):
        tokens = {"RATE00000001": "rate-token-0123456789"}
        with sandbox_process(chats, tokens, latency_ms=20, rate_limit=rate, prerender=True) as (
            url,
            _,
        ):
            pace = Pace(8, adaptive=adaptive)
            retry = RetryPolicy(budget_seconds=120, base_delay=0.1, max_delay=1.0)
            token = Secret("rate-token-0123456789")
            started = time.perf_counter()
            with WawpClient(url, "RATE00000001", token, retry=retry, pace=pace) as client:
                crawler = Crawler(client, CrawlOptions(concurrency=8, warmup_seconds=0))
                count = sum(len(p.chats) for p in crawler.pages())
            seconds = time.perf_counter() - started
            pages = crawler.stats.requests - crawler.stats.retries
            floor = pages / rate
            name = "adaptive pace" if adaptive else "fixed window "
            print(f"  {name}: {seconds:5.1f} s for {count:,} chats, {crawler.stats.retries} "
                  f"retries (429s), {crawler.stats.requests} requests; the rate limit allows "
                  f"no less than {floor:.1f} s ({seconds / floor:.2f}x)")  # fmt: skip
            if adaptive:
                steps = " ".join(f"{t:.1f}s:{w}" for t, w in pace.stats.history[:24])
                more = len(pace.stats.history) - 24
                print(f"    window over time: {steps}{f' ... (+{more})' if more > 0 else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    many_instances(10 if args.quick else 50, 2000, 8)
    rate_limited(40, 5000 if args.quick else 20_000)


if __name__ == "__main__":
    main()
