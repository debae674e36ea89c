"""`explorer serve`: the agent page and a read-only door to Meilisearch, on one address.

It hands out the page's plain files and ``config.json``, and passes exactly two routes on to
Meilisearch, both POST: ``/multi-search`` and ``/indexes/<index>/search``, with the agent's
own key from the request (never logged, never stored). Anything else is 403, as at the
compose door (deploy/nginx/agent-ui.conf).

Why a door and not the browser talking to Meilisearch directly: a browser cannot ask for an
uncompressed reply, and Meilisearch's compressed replies on a kept-alive connection stall
about 40 ms each (the same stall :mod:`explorer.query` avoids). Here the upstream request
asks for ``identity``, and the page's Content-Security-Policy can be
``connect-src 'self'``. The key rides in the URL fragment to the page, which browsers never
send to a server.
"""

from __future__ import annotations

import json
import mimetypes
import re
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from explorer.config import MeiliSettings
from explorer.errors import meili_unreachable

WEB = Path(str(files("explorer") / "web"))
FILES = ("index.html", "app.js", "query.js", "app.css")
SEARCH_ROUTE = re.compile(r"^/(multi-search|indexes/[A-Za-z0-9_-]+/search)$")
MAX_BODY = 64 * 1024


def security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "explorer-serve"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def __init__(
        self, *args: Any, config: bytes, upstream: httpx.Client, meili_url: str, **kw: Any
    ) -> None:
        self._config = config
        self._upstream = upstream
        self._meili_url = meili_url
        self._security = security_headers()
        super().__init__(*args, **kw)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # nothing secret reaches us, but agents' searches are nobody's log either

    def _reply(self, status: int, body: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in self._security.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        path = urlsplit(self.path).path
        name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        if name == "config.json":
            return self._reply(200, self._config, "application/json", head)
        if name not in FILES:
            return self._reply(404, b"not found\n", "text/plain; charset=utf-8", head)
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or name.endswith(".js"):
            ctype = ("text/javascript" if name.endswith(".js") else ctype) + "; charset=utf-8"
        self._reply(200, (WEB / name).read_bytes(), ctype, head)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(head=True)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        """Searches only: the path as the browser sent it must be one of the two routes."""
        path, _, query = self.path.partition("?")
        if not SEARCH_ROUTE.match(path) or query:
            return self._reply(403, b'{"message":"not a search route"}', "application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._reply(413, b'{"message":"request too large"}', "application/json")
        body = self.rfile.read(length)
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if self.headers.get("Authorization"):
            headers["Authorization"] = self.headers["Authorization"]
        try:
            resp = self._upstream.post(path, content=body, headers=headers)
        except httpx.HTTPError:
            message = json.dumps({"message": meili_unreachable(self._meili_url),
                                  "code": "meili_unreachable"})  # fmt: skip
            return self._reply(502, message.encode(), "application/json")
        ctype = resp.headers.get("Content-Type", "application/json")
        self._reply(resp.status_code, resp.content, ctype)

    def _refuse(self) -> None:
        self._reply(403, b'{"message":"read-only"}', "application/json")

    do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815


class AgentPage:
    """The page and its search door, for the Meilisearch and index in ``meili``."""

    def __init__(self, meili: MeiliSettings, host: str = "127.0.0.1", port: int = 8700) -> None:
        config = json.dumps({"meili": "", "index": meili.index}).encode()
        self.upstream = httpx.Client(
            base_url=meili.url, timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )  # fmt: skip
        handler = partial(_Handler, config=config, upstream=self.upstream, meili_url=meili.url)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}/"

    def start(self) -> AgentPage:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.close()

    def close(self) -> None:
        self.server.server_close()
        self.upstream.close()
