"""The messages backfill: each active chat's new messages into the messages index.

Run by `explorer reindex` once the new chats index is live, and by `explorer sync` for the
chats it upserted (docs/messages.md). The messages index is long-lived: nothing swaps it,
each run only adds what is new and deletes what has expired.

Cost model. For each chat *listing* (a person listed under a LID and a phone JID has two)
whose last activity is within the window (``messages.retention_days``), the backfill asks
``/v2/chats/messages`` newest first, page by page, and stops at the first page that
reaches back past the window's start or past the activity it backfilled to last time. A
listing whose activity has not moved since costs no request at all: the *ledger*
(``messages-<index>.sqlite`` in the state directory) keeps, per listing, the activity it
was backfilled to. It is written only once Meilisearch has confirmed the batch holding
that listing's messages, so a run that dies resumes where the confirmed work ends and a
listing is never fetched twice once done. (The alternative, asking the messages index for
each chat's newest message, is one search per chat; the ledger is one read of a small
table.)

Identity: a message document carries its chat's ``instance_id`` and ``jid`` exactly as the
chats index has them (a resolved LID's messages under the phone JID), ``chat_name`` its
``display_name``, and in groups the sender's JID with the name the chats index has for it.

Labels: a message also carries a copy of its chat's ``labels`` and ``label_ids``, since a
scoped tenant token filters the messages index by label as it filters the chats index
(Meilisearch has no joins). The ledger keeps, per chat, a digest of the labels its
messages were written with; a chat whose labels now differ gets its messages relabelled
(their ids found by filter, then a partial update), with no Wawp request, before any
message is fetched.

Message text never reaches a log line: only counts, chat ids and parse reasons do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from explorer.config import Config, Instance
from explorer.errors import (
    ExplorerError,
    MeiliTaskFailed,
    WawpChatGone,
    WawpProtocolError,
    WawpRequestError,
    WawpUnavailable,
)
from explorer.jobs.forget import Watch as ForgetWatch
from explorer.jobs.forget import watch as forgotten_watch
from explorer.jobs.state import state_dir
from explorer.meili.client import TERMINAL, IndexStore
from explorer.records.documents import doc_id
from explorer.records.filters import instance_id_is, quote
from explorer.records.messages import (
    MESSAGE_INDEX_SETTINGS,
    MalformedMessage,
    messages_index,
    parse_message,
    to_message_document,
)
from explorer.source.crawl import open_client, pace_for
from explorer.source.wawp import WawpClient

log = logging.getLogger("explorer.jobs.messages")

DAY: Final = 86_400
MAX_SAMPLES: Final = 5
FLUSH_SECONDS: Final = 5.0  # a slow run still confirms its progress this often
FLUSH_LISTINGS: Final = 2000  # ...and after this many listings, messages or not
RELABEL_CHATS: Final = 100  # chats per filter when their messages are relabelled
# One chat whose messages route keeps failing is skipped; this many of an instance in a row
# is its messages route failing, not a chat: the backfill stops (the ledger keeps the rest).
FAILED_IN_A_ROW: Final = 25
# What the backfill reads of a chat document.
CHAT_FIELDS: Final = ["jid", "instance_id", "display_name", "last_activity", "listings",
                      "labels", "label_ids"]  # fmt: skip

Progress = Callable[[str, str, int], None]


@dataclass
class BackfillReport:
    index: str
    messages: int = 0  # documents written
    listings: int = 0  # chat listings whose messages were asked for
    unchanged: int = 0  # active within the window but not moved: no request
    gone: int = 0  # the messages route answered 404 (chat deleted meanwhile): skipped
    failed: int = 0  # the messages route kept failing for the chat: skipped, asked next run
    malformed: int = 0  # messages without an id or a timestamp, or not an object: skipped
    malformed_samples: list[str] = field(default_factory=list)
    requests: int = 0  # message page requests (retries included)
    retries: int = 0
    expired: int = 0  # documents older than the window, deleted
    relabelled: int = 0  # documents given their chat's new labels (no Wawp request)
    cutoff: int = 0  # messages older than this are neither written nor kept
    seconds: float = 0.0

    def note_malformed(self, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_samples) < MAX_SAMPLES:
            self.malformed_samples.append(reason)

    def summary(self) -> str:
        return (
            f"messages: {self.messages} written into {self.index} from {self.listings} chats "
            f"({self.requests} requests); {self.unchanged} chats unchanged, {self.gone} gone "
            f"(404, skipped), {self.malformed} malformed skipped, {self.expired} expired deleted"
            + (f", {self.relabelled} relabelled" if self.relabelled else "")
            + (f"; {self.failed} failed (skipped, asked again next run)" if self.failed else "")
        )


class Ledger:
    """Per chat listing, the activity its messages were backfilled to (module doc)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS listings (instance_id TEXT NOT NULL, jid TEXT NOT NULL,"
            " through INTEGER NOT NULL, PRIMARY KEY (instance_id, jid)) WITHOUT ROWID"
        )
        # Per chat (its jid in the chats index): the digest of the labels its messages carry.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS labels (instance_id TEXT NOT NULL, jid TEXT NOT NULL,"
            " digest TEXT NOT NULL, PRIMARY KEY (instance_id, jid)) WITHOUT ROWID"
        )
        self._db.commit()

    def load(self, instances: Iterable[str]) -> dict[tuple[str, str], int]:
        wanted = set(instances)
        rows = self._db.execute("SELECT instance_id, jid, through FROM listings")
        return {(i, j): t for i, j, t in rows if i in wanted}

    def record(self, rows: list[tuple[str, str, int]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO listings VALUES (?, ?, ?)", rows)

    def load_labels(self, instances: Iterable[str]) -> dict[tuple[str, str], str]:
        wanted = set(instances)
        rows = self._db.execute("SELECT instance_id, jid, digest FROM labels")
        return {(i, j): d for i, j, d in rows if i in wanted}

    def record_labels(self, rows: list[tuple[str, str, str]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO labels VALUES (?, ?, ?)", rows)

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM listings")
            self._db.execute("DELETE FROM labels")

    def close(self) -> None:
        self._db.close()


def ledger_path(cfg: Config) -> Path:
    return state_dir(cfg) / f"messages-{cfg.meilisearch.index}.sqlite"


def cutoff_of(cfg: Config, now: float | None = None) -> int:
    """The window's start: messages older than this are neither written nor kept."""
    return int(now if now is not None else time.time()) - cfg.messages.retention_days * DAY


@dataclass(frozen=True, slots=True)
class _Job:
    """One chat listing to fetch: the id Wawp knows it by, and the chat it belongs to."""

    instance_id: str
    listing: str  # chatId for /v2/chats/messages
    through: int  # its activity now: recorded once its messages are in
    stop_at: int  # older than this is already indexed or out of the window
    jid: str  # the chat's identity in the chats index
    chat_name: str | None
    labels: tuple[str, ...]
    label_ids: tuple[str, ...]


@dataclass
class _Fetched:
    job: _Job
    docs: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    gone: bool = False
    failed: str | None = None  # why the chat's messages route failed: skipped


class _Cancelled(Exception):
    """The run was interrupted: workers stop at their next page."""


def jobs_of(
    chats: Iterable[dict[str, Any]], done: dict[tuple[str, str], int], cutoff: int,
    report: BackfillReport,
) -> Iterator[_Job]:  # fmt: skip
    """The listings of ``chats`` that need a request: active within the window, and moved
    since they were last backfilled. A listing met twice (a sync that wrote a person twice)
    is fetched once."""
    met: set[tuple[str, str]] = set()
    for chat in chats:
        inst, jid = chat["instance_id"], chat["jid"]
        listings = chat.get("listings") or [
            {"jid": jid, "last_activity": chat.get("last_activity")}
        ]
        for listing in listings:
            ts = listing.get("last_activity")
            if not isinstance(ts, int) or ts < cutoff:
                continue
            key = (inst, str(listing["jid"]))
            if key in met:
                continue
            met.add(key)
            prev = done.get(key)
            if prev is not None and ts <= prev:
                report.unchanged += 1
                continue
            yield _Job(
                instance_id=inst,
                listing=str(listing["jid"]),
                through=ts,
                stop_at=max(cutoff, prev or 0),
                jid=jid,
                chat_name=chat.get("display_name"),
                labels=tuple(chat.get("labels") or ()),
                label_ids=tuple(chat.get("label_ids") or ()),
            )


def labels_digest(labels: Iterable[str], label_ids: Iterable[str]) -> str:
    """A short digest of a chat's label fields, as its messages carry them."""
    text = json.dumps([list(labels), list(label_ids)], ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class _LabelWatch:
    """Which chats' messages carry other labels than the chat has now (module doc).

    A chat with no digest recorded is stale only if the ledger holds one of its listings
    (backfilled before digests were kept); a chat never backfilled has only messages
    written by this run or by listen, which both copy the chat's current labels."""

    def __init__(self, done: dict[tuple[str, str], int], carried: dict[tuple[str, str], str]):
        self.done, self.carried = done, carried
        self.stale: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        self.rows: list[tuple[str, str, str]] = []

    def see(self, chats: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for chat in chats:
            key = (chat["instance_id"], chat["jid"])
            labels, ids = list(chat.get("labels") or ()), list(chat.get("label_ids") or ())
            digest = labels_digest(labels, ids)
            have = self.carried.get(key)
            if have != digest:
                self.carried[key] = digest
                self.rows.append((*key, digest))
                listings = chat.get("listings") or [{"jid": key[1]}]
                if have is not None or any(
                    (key[0], str(listing.get("jid"))) in self.done for listing in listings
                ):
                    self.stale[key] = (labels, ids)
            yield chat


def relabel(
    store: IndexStore, index: str, stale: dict[tuple[str, str], tuple[list[str], list[str]]],
    batch: int,
) -> int:  # fmt: skip
    """Give the messages of ``stale`` chats their chat's labels: ids found by filter, then
    partial updates (only ``labels`` and ``label_ids``), waited for. How many documents."""
    by_instance: dict[str, list[str]] = {}
    for inst, jid in stale:
        by_instance.setdefault(inst, []).append(jid)
    docs: list[dict[str, Any]] = []
    tasks: list[int] = []
    for inst, jids in by_instance.items():
        for start in range(0, len(jids), RELABEL_CHATS):
            chunk = jids[start : start + RELABEL_CHATS]
            where = f"{instance_id_is(inst)} AND jid IN [{', '.join(quote(j) for j in chunk)}]"
            for found in store.fetch(index, where, ["id", "jid"]):
                labels, ids = stale[(inst, found["jid"])]
                docs.append({"id": found["id"], "labels": labels, "label_ids": ids})
                if len(docs) >= batch:
                    tasks.append(store.update(index, docs))
                    docs = []
    count = len(docs) + batch * len(tasks)
    if docs:
        tasks.append(store.update(index, docs))
    store.wait(tasks)
    return count


def with_labels(
    store: IndexStore, chats_index: str, chats: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``chats`` with their labels as the live index has them, for chat documents written
    without label fields (sync's: it leaves the labels a reindex or listen wrote)."""
    chats = list(chats)
    unknown = [doc_id(c["instance_id"], c["jid"]) for c in chats if "label_ids" not in c]
    if not unknown:
        return chats
    live = {d["id"]: d for d in store.fetch_ids(chats_index, unknown, ["id", "labels",
                                                                        "label_ids"])}  # fmt: skip
    out = []
    for chat in chats:
        have = live.get(doc_id(chat["instance_id"], chat["jid"]))
        if "label_ids" not in chat and have is not None:
            chat = {**chat, "labels": have.get("labels"), "label_ids": have.get("label_ids")}
        out.append(chat)
    return out


def fetch_listing(
    client: WawpClient, job: _Job, page_size: int, cutoff: int, stop: threading.Event
) -> _Fetched:
    """One listing's messages, newest first, until a page reaches back past ``stop_at``,
    the list ends, or a page brings nothing new (a server that ignores offset)."""
    out = _Fetched(job)
    seen: set[str] = set()
    offset = 0
    while True:
        if stop.is_set():
            raise _Cancelled
        try:
            items = client.messages_page(job.listing, offset=offset, limit=page_size, stop=stop)
        except WawpChatGone as exc:
            log.info("%s", exc)
            out.gone = True
            return out
        except (WawpUnavailable, WawpRequestError, WawpProtocolError) as exc:
            # This chat's route, past its retries or refused: not the run's failure. (An
            # auth error or a session gone is the instance's, and ends the run.)
            if stop.is_set():
                raise _Cancelled from None
            out.docs, out.failed = [], str(exc)
            return out
        oldest: int | None = None
        fresh = 0
        for n, raw in enumerate(items):
            try:
                msg = parse_message(raw, instance_id=job.instance_id, chat_jid=job.jid)
            except MalformedMessage as exc:
                out.malformed.append(f"{job.instance_id} {job.listing} #{offset + n}: {exc}")
                continue
            oldest = msg.timestamp if oldest is None else min(oldest, msg.timestamp)
            if msg.message_id in seen:
                continue
            seen.add(msg.message_id)
            fresh += 1
            if msg.timestamp >= cutoff:
                out.docs.append(
                    to_message_document(
                        msg, chat_name=job.chat_name, labels=job.labels, label_ids=job.label_ids
                    )
                )
        if len(items) < page_size or (oldest is not None and oldest < job.stop_at):
            return out
        if not fresh:
            log.warning(
                "Wawp instance %s: messages of %s repeat at offset %d (offset ignored?); "
                "stopped there",
                job.instance_id,
                job.listing,
                offset,
            )
            return out
        offset += len(items)


class _Writer:
    """Batches of message documents into the index; listings recorded in the ledger once
    Meilisearch confirms the batch that holds their messages."""

    def __init__(
        self,
        store: IndexStore,
        chats_index: str,
        index: str,
        ledger: Ledger,
        size: int,
        notify: Progress,
        after_batch: Callable[[int], None] | None,
        forgotten: ForgetWatch | None = None,
    ) -> None:
        self.forgotten = forgotten
        self.store, self.chats_index, self.index = store, chats_index, index
        self.ledger, self.size, self.notify, self.after_batch = ledger, size, notify, after_batch
        self.docs: list[dict[str, Any]] = []
        self.rows: list[tuple[str, str, int]] = []
        self.pending: list[tuple[int | None, list[tuple[str, str, int]]]] = []
        self.names: dict[tuple[str, str], str | None] = {}
        self.batches = 0
        self.last_flush = time.monotonic()

    def take(self, fetched: _Fetched) -> None:
        if fetched.gone or fetched.failed is not None:
            return
        job = fetched.job
        record = self.forgotten.current() if self.forgotten else None
        if record:  # `explorer forget`: with them, or from them in a group
            fetched.docs = [d for d in fetched.docs if not record.message_document(d)]
        self.docs += fetched.docs
        self.rows.append((job.instance_id, job.listing, job.through))
        if (
            len(self.docs) >= self.size
            or len(self.rows) >= FLUSH_LISTINGS
            or time.monotonic() - self.last_flush >= FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.rows:
            return
        task = None
        if self.docs:
            self._name_senders(self.docs)
            task = self.store.add(self.index, self.docs)
            self.notify("sent", self.index, len(self.docs))
        self.pending.append((task, self.rows))
        self.docs, self.rows = [], []
        self.batches += 1
        self.confirm()
        if self.after_batch:
            self.after_batch(self.batches)

    def confirm(self, *, wait_all: bool = False) -> None:
        """Record the listings of every batch Meilisearch has finished (in order: tasks of
        one index run in order); raise if one failed."""
        if wait_all:
            self.store.wait([t for t, _ in self.pending if t is not None])
        tasks = [t for t, _ in self.pending if t is not None]
        status = {t.uid: t for t in self.store.tasks(tasks)} if tasks else {}
        while self.pending:
            task, rows = self.pending[0]
            if task is not None:
                found = status.get(task)
                if found is not None and found.status not in TERMINAL:
                    return
                if found is not None and found.status != "succeeded":
                    error = found.error or {}
                    raise MeiliTaskFailed(
                        f"Meilisearch task {task} (messages into {self.index}) {found.status}: "
                        f"{error.get('message', 'no message')} [{error.get('code', '?')}]",
                        error.get("type"),
                    )
            self.ledger.record(rows)
            self.pending.pop(0)

    def salvage(self, seconds: float = 5.0) -> None:
        """On the way out of a failed or interrupted run: record what Meilisearch confirms
        within ``seconds``, so that the next run does not fetch it again. Best effort."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(ExplorerError):
            self.confirm()
            while self.pending and time.monotonic() < deadline:
                time.sleep(0.1)
                self.confirm()

    def _name_senders(self, docs: list[dict[str, Any]]) -> None:
        """``sender_name``: the name the chats index has for a group message's sender."""
        wanted = {(d["instance_id"], d["sender"]) for d in docs if d.get("sender")}
        unknown = [key for key in wanted if key not in self.names]
        if unknown:
            ids = [doc_id(inst, jid) for inst, jid in unknown]
            for key in unknown:
                self.names[key] = None
            for chat in self.store.fetch_ids(self.chats_index, ids, ["instance_id", "jid", "name"]):
                self.names[(chat["instance_id"], chat["jid"])] = chat.get("name")
        for d in docs:
            if d.get("sender"):
                d["sender_name"] = self.names.get((d["instance_id"], d["sender"]))


def backfill(
    cfg: Config,
    store: IndexStore | None = None,
    chats: Iterable[dict[str, Any]] | None = None,
    *,
    progress: Progress | None = None,
    after_batch: Callable[[int], None] | None = None,
    now: float | None = None,
) -> BackfillReport:
    """Fetch the new messages of ``chats`` (chat documents; by default every chat of the
    live chats index active within the window) into the messages index, creating it when
    missing, and delete what has expired. A chat whose messages route keeps failing is
    skipped, counted (``failed``) and not recorded, so the next run asks again. Raises on a
    Meilisearch failure or an instance's (its auth, its session, :data:`FAILED_IN_A_ROW`
    chats failing in a row), with everything confirmed so far kept (the next run resumes
    from there)."""
    started = time.monotonic()
    store = store or IndexStore(cfg.meilisearch)
    chats_index = cfg.meilisearch.index
    index = messages_index(chats_index)
    cutoff = cutoff_of(cfg, now)
    report = BackfillReport(index=index, cutoff=cutoff)
    notify = progress or (lambda *_: None)
    instances = {inst.id: inst for inst in cfg.require_instances()}
    forgotten = forgotten_watch(cfg)  # `explorer forget`; a damaged record stops the run here
    ledger = Ledger(ledger_path(cfg))
    try:
        if store.ensure(index, MESSAGE_INDEX_SETTINGS):
            ledger.clear()  # a new index holds nothing the ledger says it does
        # Expired, and any stub a label update made of a message deleted meanwhile (a
        # partial update creates what it does not find): no timestamp, never shown.
        expiry = store.delete_where(index, f"timestamp < {cutoff} OR timestamp NOT EXISTS")
        done = ledger.load(instances)
        if chats is None:
            where = (
                f"instance_id IN [{', '.join(quote(i) for i in instances)}] "
                f"AND last_activity >= {cutoff}"
            )
            chats = store.fetch(chats_index, where, CHAT_FIELDS)
        else:
            chats = with_labels(store, chats_index, chats)
        watch = _LabelWatch(done, ledger.load_labels(instances))
        chats = list(watch.see(c for c in chats if c.get("instance_id") in instances
                               and not _forgotten_chat(forgotten, c)))  # fmt: skip
        # Relabelled before any fetching: a scoped token must not see a chat's messages
        # under labels it lost for as long as the fetching takes, nor after a run that
        # fails midway. New messages are written with the labels they have now.
        if watch.stale:
            store.wait([expiry])  # a partial update would make stubs of what it deletes
            report.relabelled = relabel(store, index, watch.stale, cfg.reindex.batch_size)
        ledger.record_labels(watch.rows)
        writer = _Writer(store, chats_index, index, ledger, cfg.reindex.batch_size, notify,
                         after_batch, forgotten)  # fmt: skip
        try:
            _fetch_all(cfg, instances, jobs_of(chats, done, cutoff, report), writer, report, cutoff)
        except BaseException:
            writer.salvage()
            raise
        writer.flush()
        writer.confirm(wait_all=True)
        store.wait([expiry])
        report.expired = _deleted(store, expiry)
    finally:
        ledger.close()
    report.seconds = time.monotonic() - started
    log.info("%s", report.summary())
    return report


def _forgotten_chat(forgotten: ForgetWatch, chat: dict[str, Any]) -> bool:
    """A chat of a person `explorer forget` recorded (under its JID or a listing's)."""
    record = forgotten.current()
    listed = (str(listing.get("jid")) for listing in chat.get("listings") or ())
    inst = str(chat.get("instance_id"))
    return bool(record) and (
        record.chat_document(chat) or any(record.is_forgotten(inst, j) for j in listed)
    )


def _fetch_all(
    cfg: Config,
    instances: dict[str, Instance],
    jobs: Iterator[_Job],
    writer: _Writer,
    report: BackfillReport,
    cutoff: int,
) -> None:
    """Every job on a pool as wide as the run's request budget, a bounded number ahead,
    results handed to ``writer`` on this thread as they finish."""
    pace = pace_for(cfg)
    stop = threading.Event()
    clients: dict[str, WawpClient] = {}
    workers = pace.limit
    pool = ThreadPoolExecutor(workers, thread_name_prefix="messages")
    running: set[Future[_Fetched]] = set()
    in_a_row: dict[str, int] = {}  # per instance: chats whose messages failed, in a row

    def client_of(instance_id: str) -> WawpClient:
        client = clients.get(instance_id)
        if client is None:
            client = clients[instance_id] = open_client(cfg, instances[instance_id], pace=pace)
        return client

    def settle(fut: Future[_Fetched]) -> None:
        fetched = fut.result()
        report.listings += 1
        report.gone += fetched.gone
        inst = fetched.job.instance_id
        if fetched.failed is not None:
            report.failed += 1
            log.warning("%s; skipped, asked again next run", fetched.failed)
            in_a_row[inst] = in_a_row.get(inst, 0) + 1
            if in_a_row[inst] >= FAILED_IN_A_ROW:
                raise WawpUnavailable(
                    f"Wawp instance {inst}: the messages of {FAILED_IN_A_ROW} chats in a row "
                    f"failed (the last: {fetched.failed})",
                    instance_id=inst,
                )
        else:
            in_a_row[inst] = 0
        for reason in fetched.malformed:
            report.note_malformed(reason)
        report.messages += len(fetched.docs)
        writer.take(fetched)
        notify_count = len(fetched.docs)
        writer.notify("messages", fetched.job.instance_id, notify_count)

    try:
        for job in jobs:
            client = client_of(job.instance_id)
            running.add(pool.submit(fetch_listing, client, job, cfg.wawp.page_size, cutoff, stop))
            if len(running) >= 2 * workers:
                finished, running = _wait_some(running)
                for fut in finished:
                    settle(fut)
        while running:
            finished, running = _wait_some(running)
            for fut in finished:
                settle(fut)
    except BaseException:
        stop.set()  # Ctrl-C, a failure: no worker starts another page
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for client in clients.values():
            report.requests += client.requests_made
            report.retries += client.retries_made
            client.close()


def _wait_some(
    running: set[Future[_Fetched]],
) -> tuple[set[Future[_Fetched]], set[Future[_Fetched]]]:
    done, rest = wait(running, return_when=FIRST_COMPLETED)
    return set(done), set(rest)


def _deleted(store: IndexStore, task: int) -> int:
    found = store.tasks([task])
    details = (found[0].details or {}) if found else {}
    count = details.get("deletedDocuments")
    return count if isinstance(count, int) else 0


def purge(cfg: Config) -> bool:
    """Delete the messages index and the ledger (turning messages off for good). True if
    there was an index to delete."""
    store = IndexStore(cfg.meilisearch)
    index = messages_index(cfg.meilisearch.index)
    existed = store.exists(index)
    store.delete(index)
    with contextlib.suppress(FileNotFoundError):
        ledger_path(cfg).unlink()
    return existed
