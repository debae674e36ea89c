"""`explorer serve`: the one door agents get to Meilisearch, with the agent page.

On one address (in compose, behind nginx: deploy/nginx/agent-ui.conf) it serves:

- the agent page at ``/agent/`` (explorer/web's plain files and ``config.json``);
- Meilisearch's own web UI at ``/``, with its assets (``/static/``, ``/fonts/``, icons),
  passed on read-only: GET and HEAD only, without the key or the query string;
- what both pages call: ``GET /indexes`` and ``GET /stats`` cut down to the configured
  index, ``GET /version``, ``GET /health``, and searches: ``POST /multi-search`` and
  ``GET``/``POST /indexes/<index>/search``, with the agent's own key from the request
  (never logged, never stored);
- and nothing else: any other route or method is 403.

**Routes are matched on the request target exactly as sent** (``raw_path``), never
decoded or normalised: ``%2F``, ``%2e%2e``, ``//``, a trailing slash or another case match
no route and are refused. What goes upstream is a path built here from the route, never
the client's.

**Pinned to the configured index** and, with message search on (``messages.enabled``), its
messages index (``<index>-messages``). A search of any other index, in the path, in a
multi-search query's ``indexUid`` or in ``federation.facetsByIndex``, is sent to Meilisearch
under a decoy name that exists nowhere (``explorer-door-<random>``), and the answer is given
back with the name the client asked for. So no other index's data passes, whatever the key
(a master key gets "not found", an agent key "cannot access"), and the page can still tell
a key that covers every index from an agent's key, which is how it refuses admin keys.
Searches on another Meilisearch (``federationOptions.remote``) are refused outright.
The multi-search body is parsed and sent on re-encoded, so Meilisearch reads exactly what
the door checked (no duplicate-key games). This is the door's one copy of the rule.

Why a door and not the browser talking to Meilisearch directly: a browser cannot ask for an
uncompressed reply, and Meilisearch's compressed replies on a kept-alive connection stall
about 40 ms each (the same stall :mod:`explorer.meili.query` avoids). Here every upstream
request asks for ``identity``, and the pages' Content-Security-Policy can be
``connect-src 'self'``. The key rides in the URL fragment to the agent page, which browsers
never send to a server.

The HTTP side (body limit and deadline, framing, connection cap) is
:mod:`explorer.doors.server`; request heads, TLS and rate limits are nginx's in front.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from explorer.config import MeiliSettings
from explorer.doors.server import HttpServer, Limits
from explorer.records.messages import messages_index

log = logging.getLogger("explorer.doors.serve")

WEB = Path(str(files("explorer") / "web"))
# The agent page: /agent/ and its files, config.json made here.
PAGE_ROUTE = re.compile(r"/agent/(index\.html|app\.js|query\.js|app\.css|config\.json)?")
SEARCH_ROUTE = re.compile(r"/indexes/([A-Za-z0-9_-]+)/search")
# Meilisearch's web UI: its page at /, and the assets that page loads. A path segment
# never starts with a dot, so none is `..`; `%` matches nothing, so none is encoded.
UI_ROUTE = re.compile(
    r"/|/(?:static|fonts)(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+|/(?:favicon-16x16\.png|"
    r"favicon-32x32\.png|favicon\.ico|logo\.svg|manifest\.json|logo192\.png|logo512\.png|"
    r"apple-touch-icon\.png)"
)
# What the web UI's assets keep of Meilisearch's answer, besides their type.
ASSET_HEADERS = ("Cache-Control", "ETag", "Last-Modified")
# What Meilisearch accepts as an index uid: any other string names no index, and is
# passed on for Meilisearch to refuse in its own words.
INDEX_UID = re.compile(r"[A-Za-z0-9_-]{1,512}")
DECOY = "explorer-door-"
DOOR_LIMITS = Limits(max_body=64 * 1024)
# Searches in flight to Meilisearch at once; the rest wait their turn in the door.
# Meilisearch runs no more searches at once than it has cores, so queueing here rather than
# there costs nothing (8 and 64 measured the same in benchmarks/door.py) and caps the
# connections one door holds open.
UPSTREAM_AT_ONCE = 8
UPSTREAM_TIMEOUT = 30.0  # seconds for Meilisearch's whole answer
UPSTREAM_CONNECT = 5.0  # seconds to connect to it
JSON = "application/json"


def security_headers(ui: bool = False) -> dict[str, str]:
    """Pages may talk to this origin only. The web UI needs inline styles and data: fonts;
    and its habit of loading any http(s) field value as an image goes nowhere."""
    style, font = ("'self' 'unsafe-inline'", "'self' data:") if ui else ("'self'", "'self'")
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self'; style-src {style}; img-src 'self' data:; "
            f"font-src {font}; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }


class Refused(Exception):
    """A request the door answers itself, in Meilisearch's error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Pinned:
    """Decoy names for the indexes a request asked for other than ``index`` (and
    ``messages``, its messages index, when message search is on)."""

    def __init__(self, index: str, messages: str | None = None) -> None:
        self.index = index
        self.allowed = {index} if messages is None else {index, messages}
        self.where = f"the index `{index}`" if messages is None else (
            f"the indexes `{index}` and `{messages}`"
        )  # fmt: skip
        self.asked: dict[str, str] = {}  # decoy -> the name the client sent

    def uid(self, name: Any) -> Any:
        if not isinstance(name, str) or name in self.allowed or not INDEX_UID.fullmatch(name):
            return name
        decoy = DECOY + uuid.uuid4().hex
        self.asked[decoy] = name
        return decoy

    def multi_search(self, payload: Any) -> Any:
        """The multi-search body with every other index replaced by a decoy (in place)."""
        if not isinstance(payload, dict):
            return payload  # Meilisearch refuses it: it names no index
        queries = payload.get("queries")
        for query in queries if isinstance(queries, list) else ():
            if not isinstance(query, dict):
                continue
            if "indexUid" in query:
                query["indexUid"] = self.uid(query["indexUid"])
            options = query.get("federationOptions")
            if isinstance(options, dict) and options.get("remote") is not None:
                raise Refused(
                    403, "remote_not_allowed",
                    f"This door searches {self.where} here only, not on remotes.",
                )  # fmt: skip
        federation = payload.get("federation")
        if isinstance(federation, dict) and isinstance(federation.get("facetsByIndex"), dict):
            federation["facetsByIndex"] = {
                self.uid(name): facets for name, facets in federation["facetsByIndex"].items()
            }
        return payload

    def answer(self, body: bytes) -> bytes:
        """Meilisearch's error about a decoy, told with the client's names and why."""
        for decoy, name in self.asked.items():
            body = body.replace(decoy.encode(), name.encode())
        try:
            error = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            error["message"] += f" This door searches only {self.where}."
            return orjson.dumps(error)
        return body


