"""The one HTTP server `explorer` listens with: the agents' door (``serve``), the webhook
receiver (``listen``) and the MCP server's HTTP transport (``mcp --http``).

An ASGI app (Starlette) runs on uvicorn as its documentation deploys it for production:
the httptools protocol (llhttp's strict HTTP/1.1 framing: ``Content-Length: -1`` or
``abc``, a bad chunk size, or both Content-Length and chunked is a 400 and the connection
closes) on a uvloop event loop, instead of a thread per connection; a real listen backlog,
a keep-alive timeout and a cap on connections (503 past it). uvicorn rather than hypercorn
or granian: it is the server Starlette and the MCP SDK document and test with, it runs
in-process on a socket we bind (tests and ``demo`` start it on port 0 in a thread), and
its protocol class can be extended, which the gaps below need. httptools and uvloop rather
than uvicorn's pure-Python h11 and asyncio's loop: the door's CPU per search fell by a
quarter, and what it adds at p95 with 50 agents by about 2 ms, nearly half
(docs/benchmarks.md, "The agents' door").

What uvicorn leaves open, and this module closes:

- **Slow and large request heads.** uvicorn's only timer runs between requests
  (keep-alive), and any byte received cancels it: a client that connects and sends
  nothing, or trickles a header byte every few seconds, holds its connection forever.
  :class:`_Protocol` gives every request head a deadline from the connection (or its first
  byte) to the blank line, and refuses one over ``max_head`` bytes (llhttp has no cap).
- **Bodies.** uvicorn reads whatever body the framing announces. :class:`_Guard` counts
  the bytes the app actually receives (chunked or not) against ``max_body``, refuses an
  announced ``Content-Length`` over it before reading, and gives the whole body a deadline.
  A response sent while the client is still sending a body nobody will read closes the
  connection, so that body is never parsed as a next request.
- **Logs.** A malformed request, a timed-out head or body, or an exception in the app is
  one line naming the client and what was wrong; never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("explorer.doors.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """What one server tolerates from its clients. Defaults suit a door for people and
    bots on a LAN; every figure is per server."""

    max_body: int = 64 * 1024  # bytes of request body the app may read
    max_head: int = 16 * 1024  # bytes of request line and headers
    head_timeout: float = 10.0  # seconds from connect (or a request's first byte) to its headers
    body_timeout: float = 30.0  # seconds for the whole request body
    idle_timeout: float = 5.0  # seconds a kept-alive connection may wait for its next request
    max_connections: int = 1000  # open connections; past it requests get 503
    backlog: int = 1024  # connections the kernel queues before we accept them
    shutdown_timeout: int = 5  # seconds in-flight requests get on stop


class _Config(uvicorn.Config):
    """uvicorn's config, carrying the head's deadline and size to the protocol it makes."""

    head_timeout: float = 10.0
    max_head: int = 16 * 1024


class _OneLine(logging.Filter):
    """uvicorn's own records on our protocol's logger: a traceback becomes its last line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage().strip()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
        return True


_http_log = logging.getLogger("explorer.doors.server.http")
_http_log.addFilter(_OneLine())


