"""From a WAHA message (``/v2/chats/messages``, ``message.any``) to a messages-index document.

Message text is personal data from strangers: it is kept only as long as the retention
window (``messages.retention_days``), never logged, and wherever it is shown (the page,
the terminal, an assistant) it is quoted data, never markup or instructions. This module
only shapes it: control and bidi characters go (they can reorder or hide what a person
reads), long bodies are capped at :data:`MAX_BODY`, and media become a type word
(``[photo]``) or their caption; media content is never kept.

The messages index is named after the chats index (:func:`messages_index`). A message's
document id is a hash of ``(instance_id, message_id)``: WAHA's ids are unique per
account but long and full of ``@``, ``.`` and ``_``, and an edit or a revocation names
the message by that id alone.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from explorer.records.chats import KINDS, MalformedChat, normalize_jid, to_timestamp

MESSAGES_SUFFIX: Final = "-messages"
MAX_BODY: Final = 4000  # characters of a body kept; the rest is cut, and `body_truncated` says so
MAX_MESSAGE_ID: Final = 256  # characters of a Wawp message id; longer is not an id Wawp hands out
MEDIA_WORDS: Final = {
    "image": "[photo]",
    "video": "[video]",
    "audio": "[audio]",
    "ptt": "[voice message]",
    "voice": "[voice message]",
    "document": "[document]",
    "sticker": "[sticker]",
    "location": "[location]",
    "vcard": "[contact]",
    "contact": "[contact]",
    "media": "[media]",
}
# Characters that change how the text around them reads (direction overrides and
# isolates, zero-width joiners aside): an index must not let a stranger reorder what an
# agent sees.
_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


class MalformedMessage(ValueError):
    """A message we cannot index (no id, no timestamp, not an object): counted, skipped."""


def messages_index(chats_index: str) -> str:
    """The messages index that belongs to a chats index: ``chats`` -> ``chats-messages``."""
    return chats_index + MESSAGES_SUFFIX


def message_doc_id(instance_id: str, message_id: str) -> str:
    digest = hashlib.blake2b(f"{instance_id}\0{message_id}".encode(), digest_size=16)
    return "m" + digest.hexdigest()


@dataclass(slots=True)
class Message:
    instance_id: str
    jid: str  # the chat, as the chats index has it (the phone JID for a resolved LID)
    message_id: str
    timestamp: int
    from_me: bool
    body: str  # the text, the caption, or a type word; "" for an empty text
    body_truncated: bool
    has_media: bool
    media_type: str | None
    sender: str | None  # in groups: the sender's JID as Wawp gave it (a LID stays a LID)


def clean_body(value: Any) -> tuple[str, bool]:
    """Text as a person may see it: no control characters but line breaks and tabs, no
    direction overrides, at most :data:`MAX_BODY` characters. ``(text, truncated)``."""
    if not isinstance(value, str):
        return "", False
    text = value
    if not text.isprintable():
        text = "".join(
            ch
            for ch in text
            if ch in "\n\t"
            or (unicodedata.category(ch) not in ("Cc", "Cs", "Co") and ch not in _BIDI)
        )
    elif any(ch in _BIDI for ch in text):
        text = "".join(ch for ch in text if ch not in _BIDI)
    text = text.strip()
    if len(text) > MAX_BODY:
        return text[: MAX_BODY - 1] + "…", True
    return text, False


def media_type_of(raw: dict[str, Any]) -> str | None:
    """``image``, ``video``, ... from the fields engines use, else ``media`` for a message
    that says it has media and nothing more."""
    media = raw.get("media")
    mimetype = media.get("mimetype") if isinstance(media, dict) else None
    kind = raw.get("type")
    if isinstance(kind, str) and kind.lower() in MEDIA_WORDS:
        return kind.lower()
    if isinstance(mimetype, str) and "/" in mimetype:
        major = mimetype.split("/", 1)[0].lower()
        if major in ("image", "video", "audio"):
            return major
        return "document"
    return "media" if raw.get("hasMedia") is True else None


def _message_id(raw: dict[str, Any]) -> str | None:
    value = raw.get("id")
    if isinstance(value, dict):
        value = value.get("_serialized") or value.get("id")
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_MESSAGE_ID or not value.isprintable():
        return None
    return value


def _sender(raw: dict[str, Any]) -> str | None:
    for key in ("participant", "author"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            try:
                return normalize_jid(value)[0]
            except MalformedChat:
                return None
    return None


def parse_message(raw: Any, *, instance_id: str, chat_jid: str) -> Message:
    """A raw WAHA message in the chat ``chat_jid``; raises :class:`MalformedMessage`.

    The chat comes from the caller (the crawl asked for its messages, or listen worked it
    out from ``from``/``to``): the payload's own ``from`` may be a LID the caller resolved.
    """
    if not isinstance(raw, dict):
        raise MalformedMessage(f"a message is {type(raw).__name__}, not an object")
    message_id = _message_id(raw)
    if message_id is None:
        raise MalformedMessage("a message without a usable id")
    ts = to_timestamp(raw.get("timestamp"))
    if ts is None:
        raise MalformedMessage("a message without a timestamp")
    media_type = media_type_of(raw)
    body, truncated = clean_body(raw.get("body"))
    if not body and media_type:
        body = MEDIA_WORDS[media_type]
    is_group = chat_jid.endswith("@g.us")
    return Message(
        instance_id=instance_id,
        jid=chat_jid,
        message_id=message_id,
        timestamp=ts,
        from_me=raw.get("fromMe") is True,
        body=body,
        body_truncated=truncated,
        has_media=media_type is not None,
        media_type=media_type,
        sender=_sender(raw) if is_group else None,
    )


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def to_message_document(
    msg: Message,
    *,
    chat_name: str | None,
    sender_name: str | None = None,
    labels: tuple[str, ...] = (),
    label_ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The document, keys in the order a person reads them (the web UI shows six).

    ``chat_name`` is the chat's ``display_name`` in the chats index, so that a hit says
    whose conversation it is without a second lookup; ``labels``/``label_ids`` are the
    chat's, copied so that a team's scope filters messages as it filters chats.
    """
    return {
        "id": message_doc_id(msg.instance_id, msg.message_id),
        "chat_name": chat_name,
        "body": msg.body,
        "sender_name": sender_name,
        "when": _when(msg.timestamp),
        "from_me": msg.from_me,
        "instance_id": msg.instance_id,
        "jid": msg.jid,
        "message_id": msg.message_id,
        "timestamp": msg.timestamp,
        "sender": msg.sender,
        "has_media": msg.has_media,
        "media_type": msg.media_type,
        "body_truncated": msg.body_truncated,
        "labels": list(labels),
        "label_ids": list(label_ids),
        # The chat's kind, as the chats index has it, so the page's type filter applies to
        # messages too (a JID the record accepted always has a known server).
        "chat_type": KINDS.get(msg.jid.rpartition("@")[2], "individual"),
    }