def env_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY and NO_PROXY name for ``url``, as the other clients here
    (requests, httpx) read them. Read once: aiohttp's ``trust_env`` reads the environment
    (and ~/.netrc) again on every request, which doubled the door's CPU per search."""
    scheme = urllib.parse.urlsplit(url)
    if not scheme.hostname or urllib.request.proxy_bypass(scheme.hostname):
        return None
    return urllib.request.getproxies().get(scheme.scheme)


def _reason(exc: aiohttp.ClientError) -> str:
    """Why a connection failed, in the OS's words ("Connection refused", "Name or service
    not known"), without aiohttp's "Cannot connect to host h:p ssl:default" around them."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if error.errno is not None and error.errno > 0:
            return os.strerror(error.errno)
        return error.strerror or str(error)
    return f"{type(exc).__name__}: {exc}"


def _timed_out(exc: TimeoutError, limits: aiohttp.ClientTimeout) -> str:
    """What ran out of time, and after how long: aiohttp's own timeouts carry no message."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within {limits.sock_connect:g} s"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"no data for {limits.sock_read:g} s"
    return f"no complete answer within {limits.total:g} s"


def _error(status: int, code: str, message: str) -> Response:
    kind = "system" if status >= 500 else "invalid_request"  # Meilisearch's error types
    body = {"message": message, "code": code, "type": kind}
    return Response(orjson.dumps(body), status, security_headers(), media_type=JSON)


