"""LID benchmark: customers behind LIDs, resolved, one document each, found by number.

Starts a sandbox in its own process (100,000 chats by default, a fifth of them listed under
a LID, most of whose numbers Wawp knows, half of those also listed under their phone JID:
WEBJS, which never merges) and a local Meilisearch, reindexes with the LID map read
alongside the crawl, then prints:
- the share of LID chats resolved (of all, and of the resolvable ones);
- phone-search recall@5 over resolvable LID chats, for each way people type a number
  (target >= 0.98);
- documents per person (target exactly 1);
- the reindex time against the latency limit (chat pages x latency / concurrency, the map's
  requests not counted: target within 1.3x), and the same world without a LID map.
Prints figures; asserts nothing. Figures measured on a shared machine are contended.

    .venv/bin/python benchmarks/lids.py [--chats N] [--latency-ms MS] [--shape webjs]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import meilisearch  # noqa: E402
import phonenumbers  # noqa: E402

from explorer.config import Config, load_config  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.dev.sandbox import sandbox_process  # noqa: E402
from explorer.jobs.reindex import ReindexReport, reindex  # noqa: E402
from explorer.meili.query import Searcher  # noqa: E402

INSTANCE, TOKEN = "LIDBENCH0001", "lid-bench-token-0123456789"
CONCURRENCY = 8
PAGE_SIZE = 100


def config(url: str, meili: MeiliServer, index: str, state: Path) -> Config:
    path = state.parent / f"{index}.toml"
    path.write_text(
        f"[wawp]\nwarmup_seconds = 0\nconcurrency = {CONCURRENCY}\npage_size = {PAGE_SIZE}\n"
        f'[[wawp.instances]]\nid = "{INSTANCE}"\n[reindex]\nstate_dir = "{state}"\n'
    )
    env = {"WAWP_BASE_URL": url, "WAWP_ACCESS_TOKEN": TOKEN, "MEILI_URL": meili.url,
           "MEILI_API_KEY": meili.master_key, "EXPLORER_INDEX": index}  # fmt: skip
    return load_config(path, env=env)


def people(url: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/_sandbox/ids", params={"instance_id": INSTANCE, "format": "json"},
                     timeout=300)  # fmt: skip
    resp.raise_for_status()
    return [json.loads(line) for line in resp.text.splitlines()]


def map_requests(url: str) -> int:
    """Requests the LID map costs: its count, then pages of 1,000."""
    resp = httpx.get(f"{url}/v2/lids/count", params={"instance_id": INSTANCE,
                     "access_token": TOKEN}, timeout=60)  # fmt: skip
    count = int(resp.json()["count"]) if resp.status_code == 200 else 0
    return 1 + 1 + count // 1000 if resp.status_code == 200 else 1


def typed_forms(phone: str) -> dict[str, str]:
    number = phonenumbers.parse(phone)
    intl = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return {
        "+CC spaced": intl,
        "00CC": "00" + phone[1:],
        "national": national,
        "digits": phone[1:],
        "last 7": phone[-7:],
    }


def recall(cfg: Config, sample: list[dict[str, Any]]) -> dict[str, float]:
    found: Counter[str] = Counter()
    with Searcher(cfg.meilisearch) as searcher:
        for person in sample:
            for form, typed in typed_forms(person["phone"]).items():
                hits = searcher.search(typed, limit=5, highlight=False).hits
                found[form] += person["jid"] in [h["jid"] for h in hits]
    return {form: n / len(sample) for form, n in found.items()}


def documents_per_person(
    meili: MeiliServer, index: str, truth: list[dict[str, Any]]
) -> Counter[int]:
    """For each person listed under a LID: how many documents carry their LID or number."""
    client = meilisearch.Client(meili.url, meili.master_key)
    by_lid: dict[str, set[str]] = defaultdict(set)
    by_phone: dict[str, set[str]] = defaultdict(set)
    offset = 0
    while True:
        page = client.index(index).get_documents(
            {"limit": 10_000, "offset": offset, "fields": ["lid", "phone", "jid"]}
        )
        for doc in page.results:
            if getattr(doc, "lid", None):
                by_lid[doc.lid].add(doc.jid)
            if getattr(doc, "phone", None):
                by_phone[doc.phone].add(doc.jid)
        offset += len(page.results)
        if offset >= page.total or not page.results:
            break
    spread: Counter[int] = Counter()
    for person in truth:
        if person["lid"]:
            docs = by_lid[person["lid"]] | (by_phone[person["phone"]] if person["phone"] else set())
            spread[len(docs)] += 1
    return spread


def run(url: str, meili: MeiliServer, index: str, tmp: Path) -> tuple[ReindexReport, float]:
    cfg = config(url, meili, index, tmp / f"state-{index}")
    started = time.perf_counter()
    report = reindex(cfg)
    return report, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--shape", default="webjs", choices=["webjs", "noweb", "gows"])
    ap.add_argument("--lid-share", type=float, default=0.2)
    ap.add_argument("--lid-known", type=float, default=0.9)
    ap.add_argument("--sample", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    world = ["--lid-share", str(args.lid_share), "--lid-known", str(args.lid_known),
             "--lid-pairs", "0.5", "--no-merge"]  # fmt: skip
    print(f"{args.chats:,} chats ({args.shape}), {args.lid_share:.0%} listed under a LID, "
          f"{args.lid_known:.0%} of those known to /v2/lids, half of them also listed under "
          f"their phone; {args.latency_ms:.0f} ms a request, concurrency {CONCURRENCY}, "
          f"pages of {PAGE_SIZE}")  # fmt: skip
    latency = args.latency_ms / 1000
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        meili = stack.enter_context(MeiliServer(Path(tmp) / "meili"))
        url, _ = stack.enter_context(sandbox_process(
            args.chats, {INSTANCE: TOKEN}, latency_ms=args.latency_ms, epoch=1_764_000_000,
            shape=args.shape, prerender=True, extra=(*world,)))  # fmt: skip
        url404, _ = stack.enter_context(sandbox_process(
            args.chats, {INSTANCE: TOKEN}, latency_ms=args.latency_ms, epoch=1_764_000_000,
            shape=args.shape, prerender=True, extra=(*world, "--lids-404")))  # fmt: skip
        truth = people(url)
        lid_requests = map_requests(url)
        reports: list[ReindexReport] = []
        runs: list[float] = []
        runs404: list[float] = []
        for k in range(args.repeats):  # alternately: a shared machine's load drifts
            done, seconds = run(url, meili, f"lids{k}", Path(tmp))
            reports.append(done)
            runs.append(seconds)
            without, seconds_without = run(url404, meili, f"nolids{k}", Path(tmp))
            runs404.append(seconds_without)
        seconds, seconds_without = statistics.median(runs), statistics.median(runs404)
        report = reports[0]
        listed_lid = [p for p in truth if any(j.endswith("@lid") for j in p["listed"])]
        resolvable = [p for p in listed_lid if p["phone"]]
        print(f"\nreindex: {report.summary()}")
        print(
            f"  LID chats: {report.lid_chats:,}; resolved {report.lids_resolved:,} "
            f"= {report.lids_resolved / max(1, report.lid_chats):.3f} of all LID chats, "
            f"{report.lids_resolved / max(1, len(resolvable)):.3f} of the "
            f"{len(resolvable):,} resolvable; pairs merged {report.lid_pairs_merged:,}"
        )
        rng = random.Random(7)
        sample = rng.sample(resolvable, min(args.sample, len(resolvable)))
        cfg = config(url, meili, "lids0", Path(tmp) / "state-lids0")
        rates = recall(cfg, sample)
        overall = sum(rates.values()) / len(rates)
        print(f"  phone-search recall@5 over {len(sample)} resolvable LID chats "
              f"(target >= 0.98): overall {overall:.3f}; "
              + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))  # fmt: skip
        spread = documents_per_person(meili, "lids0", truth)
        people_n = sum(spread.values())
        print(f"  documents per person behind a LID ({people_n:,} people; target exactly 1): "
              + ", ".join(f"{n} doc{'s' * (n != 1)}: {c:,}" for n, c in sorted(spread.items()))
              + f"; documents {report.new_count:,} = people {len(truth):,}: "
              f"{report.new_count == len(truth)}")  # fmt: skip
        chat_requests = report.requests - lid_requests
        limit = chat_requests * latency / CONCURRENCY
        print(f"  time (median of {args.repeats}, runs {', '.join(f'{x:.1f}' for x in runs)} s): "
              f"reindex {seconds:.1f} s (first: crawl {report.crawl_seconds:.1f} s + waiting "
              f"for Meilisearch {report.wait_seconds:.1f} s); latency limit {chat_requests:,} "
              f"chat pages x {args.latency_ms:.0f} ms / {CONCURRENCY} = {limit:.1f} s; "
              f"reindex / limit {seconds / limit:.2f}x (target <= 1.3x); LID map "
              f"{lid_requests} requests")  # fmt: skip
        print(f"  same world, /v2/lids answering 404 (runs "
              f"{', '.join(f'{x:.1f}' for x in runs404)} s): reindex {seconds_without:.1f} s "
              f"({seconds_without / limit:.2f}x), {without.new_count:,} documents; the LID "
              f"step costs {seconds - seconds_without:+.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
