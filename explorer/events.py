"""What a Wawp (WAHA) webhook event tells about a chat, as one mergeable :class:`Update`.

An event knows only a few fields, so an update is partial: each field says what it knows
and from when, and merging two updates of one chat keeps, field by field, the newer word.
That makes the result the same whatever order duplicates, late or reordered events arrive
in, and lets a burst of messages in one chat become one write.

Envelope (docs/webhooks.md): ``{id, timestamp (ms), event, session, engine, me, payload}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from explorer.chats import MalformedChat, clean_name, normalize_jid, to_timestamp
from explorer.documents import doc_id

APPLIED: Final = ("message.any", "group.v2.join", "group.v2.leave", "group.v2.update",
                  "chat.archive")  # fmt: skip
SESSION_STATUS: Final = "session.status"
ENGINES: Final = {"WEBJS": "webjs", "NOWEB": "noweb", "GOWS": "gows"}


class BadEvent(ValueError):
    """An event this receiver cannot read (counted and dropped, never retried)."""


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

    def to_json(self) -> str:
        return orjson.dumps(self).decode()  # orjson encodes dataclasses natively (fast)

    @classmethod
    def from_json(cls, text: str) -> Update:
        return cls(**orjson.loads(text))


def _newest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


@dataclass
class Event:
    id: str
    kind: str
    session: str
    updates: list[Update]
    catch_up: bool = False  # session.status back to WORKING: sync this instance


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
    envelope: dict[str, Any], instance_id: str, eid: str, resolve: LidResolver | None = None
) -> Event:
    """The updates one event implies (none for events the index does not care about).

    A chat named by its LID is the chat of the phone number behind it when ``resolve``
    knows it, as the crawl indexes it (:mod:`explorer.lids`), with the LID kept."""
    resolve = resolve or no_lids
    kind = envelope["event"]
    payload = envelope.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    engine = ENGINES.get(str(envelope.get("engine") or "").upper(), "unknown")
    sent = to_timestamp(envelope.get("timestamp"))  # ms in the envelope
    when = to_timestamp(payload.get("timestamp")) or sent or 0
    event = Event(eid, kind, envelope["session"], [])

    def update(jid: str, **fields: Any) -> None:
        lid = None
        if jid.endswith("@lid"):
            lid = jid.partition("@")[0]
            jid = resolve(instance_id, jid) or jid
        event.updates.append(Update(instance_id, jid, engine, lid, **fields))

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
    elif kind == SESSION_STATUS:
        event.catch_up = payload.get("status") == "WORKING"
    return event
