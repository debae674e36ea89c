"""What a team scope costs a search: p50/p95 with and without a scoped tenant token.

Builds the documents a reindex of two instances would send (1,000,000 by default, mapped
by the real `to_document`, no HTTP, streamed in batches of 5,000 so the client stays
small), gives a share of the chats labels (``--labelled``, one or two of 12 names, as the
label crawl writes them), and indexes them with today's settings on a local Meilisearch.
Then runs the same queries (the agent page's: an empty box, name prefixes as they are
typed, whole first names, the last digits of a number) with each credential, round-robin
so that a machine slowing down slows every credential alike:

- ``key``: an agent key (no scope);
- ``instance``: a tenant token for one instance (``keys create-search --instance``);
- ``instance+labels``: a token for one instance and two labels (``--only-label`` twice);
- ``labels``: a token for two labels in every instance;
- ``key+filter``: the agent key with the instance-and-labels filter as the search's own
  filter: what the same narrowing costs without a token.

Each search goes through :class:`explorer.meili.query.Searcher` (the CLI's and MCP's path,
exact facet counts included). Prints Meilisearch's processing time and the client's round
trip per credential, the mean number of chats matched (exact, from the facet counts), the
load average before and after, and asserts nothing.

    .venv/bin/python benchmarks/scope_search.py [--chats N] [--queries N] [--labelled SHARE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import cpu_seconds, percentile  # noqa: E402
from explorer.config import MeiliSettings  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.synthetic import Generator, render  # noqa: E402
from explorer.meili.client import IndexStore, dumps, search_body  # noqa: E402
from explorer.meili.keys import Scope, create_agent_key, scope_of, tenant_token  # noqa: E402
from explorer.meili.query import FACETS, Searcher  # noqa: E402
from explorer.records.chats import normalize_chat  # noqa: E402
from explorer.records.documents import INDEX_SETTINGS, to_document  # noqa: E402
from explorer.records.filters import instance_id_is, labels_any  # noqa: E402
from explorer.secrets import Secret  # noqa: E402

INDEX = "chats"
BATCH = 5_000
EPOCH = 1_764_000_000
A, B = "INST00000001", "INST00000002"
LABELS = ("VIP", "Billing", "New order", "Pending payment", "Paid", "Returns", "Wholesale",
          "Follow up", "Complaint", "Lead", "Cairo office", "Priority")  # fmt: skip
TEAM = ("VIP", "Billing")


def labels_for(i: int, share: float) -> list[str]:
    """Deterministic: chat ``i`` carries one or two labels, or none (1 - share of them)."""
    h = (i * 2654435761) % 2**32
    if h / 2**32 >= share:
        return []
    first = LABELS[h % len(LABELS)]
    second = LABELS[(h // 7) % len(LABELS)]
    return [first] if h % 3 or second == first else [first, second]


def document_batches(n: int, share: float, sample: list[dict[str, Any]]) -> Iterator[bytes]:
    """Batches of ``n`` chats over two instances, encoded; every 997th document kept in
    ``sample`` (the queries are made from it)."""
    batch: list[dict[str, Any]] = []
    count = 0
    for instance, label in ((A, "Cairo"), (B, "Lagos")):
        gen = Generator(1, instance, EPOCH)
        for i in range(n // 2):
            chat = normalize_chat(render(gen.spec(i), "webjs"), instance, now=EPOCH)
            if chat is None:
                continue
            doc = to_document(chat, label=label, crawled_at=EPOCH)
            doc["labels"] = labels_for(count, share)
            count += 1
            if count % 997 == 0:
                sample.append(doc)
            batch.append(doc)
            if len(batch) == BATCH:
                yield dumps(batch)
                batch = []
    if batch:
        yield dumps(batch)


def queries(sample: list[dict[str, Any]], limit: int) -> list[str]:
    """What agents type: nothing yet, a name's first 3 letters, a first name, the last 7
    digits of a number."""
    out = [""]
    for doc in sample:
        first = (doc.get("display_name") or "").split(" ")[0]
        if first and not first.startswith("+"):
            out += [first[:3], first]
        if doc.get("phone_digits"):
            out.append(doc["phone_digits"][-7:])
    return out[:limit]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=400, help="queries per credential")
    ap.add_argument("--labelled", type=float, default=0.3, help="share of chats with labels")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        admin = MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=INDEX)
        store = IndexStore(admin)
        store.create(INDEX)
        store.apply_settings(INDEX, INDEX_SETTINGS)
        assert meili.proc is not None
        sample: list[dict[str, Any]] = []
        cpu, started = cpu_seconds(meili.proc.pid), time.perf_counter()
        tasks = [store.add_json(INDEX, body) for body in
                 document_batches(args.chats, args.labelled, sample)]  # fmt: skip
        sent = time.perf_counter()
        store.wait(tasks)
        print(f"indexed {args.chats:,} chats ({args.labelled:.0%} labelled) in "
              f"{time.perf_counter() - started:.0f} s (documents made and sent in "
              f"{sent - started:.0f} s); Meilisearch CPU {cpu_seconds(meili.proc.pid) - cpu:.0f} s",
              flush=True)  # fmt: skip
        key = create_agent_key(admin, label="benchmark")
        team = scope_of(A, TEAM)

        def token(scope: Scope) -> Secret:
            return Secret(tenant_token(admin, key.uid, key.key, scope, None))

        own_filter = [instance_id_is(A), labels_any(TEAM)]
        credentials: dict[str, tuple[Secret, list[str]]] = {
            "key": (Secret(key.key), []),
            "instance": (token(Scope(A)), []),
            "instance+labels": (token(team), []),
            "labels": (token(Scope(labels=TEAM)), []),
            "key+filter": (Secret(key.key), own_filter),
        }
        qs = queries(sample, args.queries)
        searchers = {
            name: Searcher(MeiliSettings(url=meili.url, api_key=secret, index=INDEX))
            for name, (secret, _) in credentials.items()
        }
        took: dict[str, list[float]] = {name: [] for name in credentials}
        trip: dict[str, list[float]] = {name: [] for name in credentials}
        hits: dict[str, int] = dict.fromkeys(credentials, 0)
        for q in qs[:20]:  # warm-up, not counted
            for name, searcher in searchers.items():
                searcher.raw_search(search_body(q, phone=True, filter=credentials[name][1]))
        for q in qs:
            for name, searcher in searchers.items():
                body = search_body(q, phone=True, filter=credentials[name][1], limit=20,
                                   facets=FACETS)  # fmt: skip
                t0 = time.perf_counter()
                data = searcher.raw_search(body)
                trip[name].append((time.perf_counter() - t0) * 1000)
                took[name].append(float(data.get("processingTimeMs", 0)))
                # exact, where estimatedTotalHits stops at maxTotalHits (1,000)
                hits[name] += sum(
                    (data.get("facetDistribution") or {}).get("chat_type", {}).values()
                )
        print(f"\n{len(qs)} queries per credential, round-robin; the instance+labels scope "
              f"is {A} and labels {', '.join(TEAM)}")  # fmt: skip
        print(f"{'credential':16} {'Meili p50':>9} {'p95':>6} {'round trip p50':>14} {'p95':>6}"
              f" {'matches':>9}")  # fmt: skip
        for name in credentials:
            ms, round_ms = took[name], trip[name]
            print(f"{name:16} {percentile(ms, 0.5):7.1f}ms {percentile(ms, 0.95):4.1f}ms"
                  f" {percentile(round_ms, 0.5):12.1f}ms {percentile(round_ms, 0.95):4.1f}ms"
                  f" {hits[name] / len(qs):9,.0f}")  # fmt: skip
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
