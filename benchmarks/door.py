"""The agents' door under a team: keystroke-to-answer through the door vs Meilisearch itself.

Builds an index from a sandbox (in its own process) in a real Meilisearch, starts
`explorer serve` in its own process (and the compose door, nginx in front of that same
`explorer serve` with deploy/nginx/agent-ui.conf, when nginx is installed), then lets 50
and 200 simulated agents type at once. Each agent has its own key and its own kept-alive
connection, like a browser tab, and types names a character at a
time: every keystroke sends the agent page's multi-search (the hits query and its two
facet queries) and waits for the answer; the next keystroke comes TYPING seconds after
the previous one, or when the answer arrives if that is later.

The same agents, queries and timing run against each target in turn, ``--rounds`` times
over (Meilisearch, the door, ..., Meilisearch, the door, ...), so that a slow minute on the
machine falls on every target alike; the figures pool the rounds. Prints p50/p95/p99 from
keystroke to answer, how many keystrokes were answered, what each door adds at p50 and p95
(pooled, and per round at p95), and the CPU each process spent per keystroke: the door's
(for the compose door, nginx's and `explorer serve`'s together), Meilisearch's and the
simulated agents'. Asserts nothing.

The agents use aiohttp and orjson because here they share the CPU with what they measure:
with httpx's AsyncClient and the stdlib json they spent 2.5 ms of CPU per keystroke, three
times the door, and a run's figures measured them as much as the door. In production the
agents' browsers are on other machines.

    .venv/bin/python benchmarks/door.py                  # 100,000 chats, 50 and 200 agents
    .venv/bin/python benchmarks/door.py --chats 20000 --agents 50 --rounds 8
    .venv/bin/python benchmarks/door.py --baseline /tmp/old /tmp/other   # and older doors
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import meilisearch  # noqa: E402
import orjson  # noqa: E402

from benchmarks.crawl import instances_config  # noqa: E402
from benchmarks.measure import cpu_seconds, percentile  # noqa: E402
from explorer.dev.meili_server import MeiliServer, free_port  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.jobs.reindex import reindex  # noqa: E402
from explorer.meili.keys import create_key  # noqa: E402

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
    headers = {"Authorization": f"Bearer {key}", "Accept-Encoding": "identity",
               "Content-Type": "application/json"}  # fmt: skip
    async with aiohttp.ClientSession(
        base, headers=headers, connector=aiohttp.TCPConnector(limit=1),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as client:  # fmt: skip
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        for word in words:
            for n in range(1, len(word) + 1):
                pressed = time.monotonic()
                body = orjson.dumps(page_search(index, word[:n]))
                try:
                    async with client.post("/multi-search", data=body) as resp:
                        answer = await resp.read()
                        ok = resp.status == 200 and len(orjson.loads(answer)["results"]) == 3
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                out.append(time.monotonic() - pressed if ok else None)
                await asyncio.sleep(max(0.0, pressed + typing - time.monotonic()))


def run_agents(
    base: str, keys: list[str], index: str, scripts: list[list[str]], typing: float
) -> list[float | None]:
    out: list[float | None] = []

    async def main() -> None:
        start = time.monotonic() + 1.0
        spread = [start + random.Random(i).uniform(0, typing) for i in range(len(scripts))]
        await asyncio.gather(*(agent(base, keys[i], index, words, spread[i], typing, out)
                               for i, words in enumerate(scripts)))  # fmt: skip

    asyncio.run(main())
    return out


def ms(values: list[float], share: float) -> float:
    """A percentile of latencies in seconds, in milliseconds."""
    return percentile(values, share) * 1000


@dataclass(frozen=True)
class Target:
    url: str
    pids: tuple[int, ...] = ()  # the door's processes, whose CPU is counted (none: Meilisearch)


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
def serve_door(meili: MeiliServer, index: str, tree: Path = ROOT) -> Iterator[Target]:
    """`explorer serve` in its own process, as agents would get it (from ``tree``'s code)."""
    port = free_port()
    env = {**os.environ, "MEILI_URL": meili.url, "EXPLORER_INDEX": index, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "serve", "--port", str(port)],
        env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        yield Target(f"http://127.0.0.1:{port}", (proc.pid,))
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextmanager
def nginx_door(door: Target, workdir: Path) -> Iterator[Target]:
    """The compose door: nginx (deploy/nginx/agent-ui.conf) in front of ``door``."""
    from tests.test_door import nginx

    with nginx(workdir, door.url.removeprefix("http://")) as port:
        master = int((workdir / "nginx.pid").read_text())
        workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        yield Target(f"http://127.0.0.1:{port}", (*map(int, workers), *door.pids))


@dataclass
class Run:
    """One target's keystrokes over every round, and the CPU each process spent on them."""

    answered: list[float] = field(default_factory=list)
    sent: int = 0
    took: float = 0.0
    p95s: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, out: list[float | None], took: float, cpu: dict[str, float]) -> None:
        answered = [t for t in out if t is not None]
        self.answered += answered
        self.sent += len(out)
        self.took += took
        self.p95s.append(ms(answered, 0.95) if answered else float("nan"))
        self.p50s.append(ms(answered, 0.5) if answered else float("nan"))
        for name, seconds in cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds


