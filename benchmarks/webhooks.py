"""Webhook benchmark: from an event sent to its change visible in the index.

Starts a local Meilisearch, a Wawp sandbox (own process) holding N chats, reindexes them,
and runs `explorer listen` (own process, HMAC signatures on). The sandbox's webhook
sender (explorer.dev.webhooks, in this process) then POSTs ``message.any`` events at a
fixed rate, each for a different chat and with a newer activity than the index holds. A
poller asks Meilisearch every 50 ms which of those chats show the new activity (the
documents a search sees: same index, same moment); an event's latency is from the moment
it was due to be sent to the first poll that saw it, so the poll interval adds up to 50 ms.

Prints, per rate: events, achieved send rate, lost (never visible), p50/p95/p99 latency.
Then the highest rate sustained with nothing lost and p95 under 2 s (rates tried in
turn), and a run during a reindex with its swap (events at 200/s while it crawls: the
latency, and how long after the swap every change is back in the new index).
Asserts nothing.

    .venv/bin/python benchmarks/webhooks.py            # 100,000 chats (~6 min)
    .venv/bin/python benchmarks/webhooks.py --quick    # 10,000 chats, shorter runs
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.crawl import INSTANCE, TOKEN, sandbox  # noqa: E402
from benchmarks.measure import cpu_seconds, percentile  # noqa: E402
from explorer.dev.meili_server import MeiliServer, free_port  # noqa: E402
from explorer.dev.webhooks import WebhookSender, message, session_name  # noqa: E402
from explorer.records.documents import doc_id  # noqa: E402

KEY = "bench-hmac-key-0123456789"
INDEX = "chats_bench"
POLL = 0.05


class Visibility:
    """Polls Meilisearch for chats whose activity reached ``floor``; records when each
    was first seen."""

    def __init__(self, meili: MeiliServer, floor: int, index: str = INDEX,
                 field: str = "last_activity") -> None:  # fmt: skip
        self.url = f"{meili.url}/indexes/{index}/documents/fetch"
        self.headers = {"Authorization": f"Bearer {meili.master_key}"}
        self.floor = floor
        self.field = field
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                started = time.time()
                offset = 0
                try:
                    while True:
                        body = {"filter": f"{self.field} >= {self.floor}", "fields": ["id"],
                                "limit": 10_000, "offset": offset}  # fmt: skip
                        page = client.post(self.url, json=body, headers=self.headers).json()
                        for doc in page.get("results", []):
                            self.seen.setdefault(doc["id"], started)
                        offset += len(page.get("results", []))
                        if not page.get("results") or offset >= page.get("total", 0):
                            break
                except (httpx.HTTPError, ValueError):
                    pass  # Meilisearch busy swapping: the next poll sees it
                self.stop.wait(max(0.0, POLL - (time.time() - started)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def applied_latency(url: str) -> tuple[float, float]:
    """(sum, count) of listen's accepted -> applied histogram."""
    text = httpx.get(f"{url}/metrics").text
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("explorer_webhook_apply_latency_seconds_sum",
                    "explorer_webhook_apply_latency_seconds_count"):  # fmt: skip
            found[name.rpartition("_")[2]] = float(value)
    return found.get("sum", 0.0), found.get("count", 0.0)


