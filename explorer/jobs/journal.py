"""The webhook journal: events durably queued before anyone is told "received".

One SQLite file in the state directory (``webhooks-<index>.sqlite3``), in WAL mode with
``synchronous=FULL``, so a committed event survives a crash or a power cut. Tables:

- ``inbox``: events accepted and not applied yet, in arrival order (the queue);
- ``seen``: event ids already accepted, so a sender's retry or duplicate is queued once
  (kept for :data:`SEEN_SECONDS`);
- ``touched``: what listen last wrote for each chat, so it can be written again after a
  reindex swaps in an index built from a crawl that started before those events;
- ``dead``: events Meilisearch refused (or that could not be read back), with the reason,
  set aside so that they stop nothing else; ``explorer dead-letters`` lists them and asks
  for a retry (``retry`` set: the listener moves them back to the inbox);
- ``meta``: the last event applied and the last swap handled (``explorer stats``);
- ``revoked``: messages revoked (their document ids, a hash: no text), so that an edit or
  a copy of the message arriving late does not bring one back; ``edited``: messages
  edited, so that a late copy of the original does not undo the edit without asking
  Meilisearch (both kept :data:`SEEN_SECONDS`).

Only the slimmed envelope is kept (:func:`explorer.records.events.slim`). With messages
indexed it holds a message's text until the event is applied: the row is then deleted and
overwritten (``secure_delete``), the WAL emptied within a second (:meth:`Journal.checkpoint`),
and a dead letter keeps the envelope without its text. The file is readable by its owner
alone.

Appends from the HTTP handlers go through one writer thread that commits whatever has
gathered in one transaction (group commit): one disk flush serves many events.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from explorer.config import Config
from explorer.errors import ExplorerError
from explorer.jobs.state import state_dir
from explorer.records.events import MAX_AGE, without_text

DEAD_SECONDS = 30 * 86_400  # dead letters kept for a person to look at, then forgotten
SEEN_SECONDS = 2 * MAX_AGE  # twice the oldest event accepted: a replay is a duplicate
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
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    received REAL NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    retry INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS revoked (doc_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS edited (doc_id TEXT PRIMARY KEY, at REAL NOT NULL);
"""


def journal_path(cfg: Config) -> Path:
    return state_dir(cfg) / f"webhooks-{cfg.meilisearch.index}.sqlite3"


@dataclass
class Queued:
    seq: int
    instance_id: str
    received: float
    body: bytes


@dataclass
class DeadLetter:
    seq: int
    instance_id: str
    received: float
    body: bytes
    reason: str
    at: float
    retry: bool

    def to_json(self) -> dict[str, Any]:
        try:
            event: Any = json.loads(self.body)
        except ValueError:
            event = None
        return {"seq": self.seq, "instance_id": self.instance_id, "received": self.received,
                "reason": self.reason, "dead_at": self.at, "retry_asked": self.retry,
                "event": event}  # fmt: skip


