"""From any engine's raw chat object to one typed :class:`Chat`.

WEBJS, NOWEB and GOWS disagree on nearly every field (docs/wawp.md): the id is an object or
a string, ``@s.whatsapp.net`` or ``@c.us``; activity is ``timestamp``,
``conversationTimestamp`` or ``lastMessage.timestamp``, as a number, a string or a protobuf
Long; pinned is a bool or a pin time. Everything here is defensive: a field of the wrong
type becomes ``None``; only a chat without a usable id is :class:`MalformedChat`.
"""

from __future__ import annotations

import math
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from explorer.records.labels import Label

USER_SERVERS: Final = {
    "c.us": "individual",
    "s.whatsapp.net": "individual",
    "lid": "individual",
    "hosted": "individual",
    "hosted.lid": "individual",
    "bot": "individual",
    "msgr": "individual",
    "interop": "individual",
}
KINDS: Final = {**USER_SERVERS, "g.us": "group", "newsletter": "channel", "broadcast": "broadcast"}
CHAT_TYPES: Final = ("individual", "group", "channel", "broadcast")
MAX_NAME: Final = 256
MAX_USER: Final = 128  # characters of a JID's user part (escaped, its document id stays < 511)
_USER_CHARS: Final = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


class MalformedChat(ValueError):
    """A chat object we cannot index; counted and reported, never fatal to a crawl."""


@dataclass(slots=True)
class Chat:
    """One chat, engine differences gone. Not frozen: a frozen dataclass sets each of its
    twelve fields through ``object.__setattr__``, a sixth of normalising a chat."""

    instance_id: str
    jid: str
    chat_type: str
    name: str | None
    phone: str | None
    lid: str | None
    last_activity: int | None
    archived: bool | None
    pinned: bool | None
    muted: bool | None
    unread_count: int | None
    engine_shape: str
    username: str | None = None  # WhatsApp username (without "@"), where the engine gives one
    # A person listed under two ids, merged (explorer.source.lids.merge): each listing's JID,
    # activity and unread count, so a later sync can merge again without counting twice.
    listings: tuple[tuple[str, int | None, int | None], ...] | None = None
    # WhatsApp Business labels (explorer.records.labels), sorted; None: not known here (a
    # chat from /v2/chats alone), which writers must not turn into "no labels".
    labels: tuple[Label, ...] | None = None

    @property
    def is_group(self) -> bool:
        return self.chat_type == "group"


def raw_id(raw: Any) -> str | None:
    """The id as the server sorted it: ``_serialized`` of an object id, or the string."""
    if not isinstance(raw, dict):
        return None
    value = raw.get("id")
    if isinstance(value, dict):
        value = value.get("_serialized") or (
            f"{value.get('user')}@{value.get('server')}"
            if value.get("user") and value.get("server")
            else None
        )
    return value if isinstance(value, str) and value else None


def normalize_jid(value: str) -> tuple[str, str]:
    """``(canonical jid, chat_type)``; raises MalformedChat. ``status@broadcast`` passes."""
    text = value.strip()
    user, sep, server = text.rpartition("@")
    server = server.lower()
    if not sep or not user or server not in KINDS:
        raise MalformedChat(f"not a WhatsApp JID: {_show(value)}")
    if server in USER_SERVERS:
        # user.agent:device@server -> user; device ids appear in message metadata
        user = user.split(":", 1)[0].split(".", 1)[0]
        if server == "s.whatsapp.net":
            server = "c.us"
    # WhatsApp's user parts are ASCII (digits, and a dash in old group ids): anything else
    # (letters of other scripts, emoji, bidi overrides) is not an id Wawp hands out, and
    # would make a document id past Meilisearch's 511 bytes once escaped.
    if not user or len(user) > MAX_USER or not all(ch in _USER_CHARS for ch in user):
        raise MalformedChat(f"not a WhatsApp JID: {_show(value)}")
    return f"{user}@{server}", KINDS[server]


def _jid(value: Any) -> str | None:
    """The canonical JID, or None for anything :func:`normalize_jid` refuses."""
    if not isinstance(value, str):
        return None
    try:
        return normalize_jid(value)[0]
    except MalformedChat:
        return None