class _Lingering(asyncio.Transport):
    """The connection's transport, closing the way nginx's ``lingering_close`` does.

    Closing a socket that still has unread client bytes makes the kernel answer with a
    reset, and a reset can destroy the answer (a 413, a 400) before the client reads it.
    So a close sends FIN after the answer, then keeps reading and dropping whatever the
    client still sends, for ``LINGER`` seconds or ``LINGER_BYTES`` at most, or until it
    closes its side."""

    LINGER = 2.0
    LINGER_BYTES = 1024 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self.lingering = False
        self.dropped = 0
        self._timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        if self.lingering or self._transport.is_closing():
            return
        self.lingering = True
        if self._transport.can_write_eof():
            self._transport.write_eof()  # FIN once the answer is written
            self._transport.resume_reading()
            self._timer = self._loop.call_later(self.LINGER, self.abort)
        else:
            self._transport.close()

    def drop(self, data: bytes) -> None:
        self.dropped += len(data)
        if self.dropped > self.LINGER_BYTES:
            self.abort()

    def abort(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        if not self.lingering:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._transport.write_eof()


def _addr(pair: Any) -> str:
    return f"{pair[0]}:{pair[1]}" if pair else "a client"


def _client(protocol: HttpToolsProtocol) -> str:
    return _addr(protocol.client)


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on every request head,
    a lingering close, and one-line logs."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.logger = _http_log
        self.access_log = False  # agents' searches and webhook senders are nobody's log
        self._head_timeout = float(getattr(config, "head_timeout", 10.0))
        self._max_head = int(getattr(config, "max_head", 16 * 1024))
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes received since the head began (it may still be arriving)
        self._head_size = 0  # bytes of request line and headers parsed
        self._in_head = True  # the next bytes are a request head (or nothing yet)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # uvicorn writes a response's head and body separately: with Nagle on, the body
            # waits for the client's delayed ACK of the head, about 40 ms on every kept-alive
            # request (measured with asyncio's transports, which leave it on).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._lingering = _Lingering(transport, self.loop)
        super().connection_made(self._lingering)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._lingering.abort()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering.lingering:
            self._lingering.drop(data)  # closing: what the client still sends goes nowhere
            return
        if self._in_head:
            self._head_bytes += len(data)
            self._arm_head_timer()  # a no-op if the head's deadline is already running
        # uvicorn's own data_received, but keeping the parser's reason for the log line
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._head_size > self._max_head:  # on_header stopped the parser
                self._refuse_large_head()
            else:
                self.send_400_response(str(exc) or "malformed request")
            return
        except httptools.HttpParserUpgrade:
            self.send_400_response("protocol upgrades are not served here")
            return
        if self._in_head and self._head_bytes > self._max_head:  # arriving, not yet parsed
            self._refuse_large_head()

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_head:
            raise ValueError("request head too large")  # stops the parser: see data_received
        super().on_header(name, value)

    def _refuse_large_head(self) -> None:
        _http_log.warning(
            "refused a request from %s: headers over %d bytes", _client(self), self._max_head
        )
        self._disarm_head_timer()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: 25\r\n"
            b"connection: close\r\n\r\nRequest headers too long\n"
        )
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # what follows is the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            # Answered before the body was read (refused): stop here rather than read,
            # and wait for, a body nobody wants, and never parse it as a next request.
            self.transport.close()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        # llhttp's reasons name what was wrong ("Invalid character in Content-Length"),
        # never the bytes themselves, which may hold a key
        _http_log.warning("refused a malformed request from %s: %s", _client(self), msg)
        text = f"Bad request: {msg}\n".encode("ascii", "replace").decode("ascii")
        self._disarm_head_timer()
        super().send_400_response(text)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes:
            _http_log.warning(
                "closed a connection from %s: request headers not complete within %g s",
                _client(self), self._head_timeout,
            )  # fmt: skip
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: 40\r\nconnection: close\r\n\r\n"
                b"Request headers took too long to arrive\n\n"
            )
        self.transport.close()  # a connection that never said anything just goes


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

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we answered already; the app is finding out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        declared = _header(scope, b"content-length")
        if declared is not None and int(declared) > self.limits.max_body:
            await refuse(413, f"Request body over {self.limits.max_body} bytes")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        received = 0
        body_done = False

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


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


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
        config = _Config(
            _Guard(app, limits, on_refuse),
            http=_Protocol,
            ws="none",
            lifespan="auto",
            log_config=None,
            access_log=False,
            backlog=limits.backlog,
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=max(1, round(limits.idle_timeout)),
            timeout_graceful_shutdown=limits.shutdown_timeout,
            loop="uvloop",
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For from any local client would rename it
            date_header=True,
        )
        config.head_timeout = limits.head_timeout
        config.max_head = limits.max_head
        self._server = _Uvicorn(config)
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
        while not self._server.ready.wait(0.05):
            if not self._thread.is_alive():
                raise RuntimeError("the HTTP server stopped while starting: see the log")
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
