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
import tempfile
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
KEY_BYTES = 32
MARGIN = 300  # seconds: a record this much older than a build's crawl may have been missed


class ForgetError(ExplorerError):
    """What was typed names nobody, or an instance not configured."""

    exit_code = 2


class ForgetRecordDamaged(ExplorerError):
    """``forget.key`` or ``forgotten.json`` exists but cannot be read, or the record has
    entries and no key. Every job that reads the record refuses to run rather than index
    everyone again (failing open would undo every `explorer forget`)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"the forget record {path} is damaged ({why}): restore it and {KEY_FILE} from "
            "a backup; nothing runs until then, so nobody forgotten is indexed again"
        )


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
    """The record's key; None when there is none yet (and ``create`` is off). A key file
    that cannot be read is :class:`ForgetRecordDamaged`: never replaced, since every hash
    in the record was made with it."""
    path = directory / KEY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = None
    except OSError as exc:
        raise ForgetRecordDamaged(path, exc.strerror or type(exc).__name__) from None
    if text is not None:
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise ForgetRecordDamaged(path, f"not a {KEY_BYTES}-byte hex key")
        return key
    if not create:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
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
        """The record as its files say; raises :class:`ForgetRecordDamaged` when one of
        them exists and cannot be read (a missing record is an empty one)."""
        directory = state_dir(cfg)
        path = directory / RECORD_FILE
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            data = {"entries": []}
        except OSError as exc:
            raise ForgetRecordDamaged(path, exc.strerror or type(exc).__name__) from None
        except ValueError:
            raise ForgetRecordDamaged(path, "not JSON") from None
        entries = _entries(path, data)
        key = _load_key(directory, create=False)
        if entries and key is None:
            raise ForgetRecordDamaged(directory / KEY_FILE, "missing, and the record has entries")
        return cls(key, entries)

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


def _entries(path: Path, data: Any) -> list[Entry]:
    raw = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ForgetRecordDamaged(path, "no list of entries")
    out = []
    for n, e in enumerate(raw):
        hashes = e.get("hashes") if isinstance(e, dict) else None
        inst = e.get("instance_id") if isinstance(e, dict) else None
        at = e.get("at") if isinstance(e, dict) else None
        if (
            not isinstance(hashes, list)
            or not all(isinstance(h, str) and len(h) == 64 for h in hashes)
            or not (inst is None or isinstance(inst, str))
            or not isinstance(at, int)
        ):
            raise ForgetRecordDamaged(path, f"entry {n} is not hashes, instance_id and at")
        out.append(Entry(list(hashes), inst, at))
    return out


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
        self._seen: tuple[tuple[int, int] | None, ...] | None = None
        self._checked = 0.0
        self._record = Forgotten()
        self._lock = threading.Lock()
        self.current()  # a damaged record stops its reader before it starts

    def current(self, *, fresh: bool = False) -> Forgotten:
        """The record; ``fresh``: looked at now (a job's start), not up to ``every`` ago."""
        now = time.monotonic()
        if not fresh and now - self._checked < self.every:
            return self._record
        with self._lock:
            seen = (_stamp(self.path), _stamp(self.path.with_name(KEY_FILE)))
            if seen != self._seen:  # a damaged record raises, now and on every later look
                self._record = Forgotten.load(self.cfg)
                self._seen = seen
            self._checked = now
        return self._record


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


_WATCHES: dict[Path, Watch] = {}


def watch(cfg: Config) -> Watch:
    path = state_dir(cfg) / RECORD_FILE
    found = _WATCHES.get(path)
    if found is None:
        found = _WATCHES[path] = Watch(cfg)
    else:
        found.current(fresh=True)  # a damaged record stops its reader before it starts
    return found


# -- where documents are made: reindex and sync -------------------------------------------

Docs = list[dict[str, Any]]


def without_forgotten(cfg: Config, docs: Docs) -> Docs:
    """``docs`` (chats-index documents) less those of forgotten people: sync's one call."""
    record = watch(cfg).current()
    if not record:
        return docs
    kept = []
    for d in docs:
        if not record.chat_document(d):
            kept.append(d)
        elif isinstance(d.get("lid"), str) and d["lid"]:  # their LID, if new to the record
            lid, inst = f"{d['lid']}@lid", str(d.get("instance_id") or "")
            if not record.is_forgotten(inst, lid) and isinstance(d.get("jid"), str):
                learn_lid(cfg, inst, lid, d["jid"])
    return kept


def skipping_forgotten(cfg: Config, on_page: Callable[..., None]) -> Callable[..., None]:
    """A reindex's page handler that drops forgotten people's documents before the build
    sees them, and counts them off the checkpoint's ``handed`` (the build's count check),
    cumulatively as the crawl counts (a resumed crawl starts from the saved, reduced one)."""
    dropped = 0
    watch(cfg)  # a damaged record: the crawl does not start

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
    with _record_lock(cfg):
        data = read_json(path)
        data[build] = int(data.get(build, 0)) + count
        write_json(path, data)


@contextlib.contextmanager
def _record_lock(cfg: Config) -> Any:
    """One writer of the record (and of the builds' counts) at a time, across processes:
    forget, --undo and a LID learnt read the record, change it and write it back."""
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
    """Replace the record atomically (a temporary file of this writer's own, then a
    rename); the caller holds :func:`_record_lock`."""
    path = state_dir(cfg) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".forgotten-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:  # mkstemp makes it 0600
            json.dump({"entries": [e.to_json() for e in entries]}, fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def learn_lid(cfg: Config, instance_id: str, lid_jid: str, phone_jid: str) -> bool:
    """When a LID turns out to be a forgotten number's, the LID joins the number's
    entries, so that what the person sends under it (in groups, say) is dropped too.
    True when the record changed."""
    with _record_lock(cfg):
        record = Forgotten.load(cfg)
        if not record.is_forgotten(instance_id, phone_jid):
            return False
        phone, lid = record.digest(phone_jid), record.digest(lid_jid)
        changed = False
        for entry in record.entries:
            where = entry.instance_id is None or entry.instance_id == instance_id
            if where and phone in entry.hashes and lid not in entry.hashes:
                entry.hashes = sorted([*entry.hashes, lid])
                changed = True
        if changed:
            _write_record(cfg, record.entries)
    return changed


def list_forgotten(cfg: Config) -> ForgetReport:
    return ForgetReport("list", Forgotten.load(cfg).entries)


def undo_forget(cfg: Config, text: str, instance_id: str | None = None) -> ForgetReport:
    """Drop the records that name this person (in ``instance_id``, or all of them)."""
    _check_instance(cfg, instance_id)
    jids = person_jids(text)
    report = ForgetReport("undo", instance_id=instance_id)
    with _record_lock(cfg):
        record = Forgotten.load(cfg)
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
    if report.undone:
        _forget_in_ledger(cfg, instance_id, jids, groups=True)
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
    with _record_lock(cfg):
        record = Forgotten.load(cfg)  # a damaged record stops here, before any change
        key = record.key or _load_key(state_dir(cfg), create=True)
        assert key is not None
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
    _forget_in_ledger(cfg, instance_id, jids)
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


def _forget_in_ledger(
    cfg: Config, instance_id: str | None, jids: list[str], *, groups: bool = False
) -> None:
    """The messages backfill's ledger rows for their chats: after forget the number is in
    no file of the state directory; after --undo the next backfill fetches their chats'
    whole window again, and (``groups``) every group's, where their messages were dropped."""
    from explorer.jobs.messages import ledger_path

    path = ledger_path(cfg)
    if not path.exists():
        return
    scope, args = ("instance_id = ? AND ", [instance_id]) if instance_id else ("", [])
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left
        with contextlib.suppress(sqlite3.OperationalError):  # a ledger without these tables
            for table in ("listings", "labels"):
                for jid in jids:
                    conn.execute(f"DELETE FROM {table} WHERE {scope}jid = ?", [*args, jid])
            if groups:
                conn.execute(f"DELETE FROM listings WHERE {scope}jid LIKE '%@g.us'", args)
        conn.execute("VACUUM")  # nor in a b-tree's interior page
    finally:
        conn.close()


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
