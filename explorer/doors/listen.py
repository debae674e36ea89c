"""`explorer listen`: Wawp's webhooks applied to the live index within seconds.

A request is answered 2xx only once its event is in the journal (:mod:`explorer.jobs.journal`);
an applier thread then takes what gathered since its last write, merges the updates per
chat (:mod:`explorer.records.events`), reads those chats' current documents, and sends one
partial update for the lot. A few writes may be in flight while Meilisearch indexes; the
events of each leave the journal only once Meilisearch has applied it. Meilisearch down:
the queue grows (bounded: past it, 503 so the sender retries) and drains when it is back.
A crash replays what was queued.

With messages on (``messages.enabled``), the same write carries what the events ask of
the messages index (:func:`explorer.records.messages.messages_index`): ``message.any``
adds the message, ``message.edited`` gives it its new body unless a newer edit is there,
``message.revoked`` removes it (and a tombstone in the journal keeps a late copy or edit
from bringing it back). A message carries its chat's labels (a scoped tenant token filters
messages by them): a new one those of its chat once the same write is applied, and a write
that changes a chat's labels gives them to the chat's messages too. Nothing older than the
retention window is written, and nobody `explorer forget` recorded
(:mod:`explorer.jobs.forget`, read again when it changes). Message text stays in the
journal only until its event is applied.

Polling stays the safety net: there is no event for a contact renamed or a chat deleted,
and events can be missed while a session is down, so `session.status` back to WORKING
starts a catch-up sync of that instance, and the nightly reindex remains the source of
truth. A reindex builds its index from a crawl that started before the swap; what listen
wrote since then is written again after the swap (the journal's ``touched`` table), as
sync re-applies what it wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from explorer.config import Config, Instance
from explorer.doors.metrics import new_registry, routes
from explorer.errors import ConfigError, ExplorerError, MeiliError, MeiliRefused, MeiliTaskFailed
from explorer.jobs.forget import Watch as ForgottenWatch
from explorer.jobs.forget import learn_lid
from explorer.jobs.journal import Journal, Queued, journal_path
from explorer.jobs.reindex import last_report
from explorer.jobs.state import read_json, state_dir
from explorer.meili.client import IndexStore
from explorer.records.chats import MalformedChat, normalize_chat
from explorer.records.documents import doc_id, to_document
from explorer.records.events import (
    APPLIED,
    BadEvent,
    Event,
    LabelChange,
    MessageOp,
    Update,
    check_fresh,
    envelope_of,
    event_id,
    metric_kind,
    read_event,
    slim,
)
from explorer.records.filters import instance_id_is, label_id_is, quote
from explorer.records.labels import Label, label_fields, labels_of_document, sort_labels
from explorer.records.messages import (
    MESSAGE_INDEX_SETTINGS,
    message_doc_id,
    messages_index,
    to_message_document,
)
from explorer.secrets import redact

log = logging.getLogger("explorer.doors.listen")

WINDOW = 0.1  # seconds between writes at least: what arrives meanwhile is one write
BATCH = 5000  # events per write at most
MAX_FLIGHTS = 4  # writes sent and not yet applied
RETAIN = 3600.0  # seconds what listen wrote is kept for re-applying after a swap (at least)
LID_SEARCHES = 200  # LIDs of one batch looked for in the index at most (one multi-search)
MARGIN = 300  # as sync: a build's crawl may miss what happened shortly before it started
POLL = 0.025  # seconds between looks at a write Meilisearch is applying
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_FIELDS = ["id", "last_activity", "name", "archived", "unread_count", "crawled_at", "engine_shape",
           "label_details", "display_name"]  # fmt: skip
LABEL_LOOKUP_EVERY = 60.0  # seconds between two reads of one instance's /v2/labels
RELABEL_CHATS = 100  # chats per filter when their messages get new labels


class InsecureListen(ConfigError):
    """A non-loopback address without a key or secret, and no --insecure-no-signature."""


def check_exposure(cfg: Config, host: str, insecure: bool) -> None:
    hooks = cfg.webhooks
    if host in LOOPBACK or hooks.hmac_key or hooks.secret or insecure:
        return
    raise InsecureListen(
        f"refusing to listen on {host} without a signature key: set webhooks.hmac_key "
        "(or EXPLORER_WEBHOOK_HMAC_KEY) or webhooks.secret, or pass --insecure-no-signature"
    )


class ListenMetrics:
    """What listen exports on /metrics, besides the state every server exports."""

    def __init__(self, cfg: Config, journal: Journal) -> None:
        self.registry = new_registry(cfg)
        r = self.registry
        self.received = Counter(
            "explorer_webhook_events_received",
            "Events accepted into the journal.",
            ["event"],
            registry=r,
        )
        self.rejected = Counter(
            "explorer_webhook_requests_rejected",
            "Requests refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "explorer_webhook_events_duplicate", "Events already accepted once.", registry=r
        )
        self.applied = Counter(
            "explorer_webhook_events_applied", "Events applied to the index.", ["event"], registry=r
        )
        self.ignored = Counter(
            "explorer_webhook_events_ignored", "Events counted and ignored.", ["event"], registry=r
        )
        self.writes = Counter(
            "explorer_webhook_index_writes", "Partial-update batches written.", registry=r
        )
        self.messages = Counter(
            "explorer_webhook_messages_written",
            "Message documents written (new or edited) and removed (revoked).",
            ["change"],
            registry=r,
        )
        self.messages_skipped = Counter(
            "explorer_webhook_messages_skipped",
            "Messages not written, by reason (malformed, expired, stale, revoked, forgotten).",
            ["reason"],
            registry=r,
        )
        self.catch_ups = Counter(
            "explorer_webhook_catch_up_syncs", "Catch-up syncs started.", registry=r
        )
        self.label_unknown_chats = Counter(
            "explorer_webhook_label_unknown_chats",
            "Label changes for chats the index does not hold (skipped: the next reindex "
            "reads every chat's labels).",
            registry=r,
        )
        self.latency = Histogram(
            "explorer_webhook_apply_latency_seconds",
            "From an event accepted to its change applied in Meilisearch.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        depth = Gauge("explorer_webhook_queue_depth", "Events waiting in the journal.", registry=r)
        depth.set_function(lambda: journal.depth)
        dead = Gauge(
            "explorer_webhook_dead_letters",
            "Events set aside because Meilisearch refused them (`explorer dead-letters`).",
            registry=r,
        )
        dead.set_function(journal.dead_count)
        self.meili_up = Gauge(
            "explorer_webhook_meilisearch_up", "1 while writes succeed.", registry=r
        )
        self.meili_up.set(1)


# Found: (instance id, LID JID, phone JID), called from the lookup thread.
OnFound = Callable[[str, str, str], None]


class WawpLids:
    """LIDs met in events, resolved one by one with ``/v2/lids/{lid}``
    (:func:`explorer.source.lids.lookup_lid`) and remembered: an answer for a day, "unknown"
    (or no answer) for ten minutes, since a mapping can appear later.

    Never on the applier's path: a LID not known yet answers None at once (the event is
    applied under the LID) and is looked up by a thread of its own; ``on_found`` then moves
    what was written under the LID to the phone number, as sync does."""

    def __init__(self, cfg: Config, on_found: OnFound | None = None, limit: int = 100_000) -> None:
        self.cfg = cfg
        self.limit = limit
        self.on_found = on_found
        self._known: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._clients: dict[str, Any] = {}
        self._asked: set[tuple[str, str]] = set()
        self._pending: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=limit)
        self._thread: threading.Thread | None = None

    def cached(self, instance_id: str, lid: str) -> str | None:
        """The phone JID if it is known now; never asks Wawp."""
        hit = self._known.get((instance_id, lid))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def __call__(self, instance_id: str, lid: str) -> str | None:
        """:meth:`cached`; a LID not known (or whose answer expired) is looked up later."""
        key = (instance_id, lid)
        hit = self._known.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        if key not in self._asked:
            try:
                self._pending.put_nowait(key)
            except queue.Full:  # looked up when one of its later events comes
                return None
            self._asked.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="lids", daemon=True)
                self._thread.start()
        return None

    def _work(self) -> None:
        while (key := self._pending.get()) is not None:
            try:
                phone = self.lookup(*key)
                if phone and self.on_found is not None:
                    self.on_found(key[0], key[1], phone)
            except Exception:  # a bug here must not end every later lookup
                log.exception("looking up a LID failed")
            finally:
                self._asked.discard(key)

    def remember(self, instance_id: str, lid: str, phone: str | None) -> None:
        """The number behind ``lid`` (from Wawp or the index), kept for a day; "unknown"
        for ten minutes, since a mapping can appear later."""
        if len(self._known) >= self.limit:
            self._known.clear()
        self._known[(instance_id, lid)] = (time.monotonic() + (86_400 if phone else 600), phone)

    def lookup(self, instance_id: str, lid: str) -> str | None:
        """Ask Wawp (with its retries) and remember the answer."""
        from explorer.source.lids import lookup_lid

        phone: str | None = None
        try:
            phone = lookup_lid(self._client(instance_id), lid)
        except (ExplorerError, ValueError) as exc:
            log.debug("LID %s of %s not resolved: %s", lid, instance_id, exc)
        self.remember(instance_id, lid, phone)
        return phone

    def close(self) -> None:
        if self._thread is not None:
            while True:  # what is still waiting is looked up again after a restart
                try:
                    self._pending.get_nowait()
                except queue.Empty:
                    break
            self._pending.put(None)
            self._thread.join(timeout=15)
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, instance_id: str) -> Any:
        from explorer.source.crawl import open_client
        from explorer.source.wawp import RetryPolicy

        client = self._clients.get(instance_id)
        if client is None:
            inst = next(i for i in self.cfg.wawp.instances if i.id == instance_id)
            client = open_client(self.cfg, inst, timeout=5, retry=RetryPolicy(10))
            self._clients[instance_id] = client
        return client


class LabelCatalog:
    """Each instance's label names, as the newest word on them says: a ``label.upsert`` or
    ``label.deleted`` event, the label a ``label.chat.added`` carries, a document already
    carrying the label, or ``/v2/labels`` read when an event names a label none of these
    knows (on a thread of its own, at most every :data:`LABEL_LOOKUP_EVERY` seconds per
    instance; ``on_learnt`` then writes the name on the chats carrying the label)."""

    def __init__(self, cfg: Config, on_learnt: Callable[[str, str], None] | None = None) -> None:
        self.cfg = cfg
        self.on_learnt = on_learnt
        self._known: dict[tuple[str, str], tuple[Label, bool, int]] = {}  # label, deleted, at
        self._asked: dict[str, float] = {}
        self._lock = threading.Lock()

    def learn(self, change: LabelChange) -> bool:
        """Take a change unless an equally new word is known; whether anything changed."""
        key = (change.instance_id, change.label.id)
        with self._lock:
            have = self._known.get(key)
            if have is not None and have[2] > change.at:
                return False
            self._known[key] = (change.label, change.deleted, change.at)
            return have is None or have[:2] != (change.label, change.deleted)

    def get(self, instance_id: str, label_id: str) -> tuple[Label, bool, int] | None:
        return self._known.get((instance_id, label_id))

    def ask_wawp(self, instance_id: str) -> None:
        """Read the instance's labels from Wawp soon, unless asked lately."""
        now = time.monotonic()
        with self._lock:
            if now - self._asked.get(instance_id, -LABEL_LOOKUP_EVERY) < LABEL_LOOKUP_EVERY:
                return
            self._asked[instance_id] = now
        threading.Thread(target=self._read, args=(instance_id,), daemon=True,
                         name="labels").start()  # fmt: skip

    def _read(self, instance_id: str) -> None:
        from explorer.records.labels import parse_label
        from explorer.source.crawl import open_client
        from explorer.source.wawp import RetryPolicy

        inst = next((i for i in self.cfg.wawp.instances if i.id == instance_id), None)
        if inst is None:
            return
        try:
            with open_client(self.cfg, inst, timeout=5, retry=RetryPolicy(10)) as client:
                raw = client.labels()
        except ExplorerError as exc:
            log.info("labels of %s not read: %s", instance_id, exc)
            return
        at = int(time.time())
        for label in filter(None, map(parse_label, raw)):
            if self.get(instance_id, label.id) is not None:
                continue  # an event named it meanwhile: its word is newer
            learnt = self.learn(LabelChange(instance_id, label, False, at - MARGIN))
            if learnt and self.on_learnt is not None:
                self.on_learnt(instance_id, label.id)


