"""Search quality and latency: recall@1/@5 through the CLI path and as the web UI sends it.

Builds an index from a sandbox (100,000 chats by default), derives a query set from the
indexed documents (exact names, one typo, first name only, prefixes, phone numbers in
every format, group names) and reports, per category, recall@1 and recall@5 for:
- "cli": `Searcher.search` (what `explorer search` runs: phone queries normalised), and
- "ui":  the raw text as typed, sent to Meilisearch like the dashboard does.
Then times `explorer search ... --json` as a whole process (start-up included).
Prints figures; asserts nothing.

    python benchmarks/search.py [--chats N] [--queries-per-kind N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import meilisearch  # noqa: E402

from explorer.config import Config, load_config  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.sandbox import Sandbox  # noqa: E402
from explorer.dev.sandbox_options import SandboxOptions  # noqa: E402
from explorer.jobs.reindex import reindex  # noqa: E402
from explorer.meili.query import Searcher  # noqa: E402

INSTANCE, TOKEN = "QUALITY00001", "quality-token-0123456789"
SECOND = "QUALITY00002"  # a second instance, so that typing an instance label can narrow


def typo(word: str, rng: random.Random) -> str:
    """One substitution inside the word (not the first letter)."""
    i = rng.randrange(1, len(word))
    letters = "abcdefghijklmnopqrstuvwxyz"
    swap = rng.choice([c for c in letters if c != word[i].lower()])
    return word[:i] + swap + word[i + 1 :]


def build_queries(docs: list[dict[str, Any]], per_kind: int, seed: int = 7) -> list[tuple]:
    """(kind, query, is_relevant(doc)) triples."""
    rng = random.Random(seed)
    people = [d for d in docs if d["chat_type"] == "individual" and d["name"]]
    latin = [d for d in people if d["name"].isascii() and " " in d["name"]]
    phones = [d for d in docs if d["phone"]]
    groups = [d for d in docs if d["chat_type"] == "group" and d["name"]]
    out: list[tuple] = []

    def same_name(name: str) -> Callable[[dict[str, Any]], bool]:
        return lambda d: d["name"] == name

    for d in rng.sample(people, per_kind):
        out.append(("exact name", d["name"], same_name(d["name"])))
    for d in rng.sample(latin, per_kind):
        last = d["name"].split()[-1]
        if len(last) >= 5:
            out.append(
                ("name, one typo", d["name"].replace(last, typo(last, rng)), same_name(d["name"]))
            )
    for d in rng.sample(latin, per_kind):
        first = d["name"].split()[0]
        out.append(
            (
                "first name only",
                first,
                lambda x, f=first: (x["name"] or "").startswith(f + " ") or x["name"] == f,
            )
        )
    for d in rng.sample(latin, per_kind):
        last = d["name"].split()[-1]
        pre = last[:4]
        out.append(
            (
                "prefix",
                pre,
                lambda x, p=pre.casefold(): any(  # noqa: B008
                    w.casefold().startswith(p) for w in (x["name"] or "").split()
                ),
            )
        )
    for d in rng.sample(groups, per_kind):
        out.append(("group name", d["name"], same_name(d["name"])))
    for d in rng.sample(phones, per_kind):
        digits, jid = d["phone_digits"], d["jid"]
        is_it = lambda x, j=jid: x["jid"] == j  # noqa: E731
        cc_len = len(d["phone_variants"][0]) - 2 - len(d["phone_variants"][1])
        nsn = digits[cc_len:]
        out += [
            ("phone +CC spaced", f"+{digits[:cc_len]} {nsn[:3]} {nsn[3:6]} {nsn[6:]}", is_it),
            ("phone 00CC", f"00{digits}", is_it),
            ("phone digits", digits, is_it),
            (
                "phone national",
                d["phone_variants"][2] if len(d["phone_variants"]) > 2 else nsn,
                is_it,
            ),
            ("phone without trunk", nsn, is_it),
            ("phone last 7", digits[-7:], is_it),
        ]
    return out  # fmt: skip


def fold(text: str) -> str:
    """Case- and accent-insensitive form, as Meilisearch compares words."""
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).casefold()


def recall(hits: list[dict[str, Any]], relevant: Callable[[dict[str, Any]], bool], k: int) -> bool:
    return any(relevant(h) for h in hits[:k])


def indexed_world(
    meili: MeiliServer, tmp: str, chats: int, index: str
) -> tuple[Config, dict[str, str], Path, list[dict[str, Any]]]:
    """Two instances' sandbox chats reindexed into ``index``: the config, its environment,
    its file, and the documents in id order (the same queries whatever order the crawl
    stored them in)."""
    half = chats // 2
    sb = Sandbox(SandboxOptions(chats=half, instances={INSTANCE: TOKEN, SECOND: TOKEN})).start()
    os.environ["EXPLORER_STATE_DIR"] = str(Path(tmp) / "state")
    config = Path(tmp) / "explorer.toml"
    config.write_text(
        f'[[wawp.instances]]\nid = "{INSTANCE}"\nlabel = "Cairo"\n'
        f'[[wawp.instances]]\nid = "{SECOND}"\nlabel = "Lagos"\n'
    )
    env = {
        "WAWP_BASE_URL": sb.url,
        "WAWP_ACCESS_TOKEN": TOKEN,
        "MEILI_URL": meili.url,
        "MEILI_API_KEY": meili.master_key,
        "EXPLORER_INDEX": index,
    }
    cfg = load_config(config, env=env)
    started = time.perf_counter()
    reindex(cfg)
    print(f"indexed {chats:,} chats in {time.perf_counter() - started:.1f} s")
    sb.stop()
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = [dict(d) for d in client.index(index).get_documents({"limit": 10**7}).results]
    docs.sort(key=lambda d: d["id"])
    return cfg, env, config, docs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--queries-per-kind", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        cfg, env, config, docs = indexed_world(meili, tmp, args.chats, "quality")
        client = meilisearch.Client(meili.url, meili.master_key)
        queries = build_queries(docs, args.queries_per_kind)
        index = client.index("quality")
        tallies: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
        with Searcher(cfg.meilisearch) as searcher:
            for kind, q, relevant in queries:
                cli_hits = searcher.search(q, limit=5, highlight=False).hits
                ui_hits = index.search(q, {"limit": 5})["hits"]
                for path, hits in (("cli", cli_hits), ("ui", ui_hits)):
                    tallies.setdefault((kind, path), []).append(
                        (recall(hits, relevant, 1), recall(hits, relevant, 5))
                    )
        print(
            f"\n{'query kind':20} {'n':>4}  {'CLI r@1':>7} {'CLI r@5':>7}"
            f"  {'UI r@1':>6} {'UI r@5':>6}"
        )
        totals = {"cli": [], "ui": []}
        for kind in dict.fromkeys(k for k, _ in tallies):
            row = []
            for path in ("cli", "ui"):
                results = tallies[(kind, path)]
                totals[path] += results
                row += [
                    sum(r[0] for r in results) / len(results),
                    sum(r[1] for r in results) / len(results),
                ]
            n = len(tallies[(kind, "cli")])
            print(f"{kind:20} {n:>4}  {row[0]:7.2f} {row[1]:7.2f}  {row[2]:6.2f} {row[3]:6.2f}")
        for path in ("cli", "ui"):
            r1 = sum(r[0] for r in totals[path]) / len(totals[path])
            r5 = sum(r[1] for r in totals[path]) / len(totals[path])
            print(
                f"overall {path.upper():3}: recall@1 {r1:.3f}, recall@5 {r5:.3f} "
                f"over {len(totals[path])} queries"
            )

        print("\nWords typed in the web UI (no filter controls): share of the top 20 that match")
        narrowing: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
            ("group", lambda h: h["chat_type"] == "group"),
            ("channel", lambda h: h["chat_type"] == "channel"),
            ("broadcast", lambda h: h["chat_type"] == "broadcast"),
            ("cairo", lambda h: h["instance_label"] == "Cairo"),
            ("lagos", lambda h: h["instance_label"] == "Lagos"),
        ]
        for first in ("Maria", "Ahmed", "Ana"):
            narrowing.append(
                (f"{first} lagos", lambda h, f=first: h["instance_label"] == "Lagos"
                 and fold(h["name"] or "").startswith(fold(f)))
            )  # fmt: skip
        for word, wanted in narrowing:
            hits = index.search(word, {"limit": 20})["hits"]
            share = sum(1 for h in hits if wanted(h)) / len(hits) if hits else 0.0
            print(f"  {word!r:16} {share:5.2f} of {len(hits)} hits")

        cmd_env = {**os.environ, **env, "EXPLORER_CONFIG": str(config)}
        samples = ["ahmed", docs[0]["phone_digits"] or "maria", "+1 202", "--groups"]
        times = []
        for n in range(20):
            q = samples[n % len(samples)]
            argv = [sys.executable, "-m", "explorer.cli", "search", "--json", "--limit", "5"]
            argv += [q] if not q.startswith("--") else [q]
            t = time.perf_counter()
            subprocess.run(argv, env=cmd_env, capture_output=True, check=True, cwd=ROOT)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(
            f"\nCLI round trip incl. process start ({len(times)} runs): "
            f"p50 {statistics.median(times):.0f} ms, "
            f"p95 {times[int(len(times) * 0.95) - 1]:.0f} ms, "
            f"max {times[-1]:.0f} ms"
        )  # fmt: skip


if __name__ == "__main__":
    main()
