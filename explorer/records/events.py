"""What a Wawp (WAHA) webhook event tells about a chat, as one mergeable :class:`Update`.

An event knows only a few fields, so an update is partial: each field says what it knows
and from when, and merging two updates of one chat keeps, field by field, the newer word.
That makes the result the same whatever order duplicates, late or reordered events arrive
in, and lets a burst of messages in one chat become one write.

Envelope (docs/webhooks.md): ``{id, timestamp (ms), event, session, engine, me, payload}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from explorer.records.chats import MalformedChat, clean_name, normalize_jid, to_timestamp
from explorer.records.documents import MAX_DOC_ID, doc_id
from explorer.records.labels import Label, label_id_of, parse_label
from explorer.records.messages import MAX_BODY, MalformedMessage, Message, parse_message

LABEL_EVENTS: Final = ("label.upsert", "label.deleted", "label.chat.added", "label.chat.deleted")
APPLIED: Final = ("message.any", "group.v2.join", "group.v2.leave", "group.v2.update",
                  "chat.archive", *LABEL_EVENTS)  # fmt: skip
EDITED: Final = "message.edited"
REVOKED: Final = "message.revoked"
SESSION_STATUS: Final = "session.status"
ENGINES: Final = {"WEBJS": "webjs", "NOWEB": "noweb", "GOWS": "gows"}
# Every event WAHA documents: what /metrics labels an event by. Anything else a sender
# makes up is "other", so that no sender can grow the metrics without bound.
KNOWN: Final = frozenset({
    *APPLIED, SESSION_STATUS, "message", "message.reaction", "message.ack", "message.ack.group",
    "message.revoked", "message.edited", "message.waiting", "chat.archive", "group.join",
    "group.leave", "group.v2.participants", "presence.update", "poll.vote", "poll.vote.failed",
    "call.received", "call.accepted", "call.rejected", "label.upsert", "label.deleted",
    "label.chat.added", "label.chat.deleted", "engine.event", "event.response",
    "event.response.failed",
})  # fmt: skip

# How old an event may be when it arrives (by the time its sender stamped it). WAHA retries
# a failed delivery for minutes (its docs: 15 attempts, 2 s apart; exponential backoff with
# 15 attempts reaches about 9 h); a day covers that with a margin. Anything older is a
# replay or a sender's backlog the nightly reindex has overtaken: refused, counted.
MAX_AGE: Final = 86_400
MAX_AHEAD: Final = 900  # seconds an event may be dated in the future (clock skew)


class BadEvent(ValueError):
    """An event this receiver cannot read (counted and dropped, never retried); ``reason``
    is the label it is counted under."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def metric_kind(kind: str) -> str:
    """The event's kind as a metrics label: one of :data:`KNOWN`, else ``other``."""
    return kind if kind in KNOWN else "other"


def sent_at(envelope: dict[str, Any]) -> int | None:
    """When the sender stamped the event (seconds): the envelope's ``timestamp`` (ms), or
    the payload's (seconds) for a sender that stamps only the payload."""
    payload = envelope.get("payload")
    return to_timestamp(envelope.get("timestamp")) or (
        to_timestamp(payload.get("timestamp")) if isinstance(payload, dict) else None
    )


def check_fresh(envelope: dict[str, Any], now: float) -> None:
    """Raise :class:`BadEvent` for an event without a time, or dated outside the window."""
    at = sent_at(envelope)
    if at is None:
        raise BadEvent("the event carries no timestamp", "no_timestamp")
    if at < now - MAX_AGE:
        raise BadEvent(f"the event is dated {int(now - at)} s ago (at most {MAX_AGE})", "too_old")
    if at > now + MAX_AHEAD:
        raise BadEvent(f"the event is dated {int(at - now)} s in the future", "from_the_future")


# What :func:`read_event` reads of an envelope: the journal keeps these and nothing else,
# so no message text is written to disk (a message's body, media, quoted replies), unless
# messages are indexed (``messages.enabled``): then the text stays in the journal until
# the event is applied, and no longer (:func:`without_text`, the journal's secure delete).
_ENVELOPE_KEYS: Final = ("id", "timestamp", "event", "session", "engine")
_PAYLOAD_KEYS: Final = ("id", "timestamp", "from", "to", "fromMe", "pushName", "archived",
                        "status", "labelId", "chatId", "name", "colorHex")  # fmt: skip
