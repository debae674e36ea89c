"""`explorer forget`: a person's chats and messages erased, and kept out until undone.

Erasure on request removes a person's chat documents (every instance, or one) and their
messages (the chats with them and, in groups, what they sent) from the live indexes, from
any chats build a reindex has in progress, and from what `explorer listen` last wrote for
them (its journal). It then *records* them, so that the crawl (reindex, sync, the messages
backfill) and listen drop them wherever documents are made, until `explorer forget --undo`.

The record holds no number: each identity is kept as an HMAC-SHA256 of its normalised JID
(``201234567890@c.us``, ``123456789@lid``) under a random key made on first use. Both live
in the state directory (``forget.key`` and ``forgotten.json``, mode 0600), which every job
shares: in docker-compose the ``explorer_state`` volume holds it for the scheduler (reindex,
sync) and the listener alike, so a `docker compose exec explorer explorer forget ...`
reaches both. Readers notice a change by the file's modification time. Without the key the
record matches nobody: keep the two together (back them up together).

What an operator types is not kept either: not in the record, not in a log.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.config import Config
from explorer.errors import ExplorerError, MeiliRefused
from explorer.jobs.state import read_json, state_dir, write_json
from explorer.records.chats import MalformedChat, normalize_jid
from explorer.records.documents import doc_id
from explorer.records.filters import instance_id_is, quote
from explorer.records.messages import messages_index
from explorer.records.phones import phone_query

log = logging.getLogger("explorer.jobs.forget")

KEY_FILE = "forget.key"
RECORD_FILE = "forgotten.json"
BUILDS_FILE = "forgotten-builds.json"  # documents removed from each build: its count check
MARGIN = 300  # seconds: a record this much older than a build's crawl may have been missed


class ForgetError(ExplorerError):
    """What was typed names nobody, or an instance not configured."""

    exit_code = 2


# -- identities and their hashes -------------------------------------------------------


def person_jids(text: str) -> list[str]:
    """The JID a phone number (any format, with its country code) or a JID names;
    raises :class:`ForgetError` with one line saying why not."""
    value = text.strip()
    if "@" in value:
        try:
            jid, _ = normalize_jid(value)
        except MalformedChat:
            raise ForgetError("not a WhatsApp JID (example: 201234567890@c.us)") from None
        if jid == "status@broadcast":
            raise ForgetError("status@broadcast is not a person")
        return [jid]
    digits = phone_query(value)
    if digits is None:
        raise ForgetError(
            "not a phone number or a WhatsApp JID: give the number with its country code "
            "(+20 100 123 4567) or a JID (201001234567@c.us)"
        )
    import phonenumbers

    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number) or digits[0] == "0":
        raise ForgetError(
            "not an international number: give it with its country code (+20 100 123 4567)"
        )
    return [f"{digits}@c.us"]


def _load_key(directory: Path, create: bool) -> bytes | None:
    path = directory / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        if not create:
            return None
    directory.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


def _digest(key: bytes, jid: str) -> str:
    return hmac.new(key, jid.encode(), hashlib.sha256).hexdigest()


@dataclass
class Entry:
    """One `explorer forget`: the person's identities (hashes), where, when."""

    hashes: list[str]
    instance_id: str | None  # None: every instance
    at: int

    def to_json(self) -> dict[str, Any]:
        return {"hashes": self.hashes, "instance_id": self.instance_id, "at": self.at}


