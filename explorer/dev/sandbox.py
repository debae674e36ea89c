"""A Wawp-compatible server for trying, testing and benchmarking without a Wawp account.

It serves ``GET /v2/chats`` and ``/v2/session/info`` with Wawp's parameters, auth and error
bodies (docs/wawp.md), synthetic chats from :mod:`explorer.dev.synthetic`, and optional faults:
latency, 5xx, 429 bursts, cold start, churn, a page-size cap and the uppercase-``DESC`` quirk.

Ground truth for tests: ``GET /_sandbox/ids?instance_id=X`` streams the canonical JIDs a
complete crawl must produce (``status@broadcast`` excluded), and ``POST /_sandbox/mutate``
adds, deletes, renames and touches chats. In-process, :class:`Sandbox` offers the same.

Memory: a chat list is never materialised. Each sort order is an ``array('I')`` of chat
numbers (4 bytes per chat), computed on first use and after a mutation; a page renders
only its own chats, and unpaged responses are streamed.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from explorer.dev.sandbox_options import (
    DEFAULT_INSTANCE,
    SORT_KEYS,
    SandboxOptions,
)
from explorer.dev.synthetic import ChatSpec, Generator, raw_id, renamed, render, touched


class ChatStore:
    """The chats of one instance: generated base chats plus an overlay of mutations."""

    def __init__(self, instance_id: str, options: SandboxOptions, epoch: int) -> None:
        self.instance_id = instance_id
        self.shape = options.shape
        self.gen = Generator(options.seed, instance_id, epoch)
        self.count = options.chats
        self.next_index = options.chats
        self.deleted: set[int] = set()
        self.overrides: dict[int, ChatSpec] = {}
        self.lock = threading.RLock()
        self._orders: dict[str, array[int]] = {}
        self._rendered: dict[int, bytes] = {}
        self.session_started = time.monotonic()

    # -- reading -------------------------------------------------------------------------

    def spec(self, i: int) -> ChatSpec:
        return self.overrides.get(i) or self.gen.spec(i)

    def item(self, i: int) -> bytes:
        """Chat ``i`` as the engine's JSON. Kept once rendered: a real server's CPU is not
        the client's, and on one machine the sandbox's would be taken from the client and
        Meilisearch (generating a chat costs about 15 µs; a page, 1.5 ms)."""
        item = self._rendered.get(i)
        if item is None:
            with self.lock:  # a rename meanwhile must not be overwritten by the old render
                item = _dumps(render(self.spec(i), self.shape))
                self._rendered[i] = item
        return item

    def prerender(self) -> None:
        """Render every chat and sort them by id now, before serving (benchmarks: the first
        crawl pays no more than the next)."""
        for i in self.live():
            self.item(i)
        self.order("id")

    def live(self) -> Iterator[int]:
        for i in range(self.next_index):
            if i not in self.deleted:
                yield i

    def __len__(self) -> int:
        return self.next_index - len(self.deleted)

    def _key(self, sort_by: str) -> Any:
        if sort_by == "id":
            if not self.overrides and self.shape != "noweb":
                # Fast path: ids need no names or timestamps.
                def fast(i: int) -> str:
                    user, server = self.gen.user_and_server(i)
                    return f"{user}@{server}"

                return fast
            return lambda i: raw_id(self.spec(i), self.shape)
        if sort_by == "conversationTimestamp":
            return lambda i: (self.spec(i).ts or 0, raw_id(self.spec(i), self.shape))
        return lambda i: (self.spec(i).name or "", raw_id(self.spec(i), self.shape))

    def order(self, sort_by: str) -> array[int]:
        with self.lock:
            cached = self._orders.get(sort_by)
            if cached is None:
                cached = array("I", sorted(self.live(), key=self._key(sort_by)))
                self._orders[sort_by] = cached
            return cached

    def page(self, sort_by: str, descending: bool, offset: int, limit: int | None) -> list[int]:
        with self.lock:
            order = self.order(sort_by)
            n = len(order)
            end = n if limit is None else min(n, offset + limit)
            if descending:
                return [order[n - 1 - k] for k in range(offset, end)]
            return list(order[offset:end])

    def expected_jids(self) -> Iterator[str]:
        """Canonical JIDs a complete crawl yields (``status@broadcast`` is never indexed)."""
        with self.lock:
            indexes = list(self.live()) if self.deleted or self.overrides else None
        for i in indexes if indexes is not None else range(self.next_index):
            user, server = self.gen.user_and_server(i)
            if user != "status":
                yield f"{user}@{server}"

    # -- mutating ------------------------------------------------------------------------

    def _changed(self, *indexes: int) -> None:
        self._orders.clear()
        for i in indexes:
            self._rendered.pop(i, None)

    def add(self, n: int = 1) -> list[str]:
        """New chats (as if a customer just wrote): fresh ids, activity now."""
        with self.lock:
            added = []
            for _ in range(n):
                i = self.next_index
                self.next_index += 1
                spec = touched(self.gen.spec(i), int(time.time()))
                self.overrides[i] = spec
                added.append(spec.jid)
            self._changed()
            return added

    def _find(self, jid: str) -> int:
        for i in self.live():
            if self.spec(i).jid == jid or raw_id(self.spec(i), self.shape) == jid:
                return i
        raise KeyError(jid)

    def delete(self, jids: Iterable[str]) -> None:
        with self.lock:
            for jid in jids:
                self.deleted.add(self._find(jid))
            self._changed()

    def rename(self, jid: str, name: str | None) -> None:
        with self.lock:
            i = self._find(jid)
            self.overrides[i] = renamed(self.spec(i), name)
            self._changed(i)

    def touch(self, jid: str, ts: int | None = None) -> None:
        with self.lock:
            i = self._find(jid)
            self.overrides[i] = touched(self.spec(i), ts or int(time.time()))
            self._changed(i)

    def churn(self, n: int, rng: random.Random) -> None:
        """Delete ``n`` random chats and add ``n`` new ones, as a busy account would."""
        with self.lock:
            if n <= 0:
                return
            total = self.next_index
            for _ in range(min(n, len(self))):
                while True:
                    i = rng.randrange(total)
                    if i not in self.deleted:
                        self.deleted.add(i)
                        break
            for _ in range(n):
                i = self.next_index
                self.next_index += 1
                self.overrides[i] = self.gen.spec(i)
            self._changed()

    def restart_session(self) -> None:
        self.session_started = time.monotonic()


class Sandbox:
    """The sandbox server, run in a background thread (tests) or the foreground (CLI)."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        epoch = self.options.epoch or int(time.time())
        self.stores = {iid: ChatStore(iid, self.options, epoch) for iid in self.options.instances}
        self.rng = random.Random(self.options.fault_seed)
        self.rng_lock = threading.Lock()
        self.requests = 0
        self.chat_requests = 0
        self.served: dict[str, int] = {}
        self.in_flight = 0  # chat-list requests being answered now, and the most at once
        self.max_in_flight = 0
        self.throttled = 0  # 429s sent for the rate limit
        self._recent: list[float] = []  # start times of the last second's chat-list requests
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        from explorer.dev.webhooks import sender_for

        self.webhooks = sender_for(self.options)  # POSTs the events mutations imply

    def store(self, instance_id: str = DEFAULT_INSTANCE) -> ChatStore:
        return self.stores[instance_id]

    @property
    def url(self) -> str:
        assert self._server is not None, "sandbox not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        server = _QuietServer((host, port), handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        self._server = server
        for store in self.stores.values():
            store.restart_session()
        return server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        server = self.bind(host, port)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def chance(self, p: float) -> bool:
        if p <= 0:
            return False
        with self.rng_lock:
            return self.rng.random() < p