# Kept besides, with messages on: what a message document is made of, never media content.
_MESSAGE_KEYS: Final = ("hasMedia", "type", "participant", "author", "editedMessageId",
                        "revokedMessageId")  # fmt: skip
_NESTED_KEYS: Final = ("id", "timestamp", "from", "to", "fromMe", "participant", "author")
# Characters of a body the journal keeps: enough for the cap (records.messages.MAX_BODY)
# and to know it was cut, not the megabyte a sender may post.
_BODY_KEPT: Final = 4 * MAX_BODY


def slim(envelope: dict[str, Any], eid: str, messages: bool = False) -> bytes:
    """The envelope as the journal keeps it: only what :func:`read_event` needs, and the
    event's id (:func:`event_id`, a digest of the whole body for a sender that sends none).
    With ``messages``, a message's body (cut to :data:`_BODY_KEPT` characters) and the
    fields its document needs; without, no text at all."""
    out: dict[str, Any] = {k: envelope[k] for k in _ENVELOPE_KEYS if k in envelope}
    out["id"] = eid
    payload = envelope.get("payload")
    if isinstance(payload, dict):
        kept = {k: payload[k] for k in _PAYLOAD_KEYS if k in payload}
        data = payload.get("_data")
        if isinstance(data, dict) and "notifyName" in data:
            kept["_data"] = {"notifyName": data["notifyName"]}
        if isinstance(data, dict) and "pushName" in data:
            kept.setdefault("_data", {})["pushName"] = data["pushName"]
        group = payload.get("group")
        if isinstance(group, dict):
            kept["group"] = {k: group[k] for k in ("id", "subject") if k in group}
        label = payload.get("label")
        if isinstance(label, dict):
            kept["label"] = {k: label[k] for k in ("id", "name", "colorHex") if k in label}
        if messages and envelope.get("event") in (*APPLIED[:1], EDITED, REVOKED):
            kept.update({k: payload[k] for k in _MESSAGE_KEYS if k in payload})
            body = payload.get("body")
            if isinstance(body, str):
                kept["body"] = body[:_BODY_KEPT]
            media = payload.get("media")
            if isinstance(media, dict) and isinstance(media.get("mimetype"), str):
                kept["media"] = {"mimetype": media["mimetype"][:100]}
            for key in ("before", "after"):
                nested = payload.get(key)
                if isinstance(nested, dict):
                    kept[key] = {k: nested[k] for k in _NESTED_KEYS if k in nested}
        out["payload"] = kept
    return orjson.dumps(out)


TEXT_DROPPED: Final = "explorerTextDropped"


