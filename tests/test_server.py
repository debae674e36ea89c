"""The shared HTTP server (explorer/doors/server.py), probed over raw sockets: framing, body
limits, slow bodies, and what reaches the log. Slow and oversized request heads, and the
lingering close, are nginx's in front: tests/test_door.py probes them there."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from explorer.doors.server import HttpServer, Limits, healthz

LIMITS = Limits(max_body=1000, body_timeout=1.0, idle_timeout=1.0)
SAFETY = 15.0  # a client-side bound, so that a broken server fails the test instead of hanging
seen: list[bytes] = []


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    seen.append(body)
    return PlainTextResponse(f"read {len(body)} bytes\n")


async def refuse(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no\n", status_code=403)  # without reading the body


async def boom(request: Request) -> PlainTextResponse:
    raise ValueError("something inside broke")


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/refuse", refuse, methods=["POST"]),
            Route("/boom", boom),
            healthz(),
        ]
    )
    srv = HttpServer(app, limits=LIMITS).start()
    yield srv
    srv.stop()


def read_all(sock: socket.socket) -> bytes:
    """Read until the server closes (a reset counts: it closed with our bytes unread)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def exchange(server: HttpServer, data: bytes, *, close_after: bool = False) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    port = server.socket.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        try:
            sock.sendall(data)
            if close_after:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse before we finish sending: its answer is what counts
        return read_all(sock)


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The server's log lines once one holds ``text``: the server may log a moment after
    the client has its answer."""
    deadline = time.monotonic() + SAFETY
    while not any(text in line for line in one_line_records(caplog)):
        assert time.monotonic() < deadline, one_line_records(caplog)
        time.sleep(0.01)
    return one_line_records(caplog)


def one_line_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the server logged (ours, and uvicorn's own about malformed requests)."""
    records = [r for r in caplog.records if r.name.startswith(("explorer.doors.server", "uvicorn"))]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    return [r.getMessage() for r in records]


def test_health_answers(server: HttpServer) -> None:
    reply = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(reply) == [200] and reply.endswith(b"ok\n")


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1, 2", b"+5"])
def test_a_bad_content_length_is_a_400_with_one_log_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture, length: bytes
) -> None:
    caplog.set_level(logging.WARNING)
    before = len(seen)
    reply = exchange(
        server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + length
        + b"\r\n\r\n"
        + b"x" * 200_000,
    )
    assert statuses(reply) == [400]
    assert len(seen) == before  # the app never saw it
    lines = one_line_records(caplog)
    # uvicorn's one line does not say why; nginx's error log in front does (test_door.py)
    assert len(lines) == 1 and "Invalid HTTP request" in lines[0]


def test_an_announced_body_over_the_limit_is_refused_unread(server: HttpServer) -> None:
    before = len(seen)
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = smuggled * 10_000  # what a naive server would read as further requests
    head = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    reply = exchange(server, head + body)
    assert statuses(reply) == [413]
    assert len(seen) == before


def test_a_chunked_body_is_counted_as_read(server: HttpServer) -> None:
    chunk = b"1f4\r\n" + b"x" * 500 + b"\r\n"
    small = exchange(
        server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close"
        b"\r\n\r\n" + chunk + b"0\r\n\r\n",
    )
    assert statuses(small) == [200] and small.endswith(b"read 500 bytes\n")
    before = len(seen)
    big = exchange(
        server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 400
        + b"0\r\n\r\n"
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert statuses(big) == [413]
    assert len(seen) == before


def test_a_refused_requests_body_is_not_answered_as_a_second_request(server: HttpServer) -> None:
    inner = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    head = f"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: {len(inner)}\r\n\r\n".encode()
    assert statuses(exchange(server, head + inner, close_after=True)) == [403]
    # the same body sent after the answer: still one answer
    port = server.socket.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(head)
        first = sock.recv(65536)
        with contextlib.suppress(OSError):  # the server may have closed already
            sock.sendall(inner)
        rest = read_all(sock)
    assert statuses(first + rest) == [403]


def test_an_answer_before_the_body_closes_the_connection(server: HttpServer) -> None:
    """The app refused without reading the body, of which a tenth has arrived: the server
    says so and closes, rather than wait (with no deadline: the app reads nothing) for the
    rest of a body nobody will read."""
    port = server.socket.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        reply = read_all(sock)  # returns only once the server closed the connection
    assert statuses(reply) == [403] and b"connection: close" in reply.lower()


def test_keep_alive_still_works_for_well_formed_requests(server: HttpServer) -> None:
    body = b'{"q": "x"}'
    one = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    reply = exchange(
        server, one + one + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert statuses(reply) == [200, 200, 200]


def test_a_slow_body_is_a_408(server: HttpServer) -> None:
    port = server.socket.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        reply = read_all(sock)
    assert statuses(reply) == [408]


def test_an_exception_in_the_app_is_a_500_and_one_log_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    reply = exchange(server, b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(reply) == [500]
    assert b"something inside broke" not in reply
    lines = logged(caplog, "ValueError: something inside broke")
    assert len(lines) == 1


def test_a_malformed_header_line_is_logged_without_its_content(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    reply = exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization Bearer s3cret\r\n\r\n"
    )
    assert statuses(reply) == [400]
    lines = one_line_records(caplog)
    assert len(lines) == 1 and "s3cret" not in lines[0] and b"s3cret" not in reply


def test_a_busy_port_is_an_os_error(server: HttpServer) -> None:
    port = server.socket.getsockname()[1]
    with pytest.raises(OSError):
        HttpServer(Starlette(), port=port)


# -- where it says it is ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "url", "said"),
    [
        ("127.0.0.1", "http://127.0.0.1:8700/", "http://127.0.0.1:8700/"),
        ("localhost", "http://127.0.0.1:8700/", "http://127.0.0.1:8700/"),
        ("0.0.0.0", "http://127.0.0.1:8700/",
         "all interfaces (0.0.0.0:8700); from this machine http://127.0.0.1:8700/"),
        ("::", "http://[::1]:8702/mcp",
         "all interfaces ([::]:8702); from this machine http://[::1]:8702/mcp"),
    ],
)  # fmt: skip
def test_the_start_line_names_the_address_listened_on(host: str, url: str, said: str) -> None:
    from explorer.doors.server import bound_to

    assert bound_to(host, url) == said


def test_explorer_serve_on_every_interface_says_so_and_its_url_still_connects() -> None:
    """`serve --host 0.0.0.0` once said "on http://127.0.0.1:…" as if bound to loopback only."""
    import subprocess
    import sys

    import httpx

    from tests.conftest import read_until

    argv = [sys.executable, "-m", "explorer.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:  # fmt: skip
        try:
            found, lines = read_until(proc, r"Agent page on (.*) for index", 60)
            assert found, "".join(lines)
            where = re.fullmatch(
                r"all interfaces \(0\.0\.0\.0:(\d+)\); from this machine (http://127\.0\.0\.1:"
                r"(\d+)/)agent/", found.group(1)
            )  # fmt: skip
            assert where and where.group(1) == where.group(3) != "0", found.group(1)
            assert httpx.get(where.group(2) + "healthz", timeout=SAFETY).status_code == 200
        finally:
            proc.terminate()
            proc.wait(SAFETY)
