"""What each index attribute costs Meilisearch to index, against what it buys in recall.

Builds the documents a reindex of two instances would send (100,000 by default, mapped by
the real `to_document`, no HTTP), then for each variant of the settings or documents:
indexes them into a fresh index on a local Meilisearch (in 5,000-document batches, as
reindex sends them, all enqueued at once) and measures the wall time until every task
has succeeded and the CPU time the Meilisearch process used meanwhile; then runs the
query set of `benchmarks/search.py` against it (recall@1 and @5, the CLI's path and the
web UI's). Variants run in passes (every variant once per pass), so a machine that slows
down during the run slows every variant alike, and today's settings run again every few
variants, to show how much the machine drifted. Medians of the runs are printed.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/index_costs.py [--chats N] [--passes N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import meilisearch  # noqa: E402
import phonenumbers  # noqa: E402

import explorer.meili.client  # noqa: E402
import explorer.meili.query  # noqa: E402
from benchmarks.measure import cpu_seconds  # noqa: E402
from benchmarks.search import INSTANCE, SECOND, build_queries, fold, recall  # noqa: E402
from explorer.config import MeiliSettings  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.synthetic import Generator, render  # noqa: E402
from explorer.meili.client import IndexStore, dumps  # noqa: E402
from explorer.meili.query import Searcher  # noqa: E402
from explorer.records.chats import normalize_chat  # noqa: E402
from explorer.records.documents import INDEX_SETTINGS, to_document  # noqa: E402
from explorer.secrets import Secret  # noqa: E402

BATCH = 5_000
EPOCH = 1_764_000_000
Docs = list[dict[str, Any]]
Settings = dict[str, Any]


def documents(n: int) -> Docs:
    """What reindex sends for ``n`` chats over two instances (WEBJS, as the sandbox serves)."""
    out: Docs = []
    for instance, label in ((INSTANCE, "Cairo"), (SECOND, "Lagos")):
        gen = Generator(1, instance, EPOCH)
        for i in range(n // 2):
            chat = normalize_chat(render(gen.spec(i), "webjs"), instance, now=EPOCH)
            if chat is not None:
                out.append(to_document(chat, label=label, crawled_at=EPOCH))
    return out


def _phone_parts(digits: str) -> tuple[str, str | None]:
    """``(national significant number, national form's digits)`` as phones.py makes them."""
    number = phonenumbers.parse("+" + digits)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.national_significant_number(number), "".join(filter(str.isdigit, national))


def keep_variants(which: Callable[[str, str, str, str | None], bool]) -> Callable[[Docs], Docs]:
    """Documents whose ``phone_variants`` keep only the entries ``which(v, digits, nsn,
    national)`` accepts."""

    def transform(docs: Docs) -> Docs:
        out = []
        for doc in docs:
            digits = doc["phone_digits"]
            if digits:
                nsn, national = _phone_parts(digits)
                kept = [v for v in doc["phone_variants"] if which(v, digits, nsn, national)]
                doc = {**doc, "phone_variants": kept}
            out.append(doc)
        return out

    return transform


def _is_suffix(v: str, digits: str, nsn: str, national: str | None) -> bool:
    return digits.endswith(v) and v != nsn


def without_searchable(attr: str) -> Callable[[Settings], Settings]:
    def change(s: Settings) -> Settings:
        s["searchableAttributes"] = [a for a in s["searchableAttributes"] if a != attr]
        typo = s["typoTolerance"]
        typo["disableOnAttributes"] = [a for a in typo["disableOnAttributes"] if a != attr]
        return s

    return change


def without_field(field: str) -> Callable[[Docs], Docs]:
    """Documents without ``field`` at all (not only not searchable)."""

    def transform(docs: Docs) -> Docs:
        return [{k: v for k, v in doc.items() if k != field} for doc in docs]

    return transform


def without_filterable(attr: str | None) -> Callable[[Settings], Settings]:
    """None: no filterable attribute at all."""

    def change(s: Settings) -> Settings:
        rules = []
        for rule in s["filterableAttributes"]:
            patterns = [p for p in rule["attributePatterns"] if attr is not None and p != attr]
            if patterns:
                rules.append({**rule, "attributePatterns": patterns})
        s["filterableAttributes"] = rules
        return s

    return change


def without_sortable(attr: str | None) -> Callable[[Settings], Settings]:
    def change(s: Settings) -> Settings:
        s["sortableAttributes"] = [a for a in s["sortableAttributes"] if attr and a != attr]
        return s

    return change


def facets_for(s: Settings) -> None:
    """The CLI asks for these facets; it cannot when they are no longer filterable."""
    filterable = {p for rule in s["filterableAttributes"] for p in rule["attributePatterns"]}
    explorer.meili.query.FACETS = tuple(f for f in ("chat_type", "instance_id") if f in filterable)  # type: ignore[misc]


class Variant:
    def __init__(
        self,
        name: str,
        settings: Callable[[Settings], Settings] | None = None,
        docs: Callable[[Docs], Docs] | None = None,
    ) -> None:
        self.name, self.settings_change, self.docs_change = name, settings, docs

    def settings(self) -> Settings:
        s = copy.deepcopy(INDEX_SETTINGS)
        return self.settings_change(s) if self.settings_change else s


def variants() -> list[Variant]:
    out = [Variant("today")]
    for attr in INDEX_SETTINGS["searchableAttributes"]:
        out.append(Variant(f"searchable -{attr}", settings=without_searchable(attr)))
    out += [
        Variant("variants -00", docs=keep_variants(lambda v, d, n, nat: v != f"00{d}")),
        Variant("variants -nsn", docs=keep_variants(lambda v, d, n, nat: v != n)),
        Variant("variants -national", docs=keep_variants(lambda v, d, n, nat: v != nat)),
        Variant("variants -suffixes", docs=keep_variants(
            lambda v, d, n, nat: not _is_suffix(v, d, n, nat))),
        Variant("variants suffix 7 only", docs=keep_variants(
            lambda v, d, n, nat: not _is_suffix(v, d, n, nat) or len(v) == 7)),
        Variant("variants none", docs=keep_variants(lambda v, d, n, nat: False)),
        Variant("filterable none", settings=without_filterable(None)),
    ]  # fmt: skip
    for rule in INDEX_SETTINGS["filterableAttributes"]:
        for attr in rule["attributePatterns"]:
            out.append(Variant(f"filterable -{attr}", settings=without_filterable(attr)))
    out.append(
        Variant(
            "without name_latin",
            settings=without_searchable("name_latin"),
            docs=without_field("name_latin"),
        )
    )  # schema 3: no Latin spellings
    out.append(Variant("sortable none", settings=without_sortable(None)))
    for attr in INDEX_SETTINGS["sortableAttributes"]:
        out.append(Variant(f"sortable -{attr}", settings=without_sortable(attr)))
    out.append(
        Variant(
            "-name, -is_group, -unread_count",
            settings=lambda s: without_filterable("unread_count")(
                without_filterable("is_group")(without_searchable("name")(s))
            ),
        )
    )
    return out  # fmt: skip


def index_once(
    meili: MeiliServer, store: IndexStore, uid: str, v: Variant, body: list[bytes], pace: float
) -> tuple[float, float, float]:
    """Index ``body`` (the batches) into a new index, one batch every ``pace`` seconds as a
    crawl hands them on (0: all at once). Returns the wall seconds from the first batch
    until all are indexed, the seconds of that after the last batch was sent (what a
    reindex waits for after its crawl), and the Meilisearch CPU seconds meanwhile."""
    store.delete(uid)
    store.create(uid)
    store.apply_settings(uid, v.settings())
    assert meili.proc is not None
    cpu, started = cpu_seconds(meili.proc.pid), time.perf_counter()
    tasks = []
    for k, batch in enumerate(body):
        time.sleep(max(0.0, started + k * pace - time.perf_counter()))  # the crawl's pace
        tasks.append(store.add_json(uid, batch))
    sent = time.perf_counter()
    store.wait(tasks)
    done = time.perf_counter()
    return done - started, done - sent, cpu_seconds(meili.proc.pid) - cpu


def batches(docs: Docs) -> list[bytes]:
    return [dumps(docs[s : s + BATCH]) for s in range(0, len(docs), BATCH)]


NARROWING: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("group", lambda h: h["chat_type"] == "group"),
    ("channel", lambda h: h["chat_type"] == "channel"),
    ("cairo", lambda h: h["instance_label"] == "Cairo"),
    ("Maria lagos", lambda h: h["instance_label"] == "Lagos"
     and fold(h["name"] or "").startswith("maria")),
]  # fmt: skip


