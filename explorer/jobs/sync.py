"""`explorer sync`: bring recently active chats into the live index between reindexes.

Pages are read newest first (``sortBy=conversationTimestamp``) and upserted until a page
holds nothing newer than the watermark minus a safety margin (equal timestamps, clock skew).
An account with no news costs one page request per instance. Sync never deletes a chat and
never touches settings: the nightly reindex stays the source of truth.

LIDs (:mod:`explorer.source.lids`): news is resolved with the instance's LID map, kept beside the
state and read again only when ``/v2/lids/count`` changes, and a person listed twice is
merged into their document. A number learnt since the last run moves its chat: the
document under the LID goes, its data joins the phone identity's document. That deletion
is the only one sync makes (it leaves no stale document behind).

The watermark per instance lives in ``sync-<index>.json`` in the state directory. When a
reindex swapped in a build after the last sync, the watermark falls back to that build's
crawl start, so whatever the build missed (chats active while it crawled) is re-applied.
Sync and reindex share one lock, so they never write at the same time; a sync that cannot
get it within ``wait`` seconds raises :class:`explorer.jobs.state.IndexBusy`.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.config import Config, Instance
from explorer.errors import WawpError, WawpProtocolError
from explorer.jobs.forget import watch as forget_watch
from explorer.jobs.forget import without_forgotten
from explorer.jobs.messages import BackfillReport, backfill
from explorer.jobs.reindex import Progress, last_report
from explorer.jobs.state import index_lock, read_json, state_dir, write_json
from explorer.meili.client import IndexStore, missing_index
from explorer.records.chats import Chat, MalformedChat, last_activity_of, normalize_chat
from explorer.records.documents import DOCUMENT_FIELDS, chat_from_document, doc_id, to_document
from explorer.records.filters import quote
from explorer.source.crawl import PageSource, open_client
from explorer.source.lids import NO_MAP_STATUSES, LidMap, merge, read_lid_map, resolve
from explorer.source.wawp import WawpClient

log = logging.getLogger("explorer.jobs.sync")

MARGIN_SECONDS = 300


@dataclass
class InstanceSync:
    instance_id: str
    requests: int = 0
    seen: int = 0
    upserted: int = 0
    malformed: int = 0
    watermark_before: int | None = None
    watermark_after: int | None = None
    lid_requests: int = 0  # requests for the LID map (apart from the chat pages above)
    moved: int = 0  # chats moved from their LID to their phone identity
    lids_unavailable: str | None = None


@dataclass
class SyncReport:
    live_index: str
    instances: list[InstanceSync] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: int | None = None
    messages: BackfillReport | None = None  # with messages.enabled

    @property
    def upserted(self) -> int:
        return sum(i.upserted for i in self.instances)

    def summary(self) -> str:
        parts = ", ".join(
            f"{i.instance_id} {i.upserted} ({i.requests} request{'s' * (i.requests != 1)})"
            for i in self.instances
        )
        text = f"synced: {self.upserted} chats upserted into {self.live_index} [{parts}]; " + (
            f"{self.seconds:.1f}s"
        )
        moved = sum(i.moved for i in self.instances)
        if moved:
            text += f"\nLIDs: {moved} chats moved to the phone number learnt since"
        for i in self.instances:
            if i.lids_unavailable:
                text += f"\nLIDs could not be resolved on {i.instance_id} ({i.lids_unavailable})"
        if self.messages is not None:
            text += "\n" + self.messages.summary()
        return text

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "upserted": self.upserted}


def _state_path(cfg: Config) -> Path:
    return state_dir(cfg) / f"sync-{cfg.meilisearch.index}.json"


def load_state(cfg: Config) -> dict[str, Any]:
    return read_json(_state_path(cfg))


def _watermark(cfg: Config, store: IndexStore, inst: Instance, state: dict[str, Any]) -> int:
    """Activity time from which chats must be (re)applied for this instance."""
    own = state.get("instances", {}).get(inst.id, {})
    mark: int | None = own.get("watermark")
    last = last_report(cfg)
    if last and last.get("crawled_at") and (last.get("finished_at") or 0) >= own.get("at", 0):
        # A swap since our last sync may have dropped what we applied: go back to the
        # moment that build started crawling.
        crawled = int(last["crawled_at"])
        mark = crawled if mark is None else min(mark, crawled)
    if mark is None:
        mark = store.newest_activity(cfg.meilisearch.index, inst.id) or 0
    return mark


@dataclass
class _Page:
    chats: list[Chat]  # normalised (``status@broadcast`` dropped)
    malformed: int


def _normalise(page: list[Any], instance_id: str) -> _Page:
    result = _Page([], 0)
    for raw in page:
        try:
            chat = normalize_chat(raw, instance_id)
        except MalformedChat:
            result.malformed += 1
            continue
        if chat is not None:
            result.chats.append(chat)
    return result


@dataclass
class _News:
    """What is new on newest-first pages, and when the pages hold nothing newer."""

    floor: int  # activity before this is old news
    newest: int
    oldest: int | None = None
    applied: set[str] = field(default_factory=set)  # overlap re-reads are not news twice

    def take(self, items: list[Any], instance_id: str, result: InstanceSync) -> list[Chat]:
        page = _normalise(items, instance_id)
        result.malformed += page.malformed
        news = []
        for chat in page.chats:
            result.seen += 1
            ts = chat.last_activity
            if ts is None or ts < self.floor:
                self.oldest = ts if ts is not None else -1
                continue
            self.oldest = ts if self.oldest is None else min(self.oldest, ts)
            self.newest = max(self.newest, ts)
            if chat.jid not in self.applied:
                self.applied.add(chat.jid)
                news.append(chat)
        return news

    def exhausted(self, offset: int, items: list[Any]) -> bool:
        return self.oldest is not None and self.oldest < self.floor


def _newest_first(source: PageSource) -> list[Any]:
    """Settle the sortOrder spelling this server honours for newest-first; its first page."""
    tried = []
    for spelling in ("desc", "DESC"):
        source.sort_order = spelling
        items = source.fetch(0)
        stamps = (last_activity_of(raw) for raw in items if isinstance(raw, dict))
        known = [ts for ts in stamps if ts is not None]
        if len(known) < 2 or known == sorted(known, reverse=True):
            source.learn_cap(0, items)
            return items
        tried.append(spelling)
    raise WawpProtocolError(
        f"Wawp instance {source.client.instance_id}: /v2/chats ignores sortOrder "
        f"({', '.join(tried)} both came back oldest first), so a newest-first sync is "
        "impossible; rely on reindex",
        instance_id=source.client.instance_id,
    )


def sync(
    cfg: Config,
    *,
    wait: float = 10.0,
    margin: int = MARGIN_SECONDS,
    progress: Progress | None = None,
) -> SyncReport:
    """Upsert every instance's chats active since its watermark into the live index."""
    instances = cfg.require_instances()
    forget_watch(cfg)  # a damaged `explorer forget` record: refuse to run
    store = IndexStore(cfg.meilisearch)
    live = cfg.meilisearch.index
    notify = progress or (lambda *_: None)
    started = time.monotonic()
    report = SyncReport(live_index=live)
    with index_lock(state_dir(cfg), live, wait=wait):
        if not store.exists(live):
            raise missing_index(live)
        state = load_state(cfg)
        tasks: list[int] = []
        upserted: list[dict[str, Any]] = []
        for inst in instances:
            result = InstanceSync(inst.id)
            report.instances.append(result)
            tasks += _sync_instance(cfg, store, inst, state, margin, notify, result, upserted)
        store.wait(tasks)
        if cfg.messages.enabled:
            # The chats upserted, as written: their new messages, and what has expired.
            report.messages = backfill(cfg, store, upserted, progress=notify)
        write_json(_state_path(cfg), state)
    report.seconds = time.monotonic() - started
    report.finished_at = int(time.time())
    return report


