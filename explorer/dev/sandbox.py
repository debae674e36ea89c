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

import contextlib
import gzip
import json
import random
import subprocess
import threading
import time
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from explorer.dev.sandbox_options import (
    DEFAULT_INSTANCE,
    SORT_KEYS,
    SandboxOptions,
)
from explorer.dev.synthetic import (
    ChatSpec,
    Generator,
    activity,
    chat_messages,
    label_object,
    labelled,
    merged_listing,
    raw_id,
    renamed,
    render,
    touched,
    unmerged_listing,
)

TWIN = 1 << 31  # chat numbers with this bit: a LID person's second chat, under their phone


class ChatStore:
    """The chats of one instance: generated base chats plus an overlay of mutations.

    A chat number ``i`` is one listed chat; ``i | TWIN`` is LID person ``i``'s chat under
    their phone JID, listed only by engines that do not merge. Listings come in two
    views, merged or not (``merge`` on ``/v2/chats``), each with its own sort orders.
    """

    def __init__(self, instance_id: str, options: SandboxOptions, epoch: int) -> None:
        self.instance_id = instance_id
        self.shape = options.shape
        self.options = options
        self.gen = Generator(
            options.seed,
            instance_id,
            epoch,
            lid_share=options.lid_share,
            lid_known=options.lid_known,
            lid_pairs=options.lid_pairs,
            pn_twins=options.pn_twins,
        )
        self.count = options.chats
        self.next_index = options.chats
        self.deleted: set[int] = set()
        self.overrides: dict[int, ChatSpec] = {}
        self.learned: set[int] = set()  # LIDs whose number became known (mutate "learn")
        self.lock = threading.RLock()
        self._orders: dict[tuple[str, bool], array[int]] = {}
        self._rendered: dict[tuple[int, bool], bytes] = {}
        self._twins: set[int] | None = None
        self._lids: dict[str, int] | None = None  # LID digits -> chat number
        self._known: list[int] | None = None  # chat numbers of known LIDs, in order
        self._mappings: dict[int, dict[str, str | None]] = {}
        self._by_id: dict[str, tuple[int, bool]] | None = None  # chat id -> (number, merged)
        self.added: dict[int, tuple[int, ...]] = {}  # messages since generation: their times
        self.session_started = 0.0  # on the sandbox's clock: restart_session() sets it
        # Labels: id -> its object (upserts replace, deletions remove), and chats whose
        # labels a mutation changed (the JIDs as given: a LID stays a LID, as in WAHA).
        self.label_defs = {str(k + 1): label_object(k) for k in range(options.labels)}
        self.label_added: dict[str, set[str]] = {}
        self.label_removed: dict[str, set[str]] = {}
        self._label_chats: dict[str, list[int]] | None = None

    @property
    def merges(self) -> bool:
        """Whether this engine lists a person once (WAHA merge) when not told otherwise:
        never WEBJS, nor the NOWEB builds before merge that ``pn_twins`` plays."""
        return self.options.merges and self.shape != "webjs" and not self.options.pn_twins

    def merged(self, asked: str | None) -> bool:
        """The view a request gets: ``merge=false`` or an engine that never merges lists
        LID and phone chats apart."""
        if not self.merges:
            return False
        return asked is None or asked.lower() not in ("false", "0")

    # -- reading -------------------------------------------------------------------------

    def spec(self, i: int) -> ChatSpec:
        spec = self.overrides.get(i)
        if spec is None:
            spec = self.gen.twin(i & ~TWIN) if i & TWIN else self.gen.spec(i)
        return spec

    def known(self, i: int) -> bool:
        base = i & ~TWIN
        return base in self.learned or self.gen.known(base)

    def listed(self, i: int, merged: bool = False) -> ChatSpec:
        """Chat ``i`` as the engine lists it in this view."""
        spec = self.spec(i)
        if spec.server != "lid":
            return spec
        known = self.known(i)
        return merged_listing(spec, known) if merged else unmerged_listing(spec, known)

    def item(self, i: int, merged: bool = False) -> bytes:
        """Chat ``i`` as the engine's JSON. Kept once rendered: a real server's CPU is not
        the client's, and on one machine the sandbox's would be taken from the client and
        Meilisearch."""
        key = (i, merged)
        item = self._rendered.get(key)
        if item is None:
            with self.lock:  # a rename meanwhile must not be overwritten by the old render
                item = _dumps(render(self.listed(i, merged), self.shape))
                self._rendered[key] = item
        return item

    def prerender(self) -> None:
        """Render every chat and sort them by id now, before serving (benchmarks: the first
        crawl pays no more than the next)."""
        merged = self.merged(None)
        for i in self.live(merged):
            self.item(i, merged)
        self.order("id", merged)
        for i in self.known_lids():  # the LID map too: its pages then cost no CPU either
            self.mapping(i)
        if self.options.messages_per_chat:  # and the chat ids the messages route looks up
            with contextlib.suppress(KeyError):
                self.chat_number("")

    def twins(self) -> set[int]:
        """LID people who also have a chat under their phone JID."""
        with self.lock:
            if self._twins is None:
                self._twins = set()
                if self.gen.lid_known and (self.gen.lid_pairs or self.gen.pn_twins):
                    self._twins = {
                        i
                        for i in range(self.next_index)
                        if self.gen.kind(i) == "lid" and self.gen.paired(i)
                    }
            return self._twins

    def live(self, merged: bool = False) -> Iterator[int]:
        twins = set() if merged else self.twins()
        for i in range(self.next_index):
            if i not in self.deleted:
                yield i
            if i in twins and i | TWIN not in self.deleted:
                yield i | TWIN

    def __len__(self) -> int:
        twins = 0 if self.merged(None) else len(self.twins())
        gone = sum(1 for i in self.deleted if twins or not i & TWIN)
        return self.next_index + twins - gone

    def _key(self, sort_by: str, merged: bool) -> Any:
        if sort_by == "id":
            if not self.overrides and self.shape != "noweb" and not self.gen.lid_known:
                # Fast path: ids need no names or timestamps.
                def fast(i: int) -> str:
                    user, server = self.gen.user_and_server(i)
                    return f"{user}@{server}"

                return fast
            return lambda i: self._listed_id(i, merged)
        if sort_by == "conversationTimestamp":
            return lambda i: (self.spec(i).ts or 0, raw_id(self.listed(i, merged), self.shape))
        return lambda i: (self.spec(i).name or "", raw_id(self.listed(i, merged), self.shape))

    def _listed_id(self, i: int, merged: bool) -> str:
        """:func:`raw_id` of chat ``i`` in this view, without building its spec when it is
        generated (sorting a LID world's 100,000 chats: hashes, not specs)."""
        if i in self.overrides:
            return raw_id(self.listed(i, merged), self.shape)
        phone = "s.whatsapp.net" if self.shape == "noweb" else "c.us"
        if i & TWIN:
            return f"{self.gen.pn(i & ~TWIN)}@{phone}"
        user, server = self.gen.user_and_server(i)
        if server == "lid" and merged and self.known(i):
            return f"{self.gen.pn(i)}@{phone}"
        return f"{user}@{phone if server == 'c.us' else server}"

    def order(self, sort_by: str, merged: bool = False) -> array[int]:
        with self.lock:
            cached = self._orders.get((sort_by, merged))
            if cached is None:
                key = self._key(sort_by, merged)
                cached = array("I", sorted(self.live(merged), key=key))
                self._orders[(sort_by, merged)] = cached
            return cached

    def page(
        self,
        sort_by: str,
        descending: bool,
        offset: int,
        limit: int | None,
        merged: bool = False,
    ) -> list[int]:
        with self.lock:
            order = self.order(sort_by, merged)
            n = len(order)
            end = n if limit is None else min(n, offset + limit)
            if descending:
                return [order[n - 1 - k] for k in range(offset, end)]
            return list(order[offset:end])

    def identity(self, i: int) -> str:
        """The JID chat ``i``'s document has in a complete, merged index: a LID person's
        phone JID when the crawl can learn it (the map, NOWEB's pnJid, or an engine that
        lists them under it), else the LID."""
        spec = self.spec(i)
        if spec.server == "lid" and spec.pn and self.known(i):
            listed = merged_listing(spec, True) if self.merges else unmerged_listing(spec, True)
            if (
                self.in_map(i)
                or listed.server == "c.us"
                or (self.shape == "noweb" and listed.pn_jid)
            ):
                return f"{spec.pn}@c.us"
        return spec.jid

    def in_map(self, i: int) -> bool:
        """Whether a crawl reads LID chat ``i``'s number from ``/v2/lids``: not with
        ``lids_404``, nor on a page ``lids_fail_from`` breaks (exact when that offset is a
        multiple of the client's page size)."""
        o = self.options
        if o.lids_404 or not self.known(i):
            return False
        return o.lids_fail_from is None or bisect_left(self.known_lids(), i) < o.lids_fail_from

    def expected_jids(self) -> Iterator[str]:
        """Canonical JIDs a complete, merged index holds (``status@broadcast`` is never
        indexed): one per person, whichever ids they are listed under."""
        for jid, _ in self.expected():
            yield jid

    def expected(self) -> Iterator[tuple[str, list[int]]]:
        """``(identity, chat numbers listed for it)`` in the crawler's default view."""
        merged = self.merges
        with self.lock:
            plain = not (self.deleted or self.overrides or self.gen.lid_known)
            indexes = None if plain else list(self.live(merged))
        if indexes is None:
            for i in range(self.next_index):
                user, server = self.gen.user_and_server(i)
                if user != "status":
                    yield f"{user}@{server}", [i]
            return
        people: dict[str, list[int]] = {}
        for i in indexes:
            if not i & TWIN and i not in self.overrides and self.gen.kind(i) != "lid":
                user, server = self.gen.user_and_server(i)  # no spec needed: not a person
                if user != "status":  # behind a LID, so known by its own id
                    yield f"{user}@{server}", [i]
                continue
            jid = self.identity(i)
            if jid == "status@broadcast":
                continue
            if not (i & TWIN or self.gen.kind(i) == "lid"):
                yield jid, [i]
            else:
                people.setdefault(jid, []).append(i)
        yield from people.items()

    # -- messages ----------------------------------------------------------------------

    def chat_number(self, chat_id: str) -> tuple[int, bool]:
        """The live chat a messages request names (any id it is listed under, its
        ``@c.us`` form included) and the view it is listed in; ``KeyError`` if none."""
        with self.lock:
            if self._by_id is None:
                by_id: dict[str, tuple[int, bool]] = {}
                for merged in (False, True) if self.merges else (False,):
                    for i in self.live(merged):
                        listed = self.listed(i, merged)
                        by_id.setdefault(listed.jid, (i, merged))
                        by_id.setdefault(raw_id(listed, self.shape), (i, merged))
                self._by_id = by_id
            return self._by_id[chat_id]

    def messages(
        self, i: int, merged: bool = False, offset: int = 0, limit: int | None = None
    ) -> list[Any]:
        """Chat ``i``'s messages as listed in this view, newest first: the generated
        history (ending at its generated activity) and those that came after (touches)."""
        generated = self.gen.twin(i & ~TWIN) if i & TWIN else self.gen.spec(i)
        spec = replace(self.listed(i, merged), ts=generated.ts)
        count = self.options.messages_per_chat
        added = self.added.get(i, ())
        return chat_messages(self.gen, spec, count, offset=offset, limit=limit, added=added)

    def gone(self, i: int) -> bool:
        """Whether chat ``i``'s messages route answers 404 (``messages_gone``)."""
        share = self.options.messages_gone
        return share > 0 and self.gen._h(i, 99) % 10_000 < round(share * 10_000)

    def broken(self, i: int) -> int | None:
        """How chat ``i``'s messages route always fails (``messages_broken``): 0 a 500, 1 a
        422, 2 a body that is not a list; None when it works."""
        share = self.options.messages_broken
        if share <= 0 or self.gen._h(i, 98) % 10_000 >= round(share * 10_000):
            return None
        return self.gen._h(i, 97) % 3

    # -- the LID map -------------------------------------------------------------------

    def lid_numbers(self) -> dict[str, int]:
        """LID digits -> chat number, for every LID person."""
        with self.lock:
            if self._lids is None:
                self._lids = {}
                for i in range(self.next_index):
                    if self.gen.kind(i) == "lid":
                        self._lids[self.spec(i).lid or ""] = i
            return self._lids

    def known_lids(self) -> list[int]:
        """Chat numbers of the LIDs whose number Wawp knows, in a stable order."""
        with self.lock:
            if self._known is None:
                self._known = sorted(i for i in self.lid_numbers().values() if self.known(i))
            return self._known

    def mapping(self, i: int) -> dict[str, str | None]:
        """LID chat ``i``'s ``{"lid", "pn"}``, ``pn`` null while Wawp does not know it."""
        known = self.known(i)
        cached = self._mappings.get(i)
        if cached is None or (cached["pn"] is not None) != known:
            spec = self.spec(i)
            pn = f"{spec.pn}@c.us" if spec.pn and known else None
            cached = self._mappings[i] = {"lid": f"{spec.lid}@lid", "pn": pn}
        return cached

    def learn(self, lid: str) -> None:
        """Wawp learns the number behind ``lid`` (a contact saved, a group admin right)."""
        with self.lock:
            i = self.lid_numbers().get(lid.partition("@")[0])
            if i is None:
                raise KeyError(lid)
            self.learned.add(i)
            self._known = None
            self._changed(i)

    # -- labels --------------------------------------------------------------------------

    def label_jid(self, i: int) -> str:
        """The id ``/v2/labels/chats`` gives chat ``i``: a LID person's LID, whatever the
        chat is listed under (WAHA resolves labels only with ``@lid`` ids, waha#1647)."""
        if i in self.overrides:
            spec = self.spec(i)
            return f"{spec.lid}@lid" if spec.lid else spec.jid
        user, server = self.gen.user_and_server(i)
        return f"{user}@{server}"

    def _generated_labels(self) -> dict[str, list[int]]:
        """Label id -> the chat numbers carrying it before any label mutation."""
        with self.lock:
            if self._label_chats is None:
                count = self.options.labels
                found: dict[str, list[int]] = {str(k + 1): [] for k in range(count)}
                for i in range(self.next_index):
                    if i in self.deleted or self.gen.kind(i) == "status":
                        continue
                    for k in range(count):
                        if labelled(self.gen, i, k):
                            found[str(k + 1)].append(i)
                self._label_chats = found
            return self._label_chats

    def label_chats(self, label_id: str) -> list[str] | None:
        """The chat ids carrying a label, None for no such label."""
        with self.lock:
            if label_id not in self.label_defs:
                return None
            jids = [self.label_jid(i) for i in self._generated_labels().get(label_id, [])]
            jids += sorted(self.label_added.get(label_id, set()) - set(jids))
            removed = self.label_removed.get(label_id, set())
            return [j for j in jids if j not in removed]

    def expected_labels(self) -> dict[str, set[str]]:
        """Identity JID -> the label names a complete index gives it (ground truth; a LID
        the crawl cannot resolve stays the LID's)."""
        by_lid = self.lid_numbers()
        out: dict[str, set[str]] = {}
        for label_id, label in self.label_defs.items():
            for jid in self.label_chats(label_id) or []:
                i = by_lid.get(jid.partition("@")[0]) if jid.endswith("@lid") else None
                identity = self.identity(i) if i is not None else jid
                out.setdefault(identity, set()).add(label["name"])
        return out

    def upsert_label(self, label: dict[str, Any]) -> None:
        with self.lock:
            self.label_defs[str(label["id"])] = dict(label)

    def delete_label(self, label_id: str) -> dict[str, Any]:
        with self.lock:
            label = self.label_defs.pop(label_id, None)
            if label is None:
                raise KeyError(f"label {label_id}")
            return label

    def label_chat(self, jid: str, label_id: str, added: bool) -> None:
        with self.lock:
            if label_id not in self.label_defs:
                raise KeyError(f"label {label_id}")
            (self.label_added if added else self.label_removed).setdefault(label_id, set()).add(jid)
            (self.label_removed if added else self.label_added).get(label_id, set()).discard(jid)

    # -- mutating ------------------------------------------------------------------------

    def _changed(self, *indexes: int) -> None:
        self._orders.clear()
        self._by_id = None
        if not indexes:  # chats added or deleted
            self._label_chats = None
        for i in indexes:
            self._rendered.pop((i, False), None)
            self._rendered.pop((i, True), None)

    def add(self, n: int = 1) -> list[str]:
        """New chats (as if a customer just wrote): fresh ids, activity now."""
        with self.lock:
            added = []
            for _ in range(n):
                i = self.next_index
                self.next_index += 1
                spec = touched(self.gen.spec(i), int(time.time()))
                self.overrides[i] = spec
                self.added[i] = (spec.ts or 0,)
                added.append(spec.jid)
            self._twins = self._lids = self._known = None
            self._changed()
            return added

    def _find(self, jid: str) -> int:
        for merged in (False, True):
            for i in self.live(merged):
                listed = self.listed(i, merged)
                if listed.jid == jid or raw_id(listed, self.shape) == jid:
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
            spec = touched(self.spec(i), ts or int(time.time()))
            self.overrides[i] = spec
            self.added[i] = (*self.added.get(i, ()), spec.ts or 0)
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
            self._twins = self._lids = self._known = None
            self._changed()

    def restart_session(self, now: float) -> None:
        self.session_started = now


