"""The Meilisearch side: connecting, checking permissions, and translating its errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import meilisearch
import orjson
from meilisearch.errors import (
    MeilisearchApiError,
    MeilisearchCommunicationError,
    MeilisearchError,
    MeilisearchTimeoutError,
)

from explorer.config import MeiliSettings
from explorer.errors import MeiliError, MeiliTaskFailed
from explorer.meili.errors import PAGE, error, pages, unreachable
from explorer.records.filters import instance_id_is
from explorer.secrets import redact

T = TypeVar("T")


def dumps(value: Any) -> bytes:
    """JSON bytes, key order kept (the web UI shows fields in first-seen order)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an int beyond 64 bits, say: the stdlib takes anything
        return json.dumps(value, ensure_ascii=False).encode()


def connect(settings: MeiliSettings, *, timeout: float = 30.0) -> meilisearch.Client:
    key = settings.api_key.reveal() if settings.api_key else None
    return meilisearch.Client(settings.url, key, timeout=int(timeout))


def translate(exc: MeilisearchError, url: str, index: str | None = None) -> MeiliError:
    """The official client's exception as the one-line :class:`MeiliError` of
    :func:`explorer.meili.errors.error`, without the key a URL may carry."""
    if isinstance(exc, MeilisearchCommunicationError):
        return unreachable(url)
    if isinstance(exc, MeilisearchTimeoutError):
        return MeiliError(redact(f"Meilisearch at {url} timed out: {exc.message}"))
    if isinstance(exc, MeilisearchApiError):
        found = error(url, status=exc.status_code, code=exc.code, message=exc.message, index=index)
        return type(found)(redact(str(found)))
    return MeiliError(redact(f"Meilisearch at {url}: {exc.message}"))


@contextmanager
def meili_errors(url: str, index: str | None = None) -> Iterator[None]:
    """Turn client exceptions into one-line :class:`MeiliError` (see :func:`translate`)."""
    try:
        yield
    except MeilisearchError as exc:
        raise translate(exc, url, index) from None


