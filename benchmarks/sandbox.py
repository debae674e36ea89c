"""How faithfully the sandbox keeps the times it claims, measured from a client.

The other benchmarks crawl the sandbox as if it were a remote production server; these are
the figures that make that fair, which the tests check by what the sandbox waits for (a
fake clock) rather than by a stopwatch:

1. Keep-alive replies with no latency: milliseconds per reply on one connection. A Nagle +
   delayed-ACK stall would put every reply at 40 ms or more.
2. Latency 100 ms: the time to each reply, which should be 100 ms and a little, however
   large the page (the page is built inside the latency, not after it).
3. Spikes: with --spike-rate 0.2 --spike-ms 300, the share of replies past 300 ms.

The sandbox runs in its own process. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/sandbox.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import percentile  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402

INSTANCE = "BENCH0000001"
TOKEN = "bench-token-0123456789abcdef"


def reply_times(url: str, limit: int, n: int) -> list[float]:
    """Milliseconds per reply for ``n`` pages of ``limit`` chats, on one connection."""
    params = {"instance_id": INSTANCE, "access_token": TOKEN, "limit": limit}
    took = []
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/v2/chats", params=params)  # the connection and the sort order warmed up
        for k in range(n):
            started = time.perf_counter()
            client.get("/v2/chats", params={**params, "offset": (k * limit) % 5_000})
            took.append((time.perf_counter() - started) * 1000)
    return took


def show(label: str, took: list[float]) -> None:
    print(f"  {label}: p50 {percentile(took, 0.5):6.1f} ms, p95 {percentile(took, 0.95):6.1f} ms "
          f"({len(took)} replies)")  # fmt: skip


def main() -> None:
    chats = {INSTANCE: TOKEN}
    print("Keep-alive replies, no latency (a stall would be >= 40 ms each):")
    with sandbox_process(5_000, chats, epoch=1_764_000_000) as (url, _):
        show("pages of 50  ", reply_times(url, 50, 200))
    print("Latency 100 ms: the time to the reply, the page built inside it:")
    with sandbox_process(5_000, chats, latency_ms=100, epoch=1_764_000_000) as (url, _):
        for limit in (10, 100, 1000):
            show(f"pages of {limit:<4}", reply_times(url, limit, 30))
    print("Spikes: --spike-rate 0.2 --spike-ms 300 over 100 ms latency:")
    spikes = ("--spike-rate", "0.2", "--spike-ms", "300", "--fault-seed", "1")
    with sandbox_process(5_000, chats, latency_ms=100, extra=spikes) as (url, _):
        took = reply_times(url, 10, 100)
    spiked = sum(1 for t in took if t >= 400)
    print(f"  {spiked} of {len(took)} replies took 400 ms or more (asked: 20%); "
          f"p50 {percentile(took, 0.5):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
