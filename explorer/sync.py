"""`explorer sync`: bring recently active chats into the live index between reindexes.

Pages are read newest first (``sortBy=conversationTimestamp``) and upserted until a page
holds nothing newer than the watermark minus a safety margin (equal timestamps, clock skew).
An account with no news costs one page request per instance. Sync never deletes and never
touches settings: the nightly reindex stays the source of truth.

The watermark per instance lives in ``sync-<index>.json`` in the state directory. When a
reindex swapped in a build after the last sync, the watermark falls back to that build's
crawl start, so whatever the build missed (chats active while it crawled) is re-applied.
Sync and reindex share one lock, so they never write at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from explorer.chats import MalformedChat, normalize_chat
from explorer.config import Config, Instance
from explorer.crawl import open_client
from explorer.documents import to_document
from explorer.errors import ExplorerError, MeiliError, WawpProtocolError
from explorer.index import IndexStore
from explorer.reindex import Progress, last_report, state_dir
from explorer.wawp import WawpClient

log = logging.getLogger("explorer.sync")

MARGIN_SECONDS = 300


class SyncBusy(ExplorerError):
    """A reindex holds the lock; sync skipped this round (exit 0: cron runs it again)."""

    exit_code = 0


@dataclass
class InstanceSync:
    instance_id: str
    requests: int = 0
    seen: int = 0
    upserted: int = 0
    malformed: int = 0
    watermark_before: int | None = None
    watermark_after: int | None = None


@dataclass
class SyncReport:
    live_index: str
    instances: list[InstanceSync] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: int | None = None

    @property
    def upserted(self) -> int:
        return sum(i.upserted for i in self.instances)

    def summary(self) -> str:
        parts = ", ".join(
            f"{i.instance_id} {i.upserted} ({i.requests} request{'s' * (i.requests != 1)})"
            for i in self.instances
        )
        return f"synced: {self.upserted} chats upserted into {self.live_index} [{parts}]; " + (
            f"{self.seconds:.1f}s"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "upserted": self.upserted}


@contextlib.contextmanager
def shared_lock(directory: Path, index: str, wait: float) -> Iterator[None]:
    """The reindex lock, waited for up to ``wait`` seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    fh: IO[str] = (directory / f"reindex-{index}.lock").open("a+")
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(
                        f"a reindex of {index!r} is running; sync skipped (it runs again next time)"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        fh.close()


def _state_path(cfg: Config) -> Path:
    return state_dir(cfg) / f"sync-{cfg.meilisearch.index}.json"


def load_state(cfg: Config) -> dict[str, Any]:
    try:
        data = json.loads(_state_path(cfg).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(cfg: Config, data: dict[str, Any]) -> None:
    path = _state_path(cfg)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


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


def _newest_first(client: WawpClient, limit: int) -> tuple[str, list[Any]]:
    """The sortOrder spelling this server honours for newest-first, and the first page."""
    tried = []
    for spelling in ("desc", "DESC"):
        page = client.chats_page(
            offset=0, limit=limit, sort_by="conversationTimestamp", sort_order=spelling
        )
        stamps = [_ts(raw) for raw in page]
        known = [s for s in stamps if s is not None]
        if len(known) < 2 or known == sorted(known, reverse=True):
            return spelling, page
        tried.append(spelling)
    raise WawpProtocolError(
        f"Wawp instance {client.instance_id}: /v2/chats ignores sortOrder ({', '.join(tried)} "
        "both came back oldest first), so a newest-first sync is impossible; rely on reindex",
        instance_id=client.instance_id,
    )


def _ts(raw: Any) -> int | None:
    try:
        chat = normalize_chat(raw, "-")
    except MalformedChat:
        return None
    return chat.last_activity if chat else None


def sync(
    cfg: Config,
    *,
    wait: float = 10.0,
    margin: int = MARGIN_SECONDS,
    progress: Progress | None = None,
) -> SyncReport:
    instances = cfg.require_instances()
    store = IndexStore(cfg.meilisearch)
    live = cfg.meilisearch.index
    notify = progress or (lambda *_: None)
    started = time.monotonic()
    report = SyncReport(live_index=live)
    limit = cfg.wawp.page_size
    with shared_lock(state_dir(cfg), live, wait):
        if not store.exists(live):
            raise MeiliError(f"index {live!r} does not exist yet: run `explorer reindex` first")
        state = load_state(cfg)
        tasks: list[int] = []
        for inst in instances:
            result = InstanceSync(inst.id)
            report.instances.append(result)
            mark = _watermark(cfg, store, inst, state)
            result.watermark_before = mark
            floor = mark - margin
            newest = mark
            now = int(time.time())
            with open_client(cfg, inst) as client:
                spelling, page = _newest_first(client, limit)
                offset = 0
                while True:
                    docs = []
                    oldest: int | None = None
                    for raw in page:
                        try:
                            chat = normalize_chat(raw, inst.id)
                        except MalformedChat:
                            result.malformed += 1
                            continue
                        if chat is None:
                            continue
                        result.seen += 1
                        ts = chat.last_activity
                        if ts is None or ts < floor:
                            oldest = ts if ts is not None else -1
                            continue
                        oldest = ts if oldest is None else min(oldest, ts)
                        newest = max(newest, ts)
                        docs.append(to_document(chat, label=inst.label, crawled_at=now))
                    if docs:
                        tasks.append(store.add(live, docs))
                        result.upserted += len(docs)
                        notify("sent", inst.id, len(docs))
                    done = len(page) < limit or (oldest is not None and oldest < floor)
                    if done:
                        break
                    # Overlap pages: equal timestamps have no stable order upstream.
                    offset += limit - cfg.wawp.overlap
                    page = client.chats_page(
                        offset=offset,
                        limit=limit,
                        sort_by="conversationTimestamp",
                        sort_order=spelling,
                    )
                result.requests = client.requests_made
            result.watermark_after = newest
            state.setdefault("instances", {})[inst.id] = {"watermark": newest, "at": now}
        store.wait(tasks)
        _save_state(cfg, state)
    report.seconds = time.monotonic() - started
    report.finished_at = int(time.time())
    return report