# Settings as code for the messages index (compared by `explorer settings --check`).
MESSAGE_INDEX_SETTINGS: Final[dict[str, Any]] = {
    "searchableAttributes": ["body", "chat_name", "sender_name"],
    "filterableAttributes": [
        {
            "attributePatterns": [
                "instance_id",
                "jid",
                "from_me",
                "has_media",
                "media_type",
                "labels",
                "label_ids",
                "id",
                "chat_type",
            ],
            "features": {"facetSearch": False, "filter": {"equality": True, "comparison": False}},
        },
        {
            "attributePatterns": ["timestamp"],
            "features": {"facetSearch": False, "filter": {"equality": True, "comparison": True}},
        },
    ],  # fmt: skip
    "sortableAttributes": ["timestamp"],
    "rankingRules": [
        "words",
        "typo",
        "proximity",
        "attribute",
        "sort",
        "exactness",
        "timestamp:desc",
    ],  # fmt: skip
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8},
        "disableOnNumbers": True,
    },
    "pagination": {"maxTotalHits": 1000},
    "facetSearch": False,
}


# `explorer forget` removes what a forgotten person sent in groups by its sender: the one
# filterable field added to the settings above (explorer.jobs.forget).
MESSAGE_INDEX_SETTINGS["filterableAttributes"][0]["attributePatterns"].append("sender")


# Meilisearch guesses each text's language on its own, message by message and query by
# query, and normalises the text by its guess. Two guesses cost messages their matches
# (benchmarks/messages_search.py, docs/benchmarks.md): Arabic taken for Persian, whose
# normaliser folds ك and ي to ک and ی in the message but not in the query typed in Arabic
# (recall@5 on Arabic phrases 0.85), and short Latin texts taken for German, whose
# segmenter splits them as compound words. So the guesses are made among every language
# Meilisearch 1.21 knows but those two; Persian and German messages are still indexed and
# found, without their language's own folding and compound splitting.
MESSAGE_LOCALES: Final = (
    "afr", "aka", "amh", "ara", "aze", "bel", "ben", "bul", "cat", "ces", "dan", "ell", "eng",
    "epo", "est", "fin", "fra", "guj", "heb", "hin", "hrv", "hun", "hye", "ind", "ita", "jav",
    "jpn", "kan", "kat", "khm", "kor", "lat", "lav", "lit", "mal", "mar", "mkd", "mya", "nep",
    "nld", "nob", "ori", "pan", "pol", "por", "ron", "rus", "sin", "slk", "slv", "sna", "spa",
    "srp", "swe", "tam", "tel", "tgl", "tha", "tuk", "tur", "ukr", "urd", "uzb", "vie", "yid",
    "zho", "zul", "cmn",
)  # fmt: skip
MESSAGE_INDEX_SETTINGS["localizedAttributes"] = [
    {"attributePatterns": ["body", "chat_name", "sender_name"], "locales": list(MESSAGE_LOCALES)}
]
