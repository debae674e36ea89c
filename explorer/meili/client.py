"""The one way to Meilisearch: the official client's public methods, one error translation,
one search-body builder, and one documented raw call.

Everything in this tool that reaches Meilisearch goes through here: reindex and sync
(:class:`IndexStore`), searches (:class:`Meili`, used by :mod:`explorer.meili.query`),
`explorer check` (:func:`check_server`), keys (:mod:`explorer.meili.keys`) and the read-only
probes (:mod:`explorer.meili.readonly`). The agents' door (:mod:`explorer.doors.serve`)
forwards bytes on aiohttp and is the one exception (docs/architecture.md, "HTTP clients").

The official client (``meilisearch``, on requests and pydantic) costs about a third of a
second of CPU to import, so it is imported on first use: ``import explorer`` and commands
that never reach Meilisearch do not pay for it.

Its quirks, handled here once:

- it rewrites one headers dict on every request, so threads never share a client
  (:attr:`Meili.client` is per thread);
- it opens a new connection for every request (no session): about a millisecond of CPU
  more per search than a kept-alive httpx client, measured in docs/architecture.md;
- it sends ``Bearer None`` when it has no key, which Meilisearch calls an invalid key:
  :func:`translate` says the key is missing;
- it appends a version hint to the message of some errors, which :func:`translate` drops;
- deleting documents by id warns that the route is deprecated, though the alternative
  (deleting by filter) needs ``id`` filterable: :meth:`IndexStore.delete_ids` silences
  that one warning;
- its key models cannot read a key whose ``expiresAt`` has no fraction of a second
  (``2030-01-01T00:00:00Z`` raises a pydantic ValidationError in 0.43), so keys go
  through the raw call (:class:`RawHttp`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson

from explorer.config import MeiliSettings
from explorer.errors import (
    AUTH_CODES,
    MeiliError,
    MeiliRefused,
    MeiliTaskFailed,
    meili_refused,
    meili_unreachable,
)
from explorer.records.documents import settings_drift
from explorer.records.filters import instance_id_is
from explorer.records.output import HL_POST, HL_PRE
from explorer.records.phones import phone_query
from explorer.secrets import redact

if TYPE_CHECKING:
    import httpx
    import meilisearch
    from meilisearch.errors import MeilisearchError
    from meilisearch.models.task import Task

T = TypeVar("T")
log = logging.getLogger("explorer.meili.client")
# What :meth:`IndexStore.ensure` checks of an index that exists: the settings without
# which its writers' filters (retention, relabelling) and its searches are refused.
ENSURED_SETTINGS: Final = ("filterableAttributes", "searchableAttributes")

# -- errors ------------------------------------------------------------------------------

ADMIN_NEED: Final = "an admin key for reindex"
SEARCH_NEED: Final = "a search key is enough to search"

_NOT_THE_REQUEST = (404, 408, 429)  # an index missing, a timeout, a rate limit: wait, retry
# What the official client appends to the message of search, facet_search, get_documents
# and delete_documents errors, whatever the error: it says nothing about this one.
_HINT: Final = ". Hint: It might not be working because you're not up to date"


def missing_index(index: str) -> MeiliError:
    """The live index is not there: the one thing to do is build it."""
    return MeiliError(f"index {index!r} does not exist yet: run `explorer reindex`")


def unreachable(url: str) -> MeiliError:
    return MeiliError(meili_unreachable(url))


def error(
    url: str,
    *,
    status: int | None,
    code: str | None,
    message: str,
    index: str | None = None,
    need: str = ADMIN_NEED,
) -> MeiliError:
    """What an error reply means for the operator: :class:`MeiliRefused` when the request
    itself is wrong (sending it again fails the same way), else :class:`MeiliError`.

    ``index``: the index the request named, so that ``index_not_found`` says to build it.
    ``need``: what kind of key the request needs, for a refused key.
    """
    if code == "index_not_found" and index is not None:
        return missing_index(index)
    if status in (401, 403) or code in AUTH_CODES:
        return MeiliError(meili_refused(url, code, need))
    text = redact(f"Meilisearch at {url}: {message[:300]} [{code or status or '?'}]")
    if status is not None and 400 <= status < 500 and status not in _NOT_THE_REQUEST:
        return MeiliRefused(text)
    return MeiliError(text)


def translate(
    exc: MeilisearchError,
    url: str,
    *,
    index: str | None = None,
    need: str = ADMIN_NEED,
    keyless: bool = False,
) -> MeiliError:
    """The official client's exception as one line: a reply (any status) through
    :func:`error`; no reply (refused, reset, timed out) as Meilisearch unreachable.

    ``keyless``: the client was given no key. It sends ``Bearer None`` all the same, which
    Meilisearch calls an invalid key: the operator's problem is the missing one.
    """
    from meilisearch.errors import MeilisearchApiError, MeilisearchTimeoutError

    if isinstance(exc, MeilisearchApiError):
        code = exc.code
        if keyless and (exc.status_code in (401, 403) or code in AUTH_CODES):
            code = "missing_authorization_header"
        message = (exc.message or "").partition(_HINT)[0]
        return error(url, status=exc.status_code, code=code, message=message,
                     index=index, need=need)  # fmt: skip
    if isinstance(exc, MeilisearchTimeoutError):
        return MeiliError(f"Meilisearch at {url} did not answer in time: is it overloaded?")
    return unreachable(url)


# -- lists and bodies --------------------------------------------------------------------

PAGE: Final = 100
DOCUMENTS_PAGE: Final = 1000


def pages(
    get: Callable[[int, int], dict[str, Any]], *, limit: int = PAGE
) -> Iterator[dict[str, Any]]:
    """Every item of an offset-paginated list (``results`` and ``total``), page by page.

    ``get(limit, offset)`` fetches one page. It stops at ``total`` and at an empty page, so
    a list that shrinks while it is read ends instead of asking forever.
    """
    offset = 0
    while True:
        page = get(limit, offset)
        results = page.get("results") or []
        yield from results
        offset += len(results)
        if not results or offset >= int(page.get("total", 0)):
            return


def dumps(value: Any) -> bytes:
    """JSON bytes, key order kept (the web UI shows fields in first-seen order)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an int beyond 64 bits, say: the stdlib takes anything
        return json.dumps(value, ensure_ascii=False).encode()