@dataclass
class Forgotten:
    """The record, as reindex, sync, the messages backfill and listen read it."""

    key: bytes | None = None
    entries: list[Entry] = field(default_factory=list)
    _index: dict[str, set[str | None]] = field(default_factory=dict, repr=False)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for entry in self.entries:
            for digest in entry.hashes:
                self._index.setdefault(digest, set()).add(entry.instance_id)

    @classmethod
    def load(cls, cfg: Config) -> Forgotten:
        directory = state_dir(cfg)
        data = read_json(directory / RECORD_FILE)
        entries = [
            Entry(list(e.get("hashes") or []), e.get("instance_id"), int(e.get("at") or 0))
            for e in data.get("entries") or []
            if isinstance(e, dict)
        ]
        return cls(_load_key(directory, create=False) if entries else None, entries)

    def __bool__(self) -> bool:
        return bool(self.entries and self.key)

    def digest(self, jid: str) -> str:
        assert self.key is not None
        found = self._cache.get(jid)
        if found is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            found = self._cache[jid] = _digest(self.key, jid)
        return found

    def is_forgotten(self, instance_id: str, jid: str | None) -> bool:
        """Whether ``jid`` (a chat, or a sender in a group) is forgotten in that instance."""
        if not self or not jid:
            return False
        where = self._index.get(self.digest(jid))
        return where is not None and (None in where or instance_id in where)

    def chat_document(self, doc: dict[str, Any]) -> bool:
        """Whether a chats-index document is a forgotten person's (its JID or LID)."""
        if not self:
            return False
        inst = str(doc.get("instance_id") or "")
        lid = doc.get("lid")
        return self.is_forgotten(inst, doc.get("jid")) or (
            isinstance(lid, str) and bool(lid) and self.is_forgotten(inst, f"{lid}@lid")
        )

    def message_document(self, doc: dict[str, Any]) -> bool:
        """Whether a messages-index document is with or, in a group, from a forgotten person."""
        inst = str(doc.get("instance_id") or "")
        return self.is_forgotten(inst, doc.get("jid")) or self.is_forgotten(inst, doc.get("sender"))

    def newer_than(self, at: float) -> bool:
        return any(e.at >= at for e in self.entries)


def load_forgotten(cfg: Config) -> Forgotten:
    """The record now (for one run: the messages backfill, say)."""
    return Forgotten.load(cfg)


def is_forgotten(cfg: Config, instance_id: str, jid: str) -> bool:
    """One look-up (re-reads the record when it changed)."""
    return watch(cfg).current().is_forgotten(instance_id, jid)


class Watch:
    """The record, read again whenever its file changes (checked at most every
    ``every`` seconds), for long runs and long-lived processes."""

    def __init__(self, cfg: Config, every: float = 0.5) -> None:
        self.path = state_dir(cfg) / RECORD_FILE
        self.cfg = cfg
        self.every = every
        self._seen: tuple[int, int] | None = None
        self._checked = 0.0
        self._record = Forgotten()
        self._lock = threading.Lock()

    def current(self) -> Forgotten:
        now = time.monotonic()
        if now - self._checked < self.every:
            return self._record
        with self._lock:
            self._checked = now
            try:
                st = self.path.stat()
                seen: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
            except OSError:
                seen = None
            if seen != self._seen:
                self._seen = seen
                self._record = Forgotten.load(self.cfg) if seen else Forgotten()
        return self._record


_WATCHES: dict[Path, Watch] = {}


def watch(cfg: Config) -> Watch:
    path = state_dir(cfg) / RECORD_FILE
    found = _WATCHES.get(path)
    if found is None:
        found = _WATCHES[path] = Watch(cfg)
    return found


# -- where documents are made: reindex and sync -------------------------------------------

Docs = list[dict[str, Any]]


def without_forgotten(cfg: Config, docs: Docs) -> Docs:
    """``docs`` (chats-index documents) less those of forgotten people: sync's one call."""
    record = watch(cfg).current()
    return [d for d in docs if not record.chat_document(d)] if record else docs


def skipping_forgotten(cfg: Config, on_page: Callable[..., None]) -> Callable[..., None]:
    """A reindex's page handler that drops forgotten people's documents before the build
    sees them, and counts them off the checkpoint's ``handed`` (the build's count check),
    cumulatively as the crawl counts (a resumed crawl starts from the saved, reduced one)."""
    dropped = 0

    def handle(docs: Docs, checkpoint: Any, *rest: Any) -> None:
        nonlocal dropped
        kept = without_forgotten(cfg, docs)
        dropped += len(docs) - len(kept)
        if dropped:
            checkpoint = replace(checkpoint, handed=checkpoint.handed - dropped)
        on_page(kept, checkpoint, *rest)

    return handle


def removed_from_build(cfg: Config, store: Any, build: str, crawled_at: float) -> int:
    """How many documents `explorer forget` removed from ``build`` (for its count check).

    A person forgotten while the build was crawled may have reached it after forget
    removed them (a page made before the record was written): when the record changed
    since the crawl started, the build is scanned once more and they go now."""
    record = load_forgotten(cfg)
    if record.newer_than(crawled_at - MARGIN):
        doomed = [
            d["id"]
            for d in store.fetch(build, None, ["id", "instance_id", "jid", "lid"])
            if record.chat_document(d)
        ]
        if doomed:
            _count_removed(cfg, build, _deleted(store, store.delete_ids(build, doomed)))
    removed = read_json(state_dir(cfg) / BUILDS_FILE).get(build, 0)
    return int(removed) if isinstance(removed, int) else 0


