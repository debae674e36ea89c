"""The agents' door under a team: keystroke-to-answer through the door vs Meilisearch itself.

Builds an index from a sandbox (in its own process) in a real Meilisearch, starts
`explorer serve` in its own process (and the compose door, nginx + door.js, when nginx and
njs are installed), then lets 50 and 200 simulated agents type at once. Each agent has
its own kept-alive connection, like a browser tab, and types names a character at a
time: every keystroke sends the agent page's multi-search (the hits query and its two
facet queries) and waits for the answer; the next keystroke comes TYPING seconds after
the previous one, or when the answer arrives if that is later. The same agents, queries
and timing run against each target in turn. Prints p50/p95/p99 from keystroke to answer,
how many keystrokes were answered, and what the door adds at p95. Asserts nothing.

    .venv/bin/python benchmarks/door.py                  # 100,000 chats, 50 and 200 agents
    .venv/bin/python benchmarks/door.py --chats 20000 --agents 50
    .venv/bin/python benchmarks/door.py --baseline /tmp/old   # and an older serve.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import meilisearch  # noqa: E402

from benchmarks.crawl import instances_config  # noqa: E402
from explorer.dev.meili_server import MeiliServer, free_port  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.keys import create_key  # noqa: E402
from explorer.reindex import reindex  # noqa: E402

INSTANCES = {"DOORBENCH001": "door-bench-token-0123456789", "DOORBENCH002": "door-bench-token-abc"}
TYPING = 0.2  # seconds between keystrokes: about five characters a second
WORDS_PER_AGENT = 3
FIELDS = ["id", "jid", "name", "display_name", "phone", "phone_display", "chat_type",
          "instance_id", "instance_label", "last_activity", "unread_count", "archived",
          "pinned", "muted"]  # fmt: skip


def page_search(index: str, q: str) -> dict[str, Any]:
    """What the agent page sends for one keystroke (explorer/web/app.js, no filters set)."""
    main = {"indexUid": index, "q": q, "limit": 20, "facets": ["chat_type", "instance_id",
            "archived", "pinned", "muted"], "attributesToRetrieve": FIELDS,
            "attributesToHighlight": ["display_name"], "highlightPreTag": "\u0001",
            "highlightPostTag": "\u0002"}  # fmt: skip
    facet = [{"indexUid": index, "q": q, "limit": 0, "facets": [f]}
             for f in ("chat_type", "instance_id")]  # fmt: skip
    return {"queries": [main, *facet]}


async def agent(
    base: str, key: str, index: str, words: list[str], start: float, typing: float,
    out: list[float | None],
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {key}", "Accept-Encoding": "identity"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        for word in words:
            for n in range(1, len(word) + 1):
                pressed = time.monotonic()
                try:
                    resp = await client.post("/multi-search", json=page_search(index, word[:n]))
                    ok = resp.status_code == 200 and len(resp.json()["results"]) == 3
                except httpx.HTTPError:
                    ok = False
                out.append(time.monotonic() - pressed if ok else None)
                await asyncio.sleep(max(0.0, pressed + typing - time.monotonic()))


def run_agents(
    base: str, key: str, index: str, scripts: list[list[str]], typing: float
) -> list[float | None]:
    out: list[float | None] = []

    async def main() -> None:
        start = time.monotonic() + 1.0
        spread = [start + random.Random(i).uniform(0, typing) for i in range(len(scripts))]
        await asyncio.gather(*(agent(base, key, index, words, spread[i], typing, out)
                               for i, words in enumerate(scripts)))  # fmt: skip

    asyncio.run(main())
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("a door did not start") from None
            time.sleep(0.05)


@contextmanager
def serve_door(meili: MeiliServer, index: str, tree: Path = ROOT) -> Iterator[str]:
    """`explorer serve` in its own process, as agents would get it (from ``tree``'s code)."""
    port = free_port()
    env = {**os.environ, "MEILI_URL": meili.url, "EXPLORER_INDEX": index, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "serve", "--port", str(port)],
        env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextmanager
def nginx_door(meili: MeiliServer, workdir: Path) -> Iterator[str]:
    from tests.test_door import nginx

    with nginx(workdir, f"127.0.0.1:{meili.port}") as port:
        yield f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--agents", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--typing", type=float, default=TYPING, help="seconds between keystrokes")
    ap.add_argument("--baseline", type=Path, help="also time `explorer serve` from this "
                    "checkout (e.g. `git worktree add /tmp/old <commit>`)")  # fmt: skip
    args = ap.parse_args()
    print(f"door benchmark: {args.chats:,} chats, {os.cpu_count()} CPUs (figures compare "
          "within one run only: other work on the machine shows in them)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        meili = stack.enter_context(MeiliServer(work / "meili", max_indexing_memory="1GiB"))
        url, _ = stack.enter_context(sandbox_process(args.chats // len(INSTANCES), INSTANCES))
        cfg = instances_config(work, url, meili, INSTANCES, "concurrency = 8\n")
        started = time.monotonic()
        report = reindex(cfg)
        print(f"  indexed {report.new_count:,} chats in {time.monotonic() - started:.0f} s")
        index = cfg.meilisearch.index
        key = create_key(cfg.meilisearch, ["search"], "door benchmark", None).key
        client = meilisearch.Client(meili.url, meili.master_key)
        hits = client.index(index).get_documents({"limit": 2000, "fields": ["name"]}).results
        names = sorted({w.lower() for d in hits for w in (dict(d).get("name") or "").split()
                        if len(w) >= 4 and w.isalpha()})  # fmt: skip
        targets = {"meilisearch": meili.url, "explorer serve": stack.enter_context(
            serve_door(meili, index))}  # fmt: skip
        if args.baseline:
            targets["serve (baseline)"] = stack.enter_context(
                serve_door(meili, index, args.baseline.resolve()))  # fmt: skip
        if shutil.which("nginx") and Path("/usr/lib/nginx/modules/ngx_http_js_module.so").exists():
            nginx_dir = work / "nginx"
            nginx_dir.mkdir()
            targets["nginx door"] = stack.enter_context(nginx_door(meili, nginx_dir))
        for base in targets.values():  # warm every connection path and page cache once
            httpx.post(f"{base}/multi-search", json=page_search(index, "a"),
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        for agents in args.agents:
            rng = random.Random(agents)
            scripts = [rng.sample(names, WORDS_PER_AGENT) for _ in range(agents)]
            keystrokes = sum(len(w) for s in scripts for w in s)
            print(f"\n{agents} agents typing {keystrokes:,} keystrokes "
                  f"(one every {args.typing * 1000:.0f} ms each):")  # fmt: skip
            p95 = {}
            for name, base in targets.items():
                took = time.monotonic()
                out = run_agents(base, key, index, scripts, args.typing)
                took = time.monotonic() - took
                answered = [t for t in out if t is not None]
                if not answered:
                    print(f"  {name:16} nothing answered")
                    continue
                p95[name] = percentile(answered, 0.95)
                print(f"  {name:16} p50 {percentile(answered, 0.5):6.1f} ms  p95 "
                      f"{p95[name]:6.1f} ms  p99 {percentile(answered, 0.99):6.1f} ms  "
                      f"answered {len(answered):,}/{len(out):,}  "
                      f"({len(out) / took:,.0f} keystrokes/s)")  # fmt: skip
            for name in targets:
                if name != "meilisearch" and name in p95 and "meilisearch" in p95:
                    print(f"  {name} adds {p95[name] - p95['meilisearch']:+.1f} ms at p95")


if __name__ == "__main__":
    main()