class Sessions:
    """Which configured instance an envelope's ``session`` names: its id, or the session
    name ``/v2/session/info`` reports for it (learnt at start, and again when an unknown
    name shows up, at most every ``refresh_every`` seconds)."""

    def __init__(self, cfg: Config, refresh_every: float = 30.0) -> None:
        self.cfg = cfg
        self.names = {inst.id: inst.id for inst in cfg.wawp.instances}
        self.refresh_every = refresh_every
        self._last = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        from explorer.source.crawl import open_client
        from explorer.source.wawp import RetryPolicy

        self._last = time.monotonic()
        for inst in self.cfg.wawp.instances:
            try:
                with open_client(self.cfg, inst, timeout=5, retry=RetryPolicy(5)) as client:
                    name = client.session_info().get("name")
            except ExplorerError as exc:
                log.warning("session name of %s unknown: %s", inst.id, exc)
                continue
            if isinstance(name, str) and name:
                self.names[name] = inst.id

    def instance(self, session: str) -> str | None:
        found = self.names.get(session)
        if found is None and time.monotonic() - self._last > self.refresh_every:
            with self._lock:
                if time.monotonic() - self._last > self.refresh_every:
                    threading.Thread(target=self.refresh, daemon=True).start()
                    self._last = time.monotonic()
        return found


def _verify(body: bytes, headers: Any, key: str) -> tuple[str, str] | None:
    """None when ``body`` carries a valid WAHA signature; else (reason, detail)."""
    given = headers.get("x-webhook-hmac")
    if not given:
        return "missing_signature", "no X-Webhook-Hmac header"
    algorithm = (headers.get("x-webhook-hmac-algorithm") or "sha512").lower()
    if algorithm != "sha512":
        return "bad_algorithm", f"unsupported signature algorithm {algorithm[:20]!r}"
    expected = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    # As bytes: a header holding non-ASCII text is a wrong signature, not a TypeError.
    if hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        return None
    return "bad_signature", "the signature does not match the body"


def _is_json(content_type: str | None) -> bool:
    """``application/json`` (any parameters): a browser cannot send it cross-origin without
    a preflight this receiver never answers, so a web page cannot post events."""
    return (content_type or "").partition(";")[0].strip().lower() == "application/json"


