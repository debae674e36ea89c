"""Crawl every chat of an instance exactly once, whatever the API does meanwhile.

Pages are requested with ``sortBy=id`` (the only unique key) at offsets that overlap by
``overlap`` chats, and fetched ahead by a small thread pool but handed on in order.

The completeness argument: each page is a contiguous slice of the id-sorted list at the
moment it was served. If a page starts at or before the last id already handed on, the
two slices leave no hole between them, so any chat that existed during both requests is
in one of them. A page that starts *after* that id (deletions shifted the offsets left
by more than the overlap) would leave a hole, so the crawler steps back a stride and asks
again. Duplicates (insertions shift offsets right) are dropped by comparing ids with the
last id handed on, which needs O(1) memory, not a set of every id seen.

The :class:`Checkpoint` after each page (next offset + last id) is all a resumed crawl needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from explorer.config import Config, Instance, WawpSettings
from explorer.errors import CrawlStalled, WawpProtocolError
from explorer.records.chats import Chat, MalformedChat, normalize_chat, raw_id
from explorer.source.pace import Pace
from explorer.source.wawp import RetryPolicy, WawpClient

log = logging.getLogger("explorer.source.crawl")

MAX_SAMPLES = 5


@dataclass(frozen=True)
class Checkpoint:
    """Where a crawl of one instance stands after a page was fully handed on."""

    instance_id: str
    next_offset: int
    last_key: str | None
    direction: int  # +1 ascending ids, -1 descending
    handed: int
    recent: tuple[str, ...] = ()  # the last JIDs handed on, to merge near duplicates

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "recent": list(self.recent)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            instance_id=str(data["instance_id"]),
            next_offset=int(data["next_offset"]),
            last_key=data.get("last_key"),
            direction=int(data.get("direction", 1)),
            handed=int(data.get("handed", 0)),
            recent=tuple(str(j) for j in data.get("recent", [])),
        )


@dataclass
class CrawlStats:
    instance_id: str
    requests: int = 0
    retries: int = 0
    pages: int = 0
    chats: int = 0
    duplicates: int = 0  # chats served again beyond the deliberate page overlap
    merged: int = 0  # one chat under two raw ids that normalise to the same JID
    overlap_rereads: int = 0  # the overlap itself: expected, not a problem
    skipped: int = 0
    malformed: int = 0
    malformed_samples: list[str] = field(default_factory=list)
    step_backs: int = 0
    page_size: int = 0
    order: str = "asc"
    warmup_waits: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    def note_malformed(self, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_samples) < MAX_SAMPLES:
            self.malformed_samples.append(reason)


@dataclass(frozen=True)
class Page:
    instance_id: str
    chats: list[Chat]
    checkpoint: Checkpoint


@dataclass
class CrawlOptions:
    page_size: int = 100
    concurrency: int = 4
    overlap: int = 5
    sort_order: str = "asc"
    warmup_seconds: float = 60.0
    warmup_interval: float = 2.0
    stall_pages: int = 3
    max_step_backs: int = 1000


class PageSource:
    """One instance's chat list in one order, page by page, as the server really serves it.

    Every reader of ``/v2/chats`` (the crawl, sync) needs the same things and must not
    reinvent them: the server's silent page-size cap (learnt from a short first page that is
    not the end), pages that overlap by ``overlap`` chats, where the list ends, and pages
    fetched ahead on a thread pool yet handed on in order. Retries live in the client.
    Readers differ only in their order policy and in when they stop (``stop_when``).

    The pool keeps the window's worth of requests in flight whatever the reader is doing
    (each finished request tops the window up), and up to a window's worth of pages wait
    for the reader, so a reader busy with a page never leaves the connections idle.
    """

    def __init__(
        self,
        client: WawpClient,
        *,
        page_size: int,
        overlap: int,
        sort_by: str,
        sort_order: str,
        concurrency: int = 1,
        window: Callable[[], int] | None = None,
    ) -> None:
        if not 0 <= overlap < page_size:
            raise ValueError("overlap must be >= 0 and smaller than page_size")
        self.client = client
        self.limit = page_size
        self.overlap = overlap
        self.sort_by = sort_by
        self.sort_order = sort_order
        self.concurrency = max(1, concurrency)
        self.window = window  # when given, how many to have in flight now (shared budgets)
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.RLock()  # requests finishing top the window up themselves
        self._ahead: deque[tuple[int, Future[list[Any]]]] = deque()
        self._next: int | None = None  # the offset to request next
        self._end: int | None = None  # a page found short: the list ends there
        self._in_flight = 0
        self._filling = False
        self._generation = 0  # requests from before a reset say nothing of where the list ends

    @property
    def stride(self) -> int:
        return self.limit - self.overlap

    def fetch(self, offset: int) -> list[Any]:
        """The page at ``offset``, requested now on the caller's thread."""
        return self.client.chats_page(
            offset=offset,
            limit=self.limit,
            sort_by=self.sort_by,
            sort_order=self.sort_order,
            stop=self._stop,
        )

    def learn_cap(self, offset: int, items: list[Any]) -> None:
        """A short page that is not the end means the server caps pages: adopt its size."""
        if not 0 < len(items) < self.limit:
            return
        if self.fetch(offset + len(items)):
            log.info(
                "Wawp instance %s: server caps pages at %d chats",
                self.client.instance_id,
                len(items),
            )
            self.limit = len(items)
            # Keep at least one chat of overlap whenever a page can hold two.
            self.overlap = min(self.overlap, max(1, self.limit // 4), self.limit - 1)

    def is_last(self, items: list[Any]) -> bool:
        return len(items) < self.limit

    def get(self, offset: int) -> list[Any]:
        """The page at ``offset``, with the next ones already requested."""
        with self._lock:
            if self._ahead and self._ahead[0][0] == offset:
                _, fut = self._ahead.popleft()
            else:
                self._reset()
                fut = self._submit(offset)
                self._next = offset + self.stride
            self._fill()
        return fut.result()

    def _fill(self) -> None:
        """Keep the window's worth of requests in flight (called with the lock held, by the
        reader and as each request finishes), with at most a window's worth read ahead."""
        if self._next is None or self._stop.is_set() or self._filling:
            return
        # A request can finish before its callback is attached, and the callback then runs
        # here, in this loop: filling from inside it would request an offset twice and
        # put pages out of order. The loop itself sees what that request freed.
        self._filling = True
        try:
            want = min(self.window(), self.concurrency) if self.window else self.concurrency
            while (
                self._in_flight < want
                and len(self._ahead) < want + self.concurrency
                and (self._end is None or self._next <= self._end)
            ):
                offset = self._next
                self._next += self.stride
                self._ahead.append((offset, self._submit(offset)))
        finally:
            self._filling = False

    def _submit(self, offset: int) -> Future[list[Any]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="wawp-page")
        self._in_flight += 1
        fut = self._pool.submit(self.fetch, offset)
        generation = self._generation
        fut.add_done_callback(lambda f: self._finished(offset, generation, f))
        return fut

    def _finished(self, offset: int, generation: int, fut: Future[list[Any]]) -> None:
        with self._lock:
            self._in_flight -= 1
            if (
                generation == self._generation
                and not fut.cancelled()
                and fut.exception() is None
                and self.is_last(fut.result())
            ):
                # The list ends here: nothing beyond is worth a request.
                self._end = offset if self._end is None else min(self._end, offset)
            self._fill()

    def reset(self) -> None:
        """Forget pages fetched ahead (the reader is going elsewhere)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._generation += 1
        self._next = None
        self._end = None
        ahead, self._ahead = list(self._ahead), deque()
        for _, fut in ahead:
            fut.cancel()

    def walk(
        self,
        offset: int = 0,
        first: list[Any] | None = None,
        stop_when: Callable[[int, list[Any]], bool] | None = None,
    ) -> Iterator[tuple[int, list[Any]]]:
        """``(offset, items)`` for each page until the list ends or ``stop_when`` says so."""
        items = first if first is not None else self.get(offset)
        while True:
            yield offset, items
            if self.is_last(items) or (stop_when is not None and stop_when(offset, items)):
                return
            offset += self.stride
            items = self.get(offset)

    def close(self) -> None:
        """No request outlives the reader: prefetches finish or abandon their retries."""
        self.reset()
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class Crawler:
    """One instance's crawl; iterate :meth:`pages`, read :attr:`stats` afterwards."""

    RECENT = 64  # JIDs remembered to merge duplicates under two raw ids (they sort close)

    def __init__(
        self,
        client: WawpClient,
        options: CrawlOptions | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        window: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.opts = options or CrawlOptions()
        self.source = PageSource(
            client,
            page_size=self.opts.page_size,
            overlap=self.opts.overlap,
            sort_by="id",
            sort_order=self.opts.sort_order,
            concurrency=self.opts.concurrency,
            window=window,
        )
        self.stats = CrawlStats(client.instance_id)
        self._sleep = sleep
        self._clock = clock
        self.direction = 1 if self.opts.sort_order.lower() != "desc" else -1

    @property
    def limit(self) -> int:
        return self.source.limit

    @property
    def overlap(self) -> int:
        return self.source.overlap

    def _after(self, key: str, last: str | None) -> bool:
        """Whether ``key`` comes strictly after ``last`` in the server's order."""
        if last is None:
            return True
        return key > last if self.direction > 0 else key < last

    def _observe_order(self, keys: list[str]) -> None:
        """Learn the direction the server really sorts in; fail if it does not sort."""
        # Sorted either way, ties allowed (a page may repeat a chat): one C call each.
        ascending = keys == sorted(keys)
        if ascending and (not keys or keys[0] == keys[-1]):
            return  # fewer than two distinct ids say nothing about the order
        descending = not ascending and keys == sorted(keys, reverse=True)
        if not ascending and not descending:
            raise WawpProtocolError(
                f"Wawp instance {self.client.instance_id}: /v2/chats ignores sortBy=id (a page "
                "is not sorted by id), so a complete crawl cannot be guaranteed",
                instance_id=self.client.instance_id,
            )
        observed = 1 if ascending else -1
        if observed != self.direction:
            honoured = "asc" if observed > 0 else "desc"
            log.warning(
                "Wawp instance %s: sortOrder=%s came back sorted the other way; falling back to "
                "sortOrder=%s, which it honours",
                self.client.instance_id,
                self.source.sort_order,
                honoured,
            )
            self.direction = observed
            self.source.sort_order = honoured
            self.stats.order = f"{honoured} (server ignored sortOrder={self.opts.sort_order})"

    def _first_page(self, offset: int, resuming: bool) -> list[Any]:
        """Fetch the first page alone: warm-up and the page-size cap are learnt here."""
        started = self._clock()
        while True:
            items = self.source.fetch(offset)
            if items or resuming or offset > 0:
                break
            waited = self._clock() - started
            if waited >= self.opts.warmup_seconds:
                log.info("Wawp instance %s: no chats after warm-up", self.client.instance_id)
                break
            self.stats.warmup_waits += 1
            log.info(
                "Wawp instance %s: empty first page, session may be warming up; retrying",
                self.client.instance_id,
            )
            self._sleep(min(self.opts.warmup_interval, self.opts.warmup_seconds - waited))
        self.source.learn_cap(offset, items)
        return items

    def pages(self, resume: Checkpoint | None = None) -> Iterator[Page]:
        """Every chat once, page by page, each page with the checkpoint that resumes after it."""
        started = self._clock()
        cursor = self._cursor(resume)
        try:
            items: list[Any] | None = self._first_page(cursor.offset, resuming=resume is not None)
            while True:
                if items is None:
                    items = self.source.get(cursor.offset)
                self.stats.pages += 1
                keyed = [(raw_id(it), it) for it in items]
                self._observe_order([k for k, _ in keyed if k is not None])
                if not self._connected(cursor, keyed):
                    self._step_back(cursor)
                    items = None
                    continue
                page, progressed = self._hand_on(cursor, keyed)
                yield page
                if self.source.is_last(items):
                    return
                self._check_progress(cursor, progressed)
                cursor.offset = page.checkpoint.next_offset
                items = None
        finally:
            self.source.close()
            self._final_stats(started)

    def _cursor(self, resume: Checkpoint | None) -> _Cursor:
        """Where the crawl starts: the beginning, or where a checkpoint left it."""
        if resume is None:
            return _Cursor(0, None, 0, _Recent(self.RECENT))
        self.direction = resume.direction
        self.source.sort_order = "asc" if resume.direction > 0 else "desc"
        return _Cursor(
            resume.next_offset, resume.last_key, resume.handed, _Recent(self.RECENT, resume.recent)
        )

    def _connected(self, cursor: _Cursor, keyed: list[tuple[str | None, Any]]) -> bool:
        """Whether this page leaves no hole after the last chat handed on (module doc).
        Without overlap (pages of one chat, or overlap = 0 by choice) nothing can show a
        hole: the churn guarantee needs overlap >= 1."""
        if cursor.offset == 0 or cursor.last_key is None or self.source.overlap == 0:
            return True
        first = next((k for k, _ in keyed if k is not None), None)
        return first is not None and not self._after(first, cursor.last_key)

    def _step_back(self, cursor: _Cursor) -> None:
        """A hole: deletions moved chats we have not seen below this offset; ask again a
        stride earlier."""
        self.stats.step_backs += 1
        if self.stats.step_backs > self.opts.max_step_backs:
            raise CrawlStalled(
                f"Wawp instance {self.client.instance_id}: the chat list keeps shifting; "
                f"gave up after {self.stats.step_backs} step-backs",
                instance_id=self.client.instance_id,
            )
        self.source.reset()
        cursor.offset = max(0, cursor.offset - self.source.stride)

    def _hand_on(self, cursor: _Cursor, keyed: list[tuple[str | None, Any]]) -> tuple[Page, bool]:
        """The page's new chats, normalised, and whether any came after the last one handed
        on. Runs for every chat: _after() is inlined, names are local, and the clock (for
        mute expiry) is read once a page."""
        stats = self.stats
        fresh: list[Chat] = []
        last_key = new_last = cursor.last_key
        expected_overlap = self.source.overlap if cursor.offset > 0 else 0
        ascending = self.direction > 0
        instance = self.client.instance_id
        now = time.time()
        by_type = stats.by_type
        recent = cursor.recent
        for position, (key, raw) in enumerate(keyed):
            if key is None:
                stats.note_malformed(f"offset {cursor.offset}: chat without a usable id")
                continue
            if new_last is not None and (key <= new_last if ascending else key >= new_last):
                if position < expected_overlap:
                    stats.overlap_rereads += 1
                else:
                    stats.duplicates += 1
                continue
            new_last = key
            try:
                chat = normalize_chat(raw, instance, now=now, key=key)
            except MalformedChat as exc:
                stats.note_malformed(f"offset {cursor.offset}: {exc}")
                continue
            if chat is None:
                stats.skipped += 1
                continue
            if not recent.add(chat.jid):
                # Documents are keyed by the canonical JID: one document, not two.
                stats.merged += 1
                log.info(
                    "Wawp instance %s: %r is %s again; merged into one document",
                    instance,
                    key,
                    chat.jid,
                )
                continue
            fresh.append(chat)
            by_type[chat.chat_type] = by_type.get(chat.chat_type, 0) + 1
        cursor.last_key = new_last
        cursor.handed += len(fresh)
        stats.chats += len(fresh)
        checkpoint = Checkpoint(
            instance,
            cursor.offset + self.source.stride,
            new_last,
            self.direction,
            cursor.handed,
            recent.items(),
        )
        return Page(instance, fresh, checkpoint), new_last != last_key

    def _check_progress(self, cursor: _Cursor, progressed: bool) -> None:
        """Full pages that bring nothing new, again and again: the server ignores offset."""
        cursor.stalls = 0 if progressed else cursor.stalls + 1
        if cursor.stalls >= self.opts.stall_pages:
            raise CrawlStalled(
                f"Wawp instance {self.client.instance_id}: {cursor.stalls} full pages in a row "
                f"brought no new chat (around offset {cursor.offset}); the server seems to "
                "ignore offset",
                instance_id=self.client.instance_id,
            )

    def _final_stats(self, started: float) -> None:
        stats = self.stats
        stats.requests = self.client.requests_made
        stats.retries = self.client.retries_made
        stats.page_size = self.source.limit
        stats.seconds = self._clock() - started


@dataclass
class _Cursor:
    """Where a crawl stands between pages: what :class:`Checkpoint` saves, plus the stall count."""

    offset: int
    last_key: str | None
    handed: int
    recent: _Recent
    stalls: int = 0


class _Recent:
    """The last ``size`` JIDs handed on, with O(1) membership (checked for every chat)."""

    def __init__(self, size: int, items: tuple[str, ...] = ()) -> None:
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        self._size = size
        for jid in items:
            self.add(jid)

    def add(self, jid: str) -> bool:
        """Remember ``jid``; False if it was already among the recent ones."""
        if jid in self._set:
            return False
        self._order.append(jid)
        self._set.add(jid)
        if len(self._order) > self._size:
            self._set.discard(self._order.popleft())
        return True

    def items(self) -> tuple[str, ...]:
        return tuple(self._order)


def options_from(wawp: WawpSettings) -> CrawlOptions:
    return CrawlOptions(
        page_size=wawp.page_size,
        concurrency=wawp.concurrency,
        overlap=wawp.overlap,
        warmup_seconds=wawp.warmup_seconds,
    )


def open_client(
    config: Config,
    instance: Instance,
    *,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    pace: Pace | None = None,
) -> WawpClient:
    """The one way to build a client from the configuration (``check`` tightens limits).
    Its pool holds a connection per request the crawl keeps in flight, no more."""
    w = config.wawp
    return WawpClient(
        w.base_url,
        instance.id,
        config.token_for(instance),
        timeout=w.timeout if timeout is None else timeout,
        retry=retry or RetryPolicy(budget_seconds=w.retry_budget_seconds),
        max_connections=w.concurrency,
        pace=pace,
    )


def pace_for(config: Config) -> Pace:
    """The run's shared request budget: total_concurrency across instances (default: the
    per-instance concurrency, so many instances cost the account no more than one)."""
    w = config.wawp
    total = w.total_concurrency or w.concurrency
    return Pace(total, per_instance=min(w.concurrency, total), adaptive=w.adaptive)
