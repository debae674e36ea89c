"""From a :class:`Chat` to the Meilisearch document other tools rely on (docs/schema.md).

The document id must be ``[A-Za-z0-9_-]{1,511}``, and raw JIDs hold ``@``, ``.`` and ``:``.
:func:`doc_id` escapes them reversibly (``_`` itself becomes ``_u``), so two different
``(instance, jid)`` pairs can never collide, and joins the two parts with ``__``, which
escaping never produces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, Final

from explorer.records.chats import Chat
from explorer.records.latin import latin_forms
from explorer.records.phones import phone_forms

SCHEMA_VERSION: Final = 4
MAX_DOC_ID: Final = 511  # bytes of a document id Meilisearch accepts
HIDDEN_NUMBER: Final = "hidden number"  # what people see where a LID hides the number
_ESCAPES: Final = {"_": "_u", "@": "_a", ".": "_d", ":": "_c", "-": "-"}
TYPE_WORDS: Final = {
    "individual": "individual contact person",
    "group": "group",
    "channel": "channel newsletter",
    "broadcast": "broadcast list",
}


def _escape_char(ch: str) -> str:
    if ch.isascii() and ch.isalnum():
        return ch
    return _ESCAPES.get(ch) or "".join(f"_x{b:02x}" for b in ch.encode())


def _escape(text: str) -> str:
    return "".join(map(_escape_char, text))


def doc_id(instance_id: str, jid: str) -> str:
    return f"{_escape(instance_id)}__{_escape(jid)}"


def display_name(chat: Chat) -> str:
    """What an agent recognises: the name, else the number, else the username, else
    "hidden number" for an unresolved LID, else the JID."""
    if chat.name:
        return chat.name
    if chat.phone:
        return chat.phone
    return _nameless(chat, chat.jid.endswith("@lid"))


def _when(ts: int | None) -> str | None:
    """``2026-11-25 07:59 UTC``."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def to_document(chat: Chat, *, label: str | None, crawled_at: int) -> dict[str, Any]:
    """The document, its keys in the order a person reads them.

    The Meilisearch web UI shows a hit's fields in the order the index first saw them and
    only the first six before "Show more", so the order of these keys is part of what an
    agent sees. Meilisearch puts the primary key first whatever we do; the five fields a
    person reads (name, phone, type, instance, last activity) follow it.
    """
    phone = chat.phone
    hidden = False
    if phone:
        digits: str | None = phone[1:]
        display, variants = phone_forms(phone)
    else:
        digits, display, variants = None, None, []
        # A LID nobody resolved: never its digits formatted as if they were a number.
        hidden = chat.jid.endswith("@lid")
        if hidden:
            display = HIDDEN_NUMBER
    return {
        "display_name": display_name(chat),
        "phone_display": display,
        "chat_type": chat.chat_type,
        "instance_label": label,
        "last_active": _when(chat.last_activity),
        "unread_count": chat.unread_count,
        "id": doc_id(chat.instance_id, chat.jid),
        "jid": chat.jid,
        "instance_id": chat.instance_id,
        "is_group": chat.chat_type == "group",
        "name": chat.name,
        "phone": phone,
        "phone_digits": digits,
        "phone_variants": variants,
        "name_latin": latin_forms(chat.name),
        "lid": chat.lid,
        "username": chat.username,
        "phone_hidden": hidden,
        # No scheme: the web UI loads any http(s) value as an image, which told wa.me which
        # customers agents looked at. Prepend https:// where a link is wanted.
        "wa_link": f"wa.me/{digits}" if digits else None,
        "last_activity": chat.last_activity,
        "archived": chat.archived,
        "pinned": chat.pinned,
        "muted": chat.muted,
        "type_words": TYPE_WORDS[chat.chat_type],
        "engine_shape": chat.engine_shape,
        "crawled_at": crawled_at,
        "listings": _listings(chat),
    }


# The document fields :func:`chat_from_document` reads: every Chat field, under its name.
DOCUMENT_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Chat))