def call(url: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with meili_errors(url):
        return fn(*args, **kwargs)


def get_all(
    client: meilisearch.Client, url: str, path: str, *, limit: int = PAGE
) -> Iterator[dict[str, Any]]:
    """Every item of a paginated GET list such as ``indexes`` or ``keys``."""

    def page(limit: int, offset: int) -> dict[str, Any]:
        reply: dict[str, Any] = call(url, client.http.get, f"{path}?limit={limit}&offset={offset}")
        return reply

    return pages(page, limit=limit)


ADMIN_PROBES: tuple[tuple[str, str], ...] = (
    ("version", "version"),
    ("indexes.get", "indexes?limit=1"),
    ("tasks.get", "tasks?limit=1"),
    ("stats.get", "stats"),
)


def check_server(settings: MeiliSettings) -> str:
    """Reachability, version and the read permissions reindex needs; raises MeiliError."""
    client = connect(settings, timeout=10)
    url = settings.url
    with meili_errors(url):
        client.health()
    missing = []
    version = "?"
    for action, path in ADMIN_PROBES:
        try:
            reply = client.http.get(path)
            if action == "version":
                version = reply.get("pkgVersion", "?")
        except MeilisearchApiError as exc:
            if exc.status_code in (401, 403):
                missing.append(action)
            else:
                raise translate(exc, url) from None
        except MeilisearchError as exc:
            raise translate(exc, url) from None
    if missing:
        raise MeiliError(
            f"Meilisearch at {url}: the API key lacks permission {', '.join(missing)} "
            "(reindex needs an admin key: set MEILI_API_KEY)"
        )
    return f"Meilisearch {version}, key can manage indexes"


TERMINAL = ("succeeded", "failed", "canceled")
DOCUMENTS_PAGE = 1000


class IndexStore:
    """The Meilisearch operations reindexing needs, each checked to have *succeeded*.

    The client returns failed tasks instead of raising, and its default wait is 5 s; here
    every write is waited for without such a limit (unless ``timeout`` says otherwise) and
    a failed task raises :class:`MeiliError` with Meilisearch's own message.
    """

    def __init__(self, settings: MeiliSettings, *, timeout: float = 3600.0) -> None:
        self.settings = settings
        self.url = settings.url
        self.live = settings.index
        self.client = connect(settings)
        self.timeout = timeout

    # -- reading --------------------------------------------------------------------------

    def exists(self, uid: str) -> bool:
        try:
            self.client.http.get(f"indexes/{uid}")
        except MeilisearchApiError as exc:
            if exc.code == "index_not_found":
                return False
            raise translate(exc, self.url) from None
        except MeilisearchError as exc:
            raise translate(exc, self.url) from None
        return True

    def count(self, uid: str) -> int | None:
        if not self.exists(uid):
            return None
        stats = call(self.url, self.client.http.get, f"indexes/{uid}/stats")
        return int(stats["numberOfDocuments"])

    def build_indexes(self) -> list[str]:
        prefix = f"{self.live}__build_"
        indexes = get_all(self.client, self.url, "indexes")
        return sorted(r["uid"] for r in indexes if r["uid"].startswith(prefix))

    def newest_activity(self, uid: str, instance_id: str) -> int | None:
        """The latest ``last_activity`` of an instance's chats in the index."""
        body = {
            "q": "",
            "limit": 1,
            "filter": f"{instance_id_is(instance_id)} AND last_activity EXISTS",
            "sort": ["last_activity:desc"],
            "attributesToRetrieve": ["last_activity"],
        }
        hits = call(self.url, self.client.http.post, f"indexes/{uid}/search", body)["hits"]
        stamp = hits[0].get("last_activity") if hits else None
        return stamp if isinstance(stamp, int) else None

    def live_settings(self, uid: str) -> dict[str, Any]:
        result: dict[str, Any] = call(self.url, self.client.http.get, f"indexes/{uid}/settings")
        return result

    def documents(self, uid: str) -> Iterator[dict[str, Any]]:
        """Every document with every field (hidden helper fields included)."""
        return get_all(self.client, self.url, f"indexes/{uid}/documents", limit=DOCUMENTS_PAGE)

    def fetch(self, uid: str, filter_: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every document matching ``filter_`` (no maxTotalHits cap, unlike search)."""

        def page(limit: int, offset: int) -> dict[str, Any]:
            body = {"filter": filter_, "fields": fields, "limit": limit, "offset": offset}
            path = f"indexes/{uid}/documents/fetch"
            reply: dict[str, Any] = call(self.url, self.client.http.post, path, body)
            return reply

        return pages(page, limit=DOCUMENTS_PAGE)

    def fetch_ids(self, uid: str, ids: list[str]) -> list[dict[str, Any]]:
        """The documents among ``ids`` that exist, every field (sync merges into them)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), 1000):
            body = {"ids": ids[start : start + 1000], "limit": 1000}
            page = call(self.url, self.client.http.post, f"indexes/{uid}/documents/fetch", body)
            found += page["results"]
        return found

    def delete_ids(self, uid: str, ids: list[str]) -> int:
        """Enqueue the deletion of documents by id; returns the task uid."""
        reply = call(self.url, self.client.http.post, f"indexes/{uid}/documents/delete-batch", ids)
        return self._task_uid(reply)

    # -- writing --------------------------------------------------------------------------

    def _task_uid(self, reply: Any) -> int:
        uid = getattr(reply, "task_uid", None)
        if uid is None and isinstance(reply, dict):
            uid = reply.get("taskUid")
        if not isinstance(uid, int):
            raise MeiliError(f"Meilisearch at {self.url}: unexpected reply {reply!r}")
        return uid

    def create(self, uid: str) -> None:
        reply = call(self.url, self.client.create_index, uid, {"primaryKey": "id"})
        self.wait([self._task_uid(reply)])

    def apply_settings(self, uid: str, settings: dict[str, Any]) -> None:
        reply = call(self.url, self.client.http.patch, f"indexes/{uid}/settings", settings)
        self.wait([self._task_uid(reply)])

    def add(self, uid: str, docs: list[dict[str, Any]]) -> int:
        """Enqueue documents; returns the task uid without waiting (indexing overlaps)."""
        return self.add_json(uid, dumps(docs))

    def add_json(self, uid: str, body: bytes) -> int:
        """:meth:`add` for documents already encoded as a JSON array."""
        reply = call(
            self.url, self.client.http.post, f"indexes/{uid}/documents?primaryKey=id", body
        )
        return self._task_uid(reply)

    def delete(self, uid: str) -> None:
        try:
            reply = self.client.delete_index(uid)
        except MeilisearchApiError as exc:
            if exc.code == "index_not_found":
                return
            raise translate(exc, self.url) from None
        except MeilisearchError as exc:
            raise translate(exc, self.url) from None
        self.wait([self._task_uid(reply)], allow={"index_not_found"})

    def start_swap(self, build: str) -> int:
        """Enqueue the atomic swap of ``build`` and the live index; returns the task uid."""
        if not self.exists(self.live):
            self.create(self.live)
        reply = call(self.url, self.client.swap_indexes, [{"indexes": [self.live, build]}])
        return self._task_uid(reply)

    def swap_in(self, build: str) -> None:
        """Atomically make ``build`` the live index (searchers never see anything between)."""
        self.wait([self.start_swap(build)])

    def swap_task(self, build: str, uid: int | None = None) -> dict[str, Any] | None:
        """The swap task that involved ``build`` (by uid when known, else the newest).

        Matched on ``details.swaps``: in 1.21 the ``indexUids`` filter is wrong for
        indexes that were swapped, so it is not used.
        """
        query = f"uids={uid}" if uid is not None else "types=indexSwap"
        reply = call(self.url, self.client.http.get, f"tasks?{query}&limit=50")
        for task in reply.get("results", []):
            swaps = (task.get("details") or {}).get("swaps") or []
            if task.get("type") == "indexSwap" and any(
                build in s.get("indexes", []) for s in swaps
            ):
                return dict(task)
        return None

    def wait(self, uids: list[int], *, allow: set[str] | None = None) -> None:
        """Wait until every task is done; raise on the first that did not succeed."""
        deadline = time.monotonic() + self.timeout
        pending = list(uids)
        delay = 0.02
        while pending:
            chunk = pending[:200]
            reply = call(
                self.url,
                self.client.http.get,
                f"tasks?uids={','.join(map(str, chunk))}&limit={len(chunk)}",
            )
            done = {t["uid"]: t for t in reply["results"] if t["status"] in TERMINAL}
            for task in done.values():
                if task["status"] != "succeeded":
                    error = task.get("error") or {}
                    if allow and error.get("code") in allow:
                        continue
                    raise MeiliTaskFailed(
                        f"Meilisearch task {task['uid']} ({task['type']}) {task['status']}: "
                        f"{error.get('message', 'no message')} [{error.get('code', '?')}]"
                    )
            pending = [u for u in pending if u not in done]
            if pending:
                if time.monotonic() > deadline:
                    raise MeiliError(
                        f"Meilisearch at {self.url}: {len(pending)} tasks still unfinished "
                        f"after {self.timeout:.0f}s"
                    )
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
