"""The instance's WhatsApp Business labels and the chats carrying each, read from Wawp.

``GET /v2/labels`` lists the labels; ``GET /v2/labels/chats?labelId=ID`` the chats of one
as ``[{id}]``, where the id may be the person's LID (WAHA resolves some labels only under
``@lid``, waha#1647). :meth:`LabelMap.labels_of` gives a chat its labels under any id it
is known by, its LID resolved through the instance's LID map as everywhere else.

An instance whose Wawp answers 404, 403, 405 or 501 on ``/v2/labels`` has no labels:
indexed as before, and :attr:`LabelMap.unavailable` says why. Labels that break while
being read (retries exhausted) are, for a reindex, what was read
(:attr:`LabelMap.incomplete` says what broke): a nightly run must complete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import WawpAuthError, WawpError, WawpNotFound, WawpRequestError
from explorer.records.chats import Chat, MalformedChat, lid_jid, normalize_jid, raw_id
from explorer.records.labels import Label, parse_label, sort_labels
from explorer.source.lids import NO_MAP_STATUSES, LidMap
from explorer.source.wawp import WawpClient

log = logging.getLogger("explorer.source.labels")


@dataclass
class LabelMap:
    """One instance's labels (by id) and the canonical JIDs of the chats carrying each."""

    instance_id: str
    labels: dict[str, Label] = field(default_factory=dict)
    chats: dict[str, list[str]] = field(default_factory=dict)  # label id -> chat JIDs
    unavailable: str | None = None
    incomplete: str | None = None
    _by_jid: dict[str, set[str]] | None = field(default=None, repr=False)

    def index(self, lids: LidMap | None) -> None:
        """Index the chats by JID, a LID also under the phone JID the map gives it."""
        by_jid: dict[str, set[str]] = {}
        for label_id, jids in self.chats.items():
            for jid in jids:
                by_jid.setdefault(jid, set()).add(label_id)
                phone = lids.phone_of(jid) if lids is not None and jid.endswith("@lid") else None
                if phone:
                    by_jid.setdefault(phone, set()).add(label_id)
        self._by_jid = by_jid

    def labels_of(self, chat: Chat) -> tuple[Label, ...] | None:
        """The labels of ``chat`` under its JID, its LID or any id it was listed under;
        None when the instance has no labels to give (:attr:`unavailable`)."""
        if self.unavailable is not None:
            return None
        if self._by_jid is None:
            self.index(None)
        assert self._by_jid is not None
        jids = {chat.jid, *(j for j, _, _ in chat.listings or ())}
        if chat.lid:
            jids.add(f"{chat.lid}@lid")
        ids: set[str] = set()
        for jid in jids:
            ids |= self._by_jid.get(jid, set())
        return sort_labels(self.labels.get(i) or Label(i) for i in ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "labels": [label.to_json() for label in self.labels.values()],
            "chats": self.chats,
            "unavailable": self.unavailable,
            "incomplete": self.incomplete,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelMap:
        labels = [Label.from_json(x) for x in data.get("labels") or []]
        chats = data.get("chats")
        return cls(
            instance_id=str(data.get("instance_id", "")),
            labels={lb.id: lb for lb in labels if lb is not None},
            chats={str(k): [str(j) for j in v] for k, v in chats.items()}
            if isinstance(chats, dict)
            else {},
            unavailable=data.get("unavailable"),
            incomplete=data.get("incomplete"),
        )


def chat_jid(item: Any) -> str | None:
    """The canonical JID of one ``/v2/labels/chats`` item (``{id}``, an object id, or a
    bare string), else None."""
    value = raw_id(item) if isinstance(item, dict) else item
    if not isinstance(value, str):
        return None
    if value.endswith("@lid"):
        return lid_jid(value)
    try:
        return normalize_jid(value)[0]
    except MalformedChat:
        return None


def _unavailable(exc: WawpError) -> bool:
    if isinstance(exc, WawpNotFound | WawpAuthError | WawpRequestError):
        return exc.status in NO_MAP_STATUSES
    return False


def read_labels(
    client: WawpClient,
    *,
    concurrency: int = 2,
    stop: threading.Event | None = None,
    partial: bool = False,
) -> LabelMap:
    """The instance's labels and their chats, through the client's retries and request
    budget. ``/v2/labels`` answering 404/403/405/501: no labels (logged once, never
    raised). Other failures raise; with ``partial`` they end the reading instead, keeping
    what was read and saying what broke in :attr:`LabelMap.incomplete`."""
    found = LabelMap(client.instance_id)
    try:
        raw = client.labels(stop=stop)
    except WawpError as exc:
        if _unavailable(exc):
            found.unavailable = f"/v2/labels answered {exc.status}"
            log.info("Wawp instance %s: no labels (%s); indexed without them",
                     client.instance_id, found.unavailable)  # fmt: skip
            return found
        return _broken(found, "/v2/labels", exc, partial)
    labels = [lb for lb in map(parse_label, raw) if lb is not None]
    skipped = len(raw) - len(labels)
    if skipped:
        log.info("Wawp instance %s: %d labels without an id skipped", client.instance_id, skipped)
    found.labels = {lb.id: lb for lb in labels}
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="wawp-labels") as pool:
        futures = [(lb.id, pool.submit(client.label_chats, lb.id, stop)) for lb in labels]
    failed: tuple[str, WawpError] | None = None
    for label_id, future in futures:
        try:
            found.chats[label_id] = sorted(_jids(future.result()))
        except WawpError as exc:
            failed = failed or (label_id, exc)
    if failed is not None:
        return _broken(found, f"/v2/labels/chats?labelId={failed[0]}", failed[1], partial)
    return found


def _jids(items: Iterable[Any]) -> set[str]:
    return {jid for jid in map(chat_jid, items) if jid is not None}


def _broken(found: LabelMap, where: str, exc: WawpError, partial: bool) -> LabelMap:
    if not partial:
        raise exc
    read = sum(len(v) for v in found.chats.values())
    found.incomplete = f"{where} failed after {read} labelled chats: {exc}"
    log.info("Wawp instance %s: the labels are incomplete (%s)", found.instance_id,
             found.incomplete)  # fmt: skip
    return found
