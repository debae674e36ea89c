"""The one HTTP server `explorer` listens with: the agents' door (``serve``), the webhook
receiver (``listen``) and the MCP server's HTTP transport (``mcp --http``).

An ASGI app (Starlette) runs on uvicorn, set up through its public API only
(``uvicorn.Config`` and ``uvicorn.Server``) as its documentation deploys it for
production: the httptools parser (llhttp's strict HTTP/1.1 framing: ``Content-Length: -1``
or ``abc``, a bad chunk size, or both Content-Length and chunked is a 400 and the
connection closes) on a uvloop event loop; a real listen backlog, a keep-alive timeout, a
cap on connections (503 past it), no access log and no ``Server`` header. It runs
in-process on a socket we bind, so tests and ``demo`` start it on port 0 in a thread.

**What uvicorn does not do, nginx in front does.** uvicorn has no deadline for a request
head (its one timer runs between requests: a client that connects and says nothing, or
trickles a header byte every few seconds, holds its connection), no cap on a head's size,
and closes a connection without lingering (a 4xx sent to a client still sending a body
can be destroyed by the kernel's reset). Every deployment this project ships puts nginx in
front (deploy/nginx/, docker-compose.yml), which has all three as configuration
(``client_header_timeout``, ``large_client_header_buffers``, ``lingering_close``), with
TLS and rate limits. Chosen over a server that offers them itself (hypercorn) by
measurement: docs/door.md, "The HTTP server". Without nginx, bind to loopback.

**What this module adds, in ASGI (:class:`_Guard`):** a body limit counted on the bytes
the app actually receives (chunked or not), an announced ``Content-Length`` over it refused
before reading, a deadline for the whole body, and an exception in the app turned into a
500 and one log line naming the client, never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import uvicorn

log = logging.getLogger("explorer.doors.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """What one server tolerates from its clients. Defaults suit a door for people and
    bots on a LAN; every figure is per server. Request heads (their deadline and size)
    are nginx's, in front (deploy/nginx/)."""

    max_body: int = 64 * 1024  # bytes of request body the app may read
    body_timeout: float = 30.0  # seconds for the whole request body
    idle_timeout: float = 5.0  # seconds a kept-alive connection may wait for its next request
    max_connections: int = 1000  # open connections; past it requests get 503
    backlog: int = 1024  # connections the kernel queues before we accept them
    shutdown_timeout: int = 5  # seconds in-flight requests get on stop


class _OneLine(logging.Filter):
    """uvicorn's own records (a malformed request, a broken connection): a traceback
    becomes its last line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage().strip()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
        return True


logging.getLogger("uvicorn.error").addFilter(_OneLine())
# Agents' searches and webhook senders are nobody's log, whatever handlers are configured.
logging.getLogger("uvicorn.access").addFilter(lambda record: False)


def _addr(pair: Any) -> str:
    return f"{pair[0]}:{pair[1]}" if pair else "a client"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


class _Guard:
    """Body limits and one-line errors around any ASGI app (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, limits: Limits, on_refuse: Callable[[int], None] | None = None
    ) -> None:
        self.app = app
        self.limits = limits
        self.on_refuse = on_refuse  # counts refusals (listen's metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        refused = False
        where = f"{scope.get('method')} {scope.get('path')}"
        client = _addr(scope.get("client"))

        async def refuse(status: int, message: str) -> None:
            nonlocal refused, started
            log.warning("refused %s from %s: %s", where, client, message)
            refused = True
            if self.on_refuse is not None:
                self.on_refuse(status)
            if not started:
                started = True
                await _reply(send, status, message + "\n")

        declared = _header(scope, b"content-length")
        has_body = _header(scope, b"transfer-encoding") is not None or declared not in (None, b"0")
        received = 0
        body_done = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we answered already; the app is finding out
            if message["type"] == "http.response.start":
                started = True
                if has_body and not body_done:
                    # Answered before the body was read (refused): close after the answer
                    # rather than read, and wait for, a body nobody wants.
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        if declared is not None and int(declared) > self.limits.max_body:
            await refuse(413, f"Request body over {self.limits.max_body} bytes")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if refused:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()  # waiting for a disconnect: no deadline
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    message = await receive()
            except TimeoutError:
                await refuse(
                    408, f"Request body not complete within {self.limits.body_timeout:g} s"
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limits.max_body:
                    await refuse(413, f"Request body over {self.limits.max_body} bytes")
                    return {"type": "http.disconnect"}
                body_done = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception as exc:
            if refused:
                return  # the app choked on the disconnect we handed it: expected
            log.error("%s from %s failed: %s: %s", where, client, type(exc).__name__, exc)
            if not started:
                await _reply(send, 500, "Internal error: see the server's log\n")


async def _reply(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """Bind and listen now, so the address is known (port 0) and connections queue in the
    backlog even before the loop runs. Raises OSError (address in use, bad host)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    return sock


class HttpServer:
    """An ASGI app served on ``host:port`` with :class:`Limits`: ``start()`` in a thread
    (tests, the demo) or ``serve_forever()`` in the main thread (Ctrl-C / SIGTERM stop it).
    Binding happens here, so a busy port is an OSError before anything runs."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits = Limits(),
        on_refuse: Callable[[int], None] | None = None,
    ) -> None:
        self.limits = limits
        self.socket = listening_socket(host, port, limits.backlog)
        config = uvicorn.Config(
            _Guard(app, limits, on_refuse),
            http="httptools",
            loop="uvloop",
            ws="none",
            lifespan="auto",
            log_config=None,
            access_log=False,  # agents' searches and webhook senders are nobody's log
            backlog=limits.backlog,
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=max(1, round(limits.idle_timeout)),
            timeout_graceful_shutdown=limits.shutdown_timeout,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For from any local client would rename it
            date_header=True,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to connect to from this machine (loopback when bound to every interface)."""
        host, port = self.socket.getsockname()[:2]
        if every_interface(host):
            host = "::1" if ":" in host else "127.0.0.1"
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> HttpServer:
        """Serve in a daemon thread; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self._run, name="explorer-http", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the HTTP server stopped while starting: see the log")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM (uvicorn re-raises the signal
        once connections are drained, so Ctrl-C still ends in KeyboardInterrupt)."""
        self._run()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.limits.shutdown_timeout + 5)
        self.socket.close()


def every_interface(host: str) -> bool:
    """``0.0.0.0``, ``::`` (or nothing): an address to listen on, not one to connect to."""
    try:
        return host == "" or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a name, such as localhost


def bound_to(host: str, url: str) -> str:
    """What a start line says a server is on: ``url`` when it listens on one address; when it
    listens on every interface, that, and ``url`` as the way in from this machine:
    "all interfaces (0.0.0.0:8700); from this machine http://127.0.0.1:8700/"."""
    if not every_interface(host):
        return url
    port = urllib.parse.urlsplit(url).port
    shown = f"[{host}]" if ":" in host else host or "0.0.0.0"
    return f"all interfaces ({shown}:{port}); from this machine {url}"


def healthz() -> Any:
    """``GET /healthz`` answering ``ok``: for load balancers and compose healthchecks."""
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(_: Any) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    return Route("/healthz", ok, methods=["GET", "HEAD"])
