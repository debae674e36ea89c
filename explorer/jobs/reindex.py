"""`explorer reindex`: crawl -> documents -> a new index -> verified -> atomic swap.

Searchers only ever see the old complete index or the new complete one. The build streams
batches without waiting on each (crawling and indexing overlap), then waits for every task
and requires each to have succeeded, checks the document count against what the crawl
handed on, applies the safety gate, and only then swaps.

Resume: after each batch is accepted by Meilisearch (its task queue is durable), the state
file records the crawl checkpoint of every instance. A run that finds that state and its
build index continues from the checkpoints instead of starting over.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.config import Config, Instance
from explorer.errors import BackfillFailed, ExplorerError, MeiliTaskFailed, SafetyCheckFailed
from explorer.jobs.forget import removed_from_build, skipping_forgotten
from explorer.jobs.messages import BackfillReport, backfill
from explorer.jobs.state import index_lock, read_json, state_dir, write_json
from explorer.meili.client import TERMINAL, IndexStore, dumps, search_body
from explorer.records.chats import Chat
from explorer.records.documents import (
    DOCUMENT_FIELDS,
    INDEX_SETTINGS,
    chat_from_document,
    doc_id,
    fingerprint,
    to_document,
)
from explorer.records.filters import quote
from explorer.source.crawl import (
    Checkpoint,
    Crawler,
    CrawlStats,
    open_client,
    options_from,
    pace_for,
)
from explorer.source.labels import LabelMap, read_labels
from explorer.source.lids import LidMap, Merger, Written, read_lid_map
from explorer.source.pace import Pace, PaceStats
from explorer.source.wawp import WawpClient

log = logging.getLogger("explorer.jobs.reindex")

STATE_VERSION = 1
Progress = Callable[[str, str, int], None]  # (event, instance or index, count)


@dataclass
class ReindexReport:
    live_index: str
    build_index: str | None = None
    chats: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    merged: int = 0
    malformed: int = 0
    malformed_samples: list[str] = field(default_factory=list)
    skipped: int = 0
    requests: int = 0
    retries: int = 0
    old_count: int | None = None
    new_count: int | None = None
    resumed: bool = False
    swapped: bool = False
    dry_run: bool = False
    added: int | None = None
    removed: int | None = None
    changed: int | None = None
    seconds: float = 0.0
    crawled_at: int | None = None  # when the swapped-in build started crawling
    finished_at: int | None = None
    failed_instance: str | None = None
    pace: PaceStats | None = None
    crawl_seconds: float = 0.0  # crawling (and sending batches)
    wait_seconds: float = 0.0  # then waiting for Meilisearch to finish indexing
    lid_chats: int = 0  # chats listed under a LID (a hidden number)
    lids_resolved: int = 0  # ...whose number the LID map or the chat itself gave
    lid_pairs_merged: int = 0  # people listed under a LID and a phone JID, one document
    lids_unavailable: dict[str, str] = field(default_factory=dict)  # instance -> why
    lids_incomplete: dict[str, str] = field(default_factory=dict)  # instance -> what broke
    labels: int = 0  # labels read, over all instances
    labelled_chats: int | None = None  # documents of the build carrying a label
    labels_unavailable: dict[str, str] = field(default_factory=dict)  # instance -> why
    labels_incomplete: dict[str, str] = field(default_factory=dict)  # instance -> what broke
    messages: BackfillReport | None = None  # with messages.enabled (explorer.jobs.messages)
    messages_failed: str | None = None  # why the backfill failed, the chats being live

    def absorb_lids(self, instance_id: str, counts: dict[str, Any]) -> None:
        self.labels += int(counts.get("labels", 0))
        if counts.get("labels_unavailable"):
            self.labels_unavailable[instance_id] = str(counts["labels_unavailable"])
        if counts.get("labels_incomplete"):
            self.labels_incomplete[instance_id] = str(counts["labels_incomplete"])
        self.lid_chats += int(counts.get("lid_chats", 0))
        self.lids_resolved += int(counts.get("resolved", 0))
        self.lid_pairs_merged += int(counts.get("merged", 0))
        if counts.get("unavailable"):
            self.lids_unavailable[instance_id] = str(counts["unavailable"])
        if counts.get("incomplete"):
            self.lids_incomplete[instance_id] = str(counts["incomplete"])

    def absorb(self, stats: CrawlStats) -> None:
        self.chats += stats.chats
        self.duplicates += stats.duplicates
        self.merged += stats.merged
        self.malformed += stats.malformed
        self.skipped += stats.skipped
        self.requests += stats.requests
        self.retries += stats.retries
        for kind, n in stats.by_type.items():
            self.by_type[kind] = self.by_type.get(kind, 0) + n
        room = 5 - len(self.malformed_samples)
        self.malformed_samples += [f"{stats.instance_id}: {s}" for s in stats.malformed_samples][
            : max(0, room)
        ]

    def summary(self) -> str:
        types = ", ".join(f"{n} {k}" for k, n in sorted(self.by_type.items())) or "none"
        old = "none" if self.old_count is None else str(self.old_count)
        head = "dry run" if self.dry_run else "reindexed" if self.swapped else "built, not swapped"
        text = (
            f"{head}: {self.chats} chats ({types}); {self.duplicates} duplicates, "
            f"{self.merged} merged, {self.malformed} malformed, {self.skipped} skipped"
            f"{' (status@broadcast)' if self.skipped else ''}; "
        )
        if self.dry_run:
            text += f"would add {self.added}, remove {self.removed}, change {self.changed}; "
        text += f"{self.live_index}: {old} -> {self.new_count}"
        text += f"; {self.seconds:.1f}s" + (" (resumed)" if self.resumed else "")
        if self.lid_chats or self.lid_pairs_merged:
            text = text.replace(
                "; ",
                f"; {self.lid_chats} under a LID ({self.lids_resolved} resolved, "
                f"{self.lid_pairs_merged} pairs merged); ",
                1,
            )
        # One line per instance whose Wawp serves no LID map, or only part of it, before
        # the summary line.
        lines = (
            [
                f"LIDs could not be resolved on {instance} ({why}); indexed as they are"
                for instance, why in sorted(self.lids_unavailable.items())
            ]
            + [
                f"The LID map of {instance} is incomplete ({why}); LIDs it did not give are "
                "indexed as they are"
                for instance, why in sorted(self.lids_incomplete.items())
            ]
            + [
                f"Labels could not be read on {instance} ({why}); indexed without labels"
                for instance, why in sorted(self.labels_unavailable.items())
            ]
            + [
                f"The labels of {instance} are incomplete ({why}); chats it did not give are "
                "indexed without those labels"
                for instance, why in sorted(self.labels_incomplete.items())
            ]
        )
        if self.labels:
            labelled = "" if self.labelled_chats is None else f" on {self.labelled_chats} chats"
            text = text.replace("; ", f"; {self.labels} labels{labelled}; ", 1)
        if self.messages is not None:
            text += "\n" + self.messages.summary()
        return "\n".join([*lines, text])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class State:
    """The resumable part of a build, saved atomically after every accepted batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.lock = threading.RLock()  # instances crawled in parallel share it

    def load(self) -> bool:
        data = read_json(self.path)  # missing or damaged: only costs a fresh build
        if data.get("version") != STATE_VERSION:
            return False
        self.data = data
        return True

    def save(self) -> None:
        write_json(self.path, self.data)

    def clear(self) -> None:
        self.data = {}
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Batcher:
    """Collects one instance's documents into batches; after each batch is accepted by
    Meilisearch, records the crawl checkpoint that covers it.

    Each page's documents are encoded as they arrive and only their JSON is kept until the
    batch goes: the bytes take far less memory than the dicts would, and encoding a page
    while it is fresh is cheaper than encoding a cold batch of dicts at the end.
    """

    def __init__(
        self,
        instance_id: str,
        store: IndexStore,
        build: str,
        state: State,
        size: int,
        notify: Progress,
        after_batch: Callable[[int], None] | None,
    ) -> None:
        self.instance_id = instance_id
        self.store = store
        self.build = build
        self.state = state
        self.size = size
        self.notify = notify
        # Each page's documents as one JSON array, and the separators: the batch's body is
        # then one join of views into them, with no further copies of a batch-sized body.
        self.parts: list[bytes | memoryview] = [b"["]
        self.count = 0
        self.checkpoint: Checkpoint | None = None
        self.lid_counts: dict[str, Any] | None = None  # as of the checkpoint
        self.stale: list[str] = []  # document ids to delete once the batch is in
        self.after_batch = after_batch

    def on_page(
        self,
        docs: list[dict[str, Any]],
        checkpoint: Checkpoint,
        lid_counts: dict[str, Any] | None = None,
        stale: list[str] | None = None,
    ) -> None:
        self.lid_counts = lid_counts
        self.stale += stale or []
        if docs:
            if self.count:
                self.parts.append(b",")
            self.parts.append(memoryview(dumps(docs))[1:-1])  # the page's array, unbracketed
            self.count += len(docs)
        self.checkpoint = checkpoint
        self.notify("chats", self.instance_id, len(docs))
        if self.count >= self.size:
            self.flush()

    def flush(self) -> None:
        with self.state.lock:
            self._flush()

    def _flush(self) -> None:
        data = self.state.data
        if self.count:
            self.parts.append(b"]")
            body = b"".join(self.parts)
            self.parts = [b"["]
            data["tasks"].append(self.store.add_json(self.build, body))
            self.notify("sent", self.instance_id, self.count)
            log.info("sent %d documents of %s to %s", self.count, self.instance_id, self.build)
            self.count = 0
        if self.stale:
            # After the batch that may hold them: Meilisearch runs an index's tasks in order.
            data["tasks"].append(self.store.delete_ids(self.build, self.stale))
            self.stale = []
        if self.checkpoint is not None:
            data["checkpoints"][self.instance_id] = self.checkpoint.to_json()
            data["handed"][self.instance_id] = self.checkpoint.handed
            if self.lid_counts is not None:
                data.setdefault("lids", {})[self.instance_id] = self.lid_counts
        self.state.save()
        if self.after_batch:
            self.after_batch(len(data["tasks"]))


