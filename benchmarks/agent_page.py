"""The agent page in a real browser: keystroke-to-results time and recall through the page.

Builds an index from a sandbox (in its own process) in a real Meilisearch, serves the page
with `explorer serve`'s server, and drives headless Chromium over the DevTools pipe. For
each query of `benchmarks/search.py`'s set (same kinds), it types the query one character
at a time as an agent would, waits for each keystroke's results to be on screen, and
records the time from the keystroke to that frame. Then it scores the final results.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/agent_page.py                 # 100,000 and 1,000,000 chats
    .venv/bin/python benchmarks/agent_page.py --quick         # 20,000 chats
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import meilisearch  # noqa: E402

from benchmarks.crawl import instances_config  # noqa: E402
from benchmarks.search import build_queries, recall  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.doors.serve import AgentPage  # noqa: E402
from explorer.jobs.reindex import reindex  # noqa: E402
from explorer.meili.keys import create_agent_key  # noqa: E402
from tests.browser import Browser  # noqa: E402

INSTANCES = {"PAGEBENCH001": "page-bench-token-0123456789", "PAGEBENCH002": "page-bench-token-abc"}
LABELS = {"PAGEBENCH001": "Cairo support", "PAGEBENCH002": "Lagos sales"}


@contextmanager
def agent_world(chats: int, workdir: Path) -> Iterator[dict[str, Any]]:
    """Meilisearch + an index of ``chats`` chats per instance + the page + an agent key."""
    with (
        MeiliServer(workdir / "meili", max_indexing_memory="1GiB") as meili,
        sandbox_process(chats // len(INSTANCES), INSTANCES) as (url, _),
    ):
        cfg = instances_config(workdir, url, meili, INSTANCES, "concurrency = 8\n", LABELS)
        started = time.monotonic()
        report = reindex(cfg)
        print(f"  indexed {report.new_count:,} chats in {time.monotonic() - started:.0f} s")
        key = create_agent_key(cfg.meilisearch, label="page benchmark").key
        page = AgentPage(cfg.meilisearch, port=0).start()
        try:
            yield {"cfg": cfg, "meili": meili, "key": key, "page": page}
        finally:
            page.stop()


def documents(meili: MeiliServer, index: str) -> list[dict[str, Any]]:
    client = meilisearch.Client(meili.url, meili.master_key)
    fields = ["jid", "name", "chat_type", "phone", "phone_digits", "phone_variants"]
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.http.get(
            f"indexes/{index}/documents?limit=10000&offset={offset}&fields={','.join(fields)}"
        )
        out += page["results"]
        offset += len(page["results"])
        if not page["results"] or offset >= page["total"]:
            return out


def type_slowly(b: Browser, text: str) -> list[float]:
    """Type ``text`` a character at a time; each keystroke's time to results on screen."""
    b.evaluate(
        "(() => { const q = document.getElementById('q'); q.value = ''; q.focus();"
        " window.explorerDebug.timings.length = 0; })()"
    )
    for n, ch in enumerate(text, 1):
        b.insert_text(ch)
        b.wait_for(f"window.explorerDebug.timings.length >= {n}", timeout=30)
    timings: list[dict[str, Any]] = b.evaluate("window.explorerDebug.timings")
    return [t["ms"] for t in timings]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(chats: int, per_kind: int) -> None:
    print(f"\n{chats:,} chats")
    with (
        tempfile.TemporaryDirectory(prefix="page-bench-") as tmp,
        agent_world(chats, Path(tmp)) as world,
    ):
        docs = documents(world["meili"], world["cfg"].meilisearch.index)
        queries = build_queries(docs, per_kind)
        latencies: list[float] = []
        by_kind: dict[str, list[tuple[bool, bool]]] = {}
        with Browser(1400, 1000, timeout=60) as b:
            b.navigate(f"{world['page'].url}#key={world['key']}")
            b.wait_for("document.body.dataset.state === 'results'", timeout=60)
            for kind, query, relevant in queries:
                latencies += type_slowly(b, query)
                hits = b.evaluate("window.explorerDebug.state.hits")
                by_kind.setdefault(kind, []).append(
                    (recall(hits, relevant, 1), recall(hits, relevant, 5))
                )
        print(f"  keystroke -> results on screen: {len(latencies)} keystrokes, "
              f"p50 {statistics.median(latencies):.0f} ms, p95 {pct(latencies, 95):.0f} ms, "
              f"max {max(latencies):.0f} ms")  # fmt: skip
        total1 = total5 = count = 0
        for kind, scores in by_kind.items():
            r1 = sum(a for a, _ in scores) / len(scores)
            r5 = sum(b for _, b in scores) / len(scores)
            total1 += sum(a for a, _ in scores)
            total5 += sum(b for _, b in scores)
            count += len(scores)
            print(f"  {kind:<18} recall@1 {r1:.3f}  recall@5 {r5:.3f}  ({len(scores)} queries)")
        print(
            f"  all {count} queries: recall@1 {total1 / count:.3f}, recall@5 {total5 / count:.3f}"
        )
        print(json.dumps({"chats": chats, "p50_ms": statistics.median(latencies),
                          "p95_ms": pct(latencies, 95), "recall1": total1 / count,
                          "recall5": total5 / count}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 chats only")
    ap.add_argument("--queries-per-kind", type=int, default=20)
    args = ap.parse_args()
    for chats in (20_000,) if args.quick else (100_000, 1_000_000):
        run(chats, args.queries_per_kind)


if __name__ == "__main__":
    main()
