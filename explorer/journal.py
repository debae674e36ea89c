"""The webhook journal: events durably queued before anyone is told "received".

One SQLite file in the state directory (``webhooks-<index>.sqlite3``), in WAL mode with
``synchronous=FULL``, so a committed event survives a crash or a power cut. Tables:

- ``inbox``: events accepted and not applied yet, in arrival order (the queue);
- ``seen``: event ids already accepted, so a sender's retry or duplicate is queued once
  (kept for :data:`SEEN_SECONDS`);
- ``touched``: what listen last wrote for each chat, so it can be written again after a
  reindex swaps in an index built from a crawl that started before those events;
- ``meta``: the last event applied and the last swap handled (``explorer stats``).

Appends from the HTTP handlers go through one writer thread that commits whatever has
gathered in one transaction (group commit): one disk flush serves many events.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from explorer.config import Config
from explorer.state import state_dir

SEEN_SECONDS = 2 * 86_400  # senders retry for minutes; two days is plenty
Outcome = Literal["queued", "duplicate", "full"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    received REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS touched (
    doc_id TEXT PRIMARY KEY, update_json TEXT NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS touched_at ON touched (at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def journal_path(cfg: Config) -> Path:
    return state_dir(cfg) / f"webhooks-{cfg.meilisearch.index}.sqlite3"


@dataclass
class Queued:
    seq: int
    instance_id: str
    received: float
    body: bytes


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Journal:
    """The queue and its bookkeeping; safe to share between threads."""

    def __init__(self, path: Path, *, max_queue: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_queue = max_queue
        self._db = _connect(path)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.depth = self._db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
        self.arrived = threading.Event()  # set whenever events were queued
        self._appends: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="journal", daemon=True)
        self._writer.start()

    # -- appending (HTTP handlers) --------------------------------------------------------

    async def append(self, event_id: str, instance_id: str, body: bytes) -> Outcome:
        """Queue one event; returns once it is on disk (or known, or refused as full)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._appends.put((event_id, instance_id, body, loop, future))
        return await future

    def append_now(self, event_id: str, instance_id: str, body: bytes) -> Outcome:
        """:meth:`append` for a caller without an event loop (tests, tools)."""
        with self._lock:
            outcome = self._insert(event_id, instance_id, body, time.time())
        if outcome == "queued":
            self.arrived.set()
        return outcome

    def _insert(self, event_id: str, instance_id: str, body: bytes, now: float) -> Outcome:
        """Inside the caller's transaction or autocommit; the lock is held."""
        if self.depth >= self.max_queue:
            return "full"
        cur = self._db.execute(
            "INSERT OR IGNORE INTO seen (event_id, at) VALUES (?, ?)", (event_id, now)
        )
        if cur.rowcount == 0:
            return "duplicate"
        self._db.execute(
            "INSERT INTO inbox (instance_id, received, body) VALUES (?, ?, ?)",
            (instance_id, now, body),
        )
        self.depth += 1
        return "queued"

    def _write_loop(self) -> None:
        while True:
            first = self._appends.get()
            if first is None:
                return
            group = [first]
            while len(group) < 2000:
                try:
                    item = self._appends.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._appends.put(None)
                    break
                group.append(item)
            outcomes: list[Outcome | BaseException] = []
            with self._lock:
                depth = self.depth
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    now = time.time()
                    for event_id, instance_id, body, _, _ in group:
                        outcomes.append(self._insert(event_id, instance_id, body, now))
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:  # disk full, say: nothing of the group is kept
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    self.depth = depth
                    outcomes = [exc] * len(group)
            if any(o == "queued" for o in outcomes):
                self.arrived.set()
            for (_, _, _, loop, future), outcome in zip(group, outcomes, strict=True):
                loop.call_soon_threadsafe(_resolve, future, outcome)

    def close(self) -> None:
        self._appends.put(None)
        self._writer.join(timeout=10)
        with self._lock:
            self._db.close()

    # -- applying (the applier thread) ----------------------------------------------------

    def batch(self, limit: int, *, after: int = 0) -> list[Queued]:
        """The oldest queued events, those after ``after`` (a seq)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, instance_id, received, body FROM inbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Queued(*row) for row in rows]

    def done(
        self,
        seqs: list[int],
        touched: Iterable[tuple[str, str]],
        last: dict[str, Any] | None,
    ) -> None:
        """Drop applied events and record what was written, in one transaction."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM inbox WHERE seq = ?", [(s,) for s in seqs])
                self._db.executemany(
                    "INSERT OR REPLACE INTO touched (doc_id, update_json, at) VALUES (?, ?, ?)",
                    [(doc_id, data, now) for doc_id, data in touched],
                )
                if last is not None:
                    self._set_meta("last_event", last)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.depth -= len(seqs)

    def touched_rows(self, doc_ids: list[str]) -> dict[str, str]:
        """What was last written for these chats (those listen wrote before)."""
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(doc_ids), 500):
                chunk = doc_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    self._db.execute(
                        f"SELECT doc_id, update_json FROM touched WHERE doc_id IN ({marks})", chunk
                    ).fetchall()
                )
        return found

    def touched_since(self, since: float) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT update_json FROM touched WHERE at >= ? ORDER BY at", (since,)
            ).fetchall()
        return [r[0] for r in rows]

    def prune(self, touched_before: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("DELETE FROM touched WHERE at < ?", (touched_before,))
            self._db.execute("DELETE FROM seen WHERE at < ?", (now - SEEN_SECONDS,))

    def meta(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def journal_status(cfg: Config) -> dict[str, Any] | None:
    """Queue depth and the last event applied, read without disturbing a running listener;
    None when listen never ran here."""
    path = journal_path(cfg)
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        depth = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_event'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {"queue_depth": depth, "last_event": json.loads(row[0]) if row else None}