@contextmanager
def sandbox_process(
    chats: int,
    instances: dict[str, str],
    *,
    latency_ms: float = 0,
    epoch: int | None = None,
    rate_limit: float = 0,
    shape: str = "webjs",
    prerender: bool = False,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The sandbox in its own process (its memory and GIL apart): yields (url, process)."""
    import sys

    import httpx

    from explorer.dev.meili_server import free_port

    port = free_port()
    argv = [sys.executable, "-m", "explorer.cli", "sandbox", "--port", str(port)]
    argv += ["--chats", str(chats), "--latency-ms", str(latency_ms), "--shape", shape]
    for iid, token in instances.items():
        argv += ["--instance", f"{iid}:{token}"]
    if epoch is not None:
        argv += ["--epoch", str(epoch)]
    if rate_limit:
        argv += ["--rate-limit", str(rate_limit)]
    if prerender:
        argv += ["--prerender"]
    from explorer.procs import die_with_parent

    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30 + (chats * len(instances) / 20_000 if prerender else 0)
        while True:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the sandbox did not start on {url}") from None
                time.sleep(0.05)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait()


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-request (killed crawlers, timeouts) are not an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    _body: dict[str, Any]
    protocol_version = "HTTP/1.1"
    server_version = "WawpSandbox/1.0"
    # As production servers do: without TCP_NODELAY, headers and body go out as two
    # segments and the client's delayed ACK stalls every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one send (flushed after each request)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # request lines carry the token; the sandbox logs nothing

    # -- plumbing ------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self._wait_due()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, _dumps(obj), "application/json; charset=utf-8", headers)

    def _stream(self, chunks: Iterable[bytes], ctype: str) -> None:
        self._wait_due()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        buf = bytearray()
        for chunk in chunks:
            buf += chunk
            if len(buf) >= 65536:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(buf), bytes(buf)))
                buf.clear()
        if buf:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(buf), bytes(buf)))
        self.wfile.write(b"0\r\n\r\n")

    def _params(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        params = {k: v[-1] for k, v in query.items()}
        length = int(self.headers.get("Content-Length") or 0)
        if self.command == "POST" and length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update({k: str(v) for k, v in body.items() if not isinstance(v, dict)})
                self._body = body
        return params

    # -- routing -------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._route()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._route()

    def _route(self) -> None:
        sb = self.sandbox
        self._arrived = time.monotonic()
        self._due = 0.0
        self._body = {}
        path = urlsplit(self.path).path.rstrip("/")
        params = self._params()
        with sb.rng_lock:
            sb.requests += 1
        if path == "/_sandbox/ids":
            return self._ids(params)
        if path == "/_sandbox/mutate" and self.command == "POST":
            return self._mutate(params)
        if path == "/health":
            return self._json(200, {"status": "ok"})
        if path not in ("/v2/chats", "/v2/session/info"):
            return self._json(404, {"statusCode": 404, "message": f"Cannot {self.command} {path}"})
        store = self._authenticate(params)
        if store is None:
            return
        if path == "/v2/session/info":
            self._delay()
            return self._session_info(store)
        if self.command != "GET":
            return self._json(404, {"statusCode": 404, "message": "Cannot POST /v2/chats"})
        if self._over_rate():
            self._delay()
            return self._json(
                429, {"status": 429, "message": "Too Many Requests"}, {"Retry-After": "1"}
            )
        with sb.rng_lock:
            sb.in_flight += 1
            sb.max_in_flight = max(sb.max_in_flight, sb.in_flight)
        try:
            self._delay()
            self._chats(store, params)
        finally:
            with sb.rng_lock:
                sb.in_flight -= 1

    def _over_rate(self) -> bool:
        """The account's rate limit: more than ``rate_limit`` chat-list requests in the
        last second are answered 429, as an API gateway would."""
        sb = self.sandbox
        if not sb.options.rate_limit:
            return False
        now = time.monotonic()
        with sb.rng_lock:
            sb._recent = [t for t in sb._recent if now - t < 1.0]
            if len(sb._recent) >= sb.options.rate_limit:
                sb.throttled += 1
                return True
            sb._recent.append(now)
        return False

    def _authenticate(self, params: dict[str, str]) -> ChatStore | None:
        instance = params.get("instance_id")
        token = params.get("access_token") or self.headers.get("access-token")
        if not instance:
            self._json(
                400,
                {
                    "status": 400,
                    "message": "Bad Request - Missing Required Parameter(s)",
                    "error": "instance_id is required",
                },
            )
            return None
        store = self.sandbox.stores.get(instance)
        if store is None:
            self._json(
                404,
                {
                    "status": 404,
                    "message": "Instance not found",
                    "error": "the instance_id is likely incorrect or the instance was deleted",
                },
            )
            return None
        if not token or token != self.sandbox.options.instances[instance]:
            self._json(
                401,
                {
                    "status": 401,
                    "message": "Unauthorized",
                    "error": "Invalid or missing access token",
                },
            )
            return None
        return store

    def _delay(self) -> None:
        """Set when the reply is due. Latency is the time from the request to the reply,
        as a client of a remote server sees it: the work of building the page happens
        inside it, not after it (that made 100 ms answer in 108 under load, and every
        ratio against the latency limit worse than a real server's)."""
        o = self.sandbox.options
        ms = o.latency_ms
        if o.jitter_ms:
            with self.sandbox.rng_lock:
                ms += self.sandbox.rng.uniform(0, o.jitter_ms)
        if self.sandbox.chance(o.spike_rate):
            ms += o.spike_ms
        self._due = self._arrived + ms / 1000

    def _wait_due(self) -> None:
        remaining = getattr(self, "_due", 0.0) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def _cold(self, store: ChatStore) -> bool:
        o = self.sandbox.options
        return o.cold_start > 0 and time.monotonic() - store.session_started < o.cold_start

    def _session_info(self, store: ChatStore) -> None:
        status = "STARTING" if self._cold(store) else "WORKING"
        self._json(
            200,
            {
                "name": f"wawp-{store.instance_id}",
                "status": status,
                "config": {"webhooks": {}, "proxy": None},
                "me": {"id": "15550100000@c.us", "pushName": "Sandbox Business"},
            },
        )

    def _chats(self, store: ChatStore, params: dict[str, str]) -> None:
        sb, o = self.sandbox, self.sandbox.options
        if self._cold(store):
            if o.cold_mode == "202":
                return self._json(202, {"message": "Session is starting, try again later"})
            if o.cold_mode == "422":
                return self._json(
                    422,
                    {
                        "error": "Session status is not as expected. Try again later or "
                        "restart the session",
                        "session": f"wawp-{store.instance_id}",
                        "status": "STARTING",
                        "expected": ["WORKING"],
                    },
                )
            return self._items([], store)
        with sb.rng_lock:
            sb.chat_requests += 1
            n = sb.chat_requests
        if o.burst_every and (n - 1) % o.burst_every >= o.burst_every - o.burst_length:
            return self._json(
                429,
                {"status": 429, "message": "Too Many Requests", "error": "rate limit exceeded"},
                {"Retry-After": f"{o.retry_after:g}"},
            )
        if sb.chance(o.error_rate):
            if n % 2:
                return self._json(
                    500,
                    {
                        "statusCode": 500,
                        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "exception": {"message": "engine call failed", "code": 2},
                    },
                )
            return self._send(
                502,
                b"<html><head><title>502 Bad Gateway</title></head><body>"
                b"<center><h1>502 Bad Gateway</h1></center></body></html>",
                "text/html",
            )
        errors = []
        limit = offset = None
        try:
            if "limit" in params:
                limit = int(params["limit"])
                if limit < 0:
                    raise ValueError
        except ValueError:
            errors.append("limit must be a non-negative integer")
        try:
            offset = int(params.get("offset", "0"))
            if offset < 0:
                raise ValueError
        except ValueError:
            errors.append("offset must be a non-negative integer")
        sort_by = params.get("sortBy", "id")
        if sort_by not in SORT_KEYS:
            errors.append("sortBy must be one of the following values: " + ", ".join(SORT_KEYS))
        if errors:
            return self._json(400, {"statusCode": 400, "message": errors, "error": "Bad Request"})
        order = params.get("sortOrder", "asc")
        descending = order == "desc" or (order == "DESC" and not o.desc_quirk)
        if limit is None:
            offset = 0  # as upstream: without a limit, the offset is ignored
        elif o.max_limit:
            limit = min(limit, o.max_limit)
        if o.churn:
            with sb.rng_lock:
                store.churn(o.churn, sb.rng)
        assert offset is not None
        indexes = store.page(sort_by, descending, offset, limit)
        sb.served[store.instance_id] = sb.served.get(store.instance_id, 0) + len(indexes)
        self._items(indexes, store)

    def _items(self, indexes: list[int], store: ChatStore) -> None:
        env = self.sandbox.options.envelope

        def chunks() -> Iterator[bytes]:
            yield b"{" if env == "indexed" else b'{"data":[' if env == "data" else b"["
            for n, i in enumerate(indexes):
                item = store.item(i)
                sep = b"," if n else b""
                yield sep + (b'"%d":' % n + item if env == "indexed" else item)
            yield b"}" if env == "indexed" else b"]}" if env == "data" else b"]"

        if len(indexes) > 5000:
            return self._stream(chunks(), "application/json; charset=utf-8")
        self._send(200, b"".join(chunks()), "application/json; charset=utf-8")

    # -- ground truth and control ----------------------------------------------------------

    def _ids(self, params: dict[str, str]) -> None:
        store = self.sandbox.stores.get(params.get("instance_id", ""))
        if store is None:
            return self._json(404, {"message": "unknown instance"})
        self._stream((f"{jid}\n".encode() for jid in store.expected_jids()), "text/plain")

    def _mutate(self, params: dict[str, str]) -> None:
        store = self.sandbox.stores.get(params.get("instance_id", ""))
        if store is None:
            return self._json(404, {"message": "unknown instance"})
        body = self._body
        try:
            added = store.add(int(body.get("add", 0)))
            store.delete(body.get("delete", []))
            for jid, name in (body.get("rename") or {}).items():
                store.rename(jid, name)
            for jid in body.get("touch", []):
                store.touch(jid)
            if self.sandbox.webhooks is not None:
                from explorer.dev.webhooks import mutation_events

                self.sandbox.webhooks.send_all(mutation_events(store, body, added))
        except KeyError as exc:
            return self._json(404, {"message": f"no chat {exc.args[0]}"})
        self._json(200, {"added": added, "count": len(store)})