# Where a phone query is looked for: the number's forms, and the ids that hold it.
PHONE_FIELDS: Final = ["phone_digits", "phone_variants", "jid", "lid"]
HIGHLIGHTED: Final = ["display_name", "phone_digits"]


def search_body(
    query: str = "",
    *,
    phone: bool = False,
    on: Sequence[str] | None = None,
    filter: Sequence[str] | str = (),
    sort: Sequence[str] = (),
    limit: int = 20,
    offset: int = 0,
    facets: Sequence[str] = (),
    fields: Sequence[str] | None = None,
    distinct: str | None = None,
    highlight: bool = False,
) -> dict[str, Any]:
    """The body of every search this tool sends, in Meilisearch's words.

    ``phone``: a query that looks like a phone number (:func:`explorer.records.phones.phone_query`)
    searches its digits in :data:`PHONE_FIELDS` only. ``on``: the fields to search
    otherwise (all searchable ones by default). ``facets``: counts per value over every
    match (exact, where the hit estimate stops at maxTotalHits). ``fields``: the fields to
    return. ``highlight``: matches in :data:`HIGHLIGHTED` marked for a terminal.
    """
    digits = phone_query(query) if phone else None
    body: dict[str, Any] = {"q": digits or query, "limit": limit}
    if digits:
        body["attributesToSearchOn"] = PHONE_FIELDS
    elif on is not None:
        body["attributesToSearchOn"] = list(on)
    if offset:
        body["offset"] = offset
    if filter:
        body["filter"] = filter if isinstance(filter, str) else list(filter)
    if sort:
        body["sort"] = list(sort)
    if facets:
        body["facets"] = list(facets)
    if fields is not None:
        body["attributesToRetrieve"] = list(fields)
    if distinct is not None:
        body["distinct"] = distinct
    if highlight and query:
        body.update(attributesToHighlight=HIGHLIGHTED, highlightPreTag=HL_PRE,
                    highlightPostTag=HL_POST)  # fmt: skip
    return body


# -- the client --------------------------------------------------------------------------

