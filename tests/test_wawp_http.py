"""The Wawp client's HTTP: one pooled httpx client, gzip, strict framing, proxies and
certificates from the environment, and every failure of the wire a retry or our own error.

Real servers throughout (the sandbox, or a scripted socket server for replies no sane
server sends); the client is the one the crawl uses, with no test transport.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest

import explorer.source.wawp
from explorer.dev.meili_server import free_port
from explorer.dev.sandbox import Sandbox
from explorer.errors import WawpError, WawpProtocolError, WawpUnavailable
from explorer.secrets import Secret
from explorer.source.crawl import Crawler, CrawlOptions
from explorer.source.wawp import RetryPolicy, WawpClient
from tests.conftest import ground_truth

SECRET = "tok-3f9a7c1e5b"
INST = "INST00000001"
QUICK = RetryPolicy(budget_seconds=0.5, base_delay=0.01, max_delay=0.05)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peers: set[tuple[str, int]]
    paths: list[str]
    headers: list[dict[str, str]]
    drop_after_reply: bool


class _Handler(BaseHTTPRequestHandler):
    """A page of one chat for every GET; records who asked, for what, with which headers."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.peers.add(self.client_address)
        self.server.paths.append(self.path)
        self.server.headers.append({k.lower(): v for k, v in self.headers.items()})
        body = b'[{"id": "1@c.us"}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.drop_after_reply:
            # Closed without saying so, as an idle keep-alive connection is by a server
            # or a load balancer: the client finds out on its next request.
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.peers, srv.paths, srv.headers, srv.drop_after_reply = set(), [], [], False
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    with serving() as srv:
        yield srv


def url_of(srv: _Server) -> str:
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}"


def client_at(url: str, **kw: Any) -> WawpClient:
    kw.setdefault("retry", QUICK)
    kw.setdefault("timeout", 5.0)
    return WawpClient(url, INST, Secret(SECRET), **kw)


def no_httpx_in(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.HTTPError):
            return False
        seen = seen.__cause__ or seen.__context__
    return True


# -- the pool -------------------------------------------------------------------------------


def test_concurrent_requests_share_a_pool_no_larger_than_asked(server: _Server) -> None:
    """The server never closes a connection, so every connection beyond four, and every
    retry, is one the client closed under a request of its own (httpcore's shared pool did,
    under load: see WawpClient)."""
    with client_at(url_of(server), max_connections=4) as client, ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda n: client.chats_page(offset=n, limit=1), range(60)))
    assert pages == [[{"id": "1@c.us"}]] * 60
    assert client.retries_made == 0, f"{client.retries_made} requests failed and were retried"
    assert 1 <= len(server.peers) <= 4, f"{len(server.peers)} connections for a pool of 4"


def test_a_connection_the_server_dropped_is_replaced_without_an_error(server: _Server) -> None:
    server.drop_after_reply = True
    with client_at(url_of(server)) as client:
        for _ in range(5):
            assert client.chats_page(offset=0, limit=1) == [{"id": "1@c.us"}]
    # A fresh connection each time. A request that raced the server's close is retried
    # (no pool can tell a closing socket from an open one until it reads).
    assert len(server.peers) >= 5


def test_each_request_names_itself_and_asks_for_gzip(server: _Server) -> None:
    with client_at(url_of(server)) as client:
        client.chats_page(offset=0, limit=1)
    (path,), (headers,) = server.paths, server.headers
    assert path.startswith(f"/v2/chats?instance_id={INST}&access_token=")
    assert headers["access-token"] == SECRET
    assert headers["accept-encoding"] == "gzip"
    assert headers["user-agent"] == f"whatsapp-explorer/{metadata.version('whatsapp-explorer')}"


# -- gzip against the sandbox ---------------------------------------------------------------