class Door:
    """The pages and the pinned door to Meilisearch, as a Starlette app."""

    def __init__(
        self, meili: MeiliSettings, extra: list[Route] | None = None, *, messages: bool = False
    ) -> None:
        self.meili = meili
        self.extra = extra or []  # /metrics and /healthz (explorer.doors.metrics), before the rest
        # With message search on, its index is the one other index searched and listed.
        self.messages = messages_index(meili.index) if messages else None
        self.indexes = {meili.index} if self.messages is None else {meili.index, self.messages}
        self.config = orjson.dumps({"meili": "", "index": meili.index, "messages": self.messages})
        self.upstream: aiohttp.ClientSession | None = None
        self.timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT, sock_connect=UPSTREAM_CONNECT)
        self.security = security_headers()
        self.ui_security = security_headers(ui=True)

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        # One pool per running server, made on its loop: searches reuse kept-alive
        # connections, and a burst waits for a free one rather than failing.
        # aiohttp rather than httpx (which `explorer` searches with elsewhere): this is the
        # path every agent's keystroke takes, and httpx's AsyncClient spent more than three
        # times aiohttp's CPU per search; with it the door used twice the CPU and added
        # several times the latency at p95 (docs/benchmarks.md, "The agents' door").
        async with aiohttp.ClientSession(
            self.meili.url.rstrip("/") + "/",  # joined with paths that have no leading "/"
            connector=aiohttp.TCPConnector(limit=UPSTREAM_AT_ONCE),
            timeout=self.timeout,
            auto_decompress=False,  # the body passes on as Meilisearch sent it
            skip_auto_headers=("User-Agent",),
            proxy=env_proxy(self.meili.url),
            cookie_jar=aiohttp.DummyCookieJar(),  # one client for every agent: keep none
        ) as client:
            self.upstream = client
            yield
        self.upstream = None

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(
            routes=[*self.extra, Route("/{path:path}", self.dispatch, methods=methods)],
            lifespan=self.lifespan,
        )

    async def dispatch(self, request: Request) -> Response:
        try:
            return await self.route(request)
        except Refused as refused:
            return _error(refused.status, refused.code, refused.message)

    async def route(self, request: Request) -> Response:
        """Which of the door's routes the request target names, exactly as sent."""
        path = request.scope.get("raw_path", b"").decode("latin-1")
        method = request.method
        query: bytes = request.scope.get("query_string", b"")
        reading = method in ("GET", "HEAD")
        search = SEARCH_ROUTE.fullmatch(path)
        if path == "/multi-search" or (search and method == "POST"):
            if method != "POST":
                raise _read_only()
            if query:
                raise Refused(403, "not_a_search", "A search here takes no query string.")
            return await self.search(request, search.group(1) if search else None)
        if not reading:
            raise _read_only()
        if search:
            return await self.get_search(request, search.group(1), query)
        if path in ("/indexes", "/stats"):
            return await self.listing(request, path, query if path == "/indexes" else b"")
        if path in ("/version", "/health"):
            status, body, headers = await self.call("GET", path, auth=_auth(request))
            return Response(body, status, self.security, media_type=headers.get("Content-Type"))
        if path == "/agent":
            return Response(status_code=301, headers={**self.security, "Location": "/agent/"})
        page = PAGE_ROUTE.fullmatch(path)
        if page:
            return self.page(page.group(1) or "index.html")
        if UI_ROUTE.fullmatch(path):
            return await self.ui(path)
        raise Refused(403, "not_allowed", "This door passes on searches and what the pages read.")

    def page(self, name: str) -> Response:
        if name == "config.json":
            return Response(self.config, 200, self.security, media_type=JSON)
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".js"):
            ctype = "text/javascript"
        return Response((WEB / name).read_bytes(), 200, self.security, media_type=ctype)

    async def ui(self, path: str) -> Response:
        """The web UI's page or one of its assets, as Meilisearch has it (without the key
        the page's URL may carry: the page reads it there, Meilisearch needs none)."""
        status, body, upstream = await self.call("GET", path)
        headers = {**self.ui_security, **{k: upstream[k] for k in ASSET_HEADERS if k in upstream}}
        return Response(body, status, headers, media_type=upstream.get("Content-Type"))

    async def listing(self, request: Request, path: str, query: bytes) -> Response:
        """GET /indexes and /stats, which the web UI lists indexes from: the pinned one only."""
        status, body, headers = await self.call("GET", path, query, auth=_auth(request))
        if status == 200:
            try:
                answer = orjson.loads(body)
            except orjson.JSONDecodeError:
                answer = None
            if isinstance(answer, dict) and path == "/indexes":
                found = answer.get("results")
                answer["results"] = [
                    i for i in found if isinstance(i, dict) and i.get("uid") in self.indexes
                ] if isinstance(found, list) else []  # fmt: skip
                answer["total"] = len(answer["results"])
                body = orjson.dumps(answer)
            elif isinstance(answer, dict) and isinstance(answer.get("indexes"), dict):
                answer["indexes"] = {
                    uid: stats for uid, stats in answer["indexes"].items() if uid in self.indexes
                }
                body = orjson.dumps(answer)
        return Response(body, status, self.security, media_type=headers.get("Content-Type", JSON))

    async def get_search(self, request: Request, uid: str, query: bytes) -> Response:
        """A GET search: its parameters are in the query string; the index is pinned."""
        pinned = Pinned(self.meili.index, self.messages)
        path = f"/indexes/{pinned.uid(uid)}/search"
        status, body, headers = await self.call("GET", path, query, auth=_auth(request))
        if pinned.asked and status >= 400:
            body = pinned.answer(body)
        return Response(body, status, self.security, media_type=headers.get("Content-Type", JSON))

    async def search(self, request: Request, uid: str | None) -> Response:
        """A POST search (``uid``) or multi-search (None), pinned."""
        auth = _auth(request)
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening (or the server refused it)
        pinned = Pinned(self.meili.index, self.messages)
        if uid is None:
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Refused(400, "malformed_payload", f"The body is not JSON: {exc}") from None
            body = orjson.dumps(pinned.multi_search(payload))
            path = "/multi-search"
        else:
            path = f"/indexes/{pinned.uid(uid)}/search"
        status, content, headers = await self.call("POST", path, body=body, auth=auth)
        if pinned.asked and status >= 400:
            content = pinned.answer(content)
        ctype = headers.get("Content-Type", JSON)
        return Response(content, status, self.security, media_type=ctype)

    async def call(
        self, method: str, path: str, query: bytes = b"", *, body: bytes | None = None,
        auth: str | None = None,
    ) -> tuple[int, bytes, Mapping[str, str]]:  # fmt: skip
        """One request to Meilisearch: its status, body and headers, or :class:`Refused`
        (502, 504) saying it could not be reached, without its address. The headers are
        aiohttp's, looked up whatever the case Meilisearch sent them in."""
        headers = {"Accept-Encoding": "identity"}
        if body is not None:
            headers["Content-Type"] = JSON
        if auth is not None:
            headers["Authorization"] = auth
        target = path.lstrip("/") + ("?" + query.decode("latin-1") if query else "")
        assert self.upstream, "the door's lifespan did not run"
        try:
            async with self.upstream.request(method, target, data=body, headers=headers) as resp:
                return resp.status, await resp.read(), resp.headers
        except TimeoutError as exc:
            log.warning("Meilisearch at %s did not answer in time: %s", self.meili.url,
                        _timed_out(exc, self.timeout))  # fmt: skip
            raise Refused(504, "meili_timeout", "Meilisearch did not answer in time.") from None
        except aiohttp.ClientError as exc:
            log.warning("Meilisearch at %s is unreachable: %s", self.meili.url, _reason(exc))
            raise Refused(
                502, "meili_unreachable",
                "Meilisearch cannot be reached from this door: tell its administrator.",
            ) from None  # fmt: skip