def lid_jid(value: Any) -> str | None:
    """``123@lid`` from ``123@lid``, ``123:31@lid`` (device suffix) or bare digits (how
    some LID maps give them); None for anything else."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = f"{value.strip()}@lid"
    jid = _jid(value)
    user = jid.partition("@")[0] if jid and jid.endswith("@lid") else ""
    return jid if user.isascii() and user.isdigit() else None


def phone_jid(value: Any) -> str | None:
    """``2012…@c.us`` from a phone JID in either spelling (``@s.whatsapp.net``), with a
    device suffix or not; None for anything that is not 7-15 digits on a user server."""
    jid = _jid(value)
    user = jid.partition("@")[0] if jid and jid.endswith("@c.us") else ""
    return jid if user.isascii() and user.isdigit() and 7 <= len(user) <= 15 else None


def phone_of_jid(jid: str) -> str:
    """``+2012…`` from ``2012…@c.us``."""
    return "+" + jid.partition("@")[0]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_YEAR_3000: Final = 32_503_680_000  # no activity comes later; a larger number is a mistake


def to_timestamp(value: Any) -> int | None:
    """Unix seconds from a number, a numeric string, a protobuf Long or milliseconds."""
    if type(value) is int and 0 < value < _YEAR_3000:  # the usual case, in seconds
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, dict) and "low" in value:
        low, high = value.get("low"), value.get("high", 0)
        if not isinstance(low, int) or not isinstance(high, int):
            return None
        value = (high << 32) | (low & 0xFFFFFFFF)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    seconds = int(value)
    if seconds > 100_000_000_000:  # milliseconds
        seconds //= 1000
    return seconds if 0 < seconds < _YEAR_3000 else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _pinned(raw: dict[str, Any]) -> bool | None:
    value = raw.get("pinned")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | str):
        ts = to_timestamp(value)
        return ts is not None  # NOWEB: the pin time, 0 when unpinned
    return None


def _muted(raw: dict[str, Any], now: float) -> bool | None:
    if isinstance(raw.get("isMuted"), bool):
        return bool(raw["isMuted"])
    for key in ("muteExpiration", "muteEndTime"):
        value = raw.get(key)
        if value is None or isinstance(value, bool):
            continue
        if value in (-1, "-1"):
            return True
        ts = to_timestamp(value)
        if ts is None:
            if value in (0, "0"):
                return False
            continue
        return ts > now
    return None


def _unread(raw: dict[str, Any]) -> int | None:
    value = raw.get("unreadCount")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def clean_name(value: Any) -> str | None:
    """Printable, trimmed, bounded; empty becomes None."""
    if not isinstance(value, str):
        return None
    text = value
    if not value.isprintable():  # printable text has no Cc, Zl, Zp or Cs character
        text = "".join(
            " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
            for ch in value
            if unicodedata.category(ch) != "Cs"
        )
    text = " ".join(text.split())
    if len(text) > MAX_NAME:
        text = text[: MAX_NAME - 1] + "…"
    return text or None


def last_activity_of(raw: dict[str, Any]) -> int | None:
    """Unix seconds of a raw chat's last activity, from any field an engine uses."""
    last = raw.get("lastMessage")
    newest = to_timestamp(last.get("timestamp")) if isinstance(last, dict) else None
    for key in _ACTIVITY_KEYS:  # a loop, not lists and max(): this runs for every chat
        value = raw.get(key)
        ts = to_timestamp(value) if value is not None else None
        if ts is not None and (newest is None or ts > newest):
            newest = ts
    return newest


_ACTIVITY_KEYS: Final = (
    "timestamp",
    "conversationTimestamp",
    "lastMsgTimestamp",
    "lastMessageRecvTimestamp",
)


_GOWS_KEYS: Final = frozenset({"id", "name", "conversationTimestamp"})


def engine_shape(raw: dict[str, Any], jid_value: str) -> str:
    if isinstance(raw.get("id"), dict) or "isGroup" in raw:
        return "webjs"
    if raw.keys() <= _GOWS_KEYS:
        return "gows"
    if jid_value.endswith("@s.whatsapp.net") or "conversationTimestamp" in raw:
        return "noweb"
    return "unknown"


def normalize_chat(
    raw: Any, instance_id: str, *, now: float | None = None, key: str | None = None
) -> Chat | None:
    """One :class:`Chat`, or None for chats never indexed (``status@broadcast``). ``key``:
    the chat's :func:`raw_id`, when the caller has it already (the crawl sorts by it)."""
    if not isinstance(raw, dict):
        raise MalformedChat(f"chat is {type(raw).__name__}, not an object")
    value = key or raw_id(raw)
    if value is None:
        raise MalformedChat(f"chat has no usable id: {_show(raw.get('id'))}")
    jid, chat_type = normalize_jid(value)
    if jid == "status@broadcast":
        return None
    own_phone = phone_jid(jid)
    phone = phone_of_jid(own_phone) if own_phone else None
    lid = jid.partition("@")[0] if jid.endswith("@lid") else None
    if lid is None:
        other = lid_jid(raw.get("lidJid"))
        lid = other.partition("@")[0] if other else None
    elif "pnJid" in raw:  # NOWEB: the number behind a LID
        behind = phone_jid(raw["pnJid"])
        phone = phone_of_jid(behind) if behind else None
    name = clean_name(raw.get("name")) or clean_name(raw.get("displayName"))
    return Chat(
        instance_id=instance_id,
        jid=jid,
        chat_type=chat_type,
        name=name,
        phone=phone,
        lid=lid,
        last_activity=last_activity_of(raw),
        archived=_bool(raw.get("archived")),
        pinned=_pinned(raw),
        muted=_muted(raw, time.time() if now is None else now),
        unread_count=_unread(raw),
        engine_shape=engine_shape(raw, value),
        username=_username(raw.get("username")),
    )


def _username(value: Any) -> str | None:
    """A username as people type it, without the leading ``@`` (searchable either way)."""
    name = clean_name(value)
    return name.lstrip("@") or None if name else None