# Meilisearch's compressed replies cost CPU at both ends for bytes that never leave the
# machine or the network segment; they also stall ~40 ms on a kept-alive connection.
_HEADERS: Final = {"Accept-Encoding": "identity"}


class Meili:
    """One Meilisearch and one key, through the official client's public methods.

    ``request_timeout``: seconds per request. ``need``: what kind of key the caller needs,
    named when Meilisearch refuses the key.
    """

    def __init__(
        self, settings: MeiliSettings, *, request_timeout: float = 30.0, need: str = ADMIN_NEED
    ) -> None:
        self.settings = settings
        self.url = settings.url
        self.request_timeout = request_timeout
        self.need = need
        self._local = threading.local()

    @property
    def client(self) -> meilisearch.Client:
        """This thread's client. The official client sets each request's Content-Type in
        one headers dict it shares with every request it sends, so a client shared between
        threads (reindex's instance workers, listen's applier and its catch-up syncs)
        could send one request with another's headers."""
        client: meilisearch.Client | None = getattr(self._local, "client", None)
        if client is None:
            import meilisearch

            key = self.settings.api_key.reveal() if self.settings.api_key else None
            timeout = max(1, round(self.request_timeout))
            client = meilisearch.Client(self.url, key, timeout=timeout, custom_headers=_HEADERS)
            self._local.client = client
        return client

    def translate(self, exc: MeilisearchError, index: str | None = None) -> MeiliError:
        return translate(exc, self.url, index=index, need=self.need,
                         keyless=not self.settings.api_key)  # fmt: skip

    def ask(self, request: Callable[[meilisearch.Client], T], index: str | None = None) -> T:
        """One request through this thread's client, its exceptions as one-line
        :class:`MeiliError` (:func:`translate`; ``index``: the index it names)."""
        from meilisearch.errors import MeilisearchError

        try:
            return request(self.client)
        except MeilisearchError as exc:
            raise self.translate(exc, index) from None

    def unless_missing(self, request: Callable[[meilisearch.Client], T]) -> T | None:
        """:meth:`ask`, or None when the index it names does not exist."""
        from meilisearch.errors import MeilisearchApiError, MeilisearchError

        try:
            return request(self.client)
        except MeilisearchApiError as exc:
            if exc.code == "index_not_found":
                return None
            raise self.translate(exc) from None
        except MeilisearchError as exc:
            raise self.translate(exc) from None

    def search(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Meilisearch's reply to one :func:`search_body` on index ``uid``."""
        reply: dict[str, Any] = self.ask(lambda c: c.index(uid).search(body["q"], body), uid)
        return reply


def check_server(settings: MeiliSettings) -> str:
    """Reachability, version and the read permissions reindex needs; raises MeiliError."""
    from meilisearch.errors import MeilisearchApiError, MeilisearchError

    meili = Meili(settings, request_timeout=10)
    meili.ask(lambda c: c.health())
    version = "?"
    missing = []
    probes: tuple[tuple[str, Callable[[meilisearch.Client], Any]], ...] = (
        ("version", lambda c: c.get_version()),
        ("indexes.get", lambda c: c.get_raw_indexes({"limit": 1})),
        ("tasks.get", lambda c: c.get_tasks({"limit": 1})),
        ("stats.get", lambda c: c.get_all_stats()),
    )
    for action, probe in probes:
        try:
            reply = probe(meili.client)
        except MeilisearchApiError as exc:
            if exc.status_code not in (401, 403):
                raise meili.translate(exc) from None
            missing.append(action)
            continue
        except MeilisearchError as exc:
            raise meili.translate(exc) from None
        if action == "version":
            version = reply.get("pkgVersion", "?")
    if missing:
        raise MeiliError(
            f"Meilisearch at {settings.url}: the API key lacks permission {', '.join(missing)} "
            "(reindex needs an admin key: set MEILI_API_KEY)"
        )
    return f"Meilisearch {version}, key can manage indexes"


TERMINAL: Final = ("succeeded", "failed", "canceled")
TASKS_AT_ONCE: Final = 200  # uids per task query: they ride in the query string
_DELETE_WARNING = threading.Lock()


class IndexStore(Meili):
    """The Meilisearch operations reindex, sync and listen need, each write checked to
    have *succeeded*.

    The client returns failed tasks instead of raising, and its default wait is 5 s; here
    every write is waited for without such a limit (unless ``timeout`` says otherwise) and
    a failed task raises :class:`MeiliTaskFailed` with Meilisearch's own message.
    """

    def __init__(
        self, settings: MeiliSettings, *, timeout: float = 3600.0, request_timeout: float = 30.0
    ) -> None:
        super().__init__(settings, request_timeout=request_timeout)
        self.live = settings.index
        self.timeout = timeout

    # -- reading --------------------------------------------------------------------------

    def exists(self, uid: str) -> bool:
        return self.unless_missing(lambda c: c.get_raw_index(uid)) is not None

    def count(self, uid: str) -> int | None:
        """The number of documents in ``uid``; None when there is no such index."""
        stats = self.unless_missing(lambda c: c.index(uid).get_stats())
        return None if stats is None else int(stats.number_of_documents)

    def build_indexes(self) -> list[str]:
        prefix = f"{self.live}__build_"

        def page(limit: int, offset: int) -> dict[str, Any]:
            # Typed as a list by the client; Meilisearch sends a page (results, total).
            reply: Any = self.ask(lambda c: c.get_raw_indexes({"limit": limit, "offset": offset}))
            return dict(reply)

        return sorted(r["uid"] for r in pages(page) if r["uid"].startswith(prefix))

    def newest_activity(self, uid: str, instance_id: str) -> int | None:
        """The latest ``last_activity`` of an instance's chats in the index."""
        body = search_body(
            filter=f"{instance_id_is(instance_id)} AND last_activity EXISTS",
            sort=["last_activity:desc"], fields=["last_activity"], limit=1,
        )  # fmt: skip
        hits = self.search(uid, body)["hits"]
        stamp = hits[0].get("last_activity") if hits else None
        return stamp if isinstance(stamp, int) else None

    def live_settings(self, uid: str) -> dict[str, Any]:
        return self.ask(lambda c: c.index(uid).get_settings())

    def documents(self, uid: str) -> Iterator[dict[str, Any]]:
        """Every document with every field (hidden helper fields included)."""
        return self.fetch(uid, None, None)

    def fetch(
        self, uid: str, filter_: str | None, fields: list[str] | None
    ) -> Iterator[dict[str, Any]]:
        """Every document matching ``filter_`` (no maxTotalHits cap, unlike search)."""

        def page(limit: int, offset: int) -> dict[str, Any]:
            asked: dict[str, Any] = {"limit": limit, "offset": offset}
            if filter_ is not None:
                asked["filter"] = filter_
            if fields is not None:
                asked["fields"] = fields
            return self._documents(uid, asked)

        return pages(page, limit=DOCUMENTS_PAGE)

    def fetch_ids(
        self, uid: str, ids: list[str], fields: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The documents among ``ids`` that exist (every field, or ``fields``)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), DOCUMENTS_PAGE):
            asked: dict[str, Any] = {"ids": ids[start : start + DOCUMENTS_PAGE],
                                     "limit": DOCUMENTS_PAGE}  # fmt: skip
            if fields is not None:
                asked["fields"] = fields
            found += self._documents(uid, asked)["results"]
        return found

    def _documents(self, uid: str, asked: dict[str, Any]) -> dict[str, Any]:
        """One page of documents (``POST /documents/fetch``: by filter or ids, any fields)
        as plain dicts, for :func:`pages`."""
        reply = self.ask(lambda c: c.index(uid).get_documents(asked))
        return {"results": [dict(iter(doc)) for doc in reply.results], "total": reply.total}

    # -- writing: each returns the task's uid without waiting, unless it says so ----------

    def add(self, uid: str, docs: list[dict[str, Any]]) -> int:
        """Enqueue whole documents (indexing overlaps with what comes next)."""
        return self.add_json(uid, dumps(docs))

    def add_json(self, uid: str, body: bytes) -> int:
        """:meth:`add` for documents already encoded as a JSON array (orjson: a third of
        the CPU the client's own encoding takes)."""
        return self.ask(
            lambda c: c.index(uid).add_documents_raw(body, "id", "application/json")
        ).task_uid

    def update(self, uid: str, docs: list[dict[str, Any]]) -> int:
        """Enqueue partial documents: the fields given replace those fields, the others
        stay (a document not there yet is created with these fields alone)."""
        return self.ask(lambda c: c.index(uid).update_documents(docs, "id")).task_uid

    def delete_ids(self, uid: str, ids: list[str]) -> int:
        """Enqueue the deletion of documents by id.

        The client warns that deleting by id is deprecated in favour of a filter, but a
        filter on ``id`` needs ``id`` filterable, which costs index size for nothing else;
        the route itself is current in Meilisearch. The warning is silenced for this call
        only; the lock keeps this process's threads from swapping the warning filters
        under each other (``catch_warnings`` is process-wide).
        """
        with _DELETE_WARNING, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The use of ids is depreciated", DeprecationWarning)
            task = self.ask(lambda c: c.index(uid).delete_documents(list(ids)))
        return task.task_uid

    def create(self, uid: str) -> None:
        task = self.ask(lambda c: c.create_index(uid, {"primaryKey": "id"}))
        self.wait([task.task_uid])

    def apply_settings(self, uid: str, settings: dict[str, Any]) -> None:
        task = self.ask(lambda c: c.index(uid).update_settings(dict(settings)))
        self.wait([task.task_uid])

    def ensure(self, uid: str, settings: dict[str, Any]) -> bool:
        """Create ``uid`` with ``settings`` when it is missing (a long-lived index, such as
        the messages index, that no swap creates). True when it was created.

        An index that is there but lacks the attributes ``settings`` makes searchable or
        filterable gets ``settings`` (one task, waited for): a write that found the index
        gone (a `messages purge` under a running `listen`) lets Meilisearch create it with
        its defaults, where the retention's filter on ``timestamp`` would be refused."""
        if not self.exists(uid):
            self.create(uid)
            self.apply_settings(uid, settings)
            return True
        keys = [k for k in ENSURED_SETTINGS if k in settings]
        have = self.live_settings(uid)
        drift = settings_drift({k: have.get(k) for k in keys}, {k: settings[k] for k in keys})
        if drift:
            log.warning(
                "index %s lacks its %s (created without them?): applying its settings",
                uid,
                " and ".join(drift),
            )
            self.apply_settings(uid, settings)
        return False

    def delete_where(self, uid: str, filter_: str) -> int:
        """Enqueue the deletion of every document matching ``filter_`` (retention: the
        attributes it names must be filterable)."""
        return self.ask(lambda c: c.index(uid).delete_documents(filter=filter_)).task_uid

    def delete(self, uid: str) -> None:
        task = self.unless_missing(lambda c: c.delete_index(uid))
        if task is not None:
            self.wait([task.task_uid], allow={"index_not_found"})

    def start_swap(self, build: str) -> int:
        """Enqueue the atomic swap of ``build`` and the live index."""
        if not self.exists(self.live):
            self.create(self.live)
        return self.ask(lambda c: c.swap_indexes([{"indexes": [self.live, build]}])).task_uid

    def swap_in(self, build: str) -> None:
        """Atomically make ``build`` the live index (searchers never see anything between)."""
        self.wait([self.start_swap(build)])

    def swap_task(self, build: str, uid: int | None = None) -> dict[str, Any] | None:
        """The swap task that involved ``build`` (by uid when known, else the newest):
        ``uid``, ``status``, ``type``, ``details``.

        Matched on ``details.swaps``: in 1.21 the ``indexUids`` filter is wrong for
        indexes that were swapped, so it is not used.
        """
        query: dict[str, Any] = (
            {"uids": [str(uid)]} if uid is not None else {"types": ["indexSwap"]}
        )
        reply = self.ask(lambda c: c.get_tasks({**query, "limit": 50}))
        for task in reply.results:
            swaps = (task.details or {}).get("swaps") or []
            if task.type == "indexSwap" and any(build in s.get("indexes", []) for s in swaps):
                return {"uid": task.uid, "status": task.status, "type": task.type,
                        "details": task.details}  # fmt: skip
        return None

    # -- tasks ----------------------------------------------------------------------------

    def tasks(self, uids: list[int]) -> list[Task]:
        """These tasks as Meilisearch has them now (task uids go as strings: the client
        joins them into the query string)."""
        found: list[Task] = []
        for start in range(0, len(uids), TASKS_AT_ONCE):
            found += self._tasks([str(u) for u in uids[start : start + TASKS_AT_ONCE]])
        return found

    def _tasks(self, uids: list[str]) -> list[Task]:
        return self.ask(lambda c: c.get_tasks({"uids": uids, "limit": len(uids)})).results

    def unfinished(self, uids: list[int], *, allow: set[str] | None = None) -> list[int]:
        """Those of ``uids`` Meilisearch has not finished; raises :class:`MeiliTaskFailed`
        for one that failed or was canceled (unless its error code is in ``allow``)."""
        done = set()
        for task in self.tasks(uids):
            if task.status not in TERMINAL:
                continue
            done.add(task.uid)
            error = task.error or {}
            if task.status != "succeeded" and not (allow and error.get("code") in allow):
                raise MeiliTaskFailed(
                    f"Meilisearch task {task.uid} ({task.type}) {task.status}: "
                    f"{error.get('message', 'no message')} [{error.get('code', '?')}]",
                    error.get("type"),
                )
        return [u for u in uids if u not in done]

    def wait(
        self, uids: list[int], *, allow: set[str] | None = None, poll: float | None = None
    ) -> None:
        """Wait until every task is done; raise on the first that did not succeed.

        Polled every ``poll`` seconds; by default from 20 ms backing off to 0.5 s, for
        builds that take minutes. Tasks finish in order, so each round asks about the
        oldest :data:`TASKS_AT_ONCE` still pending.
        """
        deadline = time.monotonic() + self.timeout
        pending = list(uids)
        delay = poll or 0.02
        while pending:
            head = pending[:TASKS_AT_ONCE]
            pending = self.unfinished(head, allow=allow) + pending[TASKS_AT_ONCE:]
            if pending:
                if time.monotonic() > deadline:
                    raise MeiliError(
                        f"Meilisearch at {self.url}: {len(pending)} tasks still unfinished "
                        f"after {self.timeout:.0f}s"
                    )
                time.sleep(delay)
                if poll is None:
                    delay = min(delay * 1.5, 0.5)