def _sync_instance(
    cfg: Config,
    store: IndexStore,
    inst: Instance,
    state: dict[str, Any],
    margin: int,
    notify: Progress,
    result: InstanceSync,
    upserted: list[dict[str, Any]],
) -> list[int]:
    """Send one instance's news to the live index and move its watermark in ``state`` to
    the newest activity seen. Returns the Meilisearch tasks to wait for; the documents
    sent are added to ``upserted``."""
    mark = _watermark(cfg, store, inst, state)
    result.watermark_before = mark
    now = int(time.time())
    news = _News(floor=mark - margin, newest=mark)
    tasks = []
    people = _People(cfg, store, inst, _lid_map(cfg, inst, state, result))
    with open_client(cfg, inst) as client:
        with closing(_newest_first_source(cfg, client)) as source:
            first = _newest_first(source)
            for _, items in source.walk(0, first, stop_when=news.exhausted):
                chats = people.take(news.take(items, inst.id, result))
                if chats:
                    docs = [to_document(c, label=inst.label, crawled_at=now) for c in chats]
                    docs = without_forgotten(cfg, docs)  # `explorer forget`
                    if docs:  # Meilisearch refuses an empty write
                        tasks.append(store.update(cfg.meilisearch.index, docs))
                    upserted += docs
                    result.upserted += len(docs)
                    notify("sent", inst.id, len(docs))
        result.requests = client.requests_made
    moved = people.learnt()
    if moved:
        docs = without_forgotten(cfg, [to_document(c, label=inst.label, crawled_at=now)
                                       for c in moved])  # fmt: skip
        if docs:
            tasks.append(store.update(cfg.meilisearch.index, docs))
        upserted += docs
        result.moved = len(moved)
        notify("sent", inst.id, len(docs))
    if people.stale:
        # After the documents that replace them: a search never loses the person.
        tasks.append(store.delete_ids(cfg.meilisearch.index, sorted(people.stale)))
    result.watermark_after = news.newest
    state.setdefault("instances", {})[inst.id] = {"watermark": news.newest, "at": now}
    return tasks