def _build_name() -> str:
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"


# Documents, the checkpoint that covers them, the LID counts then, and document ids to
# delete after them (LID documents parked by explorer.source.lids.Merger, now settled).
OnPage = Callable[[list[dict[str, Any]], Checkpoint, dict[str, Any], list[str]], None]


def _crawl_instance(
    cfg: Config,
    inst: Instance,
    resume: Checkpoint | None,
    on_page: OnPage,
    crawled_at: int,
    pace: Pace | None = None,
    cancel: threading.Event | None = None,
    window: Callable[[], int] | None = None,
    people: People | None = None,
) -> CrawlStats:
    """Crawl one instance and hand on its documents, page by page, with the checkpoint
    that covers them and the LID counts as of that checkpoint. The LID map is read
    alongside the crawl (:class:`People`)."""
    people = people or People(inst.id)
    on_page = skipping_forgotten(cfg, on_page)  # `explorer forget`: never indexed again
    with open_client(cfg, inst, pace=pace) as client:
        people.start(client, cfg.wawp.concurrency)
        try:
            crawler = Crawler(client, options_from(cfg.wawp), window=window)
            for page in crawler.pages(resume=resume):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(inst.id)
                for chats, checkpoint, stale in people.take(page.chats, page.checkpoint):
                    docs = [to_document(c, label=inst.label, crawled_at=crawled_at) for c in chats]
                    on_page(docs, checkpoint, people.counts(), stale)
            for handed in (people.rest, people.settle):  # settled once all else is handed on
                for chats, checkpoint, stale in handed():
                    docs = [to_document(c, label=inst.label, crawled_at=crawled_at) for c in chats]
                    on_page(docs, checkpoint, people.counts(), stale)
            # The map's requests and retries count too (it may have finished last).
            crawler.stats.requests = client.requests_made
            crawler.stats.retries = client.retries_made
        finally:
            people.stop()
    return crawler.stats