def chat_from_document(doc: dict[str, Any]) -> Chat:
    """The :class:`Chat` a document was made from, :func:`to_document` undone (sync and a
    resumed reindex merge into documents already written)."""
    listings = doc.get("listings")
    return Chat(
        instance_id=doc["instance_id"],
        jid=doc["jid"],
        chat_type=doc["chat_type"],
        name=doc.get("name"),
        phone=doc.get("phone"),
        lid=doc.get("lid"),
        last_activity=doc.get("last_activity"),
        archived=doc.get("archived"),
        pinned=doc.get("pinned"),
        muted=doc.get("muted"),
        unread_count=doc.get("unread_count"),
        engine_shape=doc.get("engine_shape") or "unknown",
        username=doc.get("username"),
        listings=tuple(
            (str(x["jid"]), x.get("last_activity"), x.get("unread_count")) for x in listings
        )
        if isinstance(listings, list) and listings
        else None,
    )


def _nameless(chat: Chat, hidden: bool) -> str:
    """What to call a chat with neither name nor number: its username, "hidden number"
    for a LID, else its JID."""
    if chat.username:
        return "@" + chat.username
    return HIDDEN_NUMBER if hidden else chat.jid


def _listings(chat: Chat) -> list[dict[str, Any]] | None:
    if not chat.listings:
        return None
    return [{"jid": j, "last_activity": t, "unread_count": u} for j, t, u in chat.listings]


def fingerprint(doc: dict[str, Any]) -> str:
    """Identity of a document's content, ignoring when it was crawled (for dry runs)."""
    content = {k: v for k, v in doc.items() if k != "crawled_at"}
    return hashlib.blake2b(
        json.dumps(content, sort_keys=True, ensure_ascii=False).encode(), digest_size=12
    ).hexdigest()


# Settings as code: applied to every new index before any document (changing them later
# would re-index everything), and compared with the live index by `explorer settings`.
# Each attribute here costs Meilisearch indexing time; each is kept because it buys recall
# or a filter or sort the tool uses (benchmarks/index_costs.py, docs/benchmarks-index.md).
INDEX_SETTINGS: Final[dict[str, Any]] = {
    # Not `name`: `display_name` is the name whenever there is one.
    "searchableAttributes": [
        "display_name",
        "phone_digits",
        "phone_variants",
        "jid",
        "lid",
        # After the name and the phone fields: a name matched in its own script ranks
        # first, and a Latin spelling never outranks a number.
        "name_latin",
        "username",
        "instance_label",
        "type_words",
    ],
    # Only the filter operators the searches use, and no facet search: Meilisearch builds
    # less for each filterable attribute.
    "filterableAttributes": [
        {
            "attributePatterns": [
                "chat_type",
                "instance_id",
                "instance_label",
                "is_group",
                "archived",
                "pinned",
                "muted",
                "phone_hidden",
                # Labels: filters and facet counts (the page's live counts need no facet
                # search: an account has at most 20 labels, all in one facetDistribution).
                "labels",
                "label_ids",
            ],
            "features": {"facetSearch": False, "filter": {"equality": True, "comparison": False}},
        },
        {
            "attributePatterns": ["last_activity", "unread_count"],
            "features": {"facetSearch": False, "filter": {"equality": True, "comparison": True}},
        },
    ],  # fmt: skip
    "sortableAttributes": ["last_activity", "name", "display_name"],
    "displayedAttributes": [
        "display_name",
        "phone_display",
        "chat_type",
        "instance_label",
        "last_active",
        "id",
        "jid",
        "instance_id",
        "is_group",
        "name",
        "phone",
        "phone_digits",
        "lid",
        "username",
        "phone_hidden",
        "wa_link",
        "last_activity",
        "archived",
        "pinned",
        "muted",
        "unread_count",
        "engine_shape",
        "crawled_at",
    ],
    # Among equally good matches the most recently active chat first: an agent looking
    # for "Liam" wants the one who wrote today, not a namesake silent for months. Last,
    # after exactness: before it, recall in benchmarks/search.py dropped (exact names).
    "rankingRules": [
        "words",
        "typo",
        "proximity",
        "attribute",
        "sort",
        "exactness",
        "last_activity:desc",
    ],
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8},
        "disableOnAttributes": ["phone_digits", "phone_variants", "jid", "lid"],
        "disableOnNumbers": True,
    },
    "pagination": {"maxTotalHits": 1000},
    "facetSearch": False,
    # Proximity between words of one attribute, not word by word: names are a few words
    # long, recall is the same (benchmarks/search.py) and indexing far cheaper.
    "proximityPrecision": "byAttribute",
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
