"""`explorer serve`: the agent page, as plain files, for the configured Meilisearch.

The page talks to Meilisearch straight from the browser with the agent's own key; this
server only hands out the files and a ``config.json`` naming Meilisearch and the index.
It never sees a key (the page takes it from the URL fragment, which browsers do not send).
Every response carries a Content-Security-Policy that lets the page reach its own origin
and that Meilisearch, nothing else, and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from explorer.config import MeiliSettings

WEB = Path(str(files("explorer") / "web"))
FILES = ("index.html", "app.js", "query.js", "app.css")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(meili_origin: str) -> dict[str, str]:
    connect = "'self'" + (f" {meili_origin}" if meili_origin else "")
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"font-src 'self'; connect-src {connect}; frame-ancestors 'none'; "
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

    def __init__(self, *args: Any, config: bytes, headers: dict[str, str], **kw: Any) -> None:
        self._config = config
        self._security = headers
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

    def _refuse(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815


class AgentPage:
    """The page's HTTP server; ``browser_meili_url`` is Meilisearch as the browser sees it."""

    def __init__(
        self,
        meili: MeiliSettings,
        host: str = "127.0.0.1",
        port: int = 8700,
        browser_meili_url: str | None = None,
    ) -> None:
        url = (browser_meili_url or meili.url).rstrip("/")
        config = json.dumps({"meili": url, "index": meili.index}).encode()
        handler = partial(_Handler, config=config, headers=security_headers(origin_of(url)))
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
        self.server.server_close()