def _lid_map(cfg: Config, inst: Instance, state: dict[str, Any], result: InstanceSync) -> LidMap:
    """The instance's LID map: the copy kept from the last run while ``/v2/lids/count``
    says the same, else read again (and kept). One request when nothing changed."""
    path = state_dir(cfg) / f"sync-{cfg.meilisearch.index}-lids-{inst.id}.json"
    counts = state.setdefault("lid_counts", {})  # apart: the watermark's entry is rewritten
    with open_client(cfg, inst) as client:
        try:
            count = client.lids_count()
        except WawpError as exc:
            if exc.status not in NO_MAP_STATUSES:
                raise
            count = None
        saved = read_json(path)
        if saved and count is not None and counts.get(inst.id) == count:
            lids = LidMap.from_json(saved)
        else:
            lids = read_lid_map(client, concurrency=cfg.wawp.concurrency)
            write_json(path, lids.to_json())
            counts[inst.id] = count
        result.lid_requests = client.requests_made
    result.lids_unavailable = lids.unavailable
    return lids


class _People:
    """Sync's LID step: news resolved and merged into the documents already live, and
    hidden numbers the map now knows moved to their phone identity."""

    def __init__(self, cfg: Config, store: IndexStore, inst: Instance, lids: LidMap) -> None:
        self.index = cfg.meilisearch.index
        self.store = store
        self.instance_id = inst.id
        self.lids = lids
        self.stale: set[str] = set()  # document ids to delete (a LID that moved)
        self.done: set[str] = set()  # identities written by this sync

    def take(self, chats: list[Chat]) -> list[Chat]:
        resolved = [resolve(c, self.lids) for c in chats]
        return self._merged(resolved, [c.jid for c in chats])

    def _merged(self, chats: list[Chat], listed: list[str]) -> list[Chat]:
        """Each chat merged into the live document of its person, if there is one."""
        ids = [doc_id(self.instance_id, c.jid) for c in chats if c.listings]
        live = {d["jid"]: chat_from_document(d) for d in self.store.fetch_ids(self.index, ids)}
        out: dict[str, Chat] = {}
        for chat, was in zip(chats, listed, strict=True):
            if was != chat.jid:  # listed under the LID, now under the phone: the LID goes
                self.stale.add(doc_id(self.instance_id, was))
            known = out.get(chat.jid) or live.get(chat.jid)
            if chat.listings and known is not None and known.listings:
                chat = merge(known, chat)
            elif chat.listings and known is not None:
                # Written before its LID was known: its own listing is the document itself.
                own = ((known.jid, known.last_activity, known.unread_count),)
                chat = merge(replace(known, listings=own), chat)
            out[chat.jid] = chat
        self.done |= set(out)
        return list(out.values())

    def learnt(self) -> list[Chat]:
        """Live documents of hidden numbers the map now knows, under their phone identity."""
        if not self.lids:
            return []
        where = f"instance_id = {quote(self.instance_id)} AND phone_hidden = true"
        hidden = [
            chat_from_document(d)
            for d in self.store.fetch(self.index, where, list(DOCUMENT_FIELDS))
        ]
        known = [
            c
            for c in hidden
            if c.jid in self.lids and doc_id(self.instance_id, c.jid) not in self.stale
        ]
        return self._merged([resolve(c, self.lids) for c in known], [c.jid for c in known])


def _newest_first_source(cfg: Config, client: WawpClient) -> PageSource:
    # Overlapping pages: equal timestamps have no stable order upstream.
    return PageSource(
        client,
        page_size=cfg.wawp.page_size,
        overlap=cfg.wawp.overlap,
        sort_by="conversationTimestamp",
        sort_order="desc",
    )