def one_round(
    target: Target, meili_pid: int | None, keys: list[str], index: str,
    scripts: list[list[str]], typing: float, run: Run,
) -> None:  # fmt: skip
    pids = {"door": target.pids, "Meilisearch": (meili_pid,), "agents": (os.getpid(),)}

    def cpu() -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in ps if p) for name, ps in pids.items()}

    before = cpu()
    started = time.monotonic()
    out = run_agents(target.url, keys, index, scripts, typing)
    took = time.monotonic() - started
    after = cpu()
    run.add(out, took, {name: after[name] - before[name] for name in pids})


def report(runs: dict[str, Run]) -> None:
    for name, run in runs.items():
        if not run.answered:
            print(f"  {name:16} nothing answered")
            continue
        cpu = ", ".join(f"{who} {seconds / run.sent * 1000:.2f}"
                        for who, seconds in run.cpu.items() if seconds)  # fmt: skip
        print(f"  {name:16} p50 {ms(run.answered, 0.5):6.1f} ms  p95 "
              f"{ms(run.answered, 0.95):6.1f} ms  p99 "
              f"{ms(run.answered, 0.99):6.1f} ms  answered "
              f"{len(run.answered):,}/{run.sent:,}  ({run.sent / run.took:,.0f} keystrokes/s;"
              f" CPU ms per keystroke: {cpu})")  # fmt: skip
    direct = runs["meilisearch"]
    for name, run in runs.items():
        if name == "meilisearch" or not run.answered or not direct.answered:
            continue
        pooled = ms(run.answered, 0.95) - ms(direct.answered, 0.95)
        rounds = [door - meili for door, meili in zip(run.p95s, direct.p95s, strict=True)]
        at_p50 = [door - meili for door, meili in zip(run.p50s, direct.p50s, strict=True)]
        each = " ".join(f"{d:+.1f}" for d in rounds)
        print(f"  {name} adds {ms(run.answered, 0.5) - ms(direct.answered, 0.5):+.1f} ms at p50"
              f" (median of rounds {statistics.median(at_p50):+.1f}), {pooled:+.1f} ms at p95"
              f" (per round {each}; median {statistics.median(rounds):+.1f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--agents", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--rounds", type=int, default=3, help="runs of every target, interleaved")
    ap.add_argument("--typing", type=float, default=TYPING, help="seconds between keystrokes")
    ap.add_argument("--baseline", type=Path, nargs="+", default=[],
                    help="also time `explorer serve` from these checkouts "
                    "(e.g. `git archive <commit> | tar -x -C /tmp/old`)")  # fmt: skip
    args = ap.parse_args()
    print(f"door benchmark: {args.chats:,} chats, {os.cpu_count()} CPUs, {args.rounds} rounds"
          " (compare within one run: other work on the machine shows in every figure)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        meili = stack.enter_context(MeiliServer(work / "meili", max_indexing_memory="1GiB"))
        url, _ = stack.enter_context(sandbox_process(args.chats // len(INSTANCES), INSTANCES))
        cfg = instances_config(work, url, meili, INSTANCES, "concurrency = 8\n")
        started = time.monotonic()
        indexed = reindex(cfg)
        print(f"  indexed {indexed.new_count:,} chats in {time.monotonic() - started:.0f} s")
        index = cfg.meilisearch.index
        keys = [create_key(cfg.meilisearch, ["search"], f"door benchmark {i}", None).key
                for i in range(max(args.agents))]  # fmt: skip
        client = meilisearch.Client(meili.url, meili.master_key)
        hits = client.index(index).get_documents({"limit": 2000, "fields": ["name"]}).results
        names = sorted({w.lower() for d in hits for w in (dict(d).get("name") or "").split()
                        if len(w) >= 4 and w.isalpha()})  # fmt: skip
        targets = {"meilisearch": Target(meili.url),
                   "explorer serve": stack.enter_context(serve_door(meili, index))}  # fmt: skip
        for tree in args.baseline:
            targets[f"serve ({tree.name})"] = stack.enter_context(
                serve_door(meili, index, tree.resolve()))  # fmt: skip
        if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
            nginx_dir = work / "nginx"
            nginx_dir.mkdir()
            targets["nginx + serve"] = stack.enter_context(
                nginx_door(targets["explorer serve"], nginx_dir))  # fmt: skip
        meili_pid = meili.proc.pid if meili.proc is not None else None
        for target in targets.values():  # warm every connection path and page cache
            for _ in range(20):
                httpx.post(f"{target.url}/multi-search", json=page_search(index, "a"),
                           headers={"Authorization": f"Bearer {keys[0]}"})  # fmt: skip
        for agents in args.agents:
            rng = random.Random(agents)
            scripts = [rng.sample(names, WORDS_PER_AGENT) for _ in range(agents)]
            keystrokes = sum(len(w) for s in scripts for w in s)
            print(f"\n{agents} agents typing {keystrokes:,} keystrokes a round "
                  f"(one every {args.typing * 1000:.0f} ms each):")  # fmt: skip
            runs = {name: Run() for name in targets}
            for _ in range(args.rounds):
                for name, target in targets.items():
                    one_round(target, meili_pid, keys, index, scripts, args.typing, runs[name])
            report(runs)


if __name__ == "__main__":
    main()
