"""Searching what was said: the messages index (``<index>-messages``), opt-in.

`explorer search --messages`, ``explorer.search_messages()``, the MCP tool
``search_messages`` and the agent page search the same documents
(:mod:`explorer.records.messages`). People name a chat as they know it, by a phone number
in any form or a JID (a LID too), and an instance by its id or label; the messages index
holds neither labels nor phone forms, so both are looked up in the chats index first, and
the messages index is filtered on what it does hold (``instance_id``, ``jid``).

Bodies are text from strangers. Matches come back marked with the control characters
:data:`~explorer.records.output.HL_PRE`/``HL_POST``, which no stored body holds (the record
strips control characters): whoever shows a body splits it on the markers *first* and then
escapes each piece for its medium (the terminal: :func:`explorer.records.output.marked`;
the page: text nodes; an assistant: quoted fields, :mod:`explorer.doors.mcp_server`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from explorer.config import Config, MeiliSettings, load_config
from explorer.errors import MeiliError, MessagesDisabled, QueryError
from explorer.meili.client import SEARCH_NEED, Meili, search_body
from explorer.meili.query import Searcher
from explorer.records.chats import MalformedChat, normalize_jid
from explorer.records.filters import MessageFilters
from explorer.records.messages import messages_index
from explorer.records.output import HL_POST, HL_PRE
from explorer.records.phones import MIN_SUFFIX, phone_query

__all__ = ["MessageSearchResult", "MessageSearcher", "message_json", "search_messages"]

MATCHING: Final = "all"  # every word of the query, not Meilisearch's default "last"
CROP_WORDS: Final = 24  # words of a body around its best match: a snippet for one line
HIGHLIGHTED: Final = ["body", "chat_name", "sender_name"]
# What a hit carries (the index's helper fields stay out).
FIELDS: Final = [
    "id", "chat_name", "body", "sender_name", "from_me", "instance_id", "jid", "message_id",
    "timestamp", "sender", "has_media", "media_type", "body_truncated", "chat_type",
]  # fmt: skip
# The stable machine form of a hit (`--json`, docs/schema.md): these keys, in this order.
JSON_FIELDS: Final = (
    "instance_id", "jid", "message_id", "timestamp", "time", "from_me", "body",
    "display_name", "sender", "sender_name", "has_media", "media_type", "body_truncated",
    "chat_type",
)  # fmt: skip


def require_messages(cfg: Config) -> str:
    """The messages index's name; raises :class:`MessagesDisabled` when they are off."""
    if not cfg.messages.enabled:
        raise MessagesDisabled(
            "messages are not enabled: set messages.enabled = true in the config (or "
            "EXPLORER_MESSAGES=1) and run `explorer reindex` to index them"
        )
    return messages_index(cfg.meilisearch.index)


def iso(ts: Any) -> str | None:
    if not isinstance(ts, int):
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def message_json(hit: dict[str, Any]) -> dict[str, Any]:
    """One hit as `--json` gives it: :data:`JSON_FIELDS`, the chat's name as
    ``display_name`` (as in the chats index) and ``time`` in ISO 8601, UTC."""
    values = {**hit, "display_name": hit.get("chat_name"), "time": iso(hit.get("timestamp"))}
    return {k: values.get(k) for k in JSON_FIELDS}


@dataclass
class MessageSearchResult:
    query: str
    index: str
    filter: list[str]
    total: int
    limit: int
    offset: int
    processing_ms: int
    hits: list[dict[str, Any]] = field(default_factory=list)
    total_exact: bool = True

    def count_text(self) -> str:
        """ "12 messages", or "~1,000 messages (estimate)"."""
        if self.total_exact:
            return f"{self.total:,} message{'s' * (self.total != 1)}"
        return f"~{self.total:,} messages (estimate)"

    def to_json(self) -> dict[str, Any]:
        """The stable machine output of `explorer search --messages --json`."""
        return {
            "query": self.query,
            "index": self.index,
            "filter": self.filter,
            "total": self.total,
            "total_exact": self.total_exact,
            "limit": self.limit,
            "offset": self.offset,
            "hits": [message_json(hit) for hit in self.hits],
        }


