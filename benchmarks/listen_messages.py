"""Webhook messages benchmark: from a ``message.any`` sent to its text searchable.

As benchmarks/webhooks.py (whose pieces it reuses): a local Meilisearch, a Wawp sandbox
(own process) holding N chats, a reindex, and `explorer listen` (own process, HMAC
signatures on) with messages on (``EXPLORER_MESSAGES=1``). The sandbox's webhook sender
POSTs ``message.any`` events at a fixed rate, each a new message with a body, in chats the
index holds, a share of them in groups with a participant. A poller asks Meilisearch every
50 ms which of those messages the messages index shows (the documents a search sees); an
event's latency is from the moment it was due to be sent to the first poll that saw it
(the poll interval adds up to 50 ms).

Prints, per rate: events, achieved send rate, lost (never visible), p50/p95/p99, listen's
and Meilisearch's CPU per event, and the load average. Asserts nothing.

    .venv/bin/python benchmarks/listen_messages.py            # 10,000 chats, 10 s per rate
    .venv/bin/python benchmarks/listen_messages.py --quick    # 5 s per rate
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.crawl import INSTANCE, TOKEN, sandbox  # noqa: E402
from benchmarks.measure import cpu_seconds, percentile  # noqa: E402
from benchmarks.webhooks import INDEX, KEY, Visibility  # noqa: E402
from explorer.dev.meili_server import MeiliServer, free_port  # noqa: E402
from explorer.dev.webhooks import PHRASES, WebhookSender, edited, message, session_name  # noqa: E402
from explorer.records.messages import message_doc_id, messages_index  # noqa: E402


def run(sender: WebhookSender, meili: MeiliServer, jids: list[str], rate: float, seconds: float,
        floor: int, pids: dict[str, int], kind: str = "new",
        originals: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """Send ``rate`` events a second for ``seconds``; wait up to 30 s for all to show."""
    count = int(rate * seconds)
    field = "timestamp" if kind == "new" else "edited_at"
    watch = Visibility(meili, floor, messages_index(INDEX), field)
    session = session_name(INSTANCE)
    due: dict[str, float] = {}
    sent: list[dict[str, Any]] = []
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    load = os.getloadavg()[0]
    start = time.time()
    for n in range(count):
        at = start + n / rate
        pause = at - time.time()
        if pause > 0:
            time.sleep(pause)
        if kind == "new":
            jid = jids[n % len(jids)]
            participant = "4915100000001@c.us" if jid.endswith("@g.us") else None
            body = PHRASES[n % len(PHRASES)].format(n=n)
            event = message(session, jid, floor, body=body, participant=participant)
            sent.append(event["payload"])
        else:
            assert originals is not None
            event = edited(session, originals[n], f"edited {n}", floor)
        due[message_doc_id(INSTANCE, (sent or originals or [{}])[n]["id"])] = at
        sender.send(event)
    achieved = count / max(time.time() - start, 1e-9)
    deadline = time.time() + 30
    while len(set(due) & set(watch.seen)) < len(due) and time.time() < deadline:
        time.sleep(0.1)
    watch.close()
    latencies = [watch.seen[d] - due[d] for d in due if d in watch.seen]
    used = {k: (cpu_seconds(pids[k]) - v) / count * 1e6 for k, v in cpu.items()}
    print(f"  {kind} {rate:>5.0f}/s  {count:>6} events, sent at {achieved:5.0f}/s, lost "
          f"{count - len(latencies)}, p50 {percentile(latencies, 0.5):.3f} s, p95 "
          f"{percentile(latencies, 0.95):.3f} s, p99 {percentile(latencies, 0.99):.3f} s; CPU "
          f"per event: " + ", ".join(f"{k} {v:.0f} µs" for k, v in used.items())
          + f"; load average {load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    return {"sent": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chats", type=int, default=10_000)
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 10.0
    print(f"Webhook messages: {args.chats:,} chats, events signed, listen and Meilisearch on "
          f"this machine ({os.cpu_count()} cores, shared: figures are contended)")  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as tmp,
        MeiliServer(Path(tmp) / "meili") as meili,
        sandbox(args.chats, 0) as (wawp_url, _),
    ):
        env = {
            **os.environ, "WAWP_BASE_URL": wawp_url, "WAWP_INSTANCE_ID": INSTANCE,
            "WAWP_ACCESS_TOKEN": TOKEN, "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key,
            "EXPLORER_INDEX": INDEX, "EXPLORER_STATE_DIR": str(Path(tmp) / "state"),
            "EXPLORER_WEBHOOK_HMAC_KEY": KEY, "EXPLORER_MESSAGES": "1",
        }  # fmt: skip
        explorer = [sys.executable, "-m", "explorer.cli"]
        subprocess.run([*explorer, "reindex", "-q"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
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
        pids = {"listen": listen.pid, "meilisearch": meili.proc.pid}
        floor = int(time.time())
        try:
            print("Latency, event sent -> message visible (poll every 50 ms):")
            run(sender, meili, jids, 20, seconds, floor, pids)
            floor += 1
            run(sender, meili, jids, 500, seconds, floor, pids)
        finally:
            sender.close()
            listen.terminate()
            listen.wait(30)


if __name__ == "__main__":
    main()