# -- the one raw call ----------------------------------------------------------------------


@dataclass(frozen=True)
class RawReply:
    status: int
    body: Any  # the JSON reply; None when there is none or it is not JSON


class RawHttp:
    """The one way to Meilisearch around the official client, on httpx. Two users:

    - the read-only probes (:mod:`explorer.meili.readonly`) send any method to any route
      with an empty body, or with a body that starts late on a connection of its own, and
      read only the status, several at once. The official client cannot send either body
      (it encodes anything but bytes as JSON, so no late stream) and is not for threads;
    - keys (:mod:`explorer.meili.keys`): the client parses keys into models that cannot
      read an ``expiresAt`` without a fraction of a second, which other tools write.

    ``connections``: how many requests may be in flight together (threads).
    """

    def __init__(
        self, settings: MeiliSettings, *, timeout: float = 10.0, connections: int = 1
    ) -> None:
        import httpx

        self.url = settings.url
        headers = {"Content-Type": "application/json", **_HEADERS}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key.reveal()}"
        self._http = httpx.Client(base_url=settings.url, headers=headers, timeout=timeout,
                                  limits=httpx.Limits(max_connections=connections))  # fmt: skip

    def __enter__(self) -> RawHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def request(
        self, method: str, path: str, body: bytes | Iterable[bytes] = b"", *, alone: bool = False
    ) -> RawReply:
        """Send one request; a reply of any status is returned, no reply raises MeiliError.

        ``alone``: the connection is closed after it, for a body the server may answer
        before it has read it all (what is left must not be read as the next request).
        """
        import httpx

        headers = {"Connection": "close"} if alone else None
        try:
            reply = self._http.request(method, path, content=body, headers=headers)
        except httpx.HTTPError:
            raise unreachable(self.url) from None
        return RawReply(reply.status_code, _json(reply))

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON reply to one request, errors as :func:`error` words them."""
        reply = self.request(method, path, b"" if body is None else dumps(body))
        if reply.status < 400:
            return reply.body
        data = reply.body if isinstance(reply.body, dict) else {}
        raise error(self.url, status=reply.status, code=data.get("code"),
                    message=str(data.get("message") or reply.status))  # fmt: skip


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None