class MessageSearcher:
    """Searches of one chats index's messages, with a key that may only search both."""

    def __init__(self, settings: MeiliSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.index = messages_index(settings.index)
        self.chats = Searcher(settings, timeout=timeout)
        self._meili = Meili(settings, request_timeout=timeout, need=SEARCH_NEED)

    def __enter__(self) -> MessageSearcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.chats.close()

    # -- names people use -> what the messages index holds --------------------------------

    def instance_ids(self, name: str) -> tuple[str, ...]:
        """The ids of the instance(s) ``name`` names (an id or a label); QueryError naming
        the known ones otherwise."""
        known = self.chats.known_instances()
        if name in known:
            return (name,)
        ids = tuple(sorted(i for i, label in known.items() if label == name))
        if not ids:
            self.chats.check_instance(name)  # raises, listing the known instances
        return ids

    def chat_jids(self, text: str) -> tuple[str, ...]:
        """The chats ``text`` names: a JID in any spelling (a LID finds the chat its
        number was resolved to) or a phone number in any form, looked up in the chats index;
        QueryError when it is neither, or names no chat."""
        text = text.strip()
        if "@" in text:
            try:
                jid, _ = normalize_jid(text)
            except MalformedChat as exc:
                raise QueryError("chat", str(exc)) from None
            user = jid.partition("@")[0]
            body = search_body(jid, on=["jid", "lid"], limit=20, fields=["jid", "lid"])
            found = [h["jid"] for h in self._chats(body) if jid == h.get("jid")
                     or h.get("lid") in (jid, user)]  # fmt: skip
            return tuple(sorted({jid, *found}))
        digits = phone_query(text)
        if digits is None:
            raise QueryError(
                "chat", f"must be a phone number or a JID (…@c.us, …@g.us, …@lid), got {text!r}"
            )
        national = digits.lstrip("0")
        body = search_body(text, phone=True, limit=50, fields=["jid", "phone_digits"])
        found = [
            h["jid"] for h in self._chats(body)
            if (phone := str(h.get("phone_digits") or ""))
            and (phone.endswith(digits) or (len(national) >= MIN_SUFFIX
                                           and phone.endswith(national)))
        ]  # fmt: skip
        international = text.lstrip().startswith(("+", "00"))
        if international and 8 <= len(digits) <= 15:
            found.append(f"{digits}@c.us")  # its messages, even if the chat is not listed
        if not found:
            raise QueryError(
                "chat",
                f"{text!r}: no chat with that phone number in index {self.settings.index!r} "
                "(type it with its country code, +20…, or give its JID)",
            )
        return tuple(sorted(set(found)))

    def _chats(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = self.chats.raw_search(body).get("hits", [])
        return hits

    # -- searching -------------------------------------------------------------------------

    def search(
        self,
        query: str = "",
        *,
        instance: str | None = None,
        chat: str | None = None,
        since: str | None = None,
        until: str | None = None,
        from_me: bool | None = None,
        chat_type: str | None = None,
        limit: int = 20,
        offset: int = 0,
        highlight: bool = True,
        labels: tuple[str, ...] = (),
    ) -> MessageSearchResult:
        """Messages matching ``query`` (best first, then newest), or with an empty query the
        newest messages the filters allow. ``highlight``: a cropped snippet of each body
        and its matches marked, in ``_formatted``."""
        if not 1 <= limit <= 1000:
            raise QueryError("limit", f"must be between 1 and 1000, got {limit}")
        if offset < 0:
            raise QueryError("offset", f"must be >= 0, got {offset}")
        filters = MessageFilters(
            instance_ids=self.instance_ids(instance) if instance is not None else (),
            jids=self.chat_jids(chat) if chat is not None else (),
            since=since, until=until, from_me=from_me, chat_type=chat_type, labels=tuple(labels),
        )  # fmt: skip
        expressions = filters.expressions()
        body = search_body(query, filter=expressions, limit=limit, offset=offset,
                           facets=["from_me"], fields=FIELDS,
                           sort=() if query else ["timestamp:desc"])  # fmt: skip
        # Every word must match (typos and a prefix for the last word allowed): "order 4411"
        # is that order, not every message that says "order".
        body["matchingStrategy"] = MATCHING
        if highlight:
            body.update(attributesToCrop=["body"], cropLength=CROP_WORDS, cropMarker="…")
            if query:
                body.update(attributesToHighlight=HIGHLIGHTED, highlightPreTag=HL_PRE,
                            highlightPostTag=HL_POST)  # fmt: skip
        data = self.raw_search(body)
        by_sender = (data.get("facetDistribution") or {}).get("from_me")
        exact = isinstance(by_sender, dict)
        total = sum(by_sender.values()) if isinstance(by_sender, dict) else 0
        if not exact:
            total = int(data.get("estimatedTotalHits", 0))
        return MessageSearchResult(
            query=query, index=self.index, filter=expressions, total=total, total_exact=exact,
            limit=limit, offset=offset, processing_ms=int(data.get("processingTimeMs", 0)),
            hits=list(data.get("hits", [])),
        )  # fmt: skip

    def raw_search(self, body: dict[str, Any]) -> dict[str, Any]:
        """Meilisearch's reply to one search of the messages index; a missing index is
        one line saying how to make it."""
        reply: dict[str, Any] | None = self._meili.unless_missing(
            lambda c: c.index(self.index).search(body["q"], body)
        )
        if reply is None:
            raise MeiliError(
                f"the messages index {self.index!r} does not exist yet: run `explorer reindex` "
                "with messages enabled"
            )
        return reply


def search_messages(
    query: str = "",
    *,
    config: Config | None = None,
    instance: str | None = None,
    chat: str | None = None,
    since: str | None = None,
    until: str | None = None,
    from_me: bool | None = None,
    limit: int = 20,
    offset: int = 0,
    labels: tuple[str, ...] = (),
) -> MessageSearchResult:
    """Search what was said, with the same filters as `explorer search --messages`.

    ``chat``: a phone number in any form or a JID; ``since``/``until``: a date
    (``2026-11-01``, whole days, UTC) or an ISO datetime; ``from_me``: True for what the
    business sent, False for what it received. Hits carry the body whole (no markers).

    >>> from explorer import search_messages
    >>> search_messages("order 4411", since="2026-11-01").hits[0]["chat_name"]
    """
    cfg = config or load_config()
    require_messages(cfg)
    with MessageSearcher(cfg.meilisearch) as searcher:
        return searcher.search(
            query, instance=instance, chat=chat, since=since, until=until, from_me=from_me,
            limit=limit, offset=offset, highlight=False, labels=tuple(labels),
        )  # fmt: skip