def quality(
    meili: MeiliServer, uid: str, v: Variant, queries: list[tuple[Any, ...]]
) -> dict[str, float]:
    """Recall@1/@5 over every query (CLI path and web UI path), and the web UI's share of
    the top 20 that a narrowing word ("group", "cairo") narrows to."""
    s = v.settings()
    searchable = set(s["searchableAttributes"])
    phone_fields = ("phone_digits", "phone_variants", "jid", "lid")
    explorer.meili.client.PHONE_FIELDS = [f for f in phone_fields if f in searchable]  # type: ignore[misc]
    facets_for(s)
    settings = MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=uid)
    index = meilisearch.Client(meili.url, meili.master_key).index(uid)
    found: dict[str, list[tuple[bool, bool]]] = {"cli": [], "ui": [], "phone": [], "name": []}
    with Searcher(settings) as searcher:
        for kind, q, relevant in queries:
            cli = searcher.search(q, limit=5, highlight=False).hits
            ui = index.search(q, {"limit": 5})["hits"]
            for path, hits in (("cli", cli), ("ui", ui)):
                got = (recall(hits, relevant, 1), recall(hits, relevant, 5))
                found[path].append(got)
                if path == "cli":
                    found["phone" if kind.startswith("phone") else "name"].append(got)
    out = {}
    for key, results in found.items():
        out[f"{key} r@1"] = sum(r[0] for r in results) / len(results)
        out[f"{key} r@5"] = sum(r[1] for r in results) / len(results)
    shares = []
    for word, wanted in NARROWING:
        hits = index.search(word, {"limit": 20})["hits"]
        shares.append(sum(1 for h in hits if wanted(h)) / len(hits) if hits else 0.0)
    out["narrowing"] = sum(shares) / len(shares)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--queries-per-kind", type=int, default=60)
    ap.add_argument("--only", nargs="*", help="variant names to run (today always runs)")
    ap.add_argument("--baseline-every", type=int, default=3)
    ap.add_argument(
        "--pace",
        type=float,
        default=0.625,
        help="seconds between batches of 5,000: 0.625 is a crawl at its latency limit "
        "(100 ms a page of 100, concurrency 8); 0 sends them all at once",
    )
    args = ap.parse_args()
    chosen = [v for v in variants()[1:] if not args.only or v.name in args.only]
    today = variants()[0]
    todo = [today]  # and again every --baseline-every variants: the machine's drift shows
    for n, v in enumerate(chosen, 1):
        todo.append(v)
        if n % args.baseline_every == 0 and n < len(chosen):
            todo.append(today)
    docs = documents(args.chats)
    queries = build_queries(docs, args.queries_per_kind)
    same = batches(docs)
    bodies = {v.name: batches(v.docs_change(docs)) if v.docs_change else same for v in todo}
    print(f"{len(docs):,} documents, {len(queries)} queries, {len(todo)} variants, "
          f"{args.passes} passes; machine: {os.cpu_count()} cores", flush=True)  # fmt: skip
    timings: dict[str, list[tuple[float, float, float]]] = {v.name: [] for v in todo}
    first_pass: set[str] = set()
    scores: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, MeiliServer(Path(tmp) / "meili") as meili:
        store = IndexStore(MeiliSettings(url=meili.url, api_key=Secret(meili.master_key)))
        index_once(meili, store, "cost", todo[0], bodies["today"], 0)  # warm-up: not counted
        for p in range(args.passes):
            for v in todo:
                uid = "cost"
                timings[v.name].append(index_once(meili, store, uid, v, bodies[v.name], args.pace))
                if v.name not in scores:
                    scores[v.name] = quality(meili, uid, v, queries)
                    first_pass.add(v.name)
                wall, tail, cpu = timings[v.name][-1]
                print(f"  pass {p + 1} {v.name:28} wall {wall:5.1f} s  tail {tail:5.1f} s  "
                      f"cpu {cpu:5.1f} s", flush=True)  # fmt: skip
                if v.name in first_pass:
                    first_pass.discard(v.name)
                    print("   ", " ".join(f"{k} {x:.3f}" for k, x in scores[v.name].items()),
                          flush=True)  # fmt: skip
                store.delete(uid)
    scale = 100_000 / len(docs)

    def best(name: str, field: int) -> float:
        return statistics.median(t[field] for t in timings[name]) * scale

    base = scores["today"]
    print(f"\nPer 100,000 chats, batches every {args.pace} s (medians of every run); recall "
          "through the CLI unless marked UI")  # fmt: skip
    print(f"{'variant':28} {'wall s':>6} {'tail s':>6} {'CPU s':>6} {'ΔCPU':>6}  "
          f"{'r@1':>5} {'r@5':>5} {'phone@1':>7} {'name@1':>6} {'UI r@1':>6} {'UI r@5':>6} "
          f"{'narrow':>6}")  # fmt: skip
    for v in dict.fromkeys(todo):
        s = scores[v.name]
        print(f"{v.name:28} {best(v.name, 0):6.1f} {best(v.name, 1):6.1f} "
              f"{best(v.name, 2):6.1f} {best(v.name, 2) - best('today', 2):+6.1f}  "
              f"{s['cli r@1']:5.3f} {s['cli r@5']:5.3f} "
              f"{s['phone r@1']:7.3f} {s['name r@1']:6.3f} "
              f"{s['ui r@1']:6.3f} {s['ui r@5']:6.3f} {s['narrowing']:6.2f}")  # fmt: skip
    print(f"\n(today: CLI recall@1 {base['cli r@1']:.3f}, @5 {base['cli r@5']:.3f})")


if __name__ == "__main__":
    main()
