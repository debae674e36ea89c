"""Crawler benchmark: bytes on the wire per chat with and without gzip, speed-up from
concurrency, memory vs. account size, CPU per chat.

Runs the sandbox in its own process (so its memory is not counted) and each crawl in a
fresh child process that reports its own peak RSS. Prints figures; asserts nothing.

    python benchmarks/crawl.py                  # the full set (several minutes)
    python benchmarks/crawl.py --quick          # smaller numbers, for a smoke run
    python benchmarks/crawl.py --only bytes     # one section: bytes, speed or memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.config import Config, load_config  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.dev.synthetic import Generator, render  # noqa: E402
from explorer.records.chats import normalize_chat  # noqa: E402
from explorer.secrets import Secret  # noqa: E402
from explorer.source.crawl import Crawler, CrawlOptions  # noqa: E402
from explorer.source.wawp import WawpClient  # noqa: E402

INSTANCE = "BENCH0000001"
TOKEN = "bench-token-0123456789abcdef"


def rss_of(pid: int) -> tuple[float, float]:
    """(current, peak) RSS in MB from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@contextmanager
def sandbox(
    chats: int, latency_ms: float, shape: str = "webjs"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with sandbox_process(
        chats,
        {INSTANCE: TOKEN},
        latency_ms=latency_ms,
        epoch=1_764_000_000,
        shape=shape,
        prerender=True,
    ) as running:
        yield running


def instances_config(
    workdir: Path, url: str, meili: Any, tokens: dict[str, str], wawp: str = "",
    labels: dict[str, str] | None = None,
) -> Config:  # fmt: skip
    """A config for several sandbox instances (each with its token) and a local Meilisearch."""
    blocks = "".join(
        f'\n[[wawp.instances]]\nid = "{i}"\naccess_token = "{t}"\n'
        + (f'label = "{labels[i]}"\n' if labels else "")
        for i, t in tokens.items()
    )
    path = workdir / "explorer.toml"
    path.write_text(
        f"[wawp]\nwarmup_seconds = 0\n{wawp}{blocks}\n"
        f'[reindex]\nstate_dir = "{workdir / "state"}"\n'
    )
    env = {"WAWP_BASE_URL": url, "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key}
    return load_config(path, env=env)


def run_json_child(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run a benchmark child process; its last stdout line is a JSON object of figures."""
    out = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    if out.returncode:
        raise SystemExit(f"benchmark child failed: {out.stderr.strip()[-800:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class _Counted(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, counter: CountingTransport) -> None:
        self.stream, self.counter = stream, counter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.stream:
            self.counter.add(len(chunk))
            yield chunk

    def close(self) -> None:
        self.stream.close()


class CountingTransport(httpx.HTTPTransport):
    """httpx's own transport, asking for ``encoding`` and counting the bytes of every
    reply as they arrive (status line, headers, and the body before any decoding)."""

    def __init__(self, encoding: str) -> None:
        super().__init__()
        self.encoding = encoding
        self.received = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.received += n

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = self.encoding
        response = super().handle_request(request)
        head = len(b"HTTP/1.1 200 \r\n\r\n") + len(response.reason_phrase)
        head += sum(len(k) + len(v) + 4 for k, v in response.headers.raw)
        self.add(head)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, self),
            extensions=response.extensions,
        )


def child(url: str, concurrency: int, page_size: int, encoding: str = "") -> None:
    """Crawl once and print a JSON line with the figures of this process. ``encoding``
    (gzip or identity) counts the bytes received, asking for that encoding."""
    counter = CountingTransport(encoding) if encoding else None
    started = time.perf_counter()
    cpu = time.process_time()
    with WawpClient(url, INSTANCE, Secret(TOKEN), timeout=60, transport=counter) as client:
        crawler = Crawler(
            client, CrawlOptions(page_size=page_size, concurrency=concurrency, warmup_seconds=0)
        )
        count = sum(len(p.chats) for p in crawler.pages())
    print(
        json.dumps(
            {
                "chats": count,
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
                "requests": crawler.stats.requests,
                "received": counter.received if counter else 0,
                # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
                # across exec, which would count the parent's memory.
                "peak_rss_mb": rss_of(os.getpid())[1],
            }
        )
    )


def run_child(
    url: str, concurrency: int, page_size: int = 100, encoding: str = ""
) -> dict[str, float]:
    argv = [__file__, "--child", url, str(concurrency), str(page_size), encoding]
    return run_json_child(argv)


def bytes_per_chat(n: int) -> None:
    """What a crawl receives, per chat, for each engine's shape: pages gzipped (what the
    client asks for) against plain (what the hand-written client it replaced received)."""
    print(f"Bytes received per chat ({n:,} chats, page size 100, overlap included):")
    for shape in ("webjs", "noweb", "gows"):
        with sandbox(n, 0, shape) as (url, _):
            plain = run_child(url, 8, encoding="identity")
            packed = run_child(url, 8, encoding="gzip")
        per = {k: r["received"] / r["chats"] for k, r in (("plain", plain), ("gzip", packed))}
        cpu = {
            k: r["cpu_seconds"] / r["chats"] * 1e6 for k, r in (("plain", plain), ("gzip", packed))
        }
        print(
            f"  {shape:6}: plain {per['plain']:6.0f} B, gzip {per['gzip']:5.0f} B "
            f"({per['plain'] / per['gzip']:.1f}x less); client CPU per chat "
            f"{cpu['plain']:.0f} / {cpu['gzip']:.0f} µs (no latency)"
        )


def cpu_per_chat(n: int) -> None:
    gen = Generator(1, INSTANCE, 1_764_000_000)
    for shape in ("webjs", "noweb", "gows"):
        pages = [
            json.dumps([render(gen.spec(i), shape) for i in range(s, min(n, s + 100))])
            for s in range(0, n, 100)
        ]
        start = time.process_time()
        count = 0
        for body in pages:
            for raw in json.loads(body):
                if normalize_chat(raw, INSTANCE) is not None:
                    count += 1
        spent = time.process_time() - start
        print(f"  parse+normalise {shape:6}: {spent / n * 1e6:6.1f} µs CPU per chat ({n} chats)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["bytes", "speed", "memory"])
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), args.child[3])
        return
    speed_n = 20_000 if args.quick else 100_000
    big_n = 100_000 if args.quick else 1_000_000
    wanted = {args.only} if args.only else {"bytes", "speed", "memory"}

    if "bytes" in wanted:
        print("CPU cost of parsing and normalising (no HTTP):")
        cpu_per_chat(20_000 if args.quick else 100_000)
        print()
        bytes_per_chat(20_000)

    if "speed" in wanted:
        print(f"\nSpeed: {speed_n:,} chats, 100 ms latency per request, page size 100")
        with sandbox(speed_n, 100) as (url, _):
            seq = run_child(url, 1)
            par = run_child(url, 8)
        for name, r in (("concurrency 1", seq), ("concurrency 8", par)):
            limit = r["requests"] * 0.1 / (1 if name.endswith(" 1") else 8)
            print(
                f"  {name}: {r['seconds']:7.1f} s ({r['seconds'] / limit:.2f}x the latency "
                f"limit), {r['requests']:.0f} requests, {r['chats']:.0f} chats, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        print(f"  speed-up: {seq['seconds'] / par['seconds']:.1f}x")

    if "memory" in wanted:
        print("\nMemory: peak RSS of the crawling process, concurrency 8, no latency")
        peaks = {}
        for n in (10_000, big_n):
            with sandbox(n, 0) as (url, proc):
                r = run_child(url, 8)
                sb_rss, sb_peak = rss_of(proc.pid)
            peaks[n] = r["peak_rss_mb"]
            print(
                f"  {n:>9,} chats: crawler peak {r['peak_rss_mb']:.0f} MB, {r['seconds']:.1f} s, "
                f"{r['cpu_seconds'] / max(1, r['chats']) * 1e6:.0f} µs CPU/chat end to end; "
                f"sandbox RSS {sb_rss:.0f} MB (peak {sb_peak:.0f} MB)"
            )
        growth = (peaks[big_n] / peaks[10_000] - 1) * 100
        print(f"  growth {10_000:,} -> {big_n:,}: {growth:+.1f}%")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
