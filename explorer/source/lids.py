"""LIDs: the privacy ids WhatsApp shows instead of phone numbers, and who is behind them.

A LID (``176369157804064@lid``) hides a person's number. Wawp (WAHA underneath) knows
some of them: ``GET /v2/lids`` lists the instance's known ``{"lid", "pn"}`` pairs,
``/v2/lids/count`` counts them and ``/v2/lids/{lid}`` looks one up, with ``pn`` null
when the number is unknown. NOWEB chat objects may also carry ``pnJid`` beside a LID id
or ``lidJid`` beside a phone id. A mapping unknown today can be known tomorrow.

This module turns that into one rule used by reindex, sync and the webhook listener:
a person's identity is their phone JID when it is known, else their LID
(:func:`identity_of`, :func:`resolve`), and a person listed under both ids is one
chat (:func:`merge`). It knows nothing of Meilisearch.

An instance whose Wawp answers 404, 403 or 501 on ``/v2/lids`` has no map: it is
indexed as before, LID chats under their LID, and :attr:`LidMap.unavailable` says why.
A map that breaks while being read is, for a reindex, the part read so far
(:attr:`LidMap.incomplete` says what broke): the map only adds to what the chats say.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Final

from explorer.errors import WawpAuthError, WawpError, WawpNotFound, WawpRequestError
from explorer.records.chats import Chat, lid_jid, phone_jid, phone_of_jid
from explorer.records.labels import Label, sort_labels
from explorer.source.wawp import WawpClient

log = logging.getLogger("explorer.source.lids")

# Mappings are small (two JIDs), so a page holds many; a server that caps pages lower is
# detected from the count and followed.
PAGE_SIZE: Final = 1000
NO_MAP_STATUSES: Final = frozenset({403, 404, 405, 501})
HIDDEN_NUMBER: Final = "hidden number"


# -- the map ---------------------------------------------------------------------------


@dataclass
class LidMap:
    """One instance's known LID -> phone JID mappings (both in canonical form).

    ``unavailable`` is the reason the instance has no map (its Wawp does not serve
    ``/v2/lids``), None when the map was read; an unavailable map resolves nothing.
    ``incomplete`` is what broke while it was read, when only part of it was.
    """

    instance_id: str
    phones: dict[str, str] = field(default_factory=dict)  # "123@lid" -> "2012…@c.us"
    unavailable: str | None = None
    incomplete: str | None = None
    unknown: int = 0  # listed LIDs whose number Wawp does not know (pn null)
    _lids: dict[str, str] | None = field(default=None, repr=False)

    def add(self, lid: str, phone: str) -> None:
        self.phones[lid] = phone
        if self._lids is not None:
            self._lids[phone] = lid

    def phone_of(self, lid: str) -> str | None:
        """The phone JID behind ``lid`` (``123@lid``), if known."""
        return self.phones.get(lid)

    def lid_of(self, phone: str) -> str | None:
        """The LID of a phone JID (``2012…@c.us``), if known."""
        if self._lids is None:
            self._lids = {pn: lid for lid, pn in self.phones.items()}
        return self._lids.get(phone)

    def __len__(self) -> int:
        return len(self.phones)

    def __contains__(self, lid: object) -> bool:
        return lid in self.phones

    def update(self, pairs: Iterable[Any]) -> None:
        """Add the mappings among raw ``{"lid", "pn"}`` objects; others are counted or
        ignored (a map entry we cannot read is no reason to fail a crawl)."""
        for item in pairs:
            pair = parse_pair(item)
            if pair is None:
                continue
            lid, phone = pair
            if phone is None:
                self.unknown += 1
            else:
                self.add(lid, phone)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "phones": self.phones,
            "unavailable": self.unavailable,
            "incomplete": self.incomplete,
            "unknown": self.unknown,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LidMap:
        phones = data.get("phones")
        return cls(
            instance_id=str(data.get("instance_id", "")),
            phones={str(k): str(v) for k, v in phones.items()} if isinstance(phones, dict) else {},
            unavailable=data.get("unavailable"),
            incomplete=data.get("incomplete"),
            unknown=int(data.get("unknown", 0)),
        )


def parse_pair(item: Any) -> tuple[str, str | None] | None:
    """``(lid jid, phone jid or None)`` from one ``{"lid", "pn"}`` object, else None."""
    if not isinstance(item, dict):
        return None
    lid = lid_jid(item.get("lid"))
    if lid is None:
        return None
    return lid, phone_jid(item.get("pn"))


def _unavailable(exc: WawpError) -> bool:
    """Wawp does not serve the map here: not an error, the instance is indexed as before."""
    if isinstance(exc, WawpNotFound | WawpAuthError | WawpRequestError):
        return exc.status in NO_MAP_STATUSES
    return False


def read_lid_map(
    client: WawpClient,
    *,
    page_size: int = PAGE_SIZE,
    concurrency: int = 2,
    stop: threading.Event | None = None,
    partial: bool = False,
) -> LidMap:
    """Every mapping Wawp knows for the client's instance, through the client's retries
    and request budget (its :class:`~explorer.source.pace.Pace`).

    The first page says whether the instance has a map at all (404/403/501: an
    unavailable map, logged once, never raised). With the count, the remaining pages are
    fetched ``concurrency`` at a time; pages then continue one by one until a short one,
    so mappings added while reading are not cut off by a stale count. Other failures
    (retries exhausted, a body that is no list) raise as the chat crawl's would; with
    ``partial`` they end the map instead, which keeps what was read and says what broke
    in :attr:`LidMap.incomplete` (a reindex: a flaky map must not cost the night's index).
    """
    lids = LidMap(client.instance_id)
    try:
        first = client.lids_page(offset=0, limit=page_size, stop=stop)
    except WawpError as exc:
        if not _unavailable(exc):
            return _broken(lids, exc, partial)
        lids.unavailable = f"/v2/lids answered {exc.status}"
        # Info, not a warning: reindex and sync say it in their summary, once.
        log.info(
            "Wawp instance %s: LIDs cannot be resolved (%s); LID chats are indexed under their LID",
            client.instance_id,
            lids.unavailable,
        )
        return lids
    try:
        _read_rest(client, lids, first, page_size, concurrency, stop)
    except WawpError as exc:
        return _broken(lids, exc, partial)
    return lids


def _read_rest(
    client: WawpClient,
    lids: LidMap,
    first: list[Any],
    page_size: int,
    concurrency: int,
    stop: threading.Event | None,
) -> None:
    """The pages after the first, into ``lids``. A page that fails is raised once the
    pages fetched with it are in: a map that breaks keeps all it could read."""
    lids.update(first)
    if len(first) < page_size:
        count = _count(client) if first else None
        if count is None or count <= len(first):
            return
        page_size = len(first)  # the server caps pages: follow its size
        log.info("Wawp instance %s: /v2/lids caps pages at %d", client.instance_id, page_size)
    else:
        count = _count(client)
    offset = page_size
    if count is not None and count > offset:
        offsets = list(range(offset, count, page_size))
        with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="wawp-lids") as pool:
            futures = [
                pool.submit(client.lids_page, offset=o, limit=page_size, stop=stop) for o in offsets
            ]
        pages: list[list[Any]] = []
        failed: WawpError | None = None
        for future in futures:
            try:
                pages.append(future.result())
            except WawpError as exc:
                failed = failed or exc
                pages.append([])
        for page in pages:
            lids.update(page)
        if failed is not None:
            raise failed
        offset = offsets[-1] + page_size
        if len(pages[-1]) < page_size:
            return
    while True:
        page = client.lids_page(offset=offset, limit=page_size, stop=stop)
        lids.update(page)
        if len(page) < page_size:
            return
        offset += page_size


def _broken(lids: LidMap, exc: WawpError, partial: bool) -> LidMap:
    """A map that failed past its retries: raised, or with ``partial`` the part read."""
    if not partial:
        raise exc
    lids.incomplete = f"/v2/lids failed after {len(lids) + lids.unknown} mappings: {exc}"
    # Info, not a warning: the reindex says it in its summary, once.
    log.info("Wawp instance %s: the LID map is incomplete (%s)", lids.instance_id, lids.incomplete)
    return lids


def _count(client: WawpClient) -> int | None:
    """``/v2/lids/count``, or None when the server does not say (the pages still tell)."""
    try:
        return client.lids_count()
    except WawpError as exc:
        if not _unavailable(exc):
            raise
        return None


def lookup_lid(client: WawpClient, lid: str) -> str | None:
    """The phone JID behind one LID (``GET /v2/lids/{lid}``), None when Wawp does not know
    it or serves no map. For a LID met between reindexes (a webhook), not for crawls."""
    canonical = lid_jid(lid)
    if canonical is None:
        raise ValueError(f"not a LID: {lid!r}")
    try:
        body = client.lid(canonical)
    except WawpError as exc:
        if _unavailable(exc):
            return None
        raise
    pair = parse_pair(body)
    return pair[1] if pair is not None and pair[0] == canonical else None


# -- identities ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a chat is: ``jid`` is its phone JID when known, else the JID it was listed
    under (its LID); ``lid`` and ``phone`` are whatever is known of the two."""

    jid: str
    phone: str | None  # phone JID (…@c.us)
    lid: str | None  # LID JID (…@lid)

    @property
    def hidden(self) -> bool:
        """A LID whose number nobody knows (yet)."""
        return self.phone is None and self.lid is not None


def identity_of(
    jid: str,
    lids: LidMap | None = None,
    *,
    pn_jid: str | None = None,
    lid: str | None = None,
) -> Identity:
    """The identity of a chat listed under ``jid`` (canonical: ``@c.us``, ``@lid``, …),
    with ``pn_jid`` / ``lid`` hints from the chat object itself (NOWEB's ``pnJid`` and
    ``lidJid``), and the instance's map. Non-person JIDs (groups, channels) are their own
    identity."""
    if jid.endswith("@lid"):
        own_lid = lid_jid(jid) or jid
        phone = phone_jid(pn_jid) or (lids.phone_of(own_lid) if lids else None)
        return Identity(phone or own_lid, phone, own_lid)
    if jid.endswith("@c.us"):
        own = phone_jid(jid)
        known_lid = lid_jid(lid) or (lids.lid_of(jid) if lids else None)
        return Identity(jid, own, known_lid)
    return Identity(jid, None, None)


def resolve(chat: Chat, lids: LidMap | None) -> Chat:
    """``chat`` under its identity: a LID chat whose number is known becomes its phone
    JID's chat (``phone`` set, ``lid`` kept); a phone chat learns its LID. A chat with
    both ids gets its listing recorded (:attr:`Chat.listings`), for :func:`merge`.
    Unchanged when nothing is known."""
    if chat.chat_type != "individual":
        return chat
    hint_lid = f"{chat.lid}@lid" if chat.lid else None
    pn = None
    if chat.jid.endswith("@lid") and chat.phone:
        pn = chat.phone[1:] + "@c.us"  # from the chat object's own pnJid
    who = identity_of(chat.jid, lids, pn_jid=pn, lid=hint_lid)
    phone = phone_of_jid(who.phone) if who.phone else chat.phone
    lid = who.lid.partition("@")[0] if who.lid else chat.lid
    if not (phone and lid):
        return chat
    listings = chat.listings or ((chat.jid, chat.last_activity, chat.unread_count),)
    return replace(chat, jid=who.jid, phone=phone, lid=lid, listings=listings)


def hidden(chat: Chat) -> bool:
    """A person whose number is hidden behind a LID nobody resolved."""
    return chat.phone is None and chat.jid.endswith("@lid")


def merge(a: Chat, b: Chat) -> Chat:
    """One chat for one person listed twice (under a LID and under a phone JID): the
    latest activity, the unread counts added up, the best name, both ids. A listing met
    again (a later sync) replaces its earlier self instead of counting twice."""
    newer, older = (a, b) if (a.last_activity or 0) >= (b.last_activity or 0) else (b, a)
    by_jid = {jid: (ts, unread) for jid, ts, unread in (a.listings or ())}
    by_jid.update({jid: (ts, unread) for jid, ts, unread in (b.listings or ())})
    listings = tuple((jid, ts, unread) for jid, (ts, unread) in sorted(by_jid.items()))
    stamps = [ts for _, ts, _ in listings if ts is not None]
    counts = [u for _, _, u in listings if u is not None]
    return replace(
        newer,
        jid=a.jid if a.phone else b.jid,
        phone=a.phone or b.phone,
        lid=a.lid or b.lid,
        name=best_name(newer.name, older.name),
        username=newer.username or older.username,
        last_activity=max(stamps) if stamps else None,
        archived=_first(newer.archived, older.archived),
        pinned=True if a.pinned or b.pinned else _first(newer.pinned, older.pinned),
        muted=_first(newer.muted, older.muted),
        unread_count=sum(counts) if counts else None,
        listings=listings or None,
        labels=merge_labels(a.labels, b.labels),
    )


def merge_labels(
    a: tuple[Label, ...] | None, b: tuple[Label, ...] | None
) -> tuple[Label, ...] | None:
    """A person's labels under both ids: each label once (None: neither half knew)."""
    if a is None and b is None:
        return None
    return sort_labels((*(a or ()), *(b or ())))


def best_name(*names: str | None) -> str | None:
    """The first name that holds a letter (a saved or pushed name), else the first name
    at all: WEBJS names a chat without a contact by its formatted number."""
    for name in names:
        if name and any(ch.isalpha() for ch in name):
            return name
    return next((n for n in names if n), None)


def _first(*values: bool | None) -> bool | None:
    return next((v for v in values if v is not None), None)


# -- merging a stream --------------------------------------------------------------------


Written = Callable[[list[str]], dict[str, Chat | None]]
"""The chats already handed on under some phone JIDs: jid -> its chat, or None when a
document exists but its content is not at hand (a dry run keeps only fingerprints)."""


@dataclass
class Merger:
    """Pairs within one instance's crawl, whatever order they come in.

    Only people whose LID and phone are both known can be listed twice, so only those are
    remembered (by identity), and only while their other half can still come: the crawl
    goes through the ids in order (``direction``), so a half whose partner's id is
    already behind it has nothing to wait for, and a merged person is complete. The rest
    pass straight through. :meth:`take` returns what to write now: the chat itself the
    first time, the merged chat when its other half comes (written again under the same
    document id, it replaces the first).

    NOWEB's ``pnJid`` can name a LID chat's number where the map does not (no map, a map
    that broke, a mapping not listed). Its phone chat then knows no LID of its own and
    cannot be told from anyone else's: a remembered half merges with it when it comes
    later (:meth:`take`), and a LID chat whose phone half may have gone by already is
    *parked*: written under its LID, then settled once the crawl is over (:meth:`settle`)
    into the phone chat's document, if one was written, and its LID document dropped
    (:attr:`stale`).
    """

    seen: dict[str, Chat] = field(default_factory=dict)
    parked: dict[str, Chat] = field(default_factory=dict)  # phone identity -> LID half
    stale: list[str] = field(default_factory=list)  # LID JIDs of parked documents to drop
    lid_chats: int = 0  # chats listed under a LID
    resolved: int = 0  # ...of which the number is known
    merged: int = 0  # people listed under both ids, now one chat

    def take(self, chat: Chat, lids: LidMap | None, direction: int = 0) -> Chat:
        """``direction``: +1 or -1 as the crawl walks the ids, 0 when unknown."""
        if chat.jid.endswith("@lid"):
            self.lid_chats += 1
        chat = resolve(chat, lids)
        if not chat.listings:
            return self._plain(chat)
        listed = chat.listings[0][0]
        if chat.phone and listed.endswith("@lid"):
            self.resolved += 1
        known = self._partner(chat.jid)
        if known is not None:
            return self._merge(known, chat)  # both halves seen: nothing more to wait for
        if direction and not _ahead(chat, listed, direction):
            if listed.endswith("@lid") and (lids is None or lids.lid_of(chat.jid) is None):
                self.parked[chat.jid] = chat  # its phone half, if any, knew no LID
                return replace(chat, jid=listed)
            return chat
        self.seen[chat.jid] = chat
        return chat

    def _plain(self, chat: Chat) -> Chat:
        """A chat that knows no other id of its own: maybe the phone half of a person
        whose LID chat named this number."""
        if chat.chat_type != "individual" or not (self.seen or self.parked):
            return chat
        known = self._partner(chat.jid)
        if known is None:
            return chat
        own = ((chat.jid, chat.last_activity, chat.unread_count),)
        return self._merge(known, replace(chat, listings=own))

    def _partner(self, jid: str) -> Chat | None:
        """The remembered or parked half of the person ``jid``, no longer waiting."""
        known = self.seen.pop(jid, None)
        if known is None:
            known = self.parked.pop(jid, None)
            if known is not None and known.listings:
                self.stale.append(known.listings[0][0])
        return known

    def _merge(self, known: Chat, chat: Chat) -> Chat:
        before = len(known.listings or ())
        chat = merge(known, chat)
        self.merged += len(chat.listings or ()) > before
        return chat

    def settle(self, written: Written | None) -> list[Chat]:
        """The parked chats under their phone identity, each merged into the phone chat
        handed on before it (``written``), if there was one; their LID documents go
        (:attr:`stale`). Without ``written`` (nothing to look in) they go on alone."""
        if not self.parked:
            return []
        parked = sorted(self.parked.items())
        self.parked = {}
        found = written([jid for jid, _ in parked]) if written is not None else {}
        out = []
        for jid, chat in parked:
            lid = chat.listings[0][0] if chat.listings else jid
            self.stale.append(lid)
            if jid in found:
                other = found[jid]
                if other is None:  # written, content not at hand: counted, not merged
                    self.merged += 1
                else:
                    # A run settled before a resume wrote this person already: only a
                    # listing of the phone's own makes it a pair.
                    own = other.listings or ((jid, other.last_activity, other.unread_count),)
                    self.merged += any(j != lid for j, _, _ in own)
                    chat = merge(replace(other, listings=own), chat)
            out.append(chat)
        return out

    def remember(self, chat: Chat) -> None:
        """A half written before a resume, which its later other half must merge into
        (or, parked under its LID, that must be settled)."""
        if not chat.listings or len(chat.listings) != 1:
            return
        if chat.jid.endswith("@lid") and chat.phone:
            jid = chat.phone[1:] + "@c.us"
            self.parked[jid] = replace(chat, jid=jid)
        else:
            self.seen[chat.jid] = chat


def _ahead(chat: Chat, listed: str, direction: int) -> bool:
    """Whether the other id of a person listed under ``listed`` comes later in a crawl
    through the raw ids (NOWEB spells phone JIDs ``@s.whatsapp.net``)."""
    server = "s.whatsapp.net" if chat.engine_shape == "noweb" else "c.us"
    phone = f"{chat.jid.partition('@')[0]}@{server}"
    other, own = (phone, listed) if listed.endswith("@lid") else (f"{chat.lid}@lid", phone)
    return other > own if direction > 0 else other < own