# People's pages: the chats, the checkpoint that covers them, and the document ids to
# delete once they are written (LID documents parked, then settled).
Handed = tuple[list[Chat], Checkpoint, list[str]]


class People:
    """One instance's chats as people: LID chats resolved to their phone identity and a
    person listed twice merged (:mod:`explorer.source.lids`).

    The LID map is read on a thread of its own while the crawl runs, through the same
    client, so under the same request budget and retries. Pages that come before the map
    is complete wait here with their checkpoints (the crawl keeps fetching meanwhile) and
    go on in order once it is; a map given at the start (a resumed build) is used at once.
    A map that breaks midway is used for what it gave. The checkpoints handed on count
    documents, not chats: a merged pair is one. ``written`` finds what was handed on,
    for the LID chats parked until the crawl is over (:meth:`Merger.settle`).
    """

    def __init__(
        self,
        instance_id: str,
        lids: LidMap | None = None,
        *,
        counts: dict[str, Any] | None = None,
        on_map: Callable[[LidMap], None] | None = None,
        checkpoint: Checkpoint | None = None,
        written: Written | None = None,
        labels: LabelMap | None = None,
        on_labels: Callable[[LabelMap], None] | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.lids = lids
        self.labels = labels
        self.on_labels = on_labels
        self._labels_future: Future[LabelMap] | None = None
        self._indexed = False
        self.merger = Merger()
        self.base = dict(counts or {})  # counts saved before a resume
        self.on_map = on_map
        self.written = written
        self._last = checkpoint  # the crawl's latest, before merges are taken off
        self._pending: list[tuple[list[Chat], Checkpoint]] = []
        self._future: Future[LidMap] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()

    def start(self, client: WawpClient, concurrency: int) -> None:
        if self.lids is not None and self.labels is not None:
            return
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="lid-map")
        if self.lids is None:
            self._future = self._pool.submit(
                read_lid_map, client, concurrency=concurrency, stop=self._stop, partial=True
            )
        if self.labels is None:
            self._labels_future = self._pool.submit(
                read_labels, client, concurrency=concurrency, stop=self._stop, partial=True
            )

    def _ready(self) -> bool:
        """Whether the LID map and the labels are both at hand (read or given)."""
        lids = self.lids is not None or (self._future is not None and self._future.done())
        return lids and (
            self.labels is not None
            or (self._labels_future is not None and self._labels_future.done())
        )

    def stop(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def remember(self, chats: Iterable[Chat]) -> None:
        """People written before a resume, for their other half to merge into."""
        for chat in chats:
            self.merger.remember(chat)

    def take(self, chats: list[Chat], checkpoint: Checkpoint) -> list[Handed]:
        self._pending.append((chats, checkpoint))
        if not self._ready():
            return []
        return self._release()

    def rest(self) -> list[Handed]:
        return self._release()

    def settle(self) -> list[Handed]:
        """The parked LID chats, settled once everything else was handed on (so that
        ``written`` finds all of it)."""
        started, merged = time.monotonic(), self.merger.merged
        settled = self.merger.settle(self.written)
        if not settled:
            return []
        log.info(
            "%s: %d LID chats whose number only their pnJid gave, settled after the crawl: "
            "%d merged with their phone chat (%.1fs)",
            self.instance_id,
            len(settled),
            self.merger.merged - merged,
            time.monotonic() - started,
        )
        assert self._last is not None  # parked chats came from a page or a resume
        checkpoint = replace(self._last, handed=self._last.handed - self.merger.merged)
        return [(self._labelled(settled), checkpoint, self._stale())]

    def _stale(self) -> list[str]:
        """Document ids of the parked LID chats settled since the last call."""
        ids = [doc_id(self.instance_id, jid) for jid in self.merger.stale]
        self.merger.stale = []
        return ids

    def _release(self) -> list[Handed]:
        if self.lids is None:
            assert self._future is not None
            self.lids = self._future.result()  # read with partial=True: a Wawp error ends it
            if self.on_map is not None:
                self.on_map(self.lids)
        if self.labels is None:
            assert self._labels_future is not None
            self.labels = self._labels_future.result()  # partial=True as well
            if self.on_labels is not None:
                self.on_labels(self.labels)
        if not self._indexed:  # once both are at hand: a label's LIDs resolved with the map
            self.labels.index(self.lids)
            self._indexed = True
        out = []
        merger = self.merger
        for chats, cp in self._pending:
            people = self._labelled([merger.take(c, self.lids, cp.direction) for c in chats])
            out.append((people, replace(cp, handed=cp.handed - merger.merged), self._stale()))
            self._last = cp
        self._pending = []
        return out

    def _labelled(self, chats: list[Chat]) -> list[Chat]:
        """The chats with their labels (under any of their ids: a merged person's are
        both halves')."""
        assert self.labels is not None
        return [replace(chat, labels=self.labels.labels_of(chat)) for chat in chats]

    def counts(self) -> dict[str, Any]:
        m, base = self.merger, self.base
        return {
            "lid_chats": base.get("lid_chats", 0) + m.lid_chats,
            "resolved": base.get("resolved", 0) + m.resolved,
            "merged": base.get("merged", 0) + m.merged,
            "unavailable": self.lids.unavailable if self.lids is not None else None,
            "incomplete": self.lids.incomplete if self.lids is not None else None,
            "labels": len(self.labels.labels) if self.labels is not None else 0,
            "labels_unavailable": self.labels.unavailable if self.labels is not None else None,
            "labels_incomplete": self.labels.incomplete if self.labels is not None else None,
        }


class Cancelled(Exception):
    """Another instance's crawl failed or the run was interrupted: stop at the next page."""


def reindex(
    cfg: Config,
    *,
    force: bool = False,
    restart: bool = False,
    progress: Progress | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> ReindexReport:
    """Build a new index from every instance and swap it live, resuming a build that an
    earlier run left behind. Raises before the swap when the build fails or is too small,
    and :class:`BackfillFailed` after it when the messages backfill fails."""
    instances = cfg.require_instances()
    live = cfg.meilisearch.index
    directory = state_dir(cfg)
    started = time.monotonic()
    with index_lock(directory, live):
        run = _Run(
            cfg=cfg,
            store=IndexStore(cfg.meilisearch),
            state=State(directory / f"reindex-{live}.json"),
            report=ReindexReport(live_index=live),
            notify=progress or (lambda *_: None),
            after_batch=after_batch,
        )
        if _start_or_resume(run, restart=restart) == "swapped":
            # Died between the swap and the clean-up: the new data is already live.
            run.report.new_count = run.store.count(live)
        else:
            with _discarded_on(run, MeiliTaskFailed):
                # A failed task would fail again on resume: start clean next time.
                # (Meilisearch being unreachable keeps the state: the next run resumes
                # once it is back.)
                _crawl_into_build(run, instances)
                _wait_for_build(run)
            with _discarded_on(run, SafetyCheckFailed):
                run.report.old_count = run.store.count(live)
                _gate(run.report, cfg.reindex.min_ratio, force)
            _swap(run)
        report = _finish(run, directory, started)
        if cfg.messages.enabled:
            # Once the reindex is done and recorded: the chats are live whatever Wawp's
            # message routes or Meilisearch do meanwhile, and a backfill that fails cannot
            # hold back the next run's crawl. That run crawls anew; its backfill resumes
            # from the ledger.
            try:
                report.messages = backfill(cfg, run.store, progress=run.notify,
                                           after_batch=after_batch)  # fmt: skip
            except ExplorerError as exc:
                report.messages_failed = str(exc)
                raise BackfillFailed(
                    f"{live}: {report.new_count} chats reindexed and live, but the messages "
                    f"backfill failed: {exc} (the next reindex resumes it)",
                    report,
                ) from exc
            finally:
                _record(report, directory, started)
        return report


@dataclass
class _Run:
    """What every step of one reindex works on."""

    cfg: Config
    store: IndexStore
    state: State
    report: ReindexReport
    notify: Progress
    after_batch: Callable[[int], None] | None

    @property
    def build(self) -> str:
        return str(self.state.data["build"])


def _start_or_resume(run: _Run, *, restart: bool) -> str:
    """Pick up the build an earlier run left (``"resumed"``, or ``"swapped"`` when it had
    already gone live), or create a fresh one (``"fresh"``). Other leftover builds go."""
    store, state, report = run.store, run.state, run.report
    if restart:
        state.clear()
    builds = store.build_indexes()
    if state.load() and state.data.get("build") in builds and not restart:
        report.resumed = True
        if state.data.get("phase") == "swap" and _swap_happened(store, state):
            return "swapped"
    else:
        state.clear()
        state.data = {
            "version": STATE_VERSION,
            "build": f"{report.live_index}__build_{_build_name()}",
            "crawled_at": int(time.time()),
            "checkpoints": {},
            "done": [],
            "tasks": [],
            "handed": {},
        }
    for leftover in builds:
        if leftover != run.build:
            store.delete(leftover)
    if report.resumed:
        return "resumed"
    _forget_lid_maps(run)
    store.create(run.build)
    store.apply_settings(run.build, INDEX_SETTINGS)
    state.save()
    return "fresh"


@contextlib.contextmanager
def _discarded_on(run: _Run, error: type[ExplorerError]) -> Iterator[None]:
    """On ``error``, drop the build and its state (the next run starts clean), re-raise."""
    try:
        yield
    except error:
        run.store.delete(run.build)
        run.state.clear()
        raise


def _crawl_into_build(run: _Run, instances: tuple[Instance, ...]) -> None:
    started = time.monotonic()
    _crawl_all(run, instances)
    run.report.crawl_seconds = time.monotonic() - started


def _wait_for_build(run: _Run) -> None:
    """Wait for every batch sent, then require the build to hold what the crawl handed on."""
    started = time.monotonic()
    build, tasks = run.build, run.state.data["tasks"]
    run.notify("waiting", build, len(tasks))
    log.info("build %s: waiting for %d Meilisearch tasks", build, len(tasks))
    run.store.wait(tasks)
    run.report.wait_seconds = time.monotonic() - started
    # Less what `explorer forget` removed from it meanwhile.
    expected = sum(run.state.data["handed"].values()) - removed_from_build(
        run.cfg, run.store, build, float(run.state.data.get("crawled_at") or 0)
    )
    run.report.new_count = run.store.count(build)
    run.report.labelled_chats = labelled_in(run.store, build)
    if run.report.new_count != expected:
        raise MeiliTaskFailed(
            f"index {build} holds {run.report.new_count} documents but the crawl handed "
            f"on {expected}; not swapping"
        )


def labelled_in(store: IndexStore, uid: str) -> int:
    """How many documents of ``uid`` carry a label (exact: facet counts cover every match)."""
    body = search_body(filter="label_ids EXISTS AND NOT label_ids IS EMPTY", limit=1,
                       facets=["chat_type"], fields=["id"])  # fmt: skip
    counts = store.search(uid, body).get("facetDistribution", {}).get("chat_type", {})
    return sum(int(n) for n in counts.values())


def _swap(run: _Run) -> None:
    """Swap the build live, recording first that a swap is under way and then its task, so
    a run that dies meanwhile can tell whether it happened (:func:`_swap_happened`)."""
    data = run.state.data
    data["phase"] = "swap"
    run.state.save()
    log.info("swapping %s into %s", run.build, run.report.live_index)
    task = run.store.start_swap(run.build)
    data["swap_task"] = task
    run.state.save()
    run.store.wait([task])
    log.info("swapped; deleting the previous index")


def _crawl_all(run: _Run, instances: tuple[Instance, ...]) -> None:
    """Crawl every instance not done yet into the build: one at a time for one instance,
    in parallel under one shared request budget (:func:`pace_for`) for several. Each keeps
    its own checkpoints; the first failure stops the others at their next page and is
    raised, so the report says which instance failed while the others' checkpoints stay."""
    todo = [i for i in instances if i.id not in run.state.data["done"]]
    pace = pace_for(run.cfg)
    cancel = threading.Event()
    workers = min(len(todo), pace.limit)
    share = _Share(pace.limit, run.cfg.wawp.concurrency, workers, len(todo))

    def one(inst: Instance) -> CrawlStats:
        return _crawl_one(run, inst, pace, cancel, share)

    try:
        if workers <= 1:
            for inst in todo:
                one(inst)
        else:
            _in_parallel(todo, one, workers, cancel, run.report)
    finally:
        run.report.pace = pace.stats


def _crawl_one(
    run: _Run, inst: Instance, pace: Pace, cancel: threading.Event, share: _Share
) -> CrawlStats:
    """Crawl one instance from its checkpoint into the build, then mark it done."""
    state = run.state
    cp_json = state.data["checkpoints"].get(inst.id)
    resume = Checkpoint.from_json(cp_json) if cp_json else None
    size = run.cfg.reindex.batch_size
    batcher = _Batcher(inst.id, run.store, run.build, state, size, run.notify, run.after_batch)
    crawled_at = state.data["crawled_at"]

    def written(jids: list[str]) -> dict[str, Chat | None]:
        """What the crawl handed on under ``jids``, once it is all indexed."""
        batcher.flush()
        with state.lock:
            tasks = list(state.data["tasks"])
        run.store.wait(tasks)
        ids = [doc_id(inst.id, jid) for jid in jids]
        return {d["jid"]: chat_from_document(d) for d in run.store.fetch_ids(run.build, ids)}

    people = _people_of(run, inst, resume, written)
    try:
        stats = _crawl_instance(
            run.cfg, inst, resume, batcher.on_page, crawled_at, pace, cancel, share.now, people
        )
    finally:
        share.finished()
    batcher.flush()
    with state.lock:
        state.data["done"].append(inst.id)
        state.save()
        run.report.absorb(stats)
        run.report.absorb_lids(inst.id, people.counts())
    return stats


def _lid_map_path(run: _Run, instance_id: str) -> Path:
    return state_dir(run.cfg) / f"reindex-{run.report.live_index}-lids-{instance_id}.json"


def _labels_path(run: _Run, instance_id: str) -> Path:
    return state_dir(run.cfg) / f"reindex-{run.report.live_index}-labels-{instance_id}.json"


def _forget_lid_maps(run: _Run) -> None:
    """LID maps and labels saved for a build that is gone (a fresh build reads them again)."""
    for kind in ("lids", "labels"):
        for path in state_dir(run.cfg).glob(f"reindex-{run.report.live_index}-{kind}-*.json"):
            path.unlink(missing_ok=True)


def _people_of(run: _Run, inst: Instance, resume: Checkpoint | None, written: Written) -> People:
    """The LID step of one instance. A resumed crawl goes on with the map its first part
    used (saved beside the state once read, so documents written before and after agree)
    and with the people already written that a later half must merge into (or, parked,
    settle)."""
    path = _lid_map_path(run, inst.id)
    labels_path = _labels_path(run, inst.id)

    def save(lids: LidMap) -> None:
        write_json(path, lids.to_json())

    def save_labels(labels: LabelMap) -> None:
        write_json(labels_path, labels.to_json())

    if resume is None:
        return People(inst.id, on_map=save, written=written, on_labels=save_labels)
    saved = read_json(path)
    lids = LidMap.from_json(saved) if saved else None
    saved_labels = read_json(labels_path)
    labels = LabelMap.from_json(saved_labels) if saved_labels else None
    counts = run.state.data.get("lids", {}).get(inst.id)
    people = People(inst.id, lids, counts=counts, on_map=save, checkpoint=resume, written=written,
                    labels=labels, on_labels=save_labels)  # fmt: skip
    # What the first part wrote must be indexed before it can be read back.
    run.store.wait(list(run.state.data["tasks"]))
    where = f"instance_id = {quote(inst.id)} AND chat_type = individual"
    docs = run.store.fetch(run.build, where, list(DOCUMENT_FIELDS))
    people.remember(chat_from_document(d) for d in docs if d.get("listings"))
    return people


def _in_parallel(
    todo: list[Instance],
    one: Callable[[Instance], CrawlStats],
    workers: int,
    cancel: threading.Event,
    report: ReindexReport,
) -> None:
    """Run ``one`` per instance on ``workers`` threads; the first failure cancels the rest
    and is raised with every other instance's outcome in its message."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance")
    futures = {pool.submit(one, inst): inst for inst in todo}
    failure: BaseException | None = None
    try:
        for fut in as_completed(futures):
            error = fut.exception()
            if error is not None and not isinstance(error, Cancelled) and failure is None:
                failure = error
                report.failed_instance = futures[fut].id
                cancel.set()
    except BaseException:  # Ctrl-C / SIGTERM in the main thread: stop the workers too
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failure is None:
        return

    def outcome(fut: Future[CrawlStats]) -> str:
        finished = fut.done() and not fut.cancelled() and fut.exception() is None
        return "done" if finished else "stopped (resumes)"

    others = [f"{i.id} {outcome(f)}" for f, i in futures.items() if i.id != report.failed_instance]
    if isinstance(failure, ExplorerError) and others:
        failure.args = (f"{failure} [other instances: {', '.join(others)}]",)
    raise failure


class _Share:
    """How far ahead one instance may fetch: its share of the run's budget among the
    instances still crawling. Fetching further ahead only asks for pages past an
    instance's end with requests another instance needs; as instances finish, the last
    ones get the budget they leave."""

    def __init__(self, total: int, cap: int, workers: int, instances: int) -> None:
        self.total, self.cap, self.workers, self.left = total, cap, workers, instances
        self._lock = threading.Lock()

    def now(self) -> int:
        return max(1, min(self.cap, self.total // max(1, min(self.left, self.workers))))

    def finished(self) -> None:
        with self._lock:
            self.left -= 1


def _finish(run: _Run, directory: Path, started: float) -> ReindexReport:
    """After the swap: drop the build (it now holds the previous data), record the run.

    The record matters beyond `explorer stats`: sync re-applies everything active since
    ``crawled_at`` of the last swapped-in build.
    """
    report = run.report
    report.build_index = run.build
    report.crawled_at = run.state.data["crawled_at"]
    report.swapped = True
    run.store.delete(run.build)
    run.state.clear()
    _forget_lid_maps(run)
    report.finished_at = int(time.time())
    _record(report, directory, started)
    return report


def _record(report: ReindexReport, directory: Path, started: float) -> None:
    """The run's record (again after the messages backfill, with its outcome)."""
    report.seconds = time.monotonic() - started
    write_json(directory / f"last-reindex-{report.live_index}.json", report.to_json())


def _swap_happened(store: IndexStore, state: State) -> bool:
    """Whether this build was swapped live, decided from Meilisearch's own task record.

    Nothing a sync writes can change that record (a sync rewrites documents, and with
    them any marker inside them). The swap task's uid is saved once it is enqueued; a
    run that died before saving it finds the task by the build's unique name.
    """
    data = state.data
    task = store.swap_task(data["build"], data.get("swap_task"))
    if task is None:
        return False
    if task["status"] in TERMINAL:
        return bool(task["status"] == "succeeded")
    try:
        store.wait([task["uid"]])  # still queued when we died: let it run its course
    except MeiliTaskFailed:
        return False
    return True


def _gate(report: ReindexReport, min_ratio: float, force: bool) -> None:
    new, old = report.new_count or 0, report.old_count
    if force:
        return
    if new == 0:
        raise SafetyCheckFailed(
            f"refusing to swap: the new index is empty (live {report.live_index!r} has "
            f"{old or 0} chats); a cold-started session returns nothing. Use --force to accept"
        )
    if old and new < min_ratio * old:
        raise SafetyCheckFailed(
            f"refusing to swap: the new index has {new} chats, less than {min_ratio:.0%} of "
            f"the {old} in {report.live_index!r}. Use --force to accept"
        )


def dry_run(cfg: Config, *, progress: Progress | None = None) -> ReindexReport:
    """Crawl and map, then count what a reindex would add, remove and change. Writes nothing.

    Only fingerprints are kept, so a LID chat parked until the end of the crawl is counted
    with the phone chat it merges with but cannot be merged into its content: such a
    person may count as changed.
    """
    instances = cfg.require_instances()
    store = IndexStore(cfg.meilisearch)
    live = cfg.meilisearch.index
    started = time.monotonic()
    report = ReindexReport(live_index=live, dry_run=True)
    notify = progress or (lambda *_: None)
    report.old_count = store.count(live)
    live_prints: dict[str, str] = {}
    if report.old_count:
        for doc in store.documents(live):
            live_prints[doc["id"]] = fingerprint(doc)
    new_prints: dict[str, str] = {}  # by id: a merged pair's second half replaces the first
    for inst in instances:

        def on_page(
            docs: list[dict[str, Any]],
            cp: Checkpoint,
            lids: Any,
            stale: list[str],
            inst_id: str = inst.id,
        ) -> None:
            for doc in docs:
                new_prints[doc["id"]] = fingerprint(doc)
            for gone in stale:
                new_prints.pop(gone, None)
            notify("chats", inst_id, len(docs))

        def written(jids: list[str], inst_id: str = inst.id) -> dict[str, Chat | None]:
            # Only fingerprints are kept: a phone chat handed on is known to be there.
            return {jid: None for jid in jids if doc_id(inst_id, jid) in new_prints}

        people = People(inst.id, written=written)
        report.absorb(_crawl_instance(cfg, inst, None, on_page, int(time.time()), people=people))
        report.absorb_lids(inst.id, people.counts())
    report.added = sum(1 for i in new_prints if i not in live_prints)
    report.changed = sum(1 for i, p in new_prints.items() if live_prints.get(i, p) != p)
    report.removed = len(set(live_prints) - set(new_prints))
    report.new_count = len(new_prints)  # documents: a merged pair is one
    report.seconds = time.monotonic() - started
    return report


def last_report(cfg: Config) -> dict[str, Any] | None:
    return read_json(state_dir(cfg) / f"last-reindex-{cfg.meilisearch.index}.json") or None