def _count_removed(cfg: Config, build: str, count: int) -> None:
    if not count:
        return
    path = state_dir(cfg) / BUILDS_FILE
    with _builds_lock(cfg):
        data = read_json(path)
        data[build] = int(data.get(build, 0)) + count
        write_json(path, data)


@contextlib.contextmanager
def _builds_lock(cfg: Config) -> Any:
    import fcntl

    directory = state_dir(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "forgotten.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _deleted(store: Any, task: int) -> int:
    store.wait([task])
    details = store.tasks([task])[0].details or {}
    return int(details.get("deletedDocuments") or 0)


# -- explorer forget ------------------------------------------------------------------------


@dataclass
class ForgetReport:
    action: str  # "forget", "undo" or "list"
    entries: list[Entry] = field(default_factory=list)
    instance_id: str | None = None
    chats: int = 0  # chat documents removed from the live index
    builds: int = 0  # ... from builds in progress
    messages: int | None = None  # messages removed; None: there is no messages index
    undone: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = f"instance {self.instance_id}" if self.instance_id else "every instance"
        if self.action == "forget":
            parts = [f"{self.chats} chat document{'s' * (self.chats != 1)}"]
            if self.builds:
                parts.append(f"{self.builds} from a build in progress")
            if self.messages is not None:
                parts.append(f"{self.messages} message{'s' * (self.messages != 1)}")
            line = (f"forgotten in {where}: removed {', '.join(parts)}; reindex, sync and "
                    "listen will not index them again until `explorer forget --undo`")  # fmt: skip
            return "\n".join([line, *self.notes])
        if self.action == "undo":
            if not self.undone:
                return f"nothing recorded for that number in {where}"
            return (f"{self.undone} record{'s' * (self.undone != 1)} removed: the next sync or "
                    "reindex indexes them again")  # fmt: skip
        if not self.entries:
            return "nobody is forgotten"
        lines = [f"{len(self.entries)} forgotten (keyed hashes; what was typed is not kept):"]
        for e in self.entries:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(e.at))
            hashes = " ".join(h[:16] for h in e.hashes)
            lines.append(f"  {when}  {e.instance_id or 'all instances'}  {hashes}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "instance_id": self.instance_id, "chats": self.chats,
                "builds": self.builds, "messages": self.messages, "undone": self.undone,
                "entries": [e.to_json() for e in self.entries], "notes": self.notes}  # fmt: skip


def _check_instance(cfg: Config, instance_id: str | None) -> None:
    known = [i.id for i in cfg.wawp.instances]
    if instance_id is not None and instance_id not in known:
        listed = ", ".join(known) or "none configured"
        raise ForgetError(f"unknown instance {instance_id!r} (known: {listed})")


def _write_record(cfg: Config, entries: list[Entry]) -> None:
    path = state_dir(cfg) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"entries": [e.to_json() for e in entries]}, fh)
    os.replace(tmp, path)


def list_forgotten(cfg: Config) -> ForgetReport:
    return ForgetReport("list", Forgotten.load(cfg).entries)


def undo_forget(cfg: Config, text: str, instance_id: str | None = None) -> ForgetReport:
    """Drop the records that name this person (in ``instance_id``, or all of them)."""
    _check_instance(cfg, instance_id)
    jids = person_jids(text)
    record = Forgotten.load(cfg)
    report = ForgetReport("undo", instance_id=instance_id)
    if not record:
        return report
    digests = {record.digest(j) for j in jids}
    kept = []
    for entry in record.entries:
        hit = digests & set(entry.hashes)
        if hit and (instance_id is None or entry.instance_id == instance_id):
            report.undone += 1
        else:
            kept.append(entry)
    if report.undone:
        _write_record(cfg, kept)
    return report


