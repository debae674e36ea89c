"""The http.client transport under httpx: keep-alive per thread, stale connections, errors."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from explorer.meili_server import free_port
from explorer.transport import KeepAliveTransport

SECRET = "tok-3f9a7c1e5b"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peers: set[tuple[str, int]]
    drop_after_reply: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.peers.add(self.client_address)
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


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.peers = set()
    srv.drop_after_reply = False
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


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
