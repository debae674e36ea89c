"""HTTP client for the Wawp API: auth, retries, and turning replies into data or errors.

Wawp proxies WAHA, so bodies differ by engine and errors come in several shapes (see
docs/wawp.md). This module only knows HTTP and body shapes; it returns raw chat objects
and leaves their meaning to :mod:`explorer.records.chats`.

Requests go through httpx: keep-alive connections, as many as the crawl's concurrency,
gzip bodies (a page of chats is mostly repeated keys), h11's strict HTTP/1.1 framing, and
proxies, ``NO_PROXY`` and certificates from the environment as httpx reads them. Each
connection is its own ``httpx.Client``, lent to one request at a time (:class:`_Lender`
says why).

The access token rides in the query string, and a server may quote it back in any error
body, so nothing leaves this module unredacted: every error is built by
:meth:`WawpClient._error` and every retry line by :meth:`WawpClient._log_retry`, both
through :func:`explorer.secrets.redact` with the token itself, and httpx's exceptions
(whose ``.request.url`` holds the token) are turned into reasons to retry or into our own
errors, never raised or chained.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final
from urllib.parse import quote, urlencode

import httpx
import orjson

from explorer.errors import (
    WawpAuthError,
    WawpChatGone,
    WawpError,
    WawpNotFound,
    WawpProtocolError,
    WawpRequestError,
    WawpUnavailable,
)
from explorer.secrets import Secret, redact, remember
from explorer.source.pace import Pace

log = logging.getLogger("explorer.source.wawp")

RETRY_STATUSES = frozenset({202, 408, 422, 425, 429, 500, 502, 503, 504})
LIST_KEYS = ("data", "chats", "result", "response", "items")
ERROR_KEYS = ("error", "code", "wawp_upstream_error", "exception")
# A page of 100 chats is tens of kilobytes; a reply past this (decoded) is not a page, and
# reading on would only fill memory (a gzip bomb, a runaway proxy).
MAX_BODY_BYTES = 64 * 1024 * 1024
# Routes whose replies hold message text: no excerpt of their bodies (a truncated page, an
# error object quoting a message) goes into an error or a retry line, only the status.
PRIVATE_BODIES: Final = frozenset({"/v2/chats/messages"})


def _user_agent() -> str:
    try:
        version = metadata.version("whatsapp-explorer")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    return f"whatsapp-explorer/{version}"


USER_AGENT = _user_agent()


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


class _Lender:
    """Up to ``size`` single-connection httpx clients, each lent to one request at a time
    (more requests wait for one).

    Not one client with a pool of ``size``: httpcore's pool (1.0.9, the latest) takes an
    idle connection whose socket is readable for one the server closed, and looks in two
    steps without a lock. Between them another thread can take that connection, send its
    request and receive the reply, which makes the socket readable: the pool then closes
    it under that request, which fails (EBADF, retried on a new connection) or, since
    closing a socket does not wake the ``poll()`` waiting on it, hangs until the read
    timeout. Under load that was most runs of 60 concurrent requests to a local server
    (tests/test_wawp_http.py); encode/httpcore#1110 is the same race by another path. A
    client only one thread uses at a time never checks a connection beside a request.
    """

    def __init__(self, make: Callable[[], httpx.Client], size: int) -> None:
        self._make = make
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[httpx.Client] = []  # the last one returned is lent first: warm
        self._made: list[httpx.Client] = []

    @contextlib.contextmanager
    def lend(self) -> Iterator[httpx.Client]:
        with self._slots:
            with self._lock:
                client = self._idle.pop() if self._idle else None
            if client is None:
                client = self._make()
                with self._lock:
                    self._made.append(client)
            try:
                yield client
            finally:
                with self._lock:
                    self._idle.append(client)

    def close(self) -> None:
        with self._lock:
            made, self._made, self._idle = self._made, [], []
        for client in made:
            client.close()


class WawpClient:
    """One Wawp instance. Thread-safe: pages may be fetched concurrently, up to
    ``max_connections`` at once (more wait for a connection)."""

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
        max_connections: int = 8,
        pace: Pace | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.pace = pace
        self._token = token
        remember(token)  # log formatters and the CLI mask it too, whoever quotes it
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.requests_made = 0
        self.retries_made = 0
        self.base_url = base_url
        self._prefix = base_url.rstrip("/")
        # One for every connection: loading the certificates costs more than a request.
        tls = httpx.create_ssl_context(trust_env=True)  # SSL_CERT_FILE, SSL_CERT_DIR

        def connection() -> httpx.Client:
            return httpx.Client(
                transport=transport,  # None: httpx's own, with the environment's proxies
                verify=tls,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=timeout,
                follow_redirects=False,  # a redirect would carry the token to another host
                headers={
                    # Latin-1, as HTTP headers are (config refuses anything else in a token).
                    b"access-token": token.reveal().encode("latin-1"),
                    b"Accept": b"application/json",
                    b"Accept-Encoding": b"gzip",
                    b"User-Agent": USER_AGENT.encode(),
                },
            )

        self._http = _Lender(connection, max_connections)

    def close(self) -> None:
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
            raise self._error(
                WawpProtocolError, "/v2/session/info", f"unexpected reply: {_kind(body)}"
            )
        return body

    def chats_page(
        self,
        *,
        offset: int,
        limit: int,
        sort_by: str = "id",
        sort_order: str = "asc",
        stop: threading.Event | None = None,
    ) -> list[Any]:
        """One page of raw chats. ``stop`` abandons retries early (the caller moved on)."""
        params = {"limit": limit, "offset": offset, "sortBy": sort_by, "sortOrder": sort_order}
        items = extract_items(self._call("/v2/chats", params, want_list=True, stop=stop))
        assert items is not None  # _interpret(want_list=True) guarantees it
        return items

    def messages_page(
        self,
        chat_id: str,
        *,
        offset: int,
        limit: int,
        stop: threading.Event | None = None,
    ) -> list[Any]:
        """One page of a chat's raw messages, newest first. ``downloadMedia=false`` always:
        WAHA downloads media by default, which is slow and useless to an index. A 404 is
        the chat gone since it was listed: :class:`WawpChatGone`, not retried."""
        path = "/v2/chats/messages"
        params = {"chatId": chat_id, "limit": limit, "offset": offset, "downloadMedia": "false"}
        try:
            body = self._call(path, params, want_list=True, stop=stop)
        except WawpNotFound as exc:
            if exc.status != 404:
                raise
            gone = f"404 for chat {chat_id} (deleted since it was listed?); skipped"
            raise self._error(WawpChatGone, path, gone, 404) from None
        items = extract_items(body)
        assert items is not None  # _interpret(want_list=True) guarantees it
        return items

    def lids_page(
        self, *, offset: int, limit: int, stop: threading.Event | None = None
    ) -> list[Any]:
        """One page of the instance's LID map: raw ``{"lid", "pn"}`` objects."""
        page = {"limit": limit, "offset": offset}
        body = self._call("/v2/lids", page, want_list=True, stop=stop)
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

    def labels(self, stop: threading.Event | None = None) -> list[Any]:
        """``/v2/labels``: the instance's raw ``{id, name, color, colorHex}`` labels."""
        items = extract_items(self._call("/v2/labels", {}, want_list=True, stop=stop))
        assert items is not None  # _interpret(want_list=True) guarantees it
        return items

    def label_chats(self, label_id: str, stop: threading.Event | None = None) -> list[Any]:
        """``/v2/labels/chats?labelId=``: the chats carrying a label, as raw ``{id}``
        objects (WAHA's ``/labels/{labelId}/chats``, its path parameter in the query)."""
        body = self._call("/v2/labels/chats", {"labelId": label_id}, want_list=True, stop=stop)
        items = extract_items(body)
        assert items is not None  # _interpret(want_list=True) guarantees it
        return items

    # -- machinery -----------------------------------------------------------------------

    def _where(self, path: str) -> str:
        return f"Wawp instance {self.instance_id} ({path})"

    def _error(
        self, kind: type[WawpError], path: str, what: str, status: int | None = None
    ) -> WawpError:
        """Every error this client raises is built here, its text scrubbed of the token."""
        message = redact(f"{self._where(path)}: {what}", self._token)
        return kind(message, instance_id=self.instance_id, status=status)

    def _log_retry(self, path: str, reason: str, delay: float) -> None:
        """Every retry line is written here, scrubbed of the token."""
        text = redact(f"{self._where(path)}: {reason}; retrying in {delay:.1f}s", self._token)
        log.info("%s", text)

    def _call(
        self,
        path: str,
        params: dict[str, Any],
        *,
        want_list: bool = False,
        stop: threading.Event | None = None,
    ) -> Any:
        """The body of a GET, after the retries it takes."""
        query = {"instance_id": self.instance_id, "access_token": self._token.reveal(), **params}
        # Encoded once here: httpx merging params into a URL parses it twice per request.
        url = f"{self._prefix}{path}?{urlencode(query)}"
        started = time.monotonic()
        attempt = 0
        bad_bodies = 0
        while True:
            outcome = self._attempt(path, url, want_list)
            if not isinstance(outcome, _Retry):
                return outcome.body
            if outcome.bad_body:
                bad_bodies += 1
                if bad_bodies >= self.retry.max_bad_bodies:
                    raise self._error(
                        WawpProtocolError, path, f"unexpected reply: {outcome.reason}"
                    )
            # Retry-After can only lengthen the wait: "0" or a date in the past would
            # otherwise retry in a tight loop for the whole budget.
            delay = max(outcome.after or 0.0, self.retry.delay(attempt, self._rng))
            elapsed = time.monotonic() - started
            if elapsed + delay > self.retry.budget_seconds:
                raise self._error(
                    WawpUnavailable,
                    path,
                    f"gave up after {attempt + 1} attempts in {elapsed:.0f}s "
                    f"(retry budget {self.retry.budget_seconds:g}s): {outcome.reason}",
                )
            self._log_retry(path, outcome.reason, delay)
            with self._lock:
                self.retries_made += 1
            if stop is not None and stop.is_set():
                raise self._error(WawpUnavailable, path, "abandoned")
            self._sleep(delay)
            attempt += 1

    def _attempt(self, path: str, url: str, want_list: bool) -> _Ok | _Retry:
        """One GET. Raises the errors that retrying cannot fix."""
        with self._lock:
            self.requests_made += 1
        started = time.monotonic()
        failed: WawpError | None = None
        try:
            with self.pace.slot(self.instance_id) if self.pace else contextlib.nullcontext():
                started = time.monotonic()  # the reply time, not the wait for a slot
                reply = self._get(url)
        except httpx.TimeoutException as exc:
            if self.pace:
                self.pace.observe(time.monotonic() - started, throttled=True)
            return _Retry(f"timeout ({type(exc).__name__})")
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            # Raised below, outside this block, so that nothing of httpx is chained to it.
            failed = self._error(WawpRequestError, path, f"cannot send: {_describe(exc)}")
        except httpx.DecodingError as exc:
            # The body's Content-Encoding lies (a broken proxy or CDN): a bad body.
            return _Retry(f"body could not be decoded ({_describe(exc)})", bad_body=True)
        except httpx.HTTPError as exc:  # connection refused, reset, malformed framing...
            return _Retry(f"connection failed: {_describe(exc)}")
        except _TooLarge:
            size = f"{MAX_BODY_BYTES / 2**20:g} MiB"
            failed = self._error(WawpProtocolError, path, f"unexpected reply: larger than {size}")
        if failed is not None:
            raise failed
        log.debug("GET %s: %d in %.3fs", path, reply.status, time.monotonic() - started)
        if self.pace:
            throttled = reply.status in (429, 503)
            after = parse_retry_after(reply.retry_after) if throttled else None
            self.pace.observe(time.monotonic() - started, throttled=throttled, retry_after=after)
        return self._interpret(path, reply, want_list)

    def _get(self, url: str) -> _Reply:
        """The reply, its body decoded (gzip) and capped at :data:`MAX_BODY_BYTES`."""
        with self._http.lend() as http, http.stream("GET", url) as resp:
            parts: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _TooLarge
                parts.append(chunk)
        content = parts[0] if len(parts) == 1 else b"".join(parts)
        return _Reply(
            resp.status_code, resp.reason_phrase, resp.headers.get("retry-after"), content
        )

    def _interpret(self, path: str, reply: _Reply, want_list: bool) -> _Ok | _Retry:
        """What a reply means: its body, a reason to retry, or an error retrying cannot fix."""
        status = reply.status
        body, parsed = _loads(reply.content) if reply.content.strip() else (None, False)
        if (
            200 <= status < 300
            and status not in RETRY_STATUSES
            and parsed
            and not looks_like_error(body)
        ):
            if want_list and extract_items(body) is None:
                kind = _kind(body, keys=path not in PRIVATE_BODIES)
                return _Retry(f"no list in {kind}", bad_body=True)
            return _Ok(body)
        return self._failure(path, reply, body, parsed)

    def _failure(self, path: str, reply: _Reply, body: Any, parsed: bool) -> _Retry:
        """A reply that is not data: a reason to retry, or raises. Only failures need words,
        and they come from the body scrubbed of the token before any of it is cut short (a
        cut could keep half of the token, which no redaction would recognise). A route of
        :data:`PRIVATE_BODIES` is described by its status and size alone."""
        status = reply.status
        private = path in PRIVATE_BODIES
        if private:
            text = ""
            detail = f"{reply.reason} ({len(reply.content)}-byte body not shown)".lstrip()
        else:
            text = redact(reply.content.decode("utf-8", "replace"), self._token)
            shown, readable = _loads(text.encode()) if parsed else (None, False)
            detail = (_message_of(shown) if readable else _excerpt(text)) or reply.reason
        if status in (401, 403):
            hint = (
                "check WAWP_ACCESS_TOKEN or the instance's access_token"
                if status == 401
                else "the token is valid but not allowed here (quota or plan limit?)"
            )
            raise self._error(WawpAuthError, path, f"{status} {detail}: {hint}", status)
        if status == 404:
            raise self._error(
                WawpNotFound,
                path,
                f"404 {detail}: check the instance id (WAWP_INSTANCE_ID / wawp.instances) and "
                "that the instance still exists",
                404,
            )
        if status == 422 and parsed and not _session_not_ready(body):
            raise self._error(WawpRequestError, path, f"422 {detail}", 422)
        if status == 501:  # the route is not implemented here: asking again will not help
            raise self._error(WawpRequestError, path, f"501 {detail}", 501)
        retry_after = parse_retry_after(reply.retry_after)
        if status in RETRY_STATUSES or status >= 500:
            return _Retry(f"HTTP {status} {detail}", retry_after)
        if not 200 <= status < 300:
            raise self._error(
                WawpRequestError, path, f"{status} {detail} (request rejected; not retried)", status
            )
        if not parsed:
            said = detail if private and reply.content.strip() else _excerpt(text)
            return _Retry(f"body is not JSON ({said or 'empty'})", bad_body=True)
        # What is left: an error object under a 2xx status.
        if isinstance(body, dict) and body.get("code") == "invalid_session":
            raise self._error(
                WawpNotFound,
                path,
                f"{detail}: the WhatsApp session is not connected; reconnect the instance in Wawp",
            )
        return _Retry(f"error under HTTP 200: {detail}")


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    reason: str
    retry_after: str | None
    content: bytes  # decoded: httpx undoes the Content-Encoding


@dataclass(frozen=True)
class _Ok:
    body: Any


@dataclass(frozen=True)
class _Retry:
    reason: str
    after: float | None = None
    bad_body: bool = False


class _TooLarge(Exception):
    """A reply past :data:`MAX_BODY_BYTES`."""


def _describe(exc: BaseException) -> str:
    """An httpx error's kind and text (its request, which holds the URL, is left behind)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _loads(raw: bytes) -> tuple[Any, bool]:
    """``(body, True)``, or ``(None, False)`` for a body that is not JSON. orjson first;
    the stdlib for what orjson refuses but JSON allows (integers beyond 64 bits)."""
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


def _kind(body: Any, *, keys: bool = True) -> str:
    """What a body is; with ``keys``, an object's first keys (which could be anything)."""
    if isinstance(body, dict):
        if not keys:
            return f"an object with {len(body)} keys"
        names = ", ".join(list(body)[:5])
        return f"an object with keys [{names}]"
    return type(body).__name__
