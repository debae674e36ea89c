"""From a :class:`Chat` to the Meilisearch document other tools rely on (docs/schema.md).

The document id must be ``[A-Za-z0-9_-]{1,511}``, and raw JIDs hold ``@``, ``.`` and ``:``.
:func:`doc_id` escapes them reversibly (``_`` itself becomes ``_u``), so two different
``(instance, jid)`` pairs can never collide, and joins the two parts with ``__``, which
escaping never produces.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from explorer.chats import Chat
from explorer.phones import phone_variants

SCHEMA_VERSION: Final = 1
_ESCAPES: Final = {"_": "_u", "@": "_a", ".": "_d", ":": "_c", "-": "-"}
TYPE_WORDS: Final = {
    "individual": "individual contact person",
    "group": "group",
    "channel": "channel newsletter",
    "broadcast": "broadcast list",
}


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            out.append("".join(f"_x{b:02x}" for b in ch.encode()))
    return "".join(out)


def doc_id(instance_id: str, jid: str) -> str:
    return f"{_escape(instance_id)}__{_escape(jid)}"


def display_name(chat: Chat) -> str:
    """What an agent recognises: the name, else the formatted number, else the JID."""
    if chat.name:
        return chat.name
    if chat.phone:
        return chat.phone
    return chat.jid


def to_document(chat: Chat, *, label: str | None, crawled_at: int) -> dict[str, Any]:
    digits = chat.phone[1:] if chat.phone else None
    return {
        "id": doc_id(chat.instance_id, chat.jid),
        "jid": chat.jid,
        "instance_id": chat.instance_id,
        "instance_label": label,
        "chat_type": chat.chat_type,
        "is_group": chat.is_group,
        "name": chat.name,
        "display_name": display_name(chat),
        "phone": chat.phone,
        "phone_digits": digits,
        "phone_variants": phone_variants(chat.phone) if chat.phone else [],
        "lid": chat.lid,
        "wa_link": f"https://wa.me/{digits}" if digits else None,
        "last_activity": chat.last_activity,
        "archived": chat.archived,
        "pinned": chat.pinned,
        "muted": chat.muted,
        "unread_count": chat.unread_count,
        "type_words": TYPE_WORDS[chat.chat_type],
        "engine_shape": chat.engine_shape,
        "crawled_at": crawled_at,
    }


def fingerprint(doc: dict[str, Any]) -> str:
    """Identity of a document's content, ignoring when it was crawled (for dry runs)."""
    content = {k: v for k, v in doc.items() if k != "crawled_at"}
    return hashlib.blake2b(
        json.dumps(content, sort_keys=True, ensure_ascii=False).encode(), digest_size=12
    ).hexdigest()


# Settings as code: applied to every new index before any document (changing them later
# would re-index everything), and compared with the live index by `explorer settings`.
INDEX_SETTINGS: Final[dict[str, Any]] = {
    "searchableAttributes": [
        "display_name",
        "name",
        "phone_digits",
        "phone_variants",
        "jid",
        "lid",
        "instance_label",
        "type_words",
    ],
    "filterableAttributes": [
        "chat_type",
        "instance_id",
        "instance_label",
        "is_group",
        "archived",
        "pinned",
        "muted",
        "last_activity",
        "unread_count",
    ],
    "sortableAttributes": ["last_activity", "name", "display_name"],
    "displayedAttributes": [
        "id",
        "jid",
        "instance_id",
        "instance_label",
        "chat_type",
        "is_group",
        "name",
        "display_name",
        "phone",
        "phone_digits",
        "lid",
        "wa_link",
        "last_activity",
        "archived",
        "pinned",
        "muted",
        "unread_count",
        "engine_shape",
        "crawled_at",
    ],
    "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8},
        "disableOnAttributes": ["phone_digits", "phone_variants", "jid", "lid"],
        "disableOnNumbers": True,
    },
    "pagination": {"maxTotalHits": 1000},
}


_UNORDERED: Final = ("filterableAttributes", "sortableAttributes", "displayedAttributes")


def _comparable(key: str, value: Any) -> Any:
    """Meilisearch returns attribute sets sorted; only some lists have a meaningful order."""
    if key in _UNORDERED and isinstance(value, list):
        return sorted(value, key=str)
    if key == "typoTolerance" and isinstance(value, dict):
        value = dict(value)
        if isinstance(value.get("disableOnAttributes"), list):
            value["disableOnAttributes"] = sorted(value["disableOnAttributes"])
    return value


def settings_drift(live: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Settings whose live value differs from :data:`INDEX_SETTINGS`: key -> (live, code)."""
    drift = {}
    for key, want in INDEX_SETTINGS.items():
        have = live.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            have = {k: have.get(k) for k in want}
        if _comparable(key, have) != _comparable(key, want):
            drift[key] = (have, want)
    return drift