def forget(cfg: Config, text: str, instance_id: str | None = None) -> ForgetReport:
    """Record the person, then remove them from the live indexes, builds in progress and
    listen's journal. Recording comes first: from then on nothing indexes them again."""
    from explorer.meili.client import IndexStore

    _check_instance(cfg, instance_id)
    jids = person_jids(text)
    store = IndexStore(cfg.meilisearch)
    live = cfg.meilisearch.index
    instances = [instance_id] if instance_id else _instances(cfg, store, live)
    jids = _with_other_ids(store, live, instances, jids)
    directory = state_dir(cfg)
    key = _load_key(directory, create=True)
    assert key is not None
    record = Forgotten.load(cfg)
    entry = Entry(sorted({_digest(key, j) for j in jids}), instance_id, int(time.time()))
    _write_record(cfg, [*record.entries, entry])
    report = ForgetReport("forget", [entry], instance_id)
    ids = [doc_id(inst, jid) for inst in instances for jid in jids]
    if store.exists(live):
        report.chats = _deleted(store, store.delete_ids(live, ids))
    for build in store.build_indexes():
        removed = _deleted(store, store.delete_ids(build, ids))
        _count_removed(cfg, build, removed)
        report.builds += removed
    report.messages = _forget_messages(store, messages_index(live), instance_id, jids, report)
    _forget_in_journal(cfg, ids, jids)
    log.info("forget: %d chats, %d from builds, %s messages removed", report.chats,
             report.builds, report.messages)  # fmt: skip
    return report


def _instances(cfg: Config, store: Any, live: str) -> list[str]:
    """Every configured instance, and any other the live index still holds."""
    from explorer.meili.client import search_body

    found = [i.id for i in cfg.wawp.instances]
    if store.exists(live):
        reply = store.search(live, search_body(facets=["instance_id"], limit=0))
        for inst in (reply.get("facetDistribution") or {}).get("instance_id", {}):
            if inst not in found:
                found.append(inst)
    return found


def _with_other_ids(store: Any, live: str, instances: list[str], jids: list[str]) -> list[str]:
    """The person's other identity the chats index knows: a number's LID, a LID's number."""
    if not store.exists(live):
        return jids
    out = list(jids)
    for jid in jids:
        if jid.endswith("@c.us"):
            docs = store.fetch_ids(live, [doc_id(i, jid) for i in instances], ["lid"])
            out += [f"{d['lid']}@lid" for d in docs if isinstance(d.get("lid"), str) and d["lid"]]
        elif jid.endswith("@lid"):
            lid = jid.partition("@")[0]
            for inst in instances:
                body = {"q": lid, "limit": 5, "attributesToSearchOn": ["lid"],
                        "filter": instance_id_is(inst),
                        "attributesToRetrieve": ["jid", "lid"]}  # fmt: skip
                hits = store.search(live, body)["hits"]
                out += [h["jid"] for h in hits if h.get("lid") == lid and "jid" in h]
    return list(dict.fromkeys(out))


def _forget_messages(
    store: Any, index: str, instance_id: str | None, jids: list[str], report: ForgetReport
) -> int | None:
    if not store.exists(index):
        return None
    listed = ", ".join(quote(j) for j in jids)
    scope = f"{instance_id_is(instance_id)} AND " if instance_id else ""
    try:
        task = store.ask(
            lambda c: (
                c.index(index)
                .delete_documents(filter=f"{scope}(jid IN [{listed}] OR sender IN [{listed}])")
                .task_uid
            )
        )
        return _deleted(store, task)
    except MeiliRefused:  # an index made before `sender` was filterable
        task = store.ask(
            lambda c: c.index(index).delete_documents(filter=f"{scope}jid IN [{listed}]").task_uid
        )
        report.notes.append(
            f"their messages in groups were kept: {index} cannot filter on sender; "
            "`explorer settings --apply`, then forget again"
        )
        return _deleted(store, task)


def _forget_in_journal(cfg: Config, ids: list[str], jids: Iterable[str]) -> None:
    """What listen last wrote for them, and dead letters that name them."""
    from explorer.jobs.journal import journal_path

    path = journal_path(cfg)
    if not path.exists():
        return
    users = [j.partition("@")[0].encode() for j in jids]
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        conn.executemany("DELETE FROM touched WHERE doc_id = ?", [(d,) for d in ids])
        with contextlib.suppress(sqlite3.OperationalError):  # a journal without dead letters
            rows = conn.execute("SELECT seq, body FROM dead").fetchall()
            gone = [(seq,) for seq, body in rows if any(u in bytes(body) for u in users)]
            conn.executemany("DELETE FROM dead WHERE seq = ?", gone)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
