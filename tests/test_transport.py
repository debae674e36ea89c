"""The http.client transport under httpx: keep-alive per thread, dropped connections,
errors, HTTPS trusted as httpx trusts it, and proxies left to httpx."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from explorer.meili_server import free_port
from explorer.secrets import Secret
from explorer.transport import KeepAliveTransport, default_transport
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


def test_each_thread_keeps_its_connection_alive(server: _Server) -> None:
    with (
        httpx.Client(base_url=url_of(server), transport=KeepAliveTransport()) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        replies = list(pool.map(lambda n: client.get("/v2/chats", params={"n": n}), range(40)))
    assert all(r.status_code == 200 and r.json() == [{"id": "1@c.us"}] for r in replies)
    assert 1 <= len(server.peers) <= 4, f"{len(server.peers)} connections for 4 threads"


def test_a_connection_the_server_dropped_is_replaced_without_an_error(server: _Server) -> None:
    server.drop_after_reply = True
    with httpx.Client(base_url=url_of(server), transport=KeepAliveTransport()) as client:
        statuses = [client.get("/v2/chats").status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert len(server.peers) == 5  # a fresh connection each time, none of them an error


def test_a_refused_connection_is_an_httpx_error_without_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/chats?access_token={SECRET}"
    with (
        httpx.Client(transport=KeepAliveTransport()) as client,
        pytest.raises(httpx.ConnectError) as caught,
    ):
        client.get(url)
    assert SECRET not in str(caught.value) and "access_token" not in str(caught.value)


def test_a_server_that_never_answers_is_a_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        with (
            httpx.Client(transport=KeepAliveTransport(), timeout=0.3) as client,
            pytest.raises(httpx.TimeoutException) as caught,
        ):
            client.get(f"http://127.0.0.1:{port}/v2/chats?access_token={SECRET}")
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
    with httpx.Client(transport=KeepAliveTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(url)  # self-signed: refused, as httpx's own transport refuses it
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way httpx is told to trust
    with httpx.Client(transport=KeepAliveTransport()) as client:
        assert client.get(url).json() == [{"id": "1@c.us"}]


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
