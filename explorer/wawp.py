"""HTTP client for the Wawp API: auth, retries, and turning replies into data or errors.

Wawp proxies WAHA, so bodies differ by engine and errors come in several shapes (see
docs/wawp.md). This module only knows HTTP and body shapes; it returns raw chat objects
and leaves their meaning to :mod:`explorer.chats`.

The access token rides in the query string, so no URL ever leaves this module unredacted:
messages name the path and the instance, never the URL, and exceptions from httpx are
replaced (``from None``) so tracebacks carry no request objects.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from explorer import __version__
from explorer.errors import (
    WawpAuthError,
    WawpNotFound,
    WawpProtocolError,
    WawpRequestError,
    WawpUnavailable,
)
from explorer.pace import Pace
from explorer.secrets import Secret, redact
from explorer.transport import Reply, default_transport

log = logging.getLogger("explorer.wawp")

RETRY_STATUSES = frozenset({202, 408, 422, 425, 429, 500, 502, 503, 504})
LIST_KEYS = ("data", "chats", "result", "response", "items")
ERROR_KEYS = ("error", "code", "wawp_upstream_error", "exception")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, bounded by a total time budget per call."""

    budget_seconds: float = 300.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_bad_bodies: int = 3

    def delay(self, attempt: int, rng: random.Random) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt) * rng.uniform(0.5, 1.0))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message_of(body: Any) -> str:
    """The human part of any error body shape we know, else a short excerpt."""
    if isinstance(body, dict):
        parts = []
        for key in ("message", "error", "code", "wawp_upstream_error"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            if isinstance(value, dict):
                value = value.get("message") or json.dumps(value)[:200]
            if value and str(value) not in parts:
                parts.append(str(value))
        exc = body.get("exception")
        if isinstance(exc, dict) and exc.get("message"):
            parts.append(str(exc["message"]))
        if body.get("status") and isinstance(body.get("status"), str):
            parts.append(f"session status {body['status']}")
        return " - ".join(parts)[:300] or json.dumps(body)[:200]
    return str(body)[:200]


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text[:120] + ("…" if len(text) > 120 else "")


def looks_like_error(body: Any) -> bool:
    """An error under HTTP 200: ``success: false`` or an error key with no list beside it."""
    if not isinstance(body, dict):
        return False
    if body.get("success") is False or body.get("result") is False:
        return True
    if any(isinstance(body.get(k), list) for k in LIST_KEYS):
        return False
    return any(k in body for k in ERROR_KEYS)


def extract_items(body: Any) -> list[Any] | None:
    """The list of chats in any envelope Wawp or WAHA has been seen to use, else None."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        return None
    for key in LIST_KEYS:
        value = body.get(key)
        if isinstance(value, list):
            return value
        if isinstance(value, dict) and (inner := extract_items(value)) is not None:
            return inner
    if body and all(isinstance(k, str) and k.isdigit() for k in body):
        return [body[k] for k in sorted(body, key=int)]
    if not body:
        return []
    return None


class WawpClient:
    """One Wawp instance. Thread-safe: pages may be fetched concurrently."""

    def __init__(
        self,
        base_url: str,
        instance_id: str,
        token: Secret,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_connections: int = 16,
        pace: Pace | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.pace = pace
        self._token = token
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.requests_made = 0
        self.retries_made = 0
        # Our own client takes the crawl's GETs: httpx's request and response objects and
        # its client's layers (auth flow, redirects, cookie jar, mounts) cost more CPU per
        # page than the HTTP itself and do nothing for us. A transport given by the caller
        # (a test's MockTransport) or a proxy from the environment goes through httpx.
        self._fast = default_transport() if transport is None else None
        self._http = (
            None
            if self._fast is not None
            else httpx.Client(
                transport=transport,
                limits=httpx.Limits(max_connections=max_connections),
                follow_redirects=False,
            )
        )
        self._get: Callable[[str, dict[str, str], float], Reply] = (
            self._fast.get if self._fast is not None else self._get_via_httpx
        )
        self._headers = {
            "access-token": token.reveal(),
            "Accept": "application/json",
            "User-Agent": f"whatsapp-explorer/{__version__}",
        }
        self._timeout = timeout
        self.base_url = base_url
        self._prefix = base_url.rstrip("/")

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> WawpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WawpClient({self.base_url!r}, instance={self.instance_id!r})"

    # -- public calls --------------------------------------------------------------------

    def session_info(self) -> dict[str, Any]:
        body = self._call("/v2/session/info", {})
        if not isinstance(body, dict):
            raise self._protocol("/v2/session/info", f"expected an object, got {_kind(body)}")
        return body

    def chats_page(self, *, stop: threading.Event | None = None, **page: Any) -> list[Any]:
        """One page of raw chats (``page``: the keywords of :meth:`request_chats`).
        ``stop`` abandons retries early (the caller moved on)."""
        return self.chats_of(self.request_chats(stop=stop, **page), stop=stop)

    def request_chats(
        self,
        *,
        offset: int,
        limit: int,
        sort_by: str = "id",
        sort_order: str = "asc",
        stop: threading.Event | None = None,
    ) -> ChatsReply:
        """The HTTP half of :meth:`chats_page`: statuses, retries and pace. A 2xx body is
        left undecoded for :meth:`chats_of`, so that the crawl's fetching threads, which
        wake once a page, do not also build the page's objects: its reader decodes several
        pages in one go, with the CPU's caches warm (see :class:`explorer.crawl.PageSource`)."""
        params = {"limit": limit, "offset": offset, "sortBy": sort_by, "sortOrder": sort_order}
        reply = self._call("/v2/chats", params, want_list=True, stop=stop, decode=False)
        return ChatsReply(params, reply)

    def chats_of(self, reply: ChatsReply, *, stop: threading.Event | None = None) -> list[Any]:
        """The chats of a reply from :meth:`request_chats`. A body that is not a list of
        chats goes on through the retries as if :meth:`chats_page` had met it."""
        outcome = self._interpret("/v2/chats", reply.reply, want_list=True)
        if isinstance(outcome, _Ok):
            body = outcome.body
        else:
            body = self._call("/v2/chats", reply.params, want_list=True, stop=stop, first=outcome)
        items = extract_items(body)
        assert items is not None  # _interpret(want_list=True) guarantees it
        return items

    def lids_page(
        self, *, offset: int, limit: int, stop: threading.Event | None = None
    ) -> list[Any]:
        """One page of the instance's LID map: raw ``{"lid", "pn"}`` objects."""
        body = self._call("/v2/lids", {"limit": limit, "offset": offset}, want_list=True,
                          stop=stop)  # fmt: skip
        items = extract_items(body)
        assert items is not None  # _interpret(want_list=True) guarantees it
        return items

    def lids_count(self) -> int | None:
        """``/v2/lids/count``: how many mappings the instance knows (None: no number)."""
        body = self._call("/v2/lids/count", {})
        count = body.get("count") if isinstance(body, dict) else body
        return count if type(count) is int and count >= 0 else None

    def lid(self, lid: str) -> Any:
        """``/v2/lids/{lid}``: ``{"lid", "pn"}``, ``pn`` null when the number is unknown."""
        return self._call(f"/v2/lids/{quote(lid, safe='')}", {})

    # -- machinery -----------------------------------------------------------------------

    def _where(self, path: str) -> str:
        return f"Wawp instance {self.instance_id} ({path})"

    def _protocol(self, path: str, what: str) -> WawpProtocolError:
        return WawpProtocolError(
            f"{self._where(path)}: unexpected reply: {what}", instance_id=self.instance_id
        )

    def _call(
        self,
        path: str,
        params: dict[str, Any],
        *,
        want_list: bool = False,
        stop: threading.Event | None = None,
        decode: bool = True,
        first: _Retry | None = None,
    ) -> Any:
        """The body of a GET, after the retries it takes. ``decode=False``: a 2xx reply
        comes back as its :class:`Reply`, undecoded. ``first``: what an attempt made
        elsewhere met (:meth:`chats_of`), counted as this call's first."""
        query = {"instance_id": self.instance_id, "access_token": self._token.reveal(), **params}
        started = time.monotonic()
        attempt = 0
        bad_bodies = 0
        while True:
            outcome = first or self._attempt(path, query, want_list, decode)
            first = None
            if not isinstance(outcome, _Retry):
                return outcome.body
            if outcome.bad_body:
                bad_bodies += 1
                if bad_bodies >= self.retry.max_bad_bodies:
                    raise self._protocol(path, outcome.reason)
            # Retry-After can only lengthen the wait: "0" or a date in the past would
            # otherwise retry in a tight loop for the whole budget.
            delay = max(outcome.after or 0.0, self.retry.delay(attempt, self._rng))
            elapsed = time.monotonic() - started
            if elapsed + delay > self.retry.budget_seconds:
                raise WawpUnavailable(
                    f"{self._where(path)}: gave up after {attempt + 1} attempts in "
                    f"{elapsed:.0f}s (retry budget {self.retry.budget_seconds:g}s): "
                    f"{outcome.reason}",
                    instance_id=self.instance_id,
                )
            log.info("%s: %s; retrying in %.1fs", self._where(path), outcome.reason, delay)
            with self._lock:
                self.retries_made += 1
            if stop is not None and stop.is_set():
                raise WawpUnavailable(
                    f"{self._where(path)}: abandoned", instance_id=self.instance_id
                )
            self._sleep(delay)
            attempt += 1

    def _get_via_httpx(self, url: str, headers: dict[str, str], timeout: float) -> Reply:
        assert self._http is not None  # this path exists only with the httpx client
        resp = self._http.get(url, headers=headers, timeout=timeout)
        return Reply(resp.status_code, resp.reason_phrase,
                     {k.lower(): v for k, v in resp.headers.items()}, resp.content)  # fmt: skip

    def _attempt(
        self, path: str, query: dict[str, Any], want_list: bool, decode: bool = True
    ) -> _Ok | _Retry:
        """One GET. Raises the errors that retrying cannot fix."""
        with self._lock:
            self.requests_made += 1
        started = time.monotonic()
        try:
            with self.pace.slot(self.instance_id) if self.pace else contextlib.nullcontext():
                started = time.monotonic()  # the reply time, not the wait for a slot
                reply = self._get(f"{self._prefix}{path}?{urlencode(query)}", self._headers,
                                  self._timeout)  # fmt: skip
        except httpx.TimeoutException as exc:
            if self.pace:
                self.pace.observe(time.monotonic() - started, throttled=True)
            return _Retry(f"timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            reason = redact(str(exc), self._token) or type(exc).__name__
            return _Retry(f"connection failed: {reason}")
        status = reply.status
        log.debug("GET %s: %d in %.3fs", path, status, time.monotonic() - started)
        if self.pace:
            throttled = status in (429, 503)
            after = parse_retry_after(reply.headers.get("retry-after")) if throttled else None
            self.pace.observe(time.monotonic() - started, throttled=throttled, retry_after=after)
        if not decode and 200 <= status < 300 and status not in RETRY_STATUSES:
            return _Ok(reply)
        return self._interpret(path, reply, want_list)

    def _interpret(self, path: str, reply: Reply, want_list: bool) -> _Ok | _Retry:
        """What a reply means: its body, a reason to retry, or an error retrying cannot fix."""
        status = reply.status
        raw = reply.content
        retry_after = parse_retry_after(reply.headers.get("retry-after"))
        # Parse the bytes: resp.text would keep a decoded copy (4 bytes per character for
        # non-Latin names) alive on the response until the cyclic GC frees it.
        body: Any = None
        parsed = False
        if raw.strip():
            body, parsed = _loads(raw)
        text = "" if parsed else raw[:2000].decode("utf-8", "replace")
        if (
            200 <= status < 300
            and status not in RETRY_STATUSES
            and parsed
            and not looks_like_error(body)
        ):
            if want_list and extract_items(body) is None:
                return _Retry(f"no chat list in {_kind(body)}", bad_body=True)
            return _Ok(body)
        # Only a failure needs words (on a page of chats they would cost more than decoding).
        detail = (_message_of(body) if parsed else _excerpt(text)) or reply.reason
        if status in (401, 403):
            hint = (
                "check WAWP_ACCESS_TOKEN or the instance's access_token"
                if status == 401
                else "the token is valid but not allowed here (quota or plan limit?)"
            )
            raise WawpAuthError(
                f"{self._where(path)}: {status} {redact(detail, self._token)}: {hint}",
                instance_id=self.instance_id,
                status=status,
            )
        if status == 404:
            raise WawpNotFound(
                f"{self._where(path)}: 404 {detail}: check the instance id (WAWP_INSTANCE_ID / "
                "wawp.instances) and that the instance still exists",
                instance_id=self.instance_id,
                status=404,
            )
        if status == 422 and parsed and not _session_not_ready(body):
            raise WawpRequestError(
                f"{self._where(path)}: 422 {detail}", instance_id=self.instance_id, status=422
            )
        if status == 501:  # the route is not implemented here: asking again will not help
            raise WawpRequestError(
                f"{self._where(path)}: 501 {detail}", instance_id=self.instance_id, status=501
            )
        if status in RETRY_STATUSES or status >= 500:
            return _Retry(f"HTTP {status} {detail}", retry_after)
        if not 200 <= status < 300:
            raise WawpRequestError(
                f"{self._where(path)}: {status} {detail} (request rejected; not retried)",
                instance_id=self.instance_id,
                status=status,
            )
        if not parsed:
            return _Retry(f"body is not JSON ({_excerpt(text) or 'empty'})", bad_body=True)
        # What is left: an error object under a 2xx status.
        if isinstance(body, dict) and body.get("code") == "invalid_session":
            raise WawpNotFound(
                f"{self._where(path)}: {detail}: the WhatsApp session is not connected; "
                "reconnect the instance in Wawp",
                instance_id=self.instance_id,
            )
        return _Retry(f"error under HTTP 200: {detail}")


@dataclass(frozen=True)
class ChatsReply:
    """A 2xx reply to a page request, its body not decoded yet (:meth:`WawpClient.chats_of`)."""

    params: dict[str, Any]  # the request's, for a retry (never the token)
    reply: Reply

    def count(self) -> int | None:
        """How many chats the body holds, None if it holds no list of chats."""
        body, parsed = _loads(self.reply.content)
        items = extract_items(body) if parsed and not looks_like_error(body) else None
        return None if items is None else len(items)


@dataclass(frozen=True)
class _Ok:
    body: Any


@dataclass(frozen=True)
class _Retry:
    reason: str
    after: float | None = None
    bad_body: bool = False


def _loads(raw: bytes) -> tuple[Any, bool]:
    """``(body, True)``, or ``(None, False)`` for a body that is not JSON. orjson first (a
    fraction of the stdlib's time); the stdlib for what orjson refuses but JSON allows
    (integers beyond 64 bits)."""
    try:
        return orjson.loads(raw), True
    except ValueError:
        pass
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _session_not_ready(body: Any) -> bool:
    """WAHA's 422 for a session that is not WORKING yet, as opposed to a real 422."""
    if not isinstance(body, dict):
        return True
    if body.get("expected") or isinstance(body.get("status"), str):
        return True
    return "not as expected" in str(body.get("error", "")) + str(body.get("message", ""))


def _kind(body: Any) -> str:
    if isinstance(body, dict):
        keys = ", ".join(list(body)[:5])
        return f"an object with keys [{keys}]"
    return type(body).__name__
