"""Labels benchmark: what reading labels costs a reindex, and label event -> visible.

1. Reindex of N chats (default 100,000) from a sandbox with 100 ms latency per request, at
   concurrency 8, without labels (``--labels 0``: one ``/v2/labels`` request answering
   ``[]``) and with the sandbox's 8 labels (``/v2/labels`` and one ``/v2/labels/chats``
   per label), alternated: requests and wall time of each run.
2. `explorer listen` on a reindexed 10,000-chat sandbox: ``label.chat.added`` events at
   20/s, each putting a label on a chat that did not carry it; an event's latency is from
   the moment it was due to the first poll (every 50 ms) that finds the chat by
   ``label_ids``. Then renames (``label.upsert``) of a label on ~1,200 chats: from the event
   to every one of them found under the new name.

Prints figures and the load average (2 shared cores: figures are contended); asserts
nothing.

    .venv/bin/python benchmarks/labels.py            # 100,000 chats (~5 min)
    .venv/bin/python benchmarks/labels.py --quick    # 20,000 chats, one run each
"""

from __future__ import annotations

import argparse
import contextlib
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

from benchmarks.crawl import INSTANCE, TOKEN  # noqa: E402
from benchmarks.measure import percentile  # noqa: E402
from benchmarks.reindex import run_reindex  # noqa: E402
from explorer.dev.meili_server import MeiliServer, free_port  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.dev.webhooks import (  # noqa: E402
    WebhookSender,
    label_chat_event,
    label_event,
    session_name,
)
from explorer.records.documents import doc_id  # noqa: E402

KEY = "bench-hmac-key-0123456789"
INDEX = "labels_bench"
POLL = 0.05
LATENCY_MS = 100.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def warm(url: str, labels: int) -> None:
    """Ask for every label's chats once: the sandbox computes them on first use."""
    params = {"instance_id": INSTANCE, "access_token": TOKEN}
    for label_id in range(1, labels + 1):
        httpx.get(f"{url}/v2/labels/chats", params={**params, "labelId": label_id}, timeout=120)


def reindex_cost(chats: int, runs: int, tmp: str, meili: MeiliServer) -> None:
    print(f"Reindex of {chats:,} chats, {LATENCY_MS:.0f} ms per request, concurrency 8, "
          f"page size 100 (load average before: {load()})")  # fmt: skip
    # Not prerendered: under load a prerender outlasts the start deadline; both render on
    # demand, in their own processes, alike.
    with contextlib.ExitStack() as stack:
        plain, _ = stack.enter_context(sandbox_process(
            chats, {INSTANCE: TOKEN}, latency_ms=LATENCY_MS, epoch=1_764_000_000,
            extra=("--labels", "0")))  # fmt: skip
        labelled, _ = stack.enter_context(sandbox_process(
            chats, {INSTANCE: TOKEN}, latency_ms=LATENCY_MS, epoch=1_764_000_000))  # fmt: skip
        warm(labelled, 8)
        results: dict[str, list[dict[str, Any]]] = {"without labels": [], "with 8 labels": []}
        for n in range(runs):
            for name, url in (("without labels", plain), ("with 8 labels", labelled)):
                run = run_reindex(url, meili, f"{INDEX}{n}", str(Path(tmp) / "state"))
                results[name].append(run)
                print(f"  {name:<15} {run['seconds']:5.1f} s, {run['requests']:,} requests, "
                      f"{run['new_count']:,} documents (load {load()})", flush=True)  # fmt: skip
        for name, got in results.items():
            secs = sorted(r["seconds"] for r in got)
            print(f"  {name}: {secs[0]:.1f}-{secs[-1]:.1f} s, "
                  f"{got[0]['requests']:,} requests")  # fmt: skip