def without_text(body: bytes) -> bytes:
    """A journaled envelope without its message text (what a dead letter keeps)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b"{}"  # unreadable: nothing in it is worth keeping
    payload = data.get("payload") if isinstance(data, dict) else None
    if isinstance(payload, dict) and "body" in payload:
        del payload["body"]
        payload[TEXT_DROPPED] = True  # retried, it applies the chat's part alone
        return orjson.dumps(data)
    return body


@dataclass
class Update:
    """What events said about one chat. ``*_at`` fields are the event times of the word
    kept, so a late event never overrides a newer one."""

    instance_id: str
    jid: str
    engine: str = "unknown"
    lid: str | None = None  # the LID digits when the event named the chat by its LID
    activity: int | None = None  # newest message time
    incoming_at: int | None = None  # newest message from the other side
    read_at: int | None = None  # newest message sent from this account: all read then
    name: str | None = None  # a group's subject (authoritative)
    name_at: int = 0
    hint_name: str | None = None  # a sender's push name: for a chat created here only
    archived: bool | None = None
    archived_at: int = 0
    member: bool | None = None  # group joined (True) or left (False)
    member_at: int = 0
    # Labels put on (True) or taken off (False) the chat: label id -> [on, event time].
    labels: dict[str, list[Any]] = field(default_factory=dict)
    relabel: bool = False  # a label it may carry was renamed or deleted: write names again

    @property
    def labels_only(self) -> bool:
        """Whether all the events said is about labels (nothing that makes a chat)."""
        return (self.activity is None and self.name is None and self.hint_name is None
                and self.archived is None and self.member is None)  # fmt: skip

    @property
    def doc_id(self) -> str:
        return doc_id(self.instance_id, self.jid)

    def merge(self, other: Update) -> None:
        self.activity = _newest(self.activity, other.activity)
        self.incoming_at = _newest(self.incoming_at, other.incoming_at)
        self.read_at = _newest(self.read_at, other.read_at)
        if other.name is not None and other.name_at >= self.name_at:
            self.name, self.name_at = other.name, other.name_at
        self.hint_name = self.hint_name or other.hint_name
        if other.archived is not None and other.archived_at >= self.archived_at:
            self.archived, self.archived_at = other.archived, other.archived_at
        if other.member is not None and other.member_at >= self.member_at:
            self.member, self.member_at = other.member, other.member_at
        if self.engine == "unknown":
            self.engine = other.engine
        self.lid = self.lid or other.lid
        for label_id, (on, at) in other.labels.items():
            if label_id not in self.labels or at >= self.labels[label_id][1]:
                self.labels[label_id] = [on, at]
        self.relabel = self.relabel or other.relabel

    def to_json(self) -> str:
        return orjson.dumps(self).decode()  # orjson encodes dataclasses natively (fast)

    @classmethod
    def from_json(cls, text: str) -> Update:
        return cls(**orjson.loads(text))


def _newest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


@dataclass(frozen=True)
class LabelChange:
    """A label named (``label.upsert``, or a ``label.chat.added`` that carries its label)
    or deleted, in one instance, at ``at``."""

    instance_id: str
    label: Label
    deleted: bool
    at: int


@dataclass
class MessageOp:
    """What an event asks of the messages index: a message to add (``new``), a new body for
    one (``edit``, dated ``at``), or one to remove (``revoke``). ``targets`` are the ids
    the original message may have (an edit or revocation names it in engine-dependent
    ways); ``chat`` is the chat's update, whose ``jid`` is final only once LIDs were
    resolved, so a document takes its chat from there when it is made."""

    kind: Literal["new", "edit", "revoke"]
    chat: Update | None
    message: Message | None = None
    targets: tuple[str, ...] = ()
    at: int = 0
    sender_name: str | None = None
    instance_id: str = ""


@dataclass
class Event:
    id: str
    kind: str
    session: str
    updates: list[Update]
    catch_up: bool = False  # session.status back to WORKING: sync this instance
    labels: list[LabelChange] = field(default_factory=list)
    messages: list[MessageOp] = field(default_factory=list)
    message_skipped: str | None = None  # why its message could not be read (counted)


def event_id(envelope: dict[str, Any], body: bytes) -> str:
    """The envelope's id (a ULID), or a digest of the body for a sender that sends none."""
    value = envelope.get("id")
    if isinstance(value, str) and value:
        return value[:200]
    import hashlib

    return "sha256:" + hashlib.sha256(body).hexdigest()


