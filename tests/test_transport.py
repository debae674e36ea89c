"""The crawl's own HTTP/1.1 client: keep-alive per thread, dropped connections, every
framing of a reply, errors, HTTPS trusted as httpx trusts it, and proxies left to httpx."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from explorer.dev.meili_server import free_port
from explorer.secrets import Secret
from explorer.transport import KeepAliveTransport, Reply, default_transport
from explorer.wawp import WawpClient

SECRET = "tok-3f9a7c1e5b"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peers: set[tuple[str, int]]
    paths: list[str]
    drop_after_reply: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.peers.add(self.client_address)
        self.server.paths.append(self.path)
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
    srv.peers = set()
    srv.paths = []
    srv.drop_after_reply = False
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


def get(transport: KeepAliveTransport, url: str, timeout: float = 5.0) -> Reply:
    return transport.get(url, {"Accept": "application/json"}, timeout)


def test_each_thread_keeps_its_connection_alive(server: _Server) -> None:
    transport = KeepAliveTransport()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda n: get(transport, f"{url_of(server)}/v2/chats?n={n}"),
                                range(40)))  # fmt: skip
    transport.close()
    assert all(r.status == 200 and json.loads(r.content) == [{"id": "1@c.us"}] for r in replies)
    assert 1 <= len(server.peers) <= 4, f"{len(server.peers)} connections for 4 threads"


def test_a_connection_the_server_dropped_is_replaced_without_an_error(server: _Server) -> None:
    server.drop_after_reply = True
    transport = KeepAliveTransport()
    statuses = [get(transport, f"{url_of(server)}/v2/chats").status for _ in range(5)]
    transport.close()
    assert statuses == [200] * 5
    assert len(server.peers) == 5  # a fresh connection each time, none of them an error


def test_a_refused_connection_is_an_httpx_error_without_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/chats?access_token={SECRET}"
    with pytest.raises(httpx.ConnectError) as caught:
        get(KeepAliveTransport(), url)
    assert SECRET not in str(caught.value) and "access_token" not in str(caught.value)


def test_a_server_that_never_answers_is_a_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        with pytest.raises(httpx.TimeoutException) as caught:
            get(
                KeepAliveTransport(), f"http://127.0.0.1:{port}/v2/chats?access_token={SECRET}", 0.3
            )
        assert SECRET not in str(caught.value)
    finally:
        listener.close()


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


def test_https_certificates_are_checked_as_httpx_checks_them(
    https_server: tuple[_Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, cert = https_server
    url = f"https://127.0.0.1:{srv.server_address[1]}/v2/chats"
    refusing = KeepAliveTransport()
    with pytest.raises(httpx.ConnectError):
        get(refusing, url)  # self-signed: refused, as httpx refuses it
    refusing.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way httpx is told to trust
    trusting = KeepAliveTransport()
    assert json.loads(get(trusting, url).content) == [{"id": "1@c.us"}]
    trusting.close()


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_leaves_the_request_to_httpx(
    var: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert isinstance(default_transport(), KeepAliveTransport)
    monkeypatch.setenv(var, "http://proxy.example:3128")
    assert default_transport() is None  # httpx's own transport, which honours the proxy


def test_a_wawp_client_behind_a_proxy_from_the_environment_goes_through_it(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", url_of(server))  # this server plays the proxy
    with WawpClient("http://wawp.invalid", "INST00000001", Secret(SECRET)) as client:
        assert client.chats_page(offset=0, limit=100) == [{"id": "1@c.us"}]
    assert server.paths and server.paths[0].startswith("http://wawp.invalid/v2/chats?")


class _Scripted:
    """A server that answers each request with the next scripted reply, byte for byte, in
    the pieces given (so a reply can arrive split anywhere), closing where told."""

    def __init__(self, replies: list[tuple[list[bytes], bool]]) -> None:
        self.replies = replies
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while self.replies:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        data = conn.recv(4096)
                        if not data:
                            break
                        head += data
                    if not head:
                        break
                    self.requests.append(head)
                    pieces, close = self.replies.pop(0)
                    for piece in pieces:
                        conn.sendall(piece)
                        time.sleep(0.005)
                    if close:
                        break

    def url(self, path: str = "/v2/chats") -> str:
        return f"http://127.0.0.1:{self.port}{path}?access_token={SECRET}"

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
    "replies",
    [
        pytest.param([([FIXED], False)] * 3, id="content-length"),
        pytest.param([(_split(FIXED, 3), False)] * 3, id="content-length-trickled"),
        pytest.param([(_split(CHUNKED), False)] * 3, id="chunked-with-extension-and-trailer"),
        pytest.param(
            [([b"HTTP/1.1 100 Continue\r\n\r\n", FIXED], False)] * 3, id="interim-100-skipped"
        ),
        pytest.param(
            [([b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", BODY], True)] * 3,
            id="body-until-close",
        ),
        pytest.param(
            [([FIXED.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n")], True)] * 3,
            id="connection-close",
        ),
        pytest.param([([FIXED.replace(b"HTTP/1.1", b"HTTP/1.0")], True)] * 3, id="http-1.0-closes"),
    ],
)
def test_every_way_a_server_frames_a_reply_reads_the_same(
    replies: list[tuple[list[bytes], bool]],
) -> None:
    srv = _Scripted(list(replies))
    transport = KeepAliveTransport()
    try:
        for _ in range(3):
            reply = transport.get(srv.url(), {"Accept": "application/json"}, 2.0)
            assert (reply.status, reply.content) == (200, BODY)
        assert all(r.startswith(b"GET /v2/chats?access_token=") for r in srv.requests)
        assert b"\r\nHost: 127.0.0.1:" in srv.requests[0]
    finally:
        transport.close()
        srv.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY,  # then closes: cut short
    ],
)
def test_a_reply_that_is_not_http_is_a_protocol_error_without_the_url(reply: bytes) -> None:
    srv = _Scripted([([reply], True)])
    transport = KeepAliveTransport()
    try:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            transport.get(srv.url(), {}, 2.0)
        assert SECRET not in str(caught.value) and "access_token" not in str(caught.value)
    finally:
        transport.close()
        srv.close()


def test_the_wawp_client_reads_a_chunked_reply_through_its_own_path() -> None:
    srv = _Scripted([(_split(CHUNKED), False)])
    try:
        with WawpClient(f"http://127.0.0.1:{srv.port}", "INST00000001", Secret(SECRET)) as client:
            assert client.chats_page(offset=0, limit=100) == [{"id": "1@c.us"}, {"id": "2@c.us"}]
        head = srv.requests[0].decode()
        assert head.startswith("GET /v2/chats?instance_id=INST00000001&access_token=")
        assert "\r\naccess-token: " in head and "\r\nUser-Agent: whatsapp-explorer/" in head
    finally:
        srv.close()


def test_a_header_value_with_a_line_break_is_refused_before_sending_and_not_quoted() -> None:
    srv = _Scripted([([FIXED], False)])
    transport = KeepAliveTransport()
    try:
        with pytest.raises(httpx.LocalProtocolError) as caught:
            transport.get(srv.url(), {"access-token": f"{SECRET}\r\nX-Injected: 1"}, 2.0)
        assert SECRET not in str(caught.value)
        assert srv.requests == []  # nothing reached the server
    finally:
        transport.close()
        srv.close()
