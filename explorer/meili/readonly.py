"""What a read-only Meilisearch key may hold, and how a key is seen to hold more.

One rule for every part of this tool that calls itself read-only: a key may hold
:data:`READ_ONLY_ACTIONS` (what the agent page and the Meilisearch web UI need: ``search``,
``indexes.get``, ``stats.get``, ``version``) on the configured index (and its messages
index: every key :mod:`explorer.meili.keys` makes names both), and nothing else. A tenant
token passes by construction: Meilisearch accepts one for searches only, within its scope.

A key cannot read its own actions (that needs ``keys.get``, itself a power), so each action
outside the set is *probed*: one request per action that Meilisearch refuses with 401/403
when the key lacks the action and, when the key holds it, answers with an error that
changes nothing (an empty body, a uid that does not exist, a missing filter). So this is
an allow-list: every action Meilisearch 1.21 knows is in :data:`PROBES`, in
:data:`READ_ONLY_ACTIONS`, in :data:`WILDCARDS` (seen through the actions they cover), or in
:data:`UNPROBEABLE`, and tests/test_mcp.py checks that against the real server's list.

:data:`UNPROBEABLE` are the two actions whose only routes take no body and nothing to
validate (``POST /dumps``, ``POST /snapshots``): the only way to see whether a key may do
them is to do them. ``indexes.delete`` is half-way: a key that may delete every index (or
every index named like the configured one) is seen through an invalid uid under its
pattern, but one limited to the configured index itself could only be seen by deleting
it. These are named wherever a key is accepted; a tenant token can do none of them.

The web page's own check (web/app.js ``looksPowerful``) is smaller on purpose: the page
reaches Meilisearch only through a door that passes on nothing but searches
(:mod:`explorer.doors.serve`, deploy/nginx/agent-ui.conf), so whatever else its key holds cannot
be used from it; the page only refuses keys that reach every index, so that nobody gets
used to pasting an admin key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from explorer.config import MeiliSettings
from explorer.meili.client import RawHttp

READ_ONLY_ACTIONS: Final = ("search", "indexes.get", "stats.get", "version")

# An index no key made here covers: a key that may search it (Meilisearch answers
# index_not_found instead of 403) reaches every index. The agent page probes the same name.
PROBE_INDEX: Final = "explorer-no-such-index-probe"

# Seconds a "late body" probe holds its body back (see Probe.late_body).
LATE: Final = 0.05
AT_ONCE: Final = 8  # probes in flight together


@dataclass(frozen=True)
class Probe:
    """A request that tells whether the key holds ``action``, and changes nothing.

    ``path`` may name ``{index}`` (the configured index) and ``{nobody}`` (a uuid that names
    no key, webhook or chat workspace). Bodies are empty, which a key with the action gets a
    400 for. ``late_body``: Meilisearch reads the body of this route while it checks the key,
    and reports whichever fails first, so an empty body would answer 400 even to a key
    without the action; here the body (one byte of bad JSON) follows the head after
    :data:`LATE` seconds, once the key has been judged.
    """

    action: str
    method: str
    path: str
    late_body: bool = False


PROBES: Final = (
    Probe("documents.add", "POST", "/indexes/{index}/documents"),
    Probe("documents.get", "POST", "/indexes/{index}/documents/fetch"),
    Probe("documents.delete", "POST", "/indexes/{index}/documents/delete-batch"),
    Probe("indexes.create", "POST", "/indexes"),
    Probe("indexes.update", "PATCH", "/indexes/{index}"),
    # "chats!" is no valid uid (400, nothing deleted) but falls under a key's `*` or `chats*`:
    # a key that may delete every index is seen. One limited to the index itself is not.
    Probe("indexes.delete", "DELETE", "/indexes/{index}!"),
    Probe("indexes.swap", "POST", "/swap-indexes"),
    Probe("tasks.get", "GET", "/tasks?limit=1"),
    Probe("tasks.cancel", "POST", "/tasks/cancel"),  # no filter: 400 missing_task_filters
    Probe("tasks.delete", "DELETE", "/tasks"),  # no filter: 400 missing_task_filters
    Probe("settings.get", "GET", "/indexes/{index}/settings"),
    Probe("settings.update", "PATCH", "/indexes/{index}/settings"),
    Probe("metrics.get", "GET", "/metrics"),
    Probe("keys.get", "GET", "/keys/{nobody}"),
    Probe("keys.create", "POST", "/keys"),
    Probe("keys.update", "PATCH", "/keys/{nobody}"),
    Probe("keys.delete", "DELETE", "/keys/{nobody}"),
    Probe("experimental.get", "GET", "/experimental-features"),
    Probe("experimental.update", "PATCH", "/experimental-features"),
    Probe("export", "POST", "/export", late_body=True),
    Probe("network.get", "GET", "/network"),
    Probe("network.update", "PATCH", "/network"),
    Probe("chatCompletions", "POST", "/chats/{nobody}/chat/completions", late_body=True),
    Probe("chats.get", "GET", "/chats"),
    Probe("chats.delete", "DELETE", "/chats/{nobody}"),
    Probe("chatsSettings.get", "GET", "/chats/{nobody}/settings"),
    Probe("chatsSettings.update", "PATCH", "/chats/{nobody}/settings"),
    Probe("webhooks.get", "GET", "/webhooks"),
    Probe("webhooks.create", "POST", "/webhooks"),
    Probe("webhooks.update", "PATCH", "/webhooks/{nobody}"),
    Probe("webhooks.delete", "DELETE", "/webhooks/{nobody}"),
)

UNPROBEABLE: Final = ("dumps.create", "snapshots.create")

WILDCARDS: Final = (
    "*", "*.get", "documents.*", "indexes.*", "tasks.*", "settings.*", "stats.*", "metrics.*",
    "dumps.*", "snapshots.*", "chats.*", "chatsSettings.*", "webhooks.*",
)  # fmt: skip


@dataclass(frozen=True)
class KeyPowers:
    """What a key was seen to hold beyond the read-only rule."""

    actions: tuple[str, ...] = ()  # outside READ_ONLY_ACTIONS, in PROBES order
    every_index: bool = False  # it may search an index that exists nowhere

    def __bool__(self) -> bool:
        return bool(self.actions) or self.every_index

    def description(self) -> str:
        """``can also keys.create, tasks.delete`` and/or ``reaches every index ...``."""
        parts = []
        if self.every_index:
            parts.append("search every index on the server")
        if {p.action for p in PROBES if p.action != "indexes.delete"} <= set(self.actions):
            # "*" on the index alone: deleting it is the one action its probe cannot see
            parts.append("do every action (`*`)")
        elif self.actions:
            parts.append("also " + ", ".join(self.actions))
        return "can " + " and ".join(parts)


def _late(body: bytes) -> Iterator[bytes]:
    time.sleep(LATE)
    yield body


def key_powers(settings: MeiliSettings, *, timeout: float = 10.0) -> KeyPowers:
    """Probe the key in ``settings`` for every action outside :data:`READ_ONLY_ACTIONS`
    (:data:`UNPROBEABLE` aside), several at once; raises MeiliError if Meilisearch cannot
    be reached. The key must be able to search the configured index (check that first:
    a key that cannot gets 403 everywhere, and so would look harmless)."""
    names = {"index": settings.index, "nobody": str(uuid.uuid4())}
    with RawHttp(settings, timeout=timeout, connections=AT_ONCE) as http:

        def holds(probe: Probe) -> bool:
            path = probe.path.format(**names)
            if probe.late_body:
                # The server may answer before the body is sent: the connection closes after.
                reply = http.request(probe.method, path, _late(b"x"), alone=True)
            else:
                reply = http.request(probe.method, path)
            return reply.status not in (401, 403)

        def every_index() -> bool:
            reply = http.request("POST", f"/indexes/{PROBE_INDEX}/search", b'{"limit":0}')
            return reply.status not in (401, 403)

        with ThreadPoolExecutor(AT_ONCE, thread_name_prefix="explorer-probe") as pool:
            everywhere = pool.submit(every_index)
            held = list(pool.map(holds, PROBES))
            wide = everywhere.result()
    return KeyPowers(tuple(p.action for p, h in zip(PROBES, held, strict=True) if h), wide)
