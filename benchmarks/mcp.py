"""`explorer mcp` as an assistant meets it: tool-call latency through stdio, and recall.

Builds an index from a sandbox (100,000 chats by default, two instances), makes a search key,
starts `explorer mcp` as a child process on stdio through the SDK's own client (what Claude
Desktop or VS Code do), and then:
- times `search_chats` calls end to end (the client's request, the server process, the
  search in Meilisearch, the reply), p50 / p95 / max over the query set (target p95 < 50 ms);
- measures recall@1 / @5 of `search_chats` over the query set of benchmarks/search.py, next to
  the CLI's search (`Searcher.search`) on the same index (target: the CLI's, at least 0.98).
Prints figures; asserts nothing.

    python benchmarks/mcp.py [--chats N] [--queries-per-kind N] [--calls N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder heads sys.path, and `import mcp` would find this file.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import anyio  # noqa: E402
from mcp.client import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from benchmarks.measure import percentile  # noqa: E402
from benchmarks.search import build_queries, indexed_world, recall  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.meili.keys import create_search_key  # noqa: E402
from explorer.meili.query import Searcher  # noqa: E402

INSTANCE, SECOND, TOKEN = "MCPBENCH0001", "MCPBENCH0002", "mcp-bench-token-0123456789"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--chats", type=int, default=100_000, help="chats in the index (both instances)"
    )
    ap.add_argument("--queries-per-kind", type=int, default=60)
    ap.add_argument("--calls", type=int, default=600, help="timed search_chats calls")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        cfg, env, config, docs = indexed_world(meili, tmp, args.chats, "mcpbench")
        by_key = {(d["instance_id"], d["jid"]): d for d in docs}
        queries = build_queries(docs, args.queries_per_kind)
        key = create_search_key(cfg.meilisearch).secret
        server_env = {**env, "MEILI_API_KEY": key, "EXPLORER_CONFIG": str(config)}
        cli_hits = {}
        with Searcher(cfg.meilisearch) as searcher:
            for _, q, _ in queries:
                cli_hits[q] = searcher.search(q, limit=5, highlight=False).hits

        tallies: dict[str, list[tuple[bool, bool, bool]]] = {}
        latencies: list[float] = []

        async def run() -> None:
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "explorer.cli", "mcp"], env=server_env
            )
            async with Client(params) as c:
                for _, q, _ in queries[:20]:  # warm up: connections, caches, the first import
                    await c.call_tool("search_chats", {"query": q, "limit": 5})
                for kind, q, relevant in queries:
                    result = await c.call_tool("search_chats", {"query": q, "limit": 5})
                    assert not result.is_error, result.content
                    hits = [by_key[(h["instance_id"], h["jid"])]
                            for h in result.structured_content["chats"]]  # type: ignore[index]  # fmt: skip
                    tallies.setdefault(kind, []).append((
                        recall(hits, relevant, 1), recall(hits, relevant, 5),
                        recall(cli_hits[q], relevant, 5),
                    ))  # fmt: skip
                for n in range(args.calls):
                    q = queries[n % len(queries)][1]
                    t = time.perf_counter()
                    result = await c.call_tool("search_chats", {"query": q, "limit": 10})
                    latencies.append((time.perf_counter() - t) * 1000)
                    assert not result.is_error

        anyio.run(run)
        print(f"\n{'query kind':20} {'n':>4}  {'MCP r@1':>7} {'MCP r@5':>7} {'CLI r@5':>7}")
        rows = [r for results in tallies.values() for r in results]
        for kind, results in tallies.items():
            n = len(results)
            r1, r5, c5 = (sum(r[i] for r in results) / n for i in range(3))
            print(f"{kind:20} {n:>4}  {r1:7.2f} {r5:7.2f} {c5:7.2f}")
        n = len(rows)
        print(
            f"overall over {n} queries: MCP recall@1 {sum(r[0] for r in rows) / n:.3f}, "
            f"recall@5 {sum(r[1] for r in rows) / n:.3f}; CLI recall@5 "
            f"{sum(r[2] for r in rows) / n:.3f}"
        )
        direct: list[float] = []
        with Searcher(cfg.meilisearch) as searcher:
            for n in range(args.calls):
                q = queries[n % len(queries)][1]
                t = time.perf_counter()
                searcher.search(q, limit=10, highlight=False)
                direct.append((time.perf_counter() - t) * 1000)
        for title, values in (
            (f"search_chats through stdio at {args.chats:,} chats", latencies),
            ("the same searches, Searcher.search in this process (no MCP)", direct),
        ):
            print(
                f"\n{title} ({len(values)} calls, limit 10): "
                f"p50 {statistics.median(values):.1f} ms, "
                f"p95 {percentile(values, 0.95):.1f} ms, max {max(values):.1f} ms"
            )
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
              f"on {os.cpu_count()} CPUs")  # fmt: skip


if __name__ == "__main__":
    main()