def envelope_of(data: Any) -> dict[str, Any]:
    """The parsed body, checked to be an event envelope; raises :class:`BadEvent`."""
    if not isinstance(data, dict):
        raise BadEvent(f"the body is a JSON {type(data).__name__}, not an event object")
    for key in ("event", "session"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise BadEvent(f"the event has no {key!r} string")
    return data


# (instance id, LID JID) -> the phone JID behind it, None while unknown.
LidResolver = Callable[[str, str], str | None]


def no_lids(instance_id: str, lid: str) -> str | None:
    return None


def _chat(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return None
    try:
        jid, chat_type = normalize_jid(value)
    except MalformedChat:
        return None
    return None if jid == "status@broadcast" else (jid, chat_type)


def read_event(
    envelope: dict[str, Any],
    instance_id: str,
    eid: str,
    resolve: LidResolver | None = None,
    *,
    messages: bool = False,
) -> Event:
    """The updates one event implies (none for events the index does not care about), and
    with ``messages`` what it asks of the messages index.

    A chat named by its LID is the chat of the phone number behind it when ``resolve``
    knows it, as the crawl indexes it (:mod:`explorer.source.lids`), with the LID kept."""
    resolve = resolve or no_lids
    kind = envelope["event"]
    payload = envelope.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    engine = ENGINES.get(str(envelope.get("engine") or "").upper(), "unknown")
    sent = to_timestamp(envelope.get("timestamp"))  # ms in the envelope
    # The payload's time (the message's own) first; never later than the sender's stamp
    # allows, so that no payload dated years ahead wins over every later event.
    when = to_timestamp(payload.get("timestamp")) or sent or 0
    if sent is not None:
        when = min(when, sent + MAX_AHEAD)
    event = Event(eid, kind, envelope["session"], [])

    def chat_of(jid: str, **fields: Any) -> Update:
        lid = None
        if jid.endswith("@lid"):
            lid = jid.partition("@")[0]
            jid = resolve(instance_id, jid) or jid
        if len(doc_id(instance_id, jid)) > MAX_DOC_ID:
            raise BadEvent(f"{kind}: the chat id {jid[:40]!r}… is too long to index")
        return Update(instance_id, jid, engine, lid, **fields)

    def update(jid: str, **fields: Any) -> None:
        event.updates.append(chat_of(jid, **fields))

    if kind == "message.any":
        mine = payload.get("fromMe") is True
        chat = _chat(payload.get("to") if mine else payload.get("from"))
        if chat is None:
            raise BadEvent("message.any without a usable chat id in payload.from/to")
        jid, chat_type = chat
        fields: dict[str, Any] = {"activity": when or None}
        if mine:
            fields["read_at"] = when
        else:
            fields["incoming_at"] = when
            data = payload.get("_data")
            data = data if isinstance(data, dict) else {}
            if chat_type == "individual":
                fields["hint_name"] = clean_name(data.get("notifyName")) or clean_name(
                    payload.get("pushName") or data.get("pushName")
                )
        update(jid, **fields)
        if messages:
            _read_message(event, payload, event.updates[-1], when)
    elif kind in (EDITED, REVOKED):
        if messages:
            # Edits are ordered by when their events were sent: an edited message may
            # carry the original's time.
            _read_change(event, payload, when, sent or when, chat_of, instance_id)
    elif kind in ("group.v2.join", "group.v2.leave", "group.v2.update"):
        group = payload.get("group")
        chat = _chat(group.get("id") if isinstance(group, dict) else None)
        if chat is None or chat[1] != "group":
            raise BadEvent(f"{kind} without a group id in payload.group.id")
        assert isinstance(group, dict)
        subject = clean_name(group.get("subject"))
        if kind == "group.v2.leave":
            update(chat[0], member=False, member_at=when)
        elif kind == "group.v2.join":
            update(chat[0], member=True, member_at=when, activity=when or None,
                   name=subject, name_at=when if subject else 0)  # fmt: skip
        elif subject is not None:
            update(chat[0], name=subject, name_at=when)
    elif kind == "chat.archive":
        chat = _chat(payload.get("id"))
        if chat is None or not isinstance(payload.get("archived"), bool):
            raise BadEvent("chat.archive without payload.id and payload.archived")
        update(chat[0], archived=payload["archived"], archived_at=when)
    elif kind in ("label.upsert", "label.deleted"):
        label = parse_label(payload)
        if label is None:
            raise BadEvent(f"{kind} without a label id in payload.id")
        event.labels.append(LabelChange(instance_id, label, kind == "label.deleted", when))
    elif kind in ("label.chat.added", "label.chat.deleted"):
        label_id = label_id_of(payload.get("labelId"))
        chat = _chat(payload.get("chatId"))
        if label_id is None or chat is None:
            raise BadEvent(f"{kind} without payload.labelId and a usable payload.chatId")
        update(chat[0], labels={label_id: [kind == "label.chat.added", when]})
        named = parse_label(payload.get("label"))
        if named is not None and named.id == label_id and named.name is not None:
            event.labels.append(LabelChange(instance_id, named, False, when))
    elif kind == SESSION_STATUS:
        event.catch_up = payload.get("status") == "WORKING"
    return event


# -- messages (``messages.enabled``) ------------------------------------------------------

# WAHA's serialized message id: ``<fromMe>_<chat>_<key>`` and, in groups, ``_<participant>``.
_SERIALIZED: Final = re.compile(r"^(true|false)_([^@]+@[^_]+)_([^_]+)(_.*)?$")


def _sender_name(payload: dict[str, Any]) -> str | None:
    if payload.get("fromMe") is True:
        return None
    data = payload.get("_data")
    data = data if isinstance(data, dict) else {}
    return clean_name(data.get("notifyName")) or clean_name(
        payload.get("pushName") or data.get("pushName")
    )


def _read_message(event: Event, payload: dict[str, Any], chat: Update, when: int) -> None:
    """``message.any``: the message to add, or why it cannot be (counted, and the chat's
    activity is applied all the same)."""
    if payload.get(TEXT_DROPPED):
        event.message_skipped = "a dead letter retried: its text was not kept"
        return
    try:
        message = parse_message(payload, instance_id=chat.instance_id, chat_jid=chat.jid)
    except MalformedMessage as exc:
        event.message_skipped = str(exc)
        return
    name = _sender_name(payload) if chat.jid.endswith("@g.us") else None
    op = MessageOp("new", chat, message, (message.message_id,), when, name, chat.instance_id)
    event.messages.append(op)


def _with_key(serialized: Any, key: str) -> str | None:
    """``serialized`` (a full WAHA id) naming message ``key`` instead."""
    if not isinstance(serialized, str):
        return None
    found = _SERIALIZED.match(serialized)
    if found is None:
        return None
    return f"{found[1]}_{found[2]}_{key}{found[4] or ''}"


def _short(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("_serialized") or value.get("id")
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        return None
    return value.strip()[:256]


def targets_of(payload: dict[str, Any], named: Any, nested: tuple[str, ...]) -> tuple[str, ...]:
    """The ids the message an edit or a revocation is about may have, most likely first.

    WAHA names it in ``editedMessageId`` / ``revokedMessageId``: a full id on some
    engines, only the key (``A06CA7BB…``) on others, and a revocation may carry the
    original as ``before``. A key alone becomes a full id by the shape of the event's own
    message id (same chat, same author), or of ``fromMe``/``from``/``to``."""
    found: list[str] = []
    for key in nested:
        inner = payload.get(key)
        if key == "before" and isinstance(inner, dict) and (full := _short(inner.get("id"))):
            found.append(full)
    short = _short(named)
    if short is not None:
        if _SERIALIZED.match(short):
            found.append(short)
        else:
            for source in (payload, *(payload.get(k) for k in nested)):
                if isinstance(source, dict):
                    rebuilt = _with_key(_short(source.get("id")), short)
                    if rebuilt:
                        found.append(rebuilt)
            mine = payload.get("fromMe") is True
            chat = payload.get("to") if mine else payload.get("from")
            if isinstance(chat, str) and chat:
                found.append(f"{str(mine).lower()}_{chat}_{short}")
            found.append(short)
    elif not nested and (own := _short(payload.get("id"))):
        found.append(own)  # WEBJS: the edited message itself, under its own id
    return tuple(dict.fromkeys(found))


def _read_change(
    event: Event,
    payload: dict[str, Any],
    when: int,
    at: int,
    chat_of: Callable[..., Update],
    instance_id: str,
) -> None:
    """``message.edited`` (the new body) or ``message.revoked`` (gone)."""
    if event.kind == REVOKED:
        targets = targets_of(payload, payload.get("revokedMessageId"), ("before", "after"))
        if not targets:
            event.message_skipped = "a revocation that names no message"
            return
        event.messages.append(MessageOp("revoke", None, None, targets, at, None, instance_id))
        return
    if payload.get(TEXT_DROPPED):
        event.message_skipped = "a dead letter retried: its text was not kept"
        return
    targets = targets_of(payload, payload.get("editedMessageId"), ())
    mine = payload.get("fromMe") is True
    chat = _chat(payload.get("to") if mine else payload.get("from"))
    if not targets or chat is None:
        event.message_skipped = "an edit that names no message or no chat"
        return
    update = chat_of(chat[0])
    raw = {**payload, "id": targets[0], "timestamp": payload.get("timestamp") or when}
    try:
        message = parse_message(raw, instance_id=update.instance_id, chat_jid=update.jid)
    except MalformedMessage as exc:
        event.message_skipped = str(exc)
        return
    name = _sender_name(payload) if update.jid.endswith("@g.us") else None
    event.messages.append(MessageOp("edit", update, message, targets, at, name, instance_id))