def run_rate(
    sender: WebhookSender, meili: MeiliServer, jids: list[str], rate: float, seconds: float,
    floor: int, settle: float = 30.0, during: Any = None, listen: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Send ``rate`` events a second for ``seconds`` (one per chat, activity ``floor``),
    then wait up to ``settle`` seconds for all to show."""
    count = int(rate * seconds)
    chosen = jids[:count]
    del jids[:count]  # each chat is touched once in the whole run
    watch = Visibility(meili, floor)
    due: dict[str, float] = {}
    cpu = {name: cpu_seconds(pid) for name, pid in (listen or {}).get("pids", {}).items()}
    before = applied_latency(listen["url"]) if listen else (0.0, 0.0)
    session = session_name(INSTANCE)
    start = time.time()
    for n, jid in enumerate(chosen):
        at = start + n / rate
        pause = at - time.time()
        if pause > 0:
            time.sleep(pause)
        due[doc_id(INSTANCE, jid)] = at
        sender.send(message(session, jid, floor))
    sent_for = time.time() - start
    if during is not None:
        during()
    deadline = time.time() + settle
    while len(set(due) & set(watch.seen)) < len(due) and time.time() < deadline:
        time.sleep(0.1)
    watch.close()
    latencies = [watch.seen[d] - due[d] for d in due if d in watch.seen]
    extra = ""
    if listen:
        used = {k: cpu_seconds(listen["pids"][k]) - v for k, v in cpu.items()}
        after = applied_latency(listen["url"])
        n = max(1.0, after[1] - before[1])
        extra = (
            f"; accepted->applied mean {(after[0] - before[0]) / n:.3f} s; CPU per event: "
            + ", ".join(f"{k} {v / len(due) * 1e6:.0f} µs" for k, v in used.items())
        )
    return {
        "extra": extra,
        "rate": rate,
        "events": len(due),
        "achieved": len(due) / max(sent_for, 1e-9),
        "lost": len(due) - len(latencies),
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "watch": watch,
        "due": due,
    }


def show(label: str, r: dict[str, Any]) -> None:
    print(f"  {label:<22} {r['events']:>6} events, sent at {r['achieved']:5.0f}/s, "
          f"lost {r['lost']}, p50 {r['p50']:.3f} s, p95 {r['p95']:.3f} s, "
          f"p99 {r['p99']:.3f} s{r['extra']}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chats", type=int)
    args = parser.parse_args()
    chats = args.chats or (10_000 if args.quick else 100_000)
    seconds = 5.0 if args.quick else 10.0
    print(f"Webhooks: {chats:,} chats, events signed (HMAC-SHA512), listen and Meilisearch "
          f"on this machine ({os.cpu_count()} cores, shared: figures are contended)")  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as tmp,
        MeiliServer(Path(tmp) / "meili") as meili,
        sandbox(chats, 0) as (wawp_url, _),
    ):
        env = {
            **os.environ, "WAWP_BASE_URL": wawp_url, "WAWP_INSTANCE_ID": INSTANCE,
            "WAWP_ACCESS_TOKEN": TOKEN, "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key,
            "EXPLORER_INDEX": INDEX, "EXPLORER_STATE_DIR": str(Path(tmp) / "state"),
            "EXPLORER_WEBHOOK_HMAC_KEY": KEY,
        }  # fmt: skip
        explorer = [sys.executable, "-m", "explorer.cli"]
        started = time.time()
        subprocess.run([*explorer, "reindex", "-q"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        print(f"  reindexed {chats:,} chats in {time.time() - started:.1f} s", flush=True)
        jids = httpx.get(f"{wawp_url}/_sandbox/ids", params={"instance_id": INSTANCE},
                         timeout=60).text.split()  # fmt: skip
        port = free_port()
        listen = subprocess.Popen([*explorer, "listen", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        sender = WebhookSender(f"{url}/webhooks/wawp", KEY, workers=16, retry_seconds=0.5)
        procs = {"url": url, "pids": {"listen": listen.pid, "meilisearch": meili.proc.pid,
                                      "sender": os.getpid()}}  # fmt: skip
        floor = int(time.time()) + 86_400
        try:
            print("Latency, event sent -> visible (poll every 50 ms):")
            for rate in (20, 500):
                floor += 1000
                show(f"{rate}/s", run_rate(sender, meili, jids, rate, seconds, floor, listen=procs))
            print("Highest sustained rate (nothing lost, p95 < 2 s):")
            best = None
            for rate in (750, 1000, 1500, 2000, 3000):
                if len(jids) < rate * seconds:
                    break
                floor += 1000
                r = run_rate(sender, meili, jids, rate, seconds, floor, listen=procs)
                show(f"{rate}/s", r)
                if r["lost"] or r["p95"] >= 2.0 or r["achieved"] < 0.9 * rate:
                    break
                best = r
            print(f"  => {best['rate']} events/s sustained" if best else "  => below 750/s")
            print("During a reindex with its swap (events at 200/s while it runs):")
            floor += 1000
            reindexing = subprocess.Popen([*explorer, "reindex", "-q"], env=env,
                                          stdout=subprocess.DEVNULL)  # fmt: skip
            rate = 200.0
            during_seconds = 20.0 if not args.quick else 5.0
            r = run_rate(sender, meili, jids, rate, during_seconds, floor, listen=procs)
            r["lost"] = f"{r['lost']} not yet"  # still queued behind the build: see below
            show("200/s during reindex", r)
            code = reindexing.wait()
            swapped = time.time()
            watch = Visibility(meili, floor)  # fresh: the new index starts without them
            due = r["due"]
            deadline = time.time() + 120
            while len(set(due) & set(watch.seen)) < len(due) and time.time() < deadline:
                time.sleep(0.1)
            watch.close()
            back = len(set(due) & set(watch.seen))
            lag = max(0.0, max(watch.seen.values(), default=swapped) - swapped)
            print(f"  reindex exit {code}; after its swap, {back}/{len(due)} changes present "
                  f"in the new index, the last {lag:.2f} s after it ended")  # fmt: skip
        finally:
            sender.close()
            listen.terminate()
            listen.wait(30)


if __name__ == "__main__":
    main()
