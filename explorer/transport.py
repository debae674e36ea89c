"""An httpx transport on the standard library's ``http.client``, one connection per thread.

A crawl makes one small GET after another on a few keep-alive connections. Measured at
concurrency 8 and 100 ms latency, a page cost 0.9 ms of CPU through httpx's client and
transport, 0.62 ms handed straight to this transport, and 0.48 ms with bare
``http.client`` and no httpx at all. The httpx API stays: requests, responses, timeouts,
errors, and the tests' ``MockTransport`` in its place.

Connections are per thread because ``http.client`` connections are not thread-safe and a
crawl's prefetch threads each want their own anyway. A request on a connection the server
closed while it sat idle is sent again once on a fresh one, as httpcore does not, but any
pooling client must: that failure says nothing about the server's health."""

from __future__ import annotations

import http.client
import os
import ssl
import threading

import httpx

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def default_transport() -> httpx.BaseTransport | None:
    """:class:`KeepAliveTransport`, unless the environment names a proxy: httpx honours
    those (and ``NO_PROXY``) only with its own transport, and a crawl behind a corporate
    proxy matters more than CPU. None means httpx's default."""
    if any(os.environ.get(v) or os.environ.get(v.lower()) for v in _PROXY_VARS):
        return None
    return KeepAliveTransport()


class KeepAliveTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        # The certificates httpx would trust (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        self._ssl: ssl.SSLContext | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

    def _connection(
        self, url: httpx.URL, timeout: float | None
    ) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection to ``url``'s origin, and whether it was used before."""
        key = (url.scheme, url.host, url.port)
        conns: dict[tuple[str, str, int | None], http.client.HTTPConnection] = (
            getattr(self._local, "conns", None) or {}
        )
        self._local.conns = conns
        known = conns.get(key)
        if known is not None and known.sock is not None:
            known.timeout = timeout
            known.sock.settimeout(timeout)
            return known, True
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            conn = http.client.HTTPSConnection(
                url.host, url.port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(url.host, url.port, timeout=timeout)
        conns[key] = conn
        with self._lock:
            self._all.append(conn)
        return conn, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = timeouts.get("read")
        url = request.url
        target = url.raw_path.decode("ascii")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        body = request.read() or None
        for attempt in (1, 2):
            conn, reused = self._connection(url, timeout)
            try:
                conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body)
                resp = conn.getresponse()
                content = resp.read()
            except _STALE as exc:
                conn.close()
                if reused and attempt == 1:
                    continue
                raise httpx.RemoteProtocolError(_describe(exc), request=request) from None
            except TimeoutError as exc:
                conn.close()
                raise httpx.ReadTimeout(_describe(exc), request=request) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise httpx.ConnectError(_describe(exc), request=request) from None
            if resp.will_close:
                conn.close()
            return httpx.Response(
                resp.status,
                headers=resp.getheaders(),
                content=content,
                request=request,
                extensions={"reason_phrase": resp.reason.encode("latin-1", "replace")},
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _describe(exc: BaseException) -> str:
    """The error's kind and text: never the URL (it carries the access token)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
