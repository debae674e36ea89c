"""Search load during a reindex: 20 searches/s from 4 clients while the index is rebuilt.

Builds a live index of N chats (1,000,000 by default), then starts the search clients,
waits a little ("before"), runs a full reindex of the same account ("during", which ends
with the swap), and keeps searching a moment ("after"). Prints p50/p99 latency per phase,
errors and empty answers. Asserts nothing.

    python benchmarks/load.py [--chats N] [--rate 20] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.crawl import INSTANCE, TOKEN, sandbox  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402

WORDS = ["maria", "ahmed", "group", "ana", "silva", "support", "family", "lucas"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        MeiliServer(Path(tmp) / "meili") as meili,
        sandbox(args.chats, 0) as (url, _),
    ):
        cfg = Path(tmp) / "c.toml"
        cfg.write_text("[wawp]\nwarmup_seconds = 0\npage_size = 200\nconcurrency = 6\n")
        env = {
            **os.environ,
            "WAWP_BASE_URL": url,
            "WAWP_INSTANCE_ID": INSTANCE,
            "WAWP_ACCESS_TOKEN": TOKEN,
            "MEILI_URL": meili.url,
            "MEILI_API_KEY": meili.master_key,
            "EXPLORER_CONFIG": str(cfg),
            "EXPLORER_STATE_DIR": str(Path(tmp) / "state"),
        }
        cmd = [sys.executable, "-m", "explorer.cli", "reindex", "-q"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=ROOT, check=True)
        print(f"initial index of {args.chats:,} chats built in {time.perf_counter() - t0:.0f} s")

        results: list[tuple[str, float, int, int]] = []
        phase = ["before"]
        stop = threading.Event()
        period = args.clients / args.rate

        def client(n: int) -> None:
            headers = {
                "Authorization": f"Bearer {meili.master_key}",
                "Accept-Encoding": "identity",
            }
            with httpx.Client(headers=headers, timeout=10) as http:
                k = 0
                while not stop.is_set():
                    start = time.monotonic()
                    try:
                        r = http.post(
                            f"{meili.url}/indexes/chats/search",
                            json={"q": WORDS[(n + k) % len(WORDS)], "limit": 5},
                        )
                        status = r.status_code
                        hits = len(r.json().get("hits", [])) if status == 200 else -1
                    except httpx.HTTPError:
                        status, hits = 0, -1
                    results.append((phase[0], time.monotonic() - start, status, hits))
                    k += 1
                    stop.wait(max(0.0, period - (time.monotonic() - start)))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(15)
        phase[0] = "during"
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=ROOT, check=True)
        took = time.perf_counter() - t0
        phase[0] = "after"
        time.sleep(5)
        stop.set()
        for t in threads:
            t.join()
    print(f"reindex under load: {took:.0f} s")
    for name in ("before", "during", "after"):
        lat = sorted(r[1] * 1000 for r in results if r[0] == name)
        errors = sum(1 for r in results if r[0] == name and r[2] != 200)
        empty = sum(1 for r in results if r[0] == name and r[3] == 0)
        print(
            f"  {name:6}: {len(lat):5} searches, p50 {lat[len(lat) // 2]:6.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99) - 1]:6.1f} ms, errors {errors}, empty answers {empty}"
        )


if __name__ == "__main__":
    main()
