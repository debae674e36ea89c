"""A small HTTP/1.1 client on plain sockets for the crawl's GETs, one keep-alive connection
per thread. Everything else (a test's ``httpx.MockTransport``, a proxy from the
environment) goes through httpx, and errors here are httpx's exceptions, so
:class:`~explorer.wawp.WawpClient` handles both paths alike.

A crawl makes one small GET after another on a few keep-alive connections, and at 100
chats a page the HTTP machinery around a page is paid per chat. CPU per page on one
thread against the sandbox with no latency, for 8.5 KB (GOWS) and 30 KB (WEBJS) pages,
JSON decoding included: ``http.client`` under httpx's request and response objects 0.32
and 0.47 ms (httpx's URL parsing alone is 27 µs, the stdlib's header parser 16 µs);
``http.client`` alone 0.18 and 0.21 ms; h11, which httpx uses, 0.21 and 0.33 ms;
``WawpClient.chats_page`` through this module 0.11 and 0.18 ms, decoding being 0.02 and
0.08 of it. It speaks what a JSON API answers: a status line, headers, then a body sized
by ``Content-Length``, by chunks, or by the connection closing; ``1xx`` interim replies
are skipped. It sends no ``Accept-Encoding``, so bodies come uncompressed, and only GETs:
nothing else is needed, so nothing else is written.

Connections are per thread: a crawl's prefetch threads each want their own anyway. A
request on a connection the server closed while it sat idle is sent again once on a fresh
one, as any pooling client must: that failure says nothing about the server's health.
Errors are httpx's exceptions and never carry the URL (its query holds the access token).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

_BUFFER = 65_536
_MAX_HEAD = 65_536  # status line and headers; more is not an HTTP server we can talk to
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def default_transport() -> KeepAliveTransport | None:
    """:class:`KeepAliveTransport`, unless the environment names a proxy: httpx honours
    those (and ``NO_PROXY``), and a crawl behind a corporate proxy matters more than CPU.
    None means httpx."""
    if any(os.environ.get(v) or os.environ.get(v.lower()) for v in _PROXY_VARS):
        return None
    return KeepAliveTransport()


@dataclass(slots=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; a repeated header's values joined by ", "
    content: bytes


class _Malformed(Exception):
    """The reply is not HTTP/1.x we can read."""


class _Closed(Exception):
    """The server closed the connection."""


class _Connection:
    """One socket and the bytes read from it but not yet consumed."""

    __slots__ = ("sock", "buf", "scratch", "view", "timeout", "used")

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.scratch = bytearray(_BUFFER)
        self.view = memoryview(self.scratch)
        self.timeout = timeout
        self.used = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _more(self) -> None:
        n = self.sock.recv_into(self.scratch)
        if n == 0:
            raise _Closed
        self.buf += self.view[:n]

    def head(self) -> tuple[str, int, str, dict[str, str]]:
        """``(version, status, reason, headers)`` of the next reply."""
        start = 0
        while (end := self.buf.find(b"\r\n\r\n", start)) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise _Malformed("reply headers too long")
            start = max(0, len(self.buf) - 3)
            self._more()
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise _Malformed("not an HTTP/1.x status line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            name = name.strip().lower()
            if not sep or not name:
                raise _Malformed("malformed header line")
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return version, int(code), reason.strip(), headers

    def exactly(self, n: int) -> bytes:
        if len(self.buf) >= n:
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out
        body = bytearray(n)
        have = len(self.buf)
        body[:have] = self.buf
        self.buf.clear()
        view = memoryview(body)
        while have < n:
            got = self.sock.recv_into(view[have:])
            if got == 0:
                raise _Closed
            have += got
        return bytes(body)

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise _Malformed("chunk header too long")
            self._more()
        out = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return out

    def chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self.line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Malformed("bad chunk size") from None
            if size == 0:
                while self.line():  # trailers, until the empty line
                    pass
                return b"".join(parts)
            parts.append(self.exactly(size))
            if self.exactly(2) != b"\r\n":
                raise _Malformed("chunk not followed by CRLF")

    def until_closed(self) -> bytes:
        while True:
            try:
                self._more()
            except _Closed:
                out = bytes(self.buf)
                self.buf.clear()
                return out


class KeepAliveTransport:
    def __init__(self) -> None:
        # The certificates httpx would trust (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        self._ssl: ssl.SSLContext | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[_Connection] = []

    def get(self, url: str, headers: dict[str, str], timeout: float | None) -> Reply:
        """GET ``url`` (the crawl's path: no httpx objects either way)."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
        if scheme not in _DEFAULT_PORTS or not host:
            raise httpx.UnsupportedProtocol(f"cannot GET a {scheme or 'relative'} URL")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise httpx.InvalidURL("invalid port") from None
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
        netloc = parts.netloc.rpartition("@")[2]
        return self._exchange(scheme, host, port, target, netloc, headers, timeout)

    def _exchange(
        self,
        scheme: str,
        host: str,
        port: int,
        target: str,
        host_header: str,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Reply:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = "\r\n".join(lines)
        if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:
            # A line break inside a value would end the header early and start another;
            # the value is not quoted (it may be the access token).
            raise httpx.LocalProtocolError("a request header holds a line break")
        try:
            message = head.encode("latin-1") + b"\r\n\r\n"
        except UnicodeEncodeError:
            raise httpx.LocalProtocolError("a request header is not Latin-1 text") from None
        key = (scheme, host, port)
        for attempt in (1, 2):
            conn = self._connection(key, timeout)
            reused = conn.used
            conn.used = True
            answered = False
            try:
                conn.sock.sendall(message)
                version, status, reason, reply_headers = conn.head()
                answered = True
                while 100 <= status < 200 and status != 101:  # interim replies
                    version, status, reason, reply_headers = conn.head()
                content, keep = _body(conn, version, status, reply_headers)
            except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
                self._drop(key, conn)
                if reused and not answered and attempt == 1:
                    continue  # the server had closed it while it sat idle
                what = (
                    "server closed the connection" if isinstance(exc, _Closed) else _describe(exc)
                )
                raise httpx.RemoteProtocolError(what) from None
            except TimeoutError as exc:
                self._drop(key, conn)
                raise httpx.ReadTimeout(_describe(exc)) from None
            except _Malformed as exc:
                self._drop(key, conn)
                raise httpx.RemoteProtocolError(f"malformed reply: {exc}") from None
            except OSError as exc:
                self._drop(key, conn)
                raise httpx.ReadError(_describe(exc)) from None
            if not keep:
                self._drop(key, conn)
            return Reply(status, reason, reply_headers, content)
        raise AssertionError("unreachable")

    def _connection(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        """This thread's connection to the origin ``key``, opened when there is none."""
        conns: dict[tuple[str, str, int], _Connection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        known = conns.get(key)
        if known is not None and known.sock.fileno() != -1:  # -1: closed by close()
            if known.timeout != timeout:
                known.sock.settimeout(timeout)
                known.timeout = timeout
            return known
        scheme, host, port = key
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = httpx.create_ssl_context()
                sock = self._ssl.wrap_socket(sock, server_hostname=host)
        except OSError as exc:  # a refused certificate too (ssl.SSLError is an OSError)
            if sock is not None:
                sock.close()
            kind = httpx.ConnectTimeout if isinstance(exc, TimeoutError) else httpx.ConnectError
            raise kind(_describe(exc)) from None
        conn = conns[key] = _Connection(sock, timeout)
        with self._lock:
            self._all.append(conn)
        return conn

    def _drop(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.close()
        conns = getattr(self._local, "conns", {})
        if conns.get(key) is conn:
            del conns[key]
        with self._lock, contextlib.suppress(ValueError):
            self._all.remove(conn)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _body(
    conn: _Connection, version: str, status: int, headers: dict[str, str]
) -> tuple[bytes, bool]:
    """The reply's body, and whether the connection can carry another request."""
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if status in (101, 204, 304):
        return b"", keep and status != 101
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return conn.chunked(), keep
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _Malformed("bad Content-Length")
        return conn.exactly(int(length)), keep
    return conn.until_closed(), False


def _describe(exc: BaseException) -> str:
    """The error's kind and text: never the URL (it carries the access token)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