class Poller:
    """Polls Meilisearch for the documents matching ``filter_`` every :data:`POLL`
    seconds; records when each id was first seen, and how many matched each time."""

    def __init__(self, meili: MeiliServer, filter_: str) -> None:
        self.url = f"{meili.url}/indexes/{INDEX}/documents/fetch"
        self.headers = {"Authorization": f"Bearer {meili.master_key}"}
        self.filter = filter_
        self.seen: dict[str, float] = {}
        self.total = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                started = time.time()
                body = {"filter": self.filter, "fields": ["id"], "limit": 10_000}
                try:
                    page = client.post(self.url, json=body, headers=self.headers).json()
                    for doc in page.get("results", []):
                        self.seen.setdefault(doc["id"], started)
                    self.total = int(page.get("total", 0))
                except (httpx.HTTPError, ValueError):
                    pass
                self.stop.wait(max(0.0, POLL - (time.time() - started)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def event_to_visible(tmp: str, meili: MeiliServer, seconds: float) -> None:
    chats = 10_000
    with sandbox_process(chats, {INSTANCE: TOKEN}, epoch=1_764_000_000) as (url, _):
        env = {
            **os.environ, "WAWP_BASE_URL": url, "WAWP_INSTANCE_ID": INSTANCE,
            "WAWP_ACCESS_TOKEN": TOKEN, "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key,
            "EXPLORER_INDEX": INDEX, "EXPLORER_STATE_DIR": str(Path(tmp) / "listen-state"),
            "EXPLORER_WEBHOOK_HMAC_KEY": KEY,
        }  # fmt: skip
        explorer = [sys.executable, "-m", "explorer.cli"]
        subprocess.run([*explorer, "reindex", "-q", "--force"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        params = {"instance_id": INSTANCE, "access_token": TOKEN, "labelId": "7"}
        carrying = {x["id"] for x in httpx.get(f"{url}/v2/labels/chats", params=params).json()}
        jids = [j for j in httpx.get(f"{url}/_sandbox/ids", params={"instance_id": INSTANCE},
                                     timeout=60).text.split()
                if j.endswith("@c.us") and j not in carrying]  # fmt: skip
        port = free_port()
        listen = subprocess.Popen([*explorer, "listen", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        sender = WebhookSender(f"{base}/webhooks/wawp", KEY, workers=8, retry_seconds=0.5)
        session = session_name(INSTANCE)
        try:
            rate = 20.0
            chosen = jids[: int(rate * seconds)]
            print(f"Label event -> visible, {chats:,} chats, label.chat.added at {rate:.0f}/s "
                  f"(load average before: {load()})")  # fmt: skip
            watch = Poller(meili, f'label_ids = "7" AND instance_id = "{INSTANCE}"')
            due: dict[str, float] = {}
            start = time.time()
            for n, jid in enumerate(chosen):
                at = start + n / rate
                if (pause := at - time.time()) > 0:
                    time.sleep(pause)
                due[doc_id(INSTANCE, jid)] = at
                sender.send(label_chat_event("label.chat.added", session, jid, "7"))
            deadline = time.time() + 30
            while len(set(due) & set(watch.seen)) < len(due) and time.time() < deadline:
                time.sleep(0.1)
            watch.close()
            lat = [watch.seen[d] - due[d] for d in due if d in watch.seen]
            print(f"  {len(due)} events, lost {len(due) - len(lat)}, p50 "
                  f"{percentile(lat, 0.5):.3f} s, p95 {percentile(lat, 0.95):.3f} s, p99 "
                  f"{percentile(lat, 0.99):.3f} s (load {load()})")  # fmt: skip
            params["labelId"] = "1"
            size = len(httpx.get(f"{url}/v2/labels/chats", params=params).json())
            print(f"Label renamed -> every chat carrying it ({size:,}) found by the new name:")
            took = []
            for n in range(5):
                name = f"New customer, round {n}"
                watch = Poller(meili, f'labels = "{name}"')
                sent = time.time()
                sender.send(label_event("label.upsert", session, {
                    "id": "1", "name": name, "color": 0, "colorHex": "#ff9485"}))  # fmt: skip
                while watch.total < size and time.time() < sent + 60:
                    time.sleep(0.02)
                watch.close()
                took.append(max(watch.seen.values(), default=sent + 60) - sent)
            print("  " + ", ".join(f"{t:.2f} s" for t in took) + f" (load {load()})")
        finally:
            sender.close()
            listen.terminate()
            listen.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chats", type=int)
    parser.add_argument("--skip-reindex", action="store_true")
    args = parser.parse_args()
    chats = args.chats or (20_000 if args.quick else 100_000)
    print(f"{os.cpu_count()} cores, shared with other work: figures are contended")
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        if not args.skip_reindex:
            reindex_cost(chats, 1 if args.quick else 2, tmp, meili)
        event_to_visible(tmp, meili, 5.0 if args.quick else 10.0)


if __name__ == "__main__":
    main()