class Sandbox:
    """The sandbox server, run in a background thread (tests) or the foreground (CLI).

    ``clock`` and ``sleep`` time the latency, spikes, the rate limit and the cold start:
    a test gives fake ones to see what the sandbox waited for without waiting."""

    def __init__(
        self,
        options: SandboxOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options or SandboxOptions()
        self.clock = clock
        self.sleep = sleep
        epoch = self.options.epoch or int(time.time())
        self.stores = {iid: ChatStore(iid, self.options, epoch) for iid in self.options.instances}
        for store in self.stores.values():
            store.restart_session(clock())
        self.rng = random.Random(self.options.fault_seed)
        self.rng_lock = threading.Lock()
        self.requests = 0
        self.chat_requests = 0
        self.lid_requests = 0  # /v2/lids page requests
        self.label_requests = 0  # /v2/labels and /v2/labels/chats requests
        self.message_requests = 0  # /v2/chats/messages requests, whatever they were answered
        self.message_chats: dict[str, int] = {}  # ...by chatId
        self.paths: dict[str, int] = {}  # requests by path: the request log tests read
        self.served: dict[str, int] = {}
        self.in_flight = 0  # chat-list requests being answered now, and the most at once
        self.max_in_flight = 0
        self.throttled = 0  # 429s sent for the rate limit
        self.cold_replies = 0  # chat-list requests answered as a session not ready yet
        self._recent: list[float] = []  # start times of the last second's chat-list requests
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        from explorer.dev.webhooks import sender_for

        self.webhooks = sender_for(self.options)  # POSTs the events mutations imply
        self.chatter: Any = None  # message events on their own (--webhook-messages)

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
            store.restart_session(self.clock())
        if self.webhooks is not None and self.options.webhook_messages:
            from explorer.dev.webhooks import Chatter

            self.chatter = Chatter(self.webhooks, self.stores, self.options.webhook_messages,
                                   self.options.fault_seed).start()  # fmt: skip
        return server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        server = self.bind(host, port)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.chatter is not None:
            self.chatter.close()
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
    extra: tuple[str, ...] = (),
    start_timeout: float | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The sandbox in its own process (its memory and GIL apart): yields (url, process).
    ``start_timeout`` overrides how long it may take to answer (a busy machine)."""
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
    argv += extra  # more `explorer sandbox` flags (the LID world: --lid-known ...)
    from explorer.procs import die_with_parent

    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait = 30 + (chats * len(instances) / 20_000 if prerender else 0)
        deadline = time.monotonic() + (start_timeout or wait)
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


# Replies are gzipped when the request asks, as a production server (nginx's gzip on,
# at its default level 1) would: a crawl's benchmark then moves the bytes a real one does.
GZIP_MIN_LENGTH = 1024
GZIP_LEVEL = 1


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
        gzipped = len(body) >= GZIP_MIN_LENGTH and self._accepts_gzip()
        if gzipped:
            body = gzip.compress(body, GZIP_LEVEL, mtime=0)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
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
        packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if self._accepts_gzip() else None
        if packer:  # wbits 31: the gzip format
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        buf = bytearray()
        for chunk in chunks:
            buf += packer.compress(chunk) if packer else chunk
            if len(buf) >= 65536:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(buf), bytes(buf)))
                buf.clear()
        if packer:
            buf += packer.flush()
        if buf:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(buf), bytes(buf)))
        self.wfile.write(b"0\r\n\r\n")

    def _accepts_gzip(self) -> bool:
        """Whether the request's Accept-Encoding takes gzip (``gzip;q=0`` refuses it)."""
        for item in self.headers.get("Accept-Encoding", "").split(","):
            coding, _, q = item.strip().partition(";")
            if coding.strip().lower() in ("gzip", "*"):
                return q.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
        return False

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
        self._arrived = sb.clock()
        self._due = 0.0
        self._body = {}
        path = urlsplit(self.path).path.rstrip("/")
        params = self._params()
        with sb.rng_lock:
            sb.requests += 1
            sb.paths[path] = sb.paths.get(path, 0) + 1
        if path == "/_sandbox/ids":
            return self._ids(params)
        if path == "/_sandbox/mutate" and self.command == "POST":
            return self._mutate(params)
        if path == "/health":
            return self._json(200, {"status": "ok"})
        lids = path == "/v2/lids" or path.startswith("/v2/lids/")
        labels = path in ("/v2/labels", "/v2/labels/chats")
        known = ("/v2/chats", "/v2/chats/messages", "/v2/session/info")
        if path not in known and not (lids or labels):
            return self._json(404, {"statusCode": 404, "message": f"Cannot {self.command} {path}"})
        store = self._authenticate(params)
        if store is None:
            return
        if lids:
            self._delay()
            return self._lids(store, path, params)
        if labels:
            self._delay()
            return self._labels(store, path, params)
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
            if path == "/v2/chats/messages":
                self._messages(store, params)
            else:
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
        now = sb.clock()
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
        remaining = getattr(self, "_due", 0.0) - self.sandbox.clock()
        if remaining > 0:
            self.sandbox.sleep(remaining)

    def _cold(self, store: ChatStore) -> bool:
        sb, o = self.sandbox, self.sandbox.options
        return o.cold_start > 0 and sb.clock() - store.session_started < o.cold_start

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
            with sb.rng_lock:
                sb.cold_replies += 1
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
        merged = store.merged(params.get("merge"))
        indexes = store.page(sort_by, descending, offset, limit, merged)
        sb.served[store.instance_id] = sb.served.get(store.instance_id, 0) + len(indexes)
        self._items(indexes, store, merged)

    def _messages(self, store: ChatStore, params: dict[str, str]) -> None:
        """``/v2/chats/messages``: a chat's messages newest first, by ``limit``/``offset``
        (WAHA's default limit, 100, without one); 404 for a chat it does not know."""
        sb, o = self.sandbox, self.sandbox.options
        chat_id = params.get("chatId", "")
        with sb.rng_lock:
            sb.message_requests += 1
            n = sb.message_requests
            sb.message_chats[chat_id] = sb.message_chats.get(chat_id, 0) + 1
        if o.message_burst_every and n % o.message_burst_every == 0:
            return self._json(
                429,
                {"status": 429, "message": "Too Many Requests", "error": "rate limit exceeded"},
                {"Retry-After": f"{o.retry_after:g}"},
            )
        if sb.chance(o.message_error_rate):
            failed = {"statusCode": 500, "exception": {"message": "engine call failed", "code": 2}}
            return self._json(500, failed)
        try:
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
            if limit < 0 or offset < 0:
                raise ValueError
        except ValueError:
            problem = ["limit and offset must be non-negative integers"]
            return self._json(400, {"statusCode": 400, "error": "Bad Request", "message": problem})
        if not chat_id:
            problem = ["chatId is required"]
            return self._json(400, {"statusCode": 400, "error": "Bad Request", "message": problem})
        try:
            i, merged = store.chat_number(chat_id)
        except KeyError:
            i, merged = -1, False
        broken = store.broken(i) if i >= 0 else None
        if broken == 0:
            return self._json(500, {"statusCode": 500, "message": "engine call failed"})
        if broken == 1:
            return self._json(422, {"statusCode": 422, "message": "chat is not readable"})
        if broken == 2:
            return self._json(200, {"messages": "unavailable for this chat"})
        if i < 0 or store.gone(i):
            missing = {
                "statusCode": 404,
                "message": f"Chat {chat_id} not found",
                "error": "Not Found",
            }
            return self._json(404, missing)
        if o.max_limit:
            limit = min(limit, o.max_limit)
        with store.lock:
            page = store.messages(i, merged, offset, limit)
        env = o.envelope  # as the chat list's, so that one parser reads both
        body = (
            {"data": page} if env == "data" else dict(enumerate(page)) if env == "indexed" else page
        )
        self._send(200, _dumps(body), "application/json; charset=utf-8")

    def _lids(self, store: ChatStore, path: str, params: dict[str, str]) -> None:
        """``/v2/lids`` (known mappings, paginated), ``/count``, ``/{lid}``, ``/pn/{number}``."""
        sb, o = self.sandbox, self.sandbox.options
        if o.lids_404 or self.command != "GET":
            missing = {"statusCode": 404, "message": f"Cannot GET {path}", "error": "Not Found"}
            return self._json(404, missing)
        rest = unquote(path[len("/v2/lids") :]).strip("/")
        if rest == "count":
            return self._json(200, {"count": len(store.known_lids())})
        if rest.startswith("pn/"):
            digits = "".join(ch for ch in rest[3:].partition("@")[0] if ch.isdigit())
            for i in store.known_lids():
                if store.spec(i).pn == digits:
                    return self._json(200, store.mapping(i))
            return self._json(200, {"lid": None, "pn": f"{digits}@c.us"})
        if rest:
            digits = rest.partition("@")[0].split(":", 1)[0]
            number = store.lid_numbers().get(digits)
            if number is None:
                return self._json(200, {"lid": f"{digits}@lid", "pn": None})
            return self._json(200, store.mapping(number))
        with sb.rng_lock:
            sb.lid_requests += 1
            n = sb.lid_requests
        busy = {"statusCode": 500, "exception": {"message": "store busy"}}
        if n <= o.lids_fail:
            return self._json(500, busy)
        try:
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
            if limit < 0 or offset < 0:
                raise ValueError
        except ValueError:
            problem = ["limit and offset must be non-negative integers"]
            return self._json(400, {"statusCode": 400, "error": "Bad Request", "message": problem})
        if o.lids_fail_from is not None and offset >= o.lids_fail_from:
            return self._json(500, busy)
        if o.max_limit:
            limit = min(limit, o.max_limit)
        known = store.known_lids()
        self._json(200, [store.mapping(i) for i in known[offset : offset + limit]])

    def _labels(self, store: ChatStore, path: str, params: dict[str, str]) -> None:
        """``/v2/labels`` (every label) and ``/v2/labels/chats?labelId=`` (``[{id}]``)."""
        sb, o = self.sandbox, self.sandbox.options
        if o.labels_404 or self.command != "GET":
            missing = {"statusCode": 404, "message": f"Cannot GET {path}", "error": "Not Found"}
            return self._json(404, missing)
        with sb.rng_lock:
            sb.label_requests += 1
            n = sb.label_requests
        if n <= o.labels_fail:
            return self._json(500, {"statusCode": 500, "exception": {"message": "store busy"}})
        if path == "/v2/labels":
            with store.lock:
                return self._json(200, list(store.label_defs.values()))
        label_id = params.get("labelId", "")
        jids = store.label_chats(label_id)
        if jids is None:
            return self._json(404, {"statusCode": 404, "message": f"Label {label_id} not found"})
        self._json(200, [{"id": jid} for jid in jids])

    def _items(self, indexes: list[int], store: ChatStore, merged: bool = False) -> None:
        env = self.sandbox.options.envelope

        def chunks() -> Iterator[bytes]:
            yield b"{" if env == "indexed" else b'{"data":[' if env == "data" else b"["
            for n, i in enumerate(indexes):
                item = store.item(i, merged)
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
        if params.get("format") != "json":
            lines = (f"{jid}\n".encode() for jid in store.expected_jids())
            return self._stream(lines, "text/plain")

        def described() -> Iterator[bytes]:
            for jid, numbers in store.expected():
                yield _dumps(_describe(store, jid, numbers)) + b"\n"

        self._stream(described(), "application/x-ndjson")

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
            for lid in body.get("learn", []):
                store.learn(lid)
            for label in body.get("label_upsert") or []:
                store.upsert_label(label)
            deleted = [store.delete_label(str(i)) for i in body.get("label_delete") or []]
            for jid, label_id in body.get("label_add") or []:
                store.label_chat(jid, str(label_id), True)
            for jid, label_id in body.get("label_remove") or []:
                store.label_chat(jid, str(label_id), False)
            if self.sandbox.webhooks is not None:
                from explorer.dev.webhooks import mutation_events

                self.sandbox.webhooks.send_all(mutation_events(store, body, added, deleted))
        except KeyError as exc:
            return self._json(404, {"message": f"no chat {exc.args[0]}"})
        self._json(200, {"added": added, "count": len(store)})


def _describe(store: ChatStore, jid: str, numbers: list[int]) -> dict[str, Any]:
    """One document of a complete, merged index, as ``/_sandbox/ids?format=json`` gives
    it: its JID, the JIDs it is listed under, its LID and phone, whether the number is
    hidden, and what merging gives (latest activity, unread summed, username)."""
    specs = [store.spec(i) for i in numbers]
    listed = [raw_id(store.listed(i, store.merges), "webjs") for i in numbers]
    lid = next((s.lid for s in specs if s.lid), None)
    phone = jid.partition("@")[0] if jid.endswith("@c.us") else None
    stamps = [ts for s in specs if (ts := activity(s, store.shape)) is not None]
    return {
        "jid": jid,
        "listed": listed,
        "lid": lid,
        "phone": f"+{phone}" if phone else None,
        "hidden": jid.endswith("@lid"),
        "last_activity": max(stamps) if stamps else None,
        "unread": sum(s.unread for s in specs),
        "username": next((s.username for s in specs if s.username), None),
        "names": [s.name for s in specs],
    }
