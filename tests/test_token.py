"""The Wawp token never leaves the process in clear, whatever the server answers.

A server (or a proxy in front of it) may quote the token back: in a 404's "Cannot GET
<the URL>", in a 422 or a 5xx, in a ``success: false`` body under 200, or in a body whose
``Content-Encoding`` lies. A tiny real HTTP server here echoes the token in each of those,
bare, in its URL-encoded form and inside the query string; the library and the `explorer`
command (real processes, text and JSON logs at ``-vv``) must show it nowhere, end with one
line naming the instance, and never let an httpx exception (whose ``.request.url`` holds
the token) escape or hang off our errors.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from explorer.dev.meili_server import MeiliServer
from explorer.errors import (
    WawpError,
    WawpNotFound,
    WawpProtocolError,
    WawpRequestError,
    WawpUnavailable,
)
from explorer.secrets import Secret
from explorer.source.wawp import RetryPolicy, WawpClient
from tests.conftest import register_secret

ROOT = Path(__file__).resolve().parent.parent
INST = "ECHO00000001"
# The characters a real token may hold that a URL encodes: the echo of the query string
# then differs from the token itself, and both must be masked.
TOKEN = register_secret("tok+Echo/4f9a7c1e5b2d8e6f0a3c=")
QUICK = RetryPolicy(budget_seconds=0.5, base_delay=0.01, max_delay=0.05)

ECHOES = ("404", "422", "500", "success-false", "bad-gzip")
EXPECTED: dict[str, type[WawpError]] = {
    "404": WawpNotFound,
    "422": WawpRequestError,
    "500": WawpUnavailable,
    "success-false": WawpUnavailable,
    "bad-gzip": WawpProtocolError,
}


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    echo: str
    requests: int


class _Echo(BaseHTTPRequestHandler):
    """Answers every GET (a proxied one too) with the token quoted back, as ``echo`` says."""

    protocol_version = "HTTP/1.1"
    server: _EchoServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.requests += 1
        mode = self.server.echo
        quoted = quote(TOKEN, safe="")
        said = f"token {TOKEN} ({quoted}) for GET {self.path}"
        headers = {"Content-Type": "application/json", "X-Echo": TOKEN}
        if mode == "bad-gzip":
            status, body = 200, f"not gzip at all: {said}".encode()
            headers["Content-Encoding"] = "gzip"
        elif mode == "success-false":
            status, body = 200, json.dumps({"success": False, "message": said}).encode()
        elif mode == "500":
            body = json.dumps({"statusCode": 500, "exception": {"message": said}}).encode()
            status = 500
        else:  # 404 and 422: a request the server will not serve, whoever asks again
            status = int(mode)
            body = json.dumps({"statusCode": status, "message": f"Cannot serve {said}"}).encode()
        self.send_response(status, f"Echo {TOKEN}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[_EchoServer]:
    srv = _EchoServer(("127.0.0.1", 0), _Echo)
    srv.echo, srv.requests = "404", 0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def url_of(srv: _EchoServer) -> str:
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}"


def leaks(text: str) -> bool:
    return TOKEN in text or quote(TOKEN, safe="") in text or "tok+Echo" in text


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


# -- the library -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("the MCP bearer token must be at least 16 characters", None),
        ("it needs a bearer token.", None),
        ("Bearer authentication", None),
        ("Authorization: Bearer 3f2a9c1b7e", "Authorization: Bearer ***"),
        ("Authorization: bearer mcp-bearer-abcdefghijklmn", "Authorization: bearer ***"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2ln rejected", "Bearer *** rejected"),
    ],
)
def test_redaction_masks_bearer_credentials_and_not_the_words_around_them(
    text: str, shown: str | None
) -> None:
    from explorer.secrets import redact

    assert redact(text) == (shown or text)


@pytest.mark.parametrize("mode", ECHOES)
def test_errors_and_retry_lines_never_quote_the_token(
    echo: _EchoServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    echo.echo = mode
    with (
        caplog.at_level(logging.DEBUG),
        WawpClient(url_of(echo), INST, Secret(TOKEN), retry=QUICK) as client,
        pytest.raises(WawpError) as caught,
    ):
        client.chats_page(offset=0, limit=100)
    error = caught.value
    assert type(error) is EXPECTED[mode]
    assert INST in str(error) and "\n" not in str(error)
    assert not leaks(str(error)) and not leaks(repr(error))
    # Nothing of httpx hangs off the error: its request (and URL) stays behind.
    assert [type(e) for e in chain(error)] == [type(error)]
    assert not any(leaks(r.getMessage()) for r in caplog.records), "a log line quotes the token"
    if mode in ("500", "success-false", "bad-gzip"):
        assert client.retries_made > 0 and "retrying in" in caplog.text


def test_a_lying_content_encoding_is_retried_then_our_own_error() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=b"\x00garbage", headers={"Content-Encoding": "gzip"})

    transport = httpx.MockTransport(handler)
    with (
        WawpClient("http://wawp.test", INST, Secret(TOKEN), transport=transport, retry=QUICK) as c,
        pytest.raises(WawpProtocolError, match="could not be decoded") as caught,
    ):
        c.chats_page(offset=0, limit=100)
    assert len(calls) == 3  # retried as any unusable body is, then given up
    assert not any(isinstance(e, httpx.HTTPError) for e in chain(caught.value))


# -- the command ----------------------------------------------------------------------------


def run_cli(
    srv: _EchoServer, meili: MeiliServer, tmp_path: Path, log_format: str, *args: str,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    config = tmp_path / "explorer.toml"
    config.write_text("[wawp]\nretry_budget_seconds = 1\nwarmup_seconds = 0\ntimeout = 2\n")
    env = {
        **os.environ,
        "WAWP_BASE_URL": url_of(srv), "WAWP_INSTANCE_ID": INST, "WAWP_ACCESS_TOKEN": TOKEN,
        "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key,
        "EXPLORER_INDEX": f"echo_{log_format}", "EXPLORER_CONFIG": str(config),
        "EXPLORER_STATE_DIR": str(tmp_path / "state"), **(extra_env or {}),
    }  # fmt: skip
    argv = [sys.executable, "-m", "explorer.cli", "-vv", "--log-format", log_format, *args]
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_one_line_error(text: str, log_format: str) -> None:
    last = text.strip().splitlines()[-1]
    if log_format == "json":
        entry = json.loads(last)
        assert entry["level"] == "error" and entry["exit_code"] == 1
        last = entry["message"]
    assert last.startswith("Error: Wawp instance") and INST in last, last


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("mode", ECHOES)
def test_reindex_shows_the_token_nowhere(
    echo: _EchoServer, meili: MeiliServer, tmp_path: Path, mode: str, log_format: str
) -> None:
    echo.echo = mode
    result = run_cli(echo, meili, tmp_path, log_format, "reindex", "-q")
    assert result.returncode == 1, result.stderr[-2000:]
    assert echo.requests > 0
    assert not leaks(result.stdout) and not leaks(result.stderr)
    assert "Traceback" not in result.stderr
    assert_one_line_error(result.stderr, log_format)
    if log_format == "json":  # every line on stderr is a log record
        assert all(json.loads(line) for line in result.stderr.splitlines())


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("mode", ECHOES)
def test_check_shows_the_token_nowhere(
    echo: _EchoServer, meili: MeiliServer, tmp_path: Path, mode: str, log_format: str
) -> None:
    echo.echo = mode
    result = run_cli(echo, meili, tmp_path, log_format, "check")
    assert result.returncode == 1, result.stderr[-2000:]
    assert not leaks(result.stdout) and not leaks(result.stderr)
    assert "Traceback" not in result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("wawp")]
    assert INST in row and "FAIL" in row


def test_check_through_a_proxy_from_the_environment_shows_the_token_nowhere(
    echo: _EchoServer, meili: MeiliServer, tmp_path: Path
) -> None:
    """Behind a proxy every request goes the proxy's way; a body it cannot decode is still
    our own one-line error."""
    echo.echo = "bad-gzip"
    proxied = {"WAWP_BASE_URL": "http://wawp.invalid", "HTTP_PROXY": url_of(echo),
               "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
    result = run_cli(echo, meili, tmp_path, "text", "check", extra_env=proxied)
    assert result.returncode == 1, result.stderr[-2000:]
    assert echo.requests > 0  # the proxy was asked
    assert not leaks(result.stdout) and not leaks(result.stderr)
    assert "Traceback" not in result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("wawp")]
    assert "FAIL" in row and "could not be decoded" in row