def _read_only() -> Refused:
    return Refused(403, "read_only", "This door is read-only: it passes on searches only.")


def _auth(request: Request) -> str | None:
    """The agent's own ``Authorization`` header, to pass on as it came."""
    auth = dict(request.scope["headers"]).get(b"authorization")
    if auth is None:
        return None
    if not auth.isascii():
        raise Refused(
            400, "invalid_authorization_header",
            "The Authorization header must be ASCII: `Bearer <key>`.",
        )  # fmt: skip
    return bytes(auth).decode("ascii")


class AgentPage:
    """The door and its pages, for the Meilisearch and index in ``meili``.

    Binds at once (an OSError if the address is taken); ``start()`` serves in a thread,
    ``serve_forever()`` in this one."""

    def __init__(
        self,
        meili: MeiliSettings,
        host: str = "127.0.0.1",
        port: int = 8700,
        limits: Limits = DOOR_LIMITS,
        extra: list[Route] | None = None,
        *,
        messages: bool = False,
    ) -> None:
        self.server = HttpServer(Door(meili, extra, messages=messages).app(), host, port, limits)

    @property
    def url(self) -> str:
        """The agent page's address (the door itself is ``server.url``)."""
        return self.server.url + "agent/"

    def start(self) -> AgentPage:
        self.server.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.stop()

    def close(self) -> None:
        self.server.socket.close()