def _private(path: Path) -> None:
    """The journal and its WAL files, readable by their owner alone (they name customers)."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists():
            name.chmod(0o600)


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")  # an applied event leaves no copy in free pages
    _private(path)
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
        dead: dict[int, str] | None = None,
        revoked: Iterable[str] = (),
        edited: Iterable[str] = (),
    ) -> None:
        """Drop applied events and record what was written, in one transaction; the
        events of ``dead`` (seq: reason) move to the dead letters instead, without their
        message text; ``revoked``: message document ids revoked."""
        now = time.time()
        dead = dead or {}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for seq, reason in dead.items():
                    row = self._db.execute(
                        "SELECT instance_id, received, body FROM inbox WHERE seq = ?", (seq,)
                    ).fetchone()
                    if row is not None:
                        self._db.execute(
                            "INSERT OR REPLACE INTO dead (seq, instance_id, received, body, "
                            "reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                            (seq, row[0], row[1], without_text(row[2]), reason[:500], now),
                        )
                self._db.executemany(
                    "INSERT OR REPLACE INTO revoked (doc_id, at) VALUES (?, ?)",
                    [(doc, now) for doc in revoked],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO edited (doc_id, at) VALUES (?, ?)",
                    [(doc, now) for doc in edited],
                )
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

    # -- dead letters ------------------------------------------------------------------------

    def dead_count(self) -> int:
        with self._lock:
            count: int = self._db.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
        return count

    def last_dead(self) -> DeadLetter | None:
        found = dead_letters(self._db, self._lock, limit=1, newest=True)
        return found[0] if found else None

    def requeue_asked(self) -> int:
        """Move the dead letters someone asked to retry back into the inbox (at its end),
        as many as the queue has room for; how many moved."""
        with self._lock:
            asked = self._db.execute("SELECT EXISTS (SELECT 1 FROM dead WHERE retry = 1)")
            room = self.max_queue - self.depth
            if not asked.fetchone()[0] or room <= 0:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT seq FROM dead WHERE retry = 1 ORDER BY seq LIMIT ?", (room,)
                )
                seqs = [r[0] for r in rows]
                marks = ",".join("?" * len(seqs))
                moved = self._db.execute(
                    "INSERT INTO inbox (instance_id, received, body) SELECT instance_id, "
                    f"received, body FROM dead WHERE seq IN ({marks}) ORDER BY seq",
                    seqs,
                ).rowcount
                self._db.execute(f"DELETE FROM dead WHERE seq IN ({marks})", seqs)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.depth += moved
        if moved:
            self.arrived.set()
        return moved

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

    def marked(self, doc_ids: list[str], table: Literal["revoked", "edited"]) -> set[str]:
        """Those of these message documents that were revoked (or edited)."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(doc_ids), 500):
                chunk = doc_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT doc_id FROM {table} WHERE doc_id IN ({marks})", chunk
                ).fetchall()
                found.update(r[0] for r in rows)
        return found

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and empty it, so that a message's text applied
        and deleted is left in neither file; False when a reader held it back (the next
        call tries again)."""
        with self._lock:
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return not busy

    def forget_chats(self, doc_ids: list[str]) -> None:
        """What listen last wrote for these chats (``explorer forget``)."""
        with self._lock:
            self._db.executemany("DELETE FROM touched WHERE doc_id = ?", [(d,) for d in doc_ids])

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
            self._db.execute("DELETE FROM revoked WHERE at < ?", (now - SEEN_SECONDS,))
            self._db.execute("DELETE FROM edited WHERE at < ?", (now - SEEN_SECONDS,))
            self._db.execute("DELETE FROM dead WHERE at < ?", (now - DEAD_SECONDS,))

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


def dead_letters(
    db: sqlite3.Connection,
    lock: threading.Lock | None = None,
    *,
    limit: int = 1000,
    newest: bool = False,
) -> list[DeadLetter]:
    order = "DESC" if newest else "ASC"
    query = (
        "SELECT seq, instance_id, received, body, reason, at, retry FROM dead "
        f"ORDER BY seq {order} LIMIT ?"
    )
    if lock is None:
        rows = db.execute(query, (limit,)).fetchall()
    else:
        with lock:
            rows = db.execute(query, (limit,)).fetchall()
    return [DeadLetter(seq, inst, received, body, reason, at, bool(retry))
            for seq, inst, received, body, reason, at, retry in rows]  # fmt: skip


class NoJournal(ExplorerError):
    """listen never ran with this config: there is no journal to read."""


def _open_existing(cfg: Config) -> sqlite3.Connection:
    path = journal_path(cfg)
    if not path.exists():
        raise NoJournal(f"no webhook journal at {path}: `explorer listen` never ran here")
    conn = _connect(path)
    conn.executescript(_SCHEMA)  # a journal from before dead letters existed
    return conn


def list_dead(cfg: Config, limit: int = 1000) -> list[DeadLetter]:
    """The dead letters, oldest first (read beside a running listener: SQLite's WAL)."""
    conn = _open_existing(cfg)
    try:
        return dead_letters(conn, limit=limit)
    finally:
        conn.close()


@dataclass
class DeadLetterReport:
    """What ``explorer dead-letters`` shows, or what it did."""

    letters: list[DeadLetter]
    action: str | None = None  # "retry" or "drop"
    changed: int = 0

    def summary(self) -> str:
        if self.action == "retry":
            return (f"{_letters(self.changed)} marked for retry: a running `explorer listen` "
                    "queues them within a second, or the next one when it starts")  # fmt: skip
        if self.action == "drop":
            return f"{_letters(self.changed)} dropped"
        if not self.letters:
            return "no dead letters"
        lines = [f"{_letters(len(self.letters))} (events set aside, nothing waits on them):"]
        for d in self.letters:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.at))
            lines.append(f"  #{d.seq}  {when} UTC  {d.instance_id}  {d.reason}"
                         + ("  (retry asked)" if d.retry else ""))  # fmt: skip
        lines.append("Retry with `explorer dead-letters --retry [SEQ...]`, "
                     "or drop with `--drop [SEQ...]`.")  # fmt: skip
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "changed": self.changed,
                "dead_letters": [d.to_json() for d in self.letters]}  # fmt: skip


def _letters(n: int) -> str:
    return f"{n} dead letter" + ("" if n == 1 else "s")


def mark_dead(cfg: Config, seqs: list[int] | None, *, drop: bool = False) -> int:
    """Ask for a retry of these dead letters (all with None), or drop them; how many.

    A retry is a mark: the listener moves marked events back to its inbox within a second
    (or when it next starts), so that its own count of the queue stays right."""
    conn = _open_existing(cfg)
    try:
        where, args = ("", []) if seqs is None else (
            f" WHERE seq IN ({','.join('?' * len(seqs))})", list(seqs))  # fmt: skip
        sql = "DELETE FROM dead" if drop else "UPDATE dead SET retry = 1"
        changed: int = conn.execute(sql + where, args).rowcount
        return changed
    finally:
        conn.close()


def journal_status(cfg: Config) -> dict[str, Any] | None:
    """Queue depth, dead letters and the last event applied, read without disturbing a
    running listener; None when listen never ran here."""
    path = journal_path(cfg)
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        depth = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_event'").fetchone()
        try:
            dead = conn.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
        except sqlite3.OperationalError:  # a journal from before dead letters existed
            dead = 0
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {"queue_depth": depth, "dead_letters": dead,
            "last_event": json.loads(row[0]) if row else None}  # fmt: skip