def test_pages_travel_gzipped_and_are_crawled_exactly(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=400)
    encodings: dict[int, str] = {}  # offset: how its page travelled
    real = httpx.HTTPTransport()

    class Spy(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = real.handle_request(request)
            offset = int(request.url.params["offset"])
            encodings[offset] = response.headers.get("content-encoding", "identity")
            return response

        def close(self) -> None:
            real.close()

    with WawpClient(sb.url, INST, Secret(token), transport=Spy()) as client:
        crawler = Crawler(client, CrawlOptions(page_size=50, warmup_seconds=0, concurrency=3))
        jids = [c.jid for page in crawler.pages() for c in page.chats]
    assert sorted(jids) == sorted(ground_truth(sb)) and len(jids) == len(set(jids))
    full_pages = [offset for offset in encodings if offset + 50 <= 400]
    assert len(full_pages) > 5 and {encodings[o] for o in full_pages} == {"gzip"}


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0"])
def test_the_sandbox_sends_plain_bytes_to_a_client_that_does_not_ask_for_gzip(
    make_sandbox: Callable[..., Sandbox], token: str, accept: str | None
) -> None:
    sb = make_sandbox(chats=200)
    query = f"instance_id={INST}&access_token={token}&limit=100"
    head = f"GET /v2/chats?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += f"Accept-Encoding: {accept}\r\n" if accept else ""
    host, port = sb.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    headers, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-encoding" not in headers.lower()
    assert len(json.loads(body)) == 100


# -- failures of the wire ---------------------------------------------------------------------


def test_a_refused_connection_is_retried_then_our_own_error_without_the_token() -> None:
    with client_at(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(WawpUnavailable, match="connection failed: ConnectError") as caught:
            client.chats_page(offset=0, limit=1)
        assert client.retries_made > 0
    assert SECRET not in str(caught.value) and no_httpx_in(caught.value)


def test_a_server_that_never_answers_is_a_timeout_retried_then_our_own_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with client_at(url, timeout=0.2) as client, pytest.raises(WawpUnavailable) as caught:
            client.chats_page(offset=0, limit=1)
        assert "timeout (ReadTimeout)" in str(caught.value)
        assert SECRET not in str(caught.value) and no_httpx_in(caught.value)
    finally:
        listener.close()


def test_a_reply_past_the_cap_is_a_protocol_error_however_small_on_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gzip bomb: a few hundred bytes that decode to far more than any page."""
    import gzip

    monkeypatch.setattr(explorer.source.wawp, "MAX_BODY_BYTES", 100_000)
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    )
    with (
        WawpClient("http://wawp.test", INST, Secret(SECRET), transport=transport) as client,
        pytest.raises(WawpProtocolError, match="larger than") as caught,
    ):
        client.chats_page(offset=0, limit=1)
    assert client.requests_made == 1 and no_httpx_in(caught.value)


class _Scripted:
    """A server that answers each request with ``reply``, byte for byte, in the pieces given
    (so a reply can arrive split anywhere), closing after it when told."""

    def __init__(self, pieces: list[bytes], close: bool) -> None:
        self.pieces, self.close_after = pieces, close
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while True:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        data = conn.recv(4096)
                        if not data:
                            break
                        head += data
                    if not head:
                        break
                    self.requests.append(head)
                    try:
                        for piece in self.pieces:
                            conn.sendall(piece)
                            time.sleep(0.002)
                    except OSError:
                        break
                    if self.close_after:
                        break

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()


def _split(reply: bytes, size: int = 7) -> list[bytes]:
    return [reply[i : i + size] for i in range(0, len(reply), size)]


BODY = b'[{"id": "1@c.us"}, {"id": "2@c.us"}]'
FIXED = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\n" + BODY[:5] + b"\r\n"
    b"%x\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
)


@pytest.mark.parametrize(
    ("pieces", "close"),
    [
        pytest.param([FIXED], False, id="content-length"),
        pytest.param(_split(FIXED, 3), False, id="content-length-trickled"),
        pytest.param(_split(CHUNKED), False, id="chunked-with-extension-and-trailer"),
        pytest.param([b"HTTP/1.1 100 Continue\r\n\r\n", FIXED], False, id="interim-100-skipped"),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", BODY],
            True,
            id="body-until-close",
        ),
        pytest.param(
            [FIXED.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n")], True, id="connection-close"
        ),
        pytest.param([FIXED.replace(b"HTTP/1.1", b"HTTP/1.0")], True, id="http-1.0-closes"),
    ],
)
def test_every_way_a_server_frames_a_reply_reads_the_same(pieces: list[bytes], close: bool) -> None:
    srv = _Scripted(pieces, close)
    try:
        with client_at(srv.url) as client:
            for _ in range(3):
                assert client.chats_page(offset=0, limit=2) == json.loads(BODY)
            assert client.retries_made == 0
    finally:
        srv.close()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"HTTP/2 200 OK\r\n\r\n", id="not-http-1"),
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", id="not-http"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", id="header-without-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n", id="length-words"),
        pytest.param("HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\n".encode(), id="length-²"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n[1,2]", id="length-plus"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000000\r\n\r\n" + BODY,
            id="length-10-TB-then-closed",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY, id="cut-short"),
        *(
            pytest.param(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n[1,2]\r\n0\r\n\r\n"
                % size,
                id=f"chunk-size-{size.decode()}",
            )
            for size in (b"0x5", b"+5", b"0_5", b"zz")
        ),
    ],
)
def test_a_malformed_reply_is_retried_then_one_error_without_the_token(reply: bytes) -> None:
    """h11's strict framing: what it refuses is a connection failure, retried like one; the
    final error is ours, one line, with neither the token nor an httpx exception behind it."""
    srv = _Scripted([reply], close=True)
    try:
        with client_at(srv.url) as client, pytest.raises(WawpError) as caught:
            client.chats_page(offset=0, limit=2)
        assert client.retries_made > 0
    finally:
        srv.close()
    message = str(caught.value)
    assert type(caught.value) in (WawpUnavailable, WawpProtocolError), message
    assert "\n" not in message and SECRET not in message and "access_token" not in message
    assert no_httpx_in(caught.value)


# -- what the environment says ------------------------------------------------------------------


def test_a_proxy_from_the_environment_carries_the_requests(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", url_of(server))  # this server plays the proxy
    with client_at("http://wawp.invalid") as client:
        assert client.chats_page(offset=0, limit=100) == [{"id": "1@c.us"}]
    assert server.paths and server.paths[0].startswith("http://wawp.invalid/v2/chats?")


def test_no_proxy_sends_a_host_direct(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with client_at(url_of(server)) as client:
        assert client.chats_page(offset=0, limit=100) == [{"id": "1@c.us"}]
    assert server.paths[0].startswith("/v2/chats?")


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    """A local HTTPS server with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with serving(tls) as srv:
        yield srv, cert


def test_https_certificates_are_checked_and_trusted_as_the_environment_says(
    https_server: tuple[_Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, cert = https_server
    url = f"https://127.0.0.1:{srv.server_address[1]}"
    with client_at(url) as refusing, pytest.raises(WawpUnavailable, match="ConnectError"):
        refusing.chats_page(offset=0, limit=1)  # self-signed: refused
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way httpx is told to trust
    with client_at(url) as trusting:
        assert trusting.chats_page(offset=0, limit=1) == [{"id": "1@c.us"}]


# -- message text stays out of errors and logs ----------------------------------------------------

PHRASE = "meet me at the blue door 7741"
PRIVATE_REPLIES = [
    pytest.param(200, b'[{"id": "m1", "body": "' + PHRASE.encode() + b'", "timest', id="cut-short"),
    pytest.param(200, json.dumps({"error": PHRASE}).encode(), id="error-under-200"),
    pytest.param(200, json.dumps({PHRASE: {"body": "x"}}).encode(), id="no-list"),
    pytest.param(500, json.dumps({"exception": {"message": PHRASE}}).encode(), id="500"),
    pytest.param(400, json.dumps({"message": [PHRASE]}).encode(), id="400"),
    pytest.param(502, b"<html>" + PHRASE.encode() + b"</html>", id="502-html"),
]


def _replying(status: int, body: bytes) -> WawpClient:
    transport = httpx.MockTransport(lambda r: httpx.Response(status, content=body))
    return WawpClient("http://wawp.test", INST, Secret(SECRET), transport=transport, retry=QUICK)


@pytest.mark.parametrize(("status", "body"), PRIVATE_REPLIES)
def test_a_failed_messages_page_quotes_none_of_its_body(
    status: int, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A messages reply may quote a message: its errors and retry lines say the status."""
    with (
        caplog.at_level("DEBUG"),
        _replying(status, body) as client,
        pytest.raises(WawpError) as caught,
    ):
        client.messages_page("201@c.us", offset=0, limit=5)
    assert PHRASE not in caplog.text and PHRASE not in str(caught.value)
    assert "/v2/chats/messages" in str(caught.value)


@pytest.mark.parametrize(("status", "body"), PRIVATE_REPLIES)
def test_a_failed_chats_page_still_quotes_its_body(
    status: int, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Elsewhere the excerpt stays: it is what tells an operator what Wawp said."""
    with (
        caplog.at_level("DEBUG"),
        _replying(status, body) as client,
        pytest.raises(WawpError) as caught,
    ):
        client.chats_page(offset=0, limit=5)
    assert PHRASE in caplog.text + str(caught.value)