@dataclass
class _Flight:
    """A write sent to Meilisearch: its events (dropped from the journal once applied; a
    reason in place of the event for one that could not be read back) and the merged
    update per chat it wrote (kept for re-applying after a swap)."""

    events: list[tuple[Queued, Event | str]]
    touched: list[tuple[str, str]]
    tasks: list[int] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # doc id: why Meilisearch refused it
    moves: list[tuple[str, str, str]] = field(default_factory=list)  # LIDs it moves
    messages: list[str] = field(default_factory=list)  # message documents it writes
    revoked: list[str] = field(default_factory=list)  # ... and removes
    edited: list[str] = field(default_factory=list)  # ... and edits
    pending: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # ... what each is
    skipped: dict[str, int] = field(default_factory=dict)  # messages not written, by reason


class Listener:
    """The receiver (a Starlette app), the journal and the applier thread."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.journal = Journal(journal_path(cfg), max_queue=cfg.webhooks.max_queue)
        self.metrics = ListenMetrics(cfg, self.journal)
        self.sessions = Sessions(cfg)
        self.resolve = WawpLids(cfg, on_found=self._found)
        self._moves: deque[tuple[str, str, str]] = deque()  # LIDs resolved since: to move
        self.catalog = LabelCatalog(cfg, on_learnt=self._learnt)
        self._relabels: deque[tuple[str, str]] = deque()  # labels named since: to write
        # For /healthz, kept here (read in _maintain): a count under the journal's lock
        # could wait on another process's write, and /healthz answers on the event loop.
        self.dead_letters = self.journal.dead_count()
        self.last_dead: dict[str, Any] | None = None
        self.labels = {inst.id: inst.label for inst in cfg.wawp.instances}
        self.store = IndexStore(cfg.meilisearch, timeout=120)
        self.messages_on = cfg.messages.enabled
        self.messages_uid = messages_index(cfg.meilisearch.index)
        self.forgotten = ForgottenWatch(cfg, every=0.0)  # one stat() per look: no lag
        # Message documents in writes not applied yet (None: being removed).
        self._msg_overlay: dict[str, tuple[_Flight, dict[str, Any] | None]] = {}
        self._texts = False  # message text applied since the journal's last checkpoint
        self._names: dict[str, Any] = {}  # display names of the chats of the last write
        # ... and their labels once it is applied (labels, label_ids), for their messages
        self._chat_labels: dict[str, tuple[list[str], list[str]]] = {}
        self.stop = threading.Event()
        self.meili_ok = True
        self._syncing: set[str] = set()
        self._applier = threading.Thread(target=self._apply_loop, name="applier", daemon=True)
        self._pruned = 0.0
        self._swap_checked = 0.0
        self._flights: deque[_Flight] = deque()  # writes sent, not yet applied, in order
        self._overlay: dict[str, tuple[_Flight, str]] = {}  # what those writes hold per chat
        self._taken = 0  # the last journal seq sent
        self._submitted = 0.0
        self.app = Starlette(
            routes=[
                Route("/webhooks/wawp", self._receive, methods=["POST"]),
                Route("/webhooks/wawp/{secret}", self._receive, methods=["POST"]),
                *routes(self.metrics.registry, self._health),
            ]
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Listener:
        self.sessions.refresh()
        # The official client is imported on first use (a third of a second of CPU):
        # now, rather than on the first event's path.
        self.store.client  # noqa: B018
        if self.messages_on:
            self.store.ensure(self.messages_uid, MESSAGE_INDEX_SETTINGS)
        self._applier.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.journal.arrived.set()
        if self._applier.is_alive():
            self._applier.join(timeout=30)
        self.journal.close()
        self.resolve.close()

    def _health(self) -> tuple[bool, dict[str, Any]]:
        """Unhealthy only when the process cannot take events (queue full, applier gone):
        Meilisearch unreachable (the queue waits) and events it refused (set aside as dead
        letters, nothing waits on them) are told apart, for a person to act on."""
        full = self.journal.depth >= self.journal.max_queue
        return not full and self._applier.is_alive(), {
            "queue_depth": self.journal.depth,
            "meilisearch": "ok" if self.meili_ok else "unreachable",
            "dead_letters": self.dead_letters,
            "last_dead_letter": self.last_dead,
        }

    # -- receiving -----------------------------------------------------------------------

    def _refuse(self, status: int, reason: str, detail: str, request: Request) -> Response:
        self.metrics.rejected.labels(reason).inc()
        client = request.client.host if request.client else "?"
        log.warning("webhook refused (%d %s) from %s: %s", status, reason, client, detail)
        return JSONResponse({"error": detail}, status_code=status)

    async def _receive(self, request: Request) -> Response:
        hooks = self.cfg.webhooks
        secret = request.path_params.get("secret")
        if secret is not None and not (
            hooks.secret and hmac.compare_digest(secret.encode(), hooks.secret.reveal().encode())
        ):
            return self._refuse(401, "bad_secret", "unknown webhook path secret", request)
        if not _is_json(request.headers.get("content-type")):
            detail = "Content-Type must be application/json"
            return self._refuse(415, "not_json", detail, request)
        try:
            body = await request.body()  # the server holds it to webhooks.max_body (413)
        except ClientDisconnect:
            return Response(status_code=400)
        if hooks.hmac_key:  # on every path: a secret path never stands in for a signature
            problem = _verify(body, request.headers, hooks.hmac_key.reveal())
            if problem:
                return self._refuse(401, *problem, request)
        elif hooks.secret and secret is None:
            return self._refuse(401, "missing_signature", "unsigned request", request)
        try:
            envelope = envelope_of(orjson.loads(body))
            check_fresh(envelope, time.time())
            instance = self.sessions.instance(envelope["session"])
            if instance is None:
                detail = f"unknown session {envelope['session'][:60]!r}"
                return self._refuse(404, "unknown_session", detail, request)
            eid = event_id(envelope, body)
            # Refuse now what could never be applied (the ids, as the crawl checks them).
            read_event(envelope, instance, eid, self.resolve.cached, messages=self.messages_on)
        except orjson.JSONDecodeError as exc:
            return self._refuse(400, "malformed", f"malformed JSON: {exc}", request)
        except BadEvent as exc:
            return self._refuse(400, exc.reason, str(exc), request)
        outcome = await self.journal.append(eid, instance, slim(envelope, eid, self.messages_on))
        if outcome == "full":
            self.metrics.rejected.labels("queue_full").inc()
            log.warning("webhook refused (503): the queue holds %d events", self.journal.depth)
            return JSONResponse({"error": "queue full, retry later"}, status_code=503,
                                headers={"Retry-After": "5"})  # fmt: skip
        if outcome == "duplicate":
            self.metrics.duplicates.inc()
        else:
            self.metrics.received.labels(metric_kind(envelope["event"])).inc()
        return JSONResponse({"status": outcome, "id": eid})

    # -- applying ------------------------------------------------------------------------

    def _apply_loop(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            if not self._flights:
                self.journal.arrived.wait(1.0)
            if self.stop.is_set():
                return
            try:
                self._maintain()
                self._settle()
                self._move_identities()
                self._write_learnt()
                self._submit_next()
                if not self.meili_ok:
                    log.info("Meilisearch is back: applying queued events")
                self.meili_ok, delay = True, 0.5
                self.metrics.meili_up.set(1)
                if self._flights:
                    self.stop.wait(POLL)  # Meilisearch is indexing: look again soon
            except MeiliError as exc:
                if self.meili_ok:
                    log.warning("cannot write to Meilisearch (events stay queued): %s", exc)
                self.meili_ok = False
                self.metrics.meili_up.set(0)
                self._reset()
                self.stop.wait(delay)
                delay = min(delay * 2, 5.0)
                self.journal.arrived.set()  # try again even if nothing new arrives
            except Exception:
                log.exception("the applier failed; retrying")
                self._reset()
                self.stop.wait(delay)
                delay = min(delay * 2, 5.0)
                self.journal.arrived.set()

    def _reset(self) -> None:
        """Forget what is in flight: it is submitted again from the journal (writes are
        idempotent: merging an update twice changes nothing), and LID moves made again."""
        for flight in self._flights:
            self._moves.extend(flight.moves)
        self._flights.clear()
        self._overlay.clear()
        self._msg_overlay.clear()
        self._taken = 0

    def _learnt(self, instance_id: str, label_id: str) -> None:
        self._relabels.append((instance_id, label_id))
        self.journal.arrived.set()

    def _write_learnt(self) -> None:
        """Names read from Wawp for labels the events named by id only: written on the
        chats carrying them."""
        while self._relabels and len(self._flights) < MAX_FLIGHTS:
            instance_id, label_id = self._relabels.popleft()
            updates = self._carrying(instance_id, label_id, None)
            if updates:
                self._flights.append(self._launch([], updates))

    def _carrying(self, instance_id: str, label_id: str, gone_at: int | None) -> dict[str, Update]:
        """An update for each chat carrying a label, in the index or in writes on their
        way there: its names written again, or (``gone_at``: the label was deleted then)
        the label taken off."""
        where = label_id_is(instance_id, label_id)
        try:
            jids = {d["jid"] for d in self.store.fetch(self.cfg.meilisearch.index, where,
                                                       ["id", "jid"])}  # fmt: skip
        except MeiliRefused as exc:  # an index built before labels (schema 4): none to find
            log.warning("chats carrying label %s of %s not found: %s (reindex)", label_id,
                        instance_id, exc)  # fmt: skip
            jids = set()
        jids |= {Update.from_json(data).jid for doc, (_, data) in self._overlay.items()
                 if label_id in Update.from_json(data).labels}  # fmt: skip
        out = {}
        for jid in sorted(jids):
            update = Update(instance_id, jid, relabel=True)
            if gone_at is not None:
                update.labels[label_id] = [False, gone_at]
            out[update.doc_id] = update
        return out

    def _found(self, instance_id: str, lid_jid: str, phone_jid: str) -> None:
        if self.forgotten.current().is_forgotten(instance_id, phone_jid):
            learn_lid(self.cfg, instance_id, lid_jid, phone_jid)  # their LID is forgotten too
        self._moves.append((instance_id, lid_jid, phone_jid))
        self.journal.arrived.set()

    def _move_identities(self) -> None:
        """What was written under a LID before Wawp named the number behind it moves to
        the number's document, and the LID's document goes (as sync moves them)."""
        later: list[tuple[str, str, str]] = []
        while self._moves and len(self._flights) < MAX_FLIGHTS:
            move = self._moves.popleft()
            instance_id, lid_jid, phone_jid = move
            lid_doc = doc_id(instance_id, lid_jid)
            if lid_doc in self._overlay:  # a write under the LID in flight: move it once done
                later.append(move)
                continue
            data = self.journal.touched_rows([lid_doc]).get(lid_doc)
            have = self._current([lid_doc]).get(lid_doc)
            if have is None:
                continue  # never written, or moved already
            if self.forgotten.current().is_forgotten(instance_id, phone_jid):
                flight = self._launch([], {})  # `explorer forget`: nothing moves, all goes
                flight.tasks.append(self.store.delete_ids(self.cfg.meilisearch.index, [lid_doc]))
                flight.tasks += self._move_messages(instance_id, lid_jid, phone_jid, [])
                flight.moves.append(move)
                self._flights.append(flight)
                continue
            if data is not None:
                carried = Update.from_json(data)
            else:
                carried = Update(instance_id, lid_jid, str(have.get("engine_shape") or "unknown"))
            carried.jid, carried.lid = phone_jid, lid_jid.partition("@")[0]
            carried.hint_name = carried.hint_name or have.get("name")
            if isinstance(have.get("last_activity"), int):
                carried.activity = max(carried.activity or 0, have["last_activity"])
            gone = Update(instance_id, lid_jid, carried.engine, member=False,
                          member_at=int(time.time()))  # fmt: skip
            if isinstance(have.get("archived"), bool) and carried.archived is None:
                carried.archived = have["archived"]
            for label in labels_of_document(have) or ():  # the labels go with the chat
                crawled = have.get("crawled_at")
                carried.labels.setdefault(label.id, [True, crawled if isinstance(crawled, int)
                                                     else int(time.time())])  # fmt: skip
            log.debug("a LID of %s resolved: its chat moves to the number", instance_id)
            flight = self._launch([], {carried.doc_id: carried, gone.doc_id: gone})
            flight.tasks += self._move_messages(instance_id, lid_jid, phone_jid, flight.tasks)
            flight.moves.append(move)
            self._flights.append(flight)
        self._moves.extend(later)

    def _submit_next(self) -> None:
        """Take the events queued after those in flight and send their write, without
        waiting for the ones before it: Meilisearch applies tasks in order and batches
        consecutive ones, and this loop prepares the next write meanwhile."""
        waiting = self.journal.depth - sum(len(f.events) for f in self._flights)
        if waiting <= 0:
            if not self._flights:
                self.journal.arrived.clear()
            return
        if len(self._flights) >= MAX_FLIGHTS:
            return
        since = time.monotonic() - self._submitted
        if since < WINDOW:  # let a burst gather: one write for many events
            self.stop.wait(WINDOW - since)
        self.journal.arrived.clear()
        batch = self.journal.batch(BATCH, after=self._taken)
        if batch:
            self._flights.append(self.submit_queued(batch))
            self._taken = batch[-1].seq
            self._submitted = time.monotonic()

    def submit_queued(self, batch: list[Queued]) -> _Flight:
        updates: dict[str, Update] = {}
        events: list[tuple[Queued, Event | str]] = []
        for item in batch:
            try:
                envelope = envelope_of(orjson.loads(item.body))
                event = read_event(envelope, item.instance_id, event_id(envelope, item.body),
                                   self.resolve, messages=self.messages_on)  # fmt: skip
            except (orjson.JSONDecodeError, BadEvent) as exc:
                events.append((item, f"unreadable: {exc}"))
                continue
            events.append((item, event))
        self._known_under_number([e for _, e in events if not isinstance(e, str)])
        ops: list[MessageOp] = []
        skipped: dict[str, int] = {}
        for item, read in events:
            if isinstance(read, str):
                continue
            for change in read.labels:  # before the chats: their names are written below
                if self.catalog.learn(change):
                    gone = change.at if change.deleted else None
                    for doc, update in self._carrying(
                        change.instance_id, change.label.id, gone
                    ).items():
                        if doc in updates:
                            updates[doc].merge(update)
                        else:
                            updates[doc] = update
            self._drop_forgotten(read, skipped)
            ops += read.messages
            if read.message_skipped is not None:
                skipped["malformed"] = skipped.get("malformed", 0) + 1
            for update in read.updates:
                known = updates.get(update.doc_id)
                if known is None:
                    updates[update.doc_id] = update
                else:
                    known.merge(update)
            if read.catch_up:
                self._catch_up(item.instance_id)
        flight = self._launch(events, updates)
        flight.skipped = skipped
        if ops:
            flight.tasks += self._write_messages(ops, flight)
        return flight

    def _is_forgotten(self, u: Update | None) -> bool:
        record = self.forgotten.current()
        if u is None or not record:
            return False
        return record.is_forgotten(u.instance_id, u.jid) or (
            u.lid is not None and record.is_forgotten(u.instance_id, f"{u.lid}@lid")
        )

    def _drop_forgotten(self, event: Event, skipped: dict[str, int]) -> None:
        """Nothing of a person `explorer forget` recorded: not their chat, not what they
        said (a revocation still removes)."""
        record = self.forgotten.current()
        if not record:
            return
        event.updates = [u for u in event.updates if not self._is_forgotten(u)]
        kept = []
        for op in event.messages:
            sender = op.message.sender if op.message is not None else None
            if op.kind != "revoke" and (
                self._is_forgotten(op.chat) or record.is_forgotten(op.instance_id, sender)
            ):
                skipped["forgotten"] = skipped.get("forgotten", 0) + 1
                continue
            kept.append(op)
        event.messages = kept

    def _known_under_number(self, events: list[Event]) -> None:
        """A LID the lookup cache does not hold (after a restart, say) may already be
        in the index: on the number's document, which carries it in ``lid`` (the crawl
        merged them, from the LID map or NOWEB's ``pnJid``). Write there, not to a new
        "hidden number" chat; one multi-search for the batch, and the cache learns it."""
        unresolved = {(u.instance_id, u.lid): u for e in events for u in _chats(e)
                      if u.lid and u.jid.endswith("@lid")}  # fmt: skip
        if not unresolved:
            return
        keys = list(unresolved)[:LID_SEARCHES]
        queries = [{"indexUid": self.cfg.meilisearch.index, "q": lid, "limit": 3,
                    "attributesToSearchOn": ["lid"], "filter": instance_id_is(inst),
                    "attributesToRetrieve": ["jid", "lid"]} for inst, lid in keys]  # fmt: skip
        replies = self.store.ask(lambda c: c.multi_search(queries))["results"]
        numbers: dict[tuple[str, str], str] = {}
        for (inst, lid), reply in zip(keys, replies, strict=True):
            for hit in reply.get("hits", []):
                if hit.get("lid") == lid and not str(hit.get("jid", "")).endswith("@lid"):
                    numbers[(inst, lid)] = hit["jid"]
                    self.resolve.remember(inst, f"{lid}@lid", hit["jid"])
        for e in events:
            for u in _chats(e):
                if u.lid and u.jid.endswith("@lid") and (u.instance_id, u.lid) in numbers:
                    u.jid = numbers[(u.instance_id, u.lid)]

    def _launch(self, events: list[tuple[Queued, Event | str]], updates: dict[str, Update]
                ) -> _Flight:  # fmt: skip
        """Send one write for ``updates`` (merged with what listen wrote before for the same
        chats). A write Meilisearch refuses is sent again chat by chat, so that a chat it
        refuses stops no other: its events become dead letters (:meth:`_record`)."""
        previous = self.journal.touched_rows([d for d in updates if d not in self._overlay])
        previous.update({d: self._overlay[d][1] for d in updates if d in self._overlay})
        for doc, data in previous.items():
            merged = Update.from_json(data)
            merged.merge(updates[doc])
            updates[doc] = merged
        flight = _Flight(events, [(doc, u.to_json()) for doc, u in updates.items()])
        for doc, data in flight.touched:
            self._overlay[doc] = (flight, data)
        try:
            flight.tasks, flight.refused = self.submit(list(updates.values()))
        except MeiliRefused as exc:
            log.warning("Meilisearch refused a write of %d chats (%s): writing them one by one",
                        len(updates), exc)  # fmt: skip
            flight.refused = self._isolate(list(updates.values()))
        return flight

    # -- messages -------------------------------------------------------------------------

    def _write_messages(self, ops: list[MessageOp], flight: _Flight) -> list[int]:
        """One write of the messages these events add, edit and revoke, in their order:
        a revoked message stays gone, an edit older than the one the index holds changes
        nothing, nor does a copy of the original arriving after an edit, and nothing older
        than the retention window is written. The tasks to wait for."""
        uid = self.messages_uid
        floor = time.time() - self.cfg.messages.retention_days * 86_400
        ids = {message_doc_id(op.instance_id, t): op.instance_id for op in ops for t in op.targets}
        # Only an edit needs the document it edits; a new message is checked against the
        # journal's marks (revoked, edited), which saves a request per write.
        wanted = [message_doc_id(op.instance_id, t) for op in ops if op.kind == "edit"
                  for t in op.targets]  # fmt: skip
        fresh = [i for i in wanted if i not in self._msg_overlay]
        have: dict[str, dict[str, Any] | None] = {}
        if fresh:
            have = {d["id"]: d for d in self.store.fetch_ids(uid, fresh)}
        gone = self.journal.marked(list(ids), "revoked")
        was_edited = self.journal.marked(list(ids), "edited")
        for i in ids:
            if i in self._msg_overlay:
                have[i] = self._msg_overlay[i][1]
                if have[i] is None:
                    gone.add(i)
        chats = {op.chat.doc_id: op.chat for op in ops if op.chat is not None}
        missing = [d for d in chats if d not in self._names or d not in self._chat_labels]
        names, labels = dict(self._names), dict(self._chat_labels)
        if missing:
            for chat in self.store.fetch_ids(self.cfg.meilisearch.index, missing,
                                          ["id", "display_name", "label_details"]):  # fmt: skip
                names[chat["id"]], labels[chat["id"]] = chat.get("display_name"), _label_copy(chat)
        pending: dict[str, dict[str, Any] | None] = {}
        skipped = flight.skipped

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        def made(op: MessageOp) -> dict[str, Any]:
            assert op.message is not None and op.chat is not None
            msg = replace(op.message, jid=op.chat.jid)
            name = names.get(op.chat.doc_id) or op.chat.name or op.chat.hint_name
            tags, ids = labels.get(op.chat.doc_id) or ([], [])
            doc = to_message_document(msg, chat_name=name, sender_name=op.sender_name,
                                      labels=tuple(tags), label_ids=tuple(ids))  # fmt: skip
            if op.kind == "edit":
                doc["edited_at"] = op.at
            return doc

        for op in ops:
            targets = [message_doc_id(op.instance_id, t) for t in op.targets]
            if op.kind == "revoke":
                for i in targets:
                    pending[i] = None
                    gone.add(i)
                continue
            if any(i in gone for i in targets):
                skip("revoked")
                continue
            known = [i for i in targets if pending.get(i) or have.get(i)]
            key = known[0] if known else targets[0]
            base = pending.get(key) or have.get(key)
            assert op.message is not None
            if op.kind == "new":
                if key in was_edited or (base is not None and base.get("edited_at")):
                    skip("stale")  # the original, after its edit: the edit is newer truth
                    continue
                if op.message.timestamp < floor:
                    skip("expired")
                    continue
                pending[key] = made(op)
                continue
            if base is None:  # an edit of a message never indexed: indexed as edited
                if op.message.timestamp < floor:
                    skip("expired")
                    continue
                pending[key] = made(op)
            elif int(base.get("edited_at") or 0) > op.at:
                skip("stale")
            elif int(base.get("timestamp") or 0) < floor:
                skip("expired")
            else:
                edited = made(op)
                pending[key] = {**base, "body": edited["body"],
                                "body_truncated": edited["body_truncated"], "edited_at": op.at,
                                "labels": edited["labels"],
                                "label_ids": edited["label_ids"]}  # fmt: skip
        docs = [d for d in pending.values() if d is not None]
        removed = [i for i, d in pending.items() if d is None]
        for i, d in pending.items():
            self._msg_overlay[i] = (flight, d)
        flight.messages, flight.revoked, flight.pending = [d["id"] for d in docs], removed, pending
        flight.edited = [i for i, d in pending.items() if d is not None and d.get("edited_at")]
        try:
            tasks = self._send_messages(pending)
        except MeiliRefused as exc:
            log.warning("Meilisearch refused a write of %d messages (%s): writing them in "
                        "halves", len(pending), exc)  # fmt: skip
            flight.refused.update(self._isolate_messages(pending))
            return []
        log.debug("wrote %d messages, removed %d", len(docs), len(removed))
        return tasks

    def _send_messages(self, pending: dict[str, dict[str, Any] | None]) -> list[int]:
        """One addition and one deletion for these message documents (None: removed)."""
        docs = [d for d in pending.values() if d is not None]
        removed = [i for i, d in pending.items() if d is None]
        tasks = []
        if docs:
            tasks.append(self.store.add(self.messages_uid, docs))
        if removed:
            tasks.append(self.store.delete_ids(self.messages_uid, removed))
        return tasks

    def _isolate_messages(self, pending: dict[str, dict[str, Any] | None]) -> dict[str, str]:
        """Write these message documents again in halves, waiting for each, down to the
        single ones Meilisearch refuses: those, with why (never their text, since the
        reason is kept as a dead letter's). Halves, not one by one: a write holds up to
        :data:`BATCH` messages and one refused costs about 2·log2 of that in writes.
        Only a refusal is caught: Meilisearch unreachable stops this like any write."""
        refused: dict[str, str] = {}
        parts = [list(pending)]
        while parts:
            ids = parts.pop()
            try:
                self._wait(self._send_messages({i: pending[i] for i in ids}))
            except (MeiliRefused, MeiliTaskFailed) as exc:
                if isinstance(exc, MeiliTaskFailed) and not exc.refused:
                    raise MeiliError(str(exc)) from None  # its own trouble: as an outage
                if len(ids) > 1:
                    parts += [ids[len(ids) // 2 :], ids[: len(ids) // 2]]
                    continue
                refused[ids[0]] = f"message {ids[0]}: {_without_text(str(exc), pending[ids[0]])}"
        return refused

    def _relabel_messages(
        self, chats: dict[tuple[str, str], tuple[list[str], list[str]]]
    ) -> list[int]:
        """The messages of chats whose labels this write changes get the new ones: those
        in the index (found by filter, partially updated) and those in writes not applied
        yet (written again whole). The tasks to wait for."""
        uid = self.messages_uid
        docs: list[dict[str, Any]] = []
        by_instance: dict[str, list[str]] = {}
        for inst, jid in chats:
            by_instance.setdefault(inst, []).append(jid)
        for inst, jids in by_instance.items():
            for start in range(0, len(jids), RELABEL_CHATS):
                chunk = ", ".join(quote(j) for j in jids[start : start + RELABEL_CHATS])
                where = f"{instance_id_is(inst)} AND jid IN [{chunk}]"
                for found in self.store.fetch(uid, where, ["id", "instance_id", "jid"]):
                    if self._msg_overlay.get(found["id"], (None, {}))[1] is None:
                        continue  # being removed: an update would bring back a stub
                    labels, ids = chats[(inst, found["jid"])]
                    docs.append({"id": found["id"], "labels": labels, "label_ids": ids})
        by_id = {d["id"]: d for d in docs}
        for i, (_, doc) in self._msg_overlay.items():
            if doc is None:
                continue
            new = chats.get((doc.get("instance_id"), doc.get("jid")))  # type: ignore[arg-type]
            if new is not None:
                doc.update(labels=new[0], label_ids=new[1])
                by_id[i] = doc
        if not by_id:
            return []
        log.debug("relabelled %d messages of %d chats", len(by_id), len(chats))
        return [self.store.update(uid, list(by_id.values()))]

    def _settle_messages(self, flight: _Flight) -> None:
        """Count a write's messages once it is applied, and let go of its overlay."""
        written = [i for i in flight.messages if i not in flight.refused]
        if written:
            self.metrics.messages.labels("written").inc(len(written))
            self._texts = True
        removed = [i for i in flight.revoked if i not in flight.refused]
        if removed:
            self.metrics.messages.labels("removed").inc(len(removed))
        for reason, n in flight.skipped.items():
            self.metrics.messages_skipped.labels(reason).inc(n)
        if any(isinstance(r, Event) and r.messages for _, r in flight.events):
            self._texts = True
        for i in (*flight.messages, *flight.revoked):
            if self._msg_overlay.get(i, (None,))[0] is flight:
                del self._msg_overlay[i]

    def _move_messages(
        self, instance_id: str, lid_jid: str, phone_jid: str, tasks: list[int]
    ) -> list[int]:
        """Messages written under a LID before Wawp named the number: to the number's chat,
        with its labels as the index has them once the chat's move is applied (``tasks``,
        waited for: a move is rare). A forgotten number's are deleted instead."""
        if not self.messages_on:
            return []
        where = f"{instance_id_is(instance_id)} AND jid = {quote(lid_jid)}"
        if self.forgotten.current().is_forgotten(instance_id, phone_jid):
            log.debug("a LID of %s resolved to a forgotten number: its messages go", instance_id)
            return [self.store.delete_where(self.messages_uid, where)]
        docs = list(self.store.fetch(self.messages_uid, where, None))
        if not docs:
            return []
        with contextlib.suppress(MeiliTaskFailed):  # refused: the flight's own settling says
            self._wait(tasks)
        phone = doc_id(instance_id, phone_jid)
        tags, ids = _label_copy(self._current([phone]).get(phone))
        moved = [{**d, "jid": phone_jid, "labels": tags, "label_ids": ids} for d in docs]
        return [self.store.add(self.messages_uid, moved)]

    def _isolate(self, updates: list[Update]) -> dict[str, str]:
        """Write each chat alone, waiting for each; the chats Meilisearch refuses, with why.
        Only a refusal is caught: Meilisearch unreachable stops this like any write."""
        refused: dict[str, str] = {}
        for update in updates:
            try:
                tasks, bad = self.submit([update])
                refused.update(bad)
                self._wait(tasks)
            except MeiliRefused as exc:
                refused[update.doc_id] = str(exc)
            except MeiliTaskFailed as exc:
                if not exc.refused:  # Meilisearch's own trouble: wait, as for an outage
                    raise MeiliError(str(exc)) from None
                refused[update.doc_id] = str(exc)
        return refused

    def _settle(self) -> None:
        """Record the writes Meilisearch has applied, oldest first."""
        while self._flights:
            flight = self._flights[0]
            try:
                if not self._finished(flight.tasks):
                    return
            except MeiliTaskFailed as exc:
                if not exc.refused:  # Meilisearch's own trouble: wait, as for an outage
                    raise MeiliError(str(exc)) from None
                # Deterministic: the same write would fail again. Find the chats and the
                # messages it fails on, one by one (messages in halves); their events become
                # dead letters, the rest is applied.
                log.warning("Meilisearch failed a write of %d chats and %d messages (%s): "
                            "writing them one by one", len(flight.touched), len(flight.pending),
                            exc)  # fmt: skip
                touched = [Update.from_json(data) for _, data in flight.touched]
                flight.refused.update(self._isolate(touched))
                if flight.pending:
                    flight.refused.update(self._isolate_messages(flight.pending))
                self._flights.popleft()
                self._record(flight)
                self._reset()  # the writes after it merged its updates: send them again
                return
            self._flights.popleft()
            self._record(flight)

    def _record(self, flight: _Flight) -> None:
        now = time.time()
        last = None
        dead: dict[int, str] = {}
        for item, read in flight.events:
            if isinstance(read, str):
                dead[item.seq] = read
                continue
            refused = [flight.refused[u.doc_id] for u in read.updates if u.doc_id in flight.refused]
            refused += [flight.refused[i] for op in read.messages for t in op.targets
                        if (i := message_doc_id(op.instance_id, t)) in flight.refused]  # fmt: skip
            if refused:
                dead[item.seq] = f"{read.kind} {read.id}: {refused[0]}"
                continue
            kind = metric_kind(read.kind)
            if read.kind in APPLIED or read.messages:
                self.metrics.applied.labels(kind).inc()
            else:
                self.metrics.ignored.labels(kind).inc()
            self.metrics.latency.observe(max(0.0, now - item.received))
            last = {"id": read.id, "event": read.kind, "session": read.session,
                    "instance_id": item.instance_id, "applied_at": now}  # fmt: skip
        touched = [(doc, data) for doc, data in flight.touched if doc not in flight.refused]
        revoked = [i for i in flight.revoked if i not in flight.refused]
        edited = [i for i in flight.edited if i not in flight.refused]
        self.journal.done([q.seq for q, _ in flight.events], touched, last, dead, revoked, edited)
        self._settle_messages(flight)
        for seq, reason in dead.items():
            why = "unreadable" if reason.startswith("unreadable") else "refused by Meilisearch"
            log.error("webhook event set aside as dead letter %d (%s): `explorer dead-letters` "
                      "shows why", seq, why)  # fmt: skip
            self.last_dead = {"seq": seq, "why": why}
        self.dead_letters += len(dead)
        for doc, _ in flight.touched:
            if self._overlay.get(doc, (None,))[0] is flight:
                del self._overlay[doc]

    def write(self, updates: list[Update]) -> None:
        """:meth:`submit`, waiting until Meilisearch has applied it; chat by chat if
        Meilisearch refuses the lot (a chat it refuses then is left out, and said)."""
        try:
            tasks, refused = self.submit(updates)
            self._wait(tasks)
        except (MeiliRefused, MeiliTaskFailed):
            refused = self._isolate(updates)
        for doc, reason in refused.items():
            log.error("chat %s not written again: %s", doc, reason)

    def submit(self, updates: list[Update]) -> tuple[list[int], dict[str, str]]:
        """One partial update (and one deletion) for these chats: the task uids, and the
        chats left out because no document can be made of them (doc id: why)."""
        if not updates:
            return [], {}
        live = self.cfg.meilisearch.index
        current = self._current([u.doc_id for u in updates])
        # The chats' names, for the messages of the same write (no second request).
        self._names = {u.doc_id: (current.get(u.doc_id) or {}).get("display_name")
                       for u in updates}  # fmt: skip
        self._chat_labels = {}
        relabelled: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        docs: list[dict[str, Any]] = []
        gone: list[str] = []
        refused: dict[str, str] = {}
        for update in updates:
            if self._is_forgotten(update):  # recorded since its events were read
                continue
            have = current.get(update.doc_id)
            if have is None and update.labels_only:
                if update.labels:  # a label on a chat the index does not hold: counted
                    self.metrics.label_unknown_chats.inc()
                    log.info("label change for chat %s, not in the index: skipped",
                             update.doc_id)  # fmt: skip
                continue
            if update.member is False:
                if have is not None and _after(update.member_at, have, "last_activity"):
                    gone.append(update.doc_id)
                continue
            try:
                doc = self.document(update, have)
            except (MalformedChat, ValueError, TypeError) as exc:
                refused[update.doc_id] = f"no document can be made of it: {exc}"
                continue
            if doc is not None:
                docs.append(doc)
            labels = _label_copy(doc if doc is not None and "label_ids" in doc else have)
            self._chat_labels[update.doc_id] = labels
            if doc is not None and "label_ids" in doc:  # new labels, or a new chat's
                relabelled[(update.instance_id, update.jid)] = labels
        tasks = []
        if docs:
            tasks.append(self.store.update(live, docs))
        if gone:
            tasks.append(self.store.delete_ids(live, gone))
        if relabelled and self.messages_on:
            tasks += self._relabel_messages(relabelled)
        self.metrics.writes.inc()
        log.debug("wrote %d chats (%d docs, %d gone)", len(updates), len(docs), len(gone))
        return tasks, refused

    def _current(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The live documents of these chats (the fields :meth:`document` compares)."""
        found = self.store.fetch_ids(self.cfg.meilisearch.index, ids, fields=_FIELDS)
        return {d["id"]: d for d in found}

    def _finished(self, tasks: list[int]) -> bool:
        """Whether Meilisearch has applied all of ``tasks``; raises if one failed."""
        return not tasks or not self.store.unfinished(tasks)

    def _wait(self, tasks: list[int]) -> None:
        """Until Meilisearch has applied ``tasks``: polled every :data:`POLL` seconds, since
        the event's latency is this wait (the store's default backs off to 0.5 s, for
        long builds)."""
        self.store.wait(tasks, poll=POLL)

    def document(self, u: Update, current: dict[str, Any] | None) -> dict[str, Any] | None:
        """The fields to write for ``u``: a whole document for a chat the index does not
        know, else only what the events say that is newer than what the index holds: a
        name or an archive flag older than the crawl that wrote the document is old news."""
        known = current is not None
        have = current or {}
        if known:
            u = replace(u)
            if u.name is not None and not _after(u.name_at, have):
                u.name = None
            if u.archived is not None and not _after(u.archived_at, have):
                u.archived = None
        have_activity = have.get("last_activity")
        activity = u.activity
        if isinstance(have_activity, int) and (activity is None or activity < have_activity):
            activity = have_activity
        newest_other = max(u.incoming_at or 0, have_activity or 0)
        raw: dict[str, Any] = {
            "id": u.jid,
            "lidJid": f"{u.lid}@lid" if u.lid else None,
            "name": u.name if u.name is not None else have.get("name") if known else u.hint_name,
            "timestamp": activity,
            "archived": u.archived if u.archived is not None else have.get("archived"),
        }
        if u.read_at is not None and u.read_at >= newest_other:
            raw["unreadCount"] = 0  # a message sent from this account: the chat was read
        chat = normalize_chat(raw, u.instance_id)
        if chat is None:
            return None
        if known:  # only its changed fields are written: no phone forms to compute
            chat = replace(chat, phone=None)
        full = to_document(chat, label=self.labels.get(u.instance_id), crawled_at=int(time.time()))
        full["engine_shape"] = u.engine
        if not known:
            if u.labels:
                full.update(label_fields(self._labels(u, None)))
            return full
        partial: dict[str, Any] = {"id": full["id"]}
        if activity is not None and activity != have_activity:
            partial.update(last_activity=full["last_activity"], last_active=full["last_active"])
        if u.name is not None and u.name != have.get("name"):
            partial.update(name=full["name"], display_name=full["display_name"],
                           name_latin=full.get("name_latin"))  # fmt: skip
        if u.archived is not None and u.archived != have.get("archived"):
            partial["archived"] = full["archived"]
        if "unreadCount" in raw and have.get("unread_count") != 0:
            partial["unread_count"] = 0
        if u.labels or u.relabel:
            labels = label_fields(self._labels(u, current))
            if labels["label_details"] != have.get("label_details"):
                partial.update(labels)
        return partial if len(partial) > 1 else None

    def _labels(self, u: Update, current: dict[str, Any] | None) -> tuple[Label, ...]:
        """The chat's labels once ``u`` is applied, each under its newest name: a label
        change older than the crawl that wrote the document is old news, and a label
        whose name nobody gave yet is kept by its id (its name is asked of Wawp)."""
        have = labels_of_document(current or {}) or ()
        named = {lb.id: lb for lb in have}
        for label_id, (on, at) in u.labels.items():
            if current is not None and not _after(at, current):
                continue
            if on:
                named.setdefault(label_id, Label(label_id))
            else:
                named.pop(label_id, None)
        out = []
        for label_id, label in named.items():
            known = self.catalog.get(u.instance_id, label_id)
            if known is not None and known[1]:  # deleted, unless put on a chat since
                put_on = u.labels.get(label_id)
                if not (put_on and put_on[0] and put_on[1] > known[2]):
                    continue
            if known is not None and not known[1]:
                label = known[0]
            elif label.name is None:
                label = self._named_by_index(u.instance_id, label_id) or label
            out.append(label)
        return sort_labels(out)

    def _named_by_index(self, instance_id: str, label_id: str) -> Label | None:
        """The name another chat's document gives a label, else None (and Wawp is asked)."""
        body = {"q": "", "limit": 1, "filter": label_id_is(instance_id, label_id) +
                " AND labels EXISTS", "attributesToRetrieve": ["label_details"]}  # fmt: skip
        for hit in self.store.search(self.cfg.meilisearch.index, body).get("hits", []):
            for label in labels_of_document(hit) or ():
                if label.id == label_id and label.name is not None:
                    self.catalog.learn(LabelChange(instance_id, label, False, 0))
                    return label
        self.catalog.ask_wawp(instance_id)
        return None

    # -- the safety net: catch-up syncs, swaps -------------------------------------------

    def _catch_up(self, instance_id: str) -> None:
        if instance_id in self._syncing:
            return
        inst = next((i for i in self.cfg.wawp.instances if i.id == instance_id), None)
        if inst is None:
            return
        self._syncing.add(instance_id)
        self.metrics.catch_ups.inc()
        threading.Thread(target=self._sync_one, args=(inst,), daemon=True).start()

    def _sync_one(self, inst: Instance) -> None:
        from explorer.jobs.sync import sync

        one = replace(self.cfg, wawp=replace(self.cfg.wawp, instances=(inst,)))
        try:
            log.info("session %s is WORKING again: catch-up sync", inst.id)
            report = sync(one, wait=600)
            log.info("%s", report.summary())
        except ExplorerError as exc:
            log.warning("catch-up sync of %s failed: %s", inst.id, exc)
        finally:
            self._syncing.discard(inst.id)

    def _maintain(self) -> None:
        """After a swap, write again what listen wrote since the build's crawl started;
        now and then, forget what no build can need any more."""
        now = time.monotonic()
        if now - self._swap_checked >= 1.0:
            self._swap_checked = now
            if self._texts and self.journal.checkpoint():
                self._texts = False  # applied text is now in neither journal file
            moved = self.journal.requeue_asked()
            if moved:
                log.info("%d dead letter(s) queued again, as asked", moved)
            self.dead_letters = self.journal.dead_count()
            last = last_report(self.cfg) or {}
            handled = self.journal.meta("swap_handled")
            # finished_at is in whole seconds: two reindexes of a small index can share one,
            # so a report is told apart by its duration too.
            swap = [last.get("finished_at"), last.get("seconds")]
            if last.get("finished_at") and swap != handled:
                since = float(last.get("crawled_at") or 0) - MARGIN
                rows = [Update.from_json(r) for r in self.journal.touched_since(since)]
                # Writes still in flight may have reached the old index just before the
                # swap and are not in the journal's record yet: write their data too.
                rows += [Update.from_json(data) for _, data in self._overlay.values()]
                log.info("a reindex swapped in a new index: writing %d chats again", len(rows))
                for start in range(0, len(rows), BATCH):
                    self.write(rows[start : start + BATCH])
                self.journal.set_meta("swap_handled", swap)
        if now - self._pruned >= 60:
            self._pruned = now
            cutoff = time.time() - RETAIN
            building = read_json(state_dir(self.cfg) / f"reindex-{self.cfg.meilisearch.index}.json")
            if building.get("crawled_at"):
                cutoff = min(cutoff, float(building["crawled_at"]) - MARGIN)
            self.journal.prune(cutoff)


def _chats(event: Event) -> list[Update]:
    """The chats an event names: its updates, and those its messages belong to."""
    return [*event.updates, *(op.chat for op in event.messages if op.chat is not None)]


def _without_text(reason: str, doc: dict[str, Any] | None) -> str:
    """Meilisearch's word on a message document, its text masked should it quote it: the
    reason outlives the text (a dead letter keeps it for a month)."""
    body = (doc or {}).get("body")
    if isinstance(body, str) and len(body) >= 4:
        reason = reason.replace(body, "[message text]")
    return reason


def _label_copy(doc: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """A chat's ``labels`` and ``label_ids`` as its messages carry them, from a document
    written (which has them) or read back (which has ``label_details``)."""
    if doc is None:
        return [], []
    if "label_ids" in doc:
        return list(doc.get("labels") or []), list(doc.get("label_ids") or [])
    fields = label_fields(labels_of_document(doc) or ())
    return fields["labels"], fields["label_ids"]


def _after(at: int, have: dict[str, Any], *also: str) -> bool:
    """Whether an event dated ``at`` is news to the document ``have``: not older than the
    crawl that wrote it (``crawled_at``, less :data:`MARGIN`: a crawl may miss what
    happened shortly before it started, and clocks differ), nor than its fields named in
    ``also``."""
    crawled = have.get("crawled_at")
    if isinstance(crawled, int) and at < crawled - MARGIN:
        return False
    return all(not isinstance(have.get(f), int) or at >= have[f] for f in also)


class _Hide(logging.Filter):
    """Masks the URL secret in what the server logs of a refused request's path."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = redact(message, self.secret), None
        return True


def run_listener(
    cfg: Config, host: str, port: int, *, ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, on the shared server (explorer.doors.server): its limits
    (body size, head and body deadlines, connections) are the receiver's."""
    from explorer.doors.server import HttpServer, Limits

    cfg.require_instances()
    if not cfg.webhooks.hmac_key and not cfg.webhooks.secret:
        log.warning(
            "no webhook signature key: any program that reaches this port can post events; "
            "set webhooks.hmac_key (EXPLORER_WEBHOOK_HMAC_KEY) to the key Wawp signs with"
        )
    if cfg.webhooks.secret:
        hide = _Hide(cfg.webhooks.secret.reveal())
        for name in (
            "explorer.doors.server",
            "explorer.doors.server.http",
            "explorer.doors.listen",
        ):
            logging.getLogger(name).addFilter(hide)
    listener = Listener(cfg)
    reasons = {413: "too_large", 408: "too_slow"}
    try:
        server = HttpServer(
            listener.app, host, port,
            Limits(max_body=cfg.webhooks.max_body, idle_timeout=30.0, body_timeout=30.0),
            on_refuse=lambda status: listener.metrics.rejected.labels(
                reasons.get(status, str(status))).inc(),
        )  # fmt: skip
    except OSError as exc:
        listener.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    try:
        listener.start()
        if ready is not None:
            ready(server.url.rstrip("/"))
        server.serve_forever()
    finally:
        listener.close()


class ListenError(ExplorerError):
    """The address cannot be listened on."""
