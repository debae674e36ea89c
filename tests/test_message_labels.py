"""A message carries its chat's labels, and keeps them in step: a team's scoped tenant token
filters the messages index by `labels IN [...]` as it filters the chats index, so a message
shows or hides with its chat as labels are added, removed, renamed and deleted, whether
through listen's events or through a reindex or sync after Wawp changed them. Against the
sandbox and the real Meilisearch; every search here is made with a scoped token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import meilisearch

from explorer.config import Config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.synthetic import LABELS
from explorer.dev.webhooks import message
from explorer.jobs.reindex import reindex
from explorer.jobs.sync import sync
from explorer.meili.keys import create_search_key
from explorer.records.filters import quote
from explorer.records.messages import message_doc_id, messages_index
from tests import test_listen, test_messages
from tests.test_listen import INST, SESSION, World, wait_until

listen_world = test_listen.world  # their fixtures, under names of this file's own
backfill_world = test_messages.world
ON = {"EXPLORER_MESSAGES": "1"}
NEW = LABELS[0][0]  # label "1": the most common
ORDER = LABELS[1][0]  # label "2"
PAID = LABELS[3][0]  # label "4"
HOT = LABELS[6][0]  # label "7"


def scoped(cfg: Config, label: str) -> str:
    """A search token that sees only the chats carrying ``label``, and their messages."""
    token = create_search_key(cfg.meilisearch, labels=(label,), force=True).tenant_token
    assert token is not None
    return token


def seen(cfg: Config, token: str, jids: list[str] | None = None) -> set[str]:
    """The message documents a token's search finds in the instance (of these chats only)."""
    where = f"instance_id = {quote(INST)}"
    if jids is not None:
        where += f" AND jid IN [{', '.join(quote(j) for j in jids)}]"
    body: dict[str, Any] = {"q": "", "limit": 1000, "filter": where}
    reply = httpx.post(f"{cfg.meilisearch.url}/indexes/{messages_index(cfg.meilisearch.index)}"
                       "/search", json=body, headers={"Authorization": f"Bearer {token}"},
                       timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return {h["id"] for h in reply.json()["hits"]}


def stored(meili: MeiliServer, cfg: Config, jids: list[str]) -> set[str]:
    """Every message document of these chats (the master key: no scope)."""
    index = meilisearch.Client(meili.url, meili.master_key).index(
        messages_index(cfg.meilisearch.index)
    )
    where = f"instance_id = {quote(INST)} AND jid IN [{', '.join(quote(j) for j in jids)}]"
    return {d.id for d in index.get_documents({"filter": where, "limit": 10_000}).results}


def person(truth: dict[str, set[str]], jids: list[str], *, without: str) -> str:
    """A person's chat (phone JID) not carrying ``without``."""
    return next(j for j in sorted(jids) if j.endswith("@c.us") and without not in truth.get(j, ()))


# -- listen ------------------------------------------------------------------------------


def test_listen_writes_a_new_message_with_its_chats_labels_even_one_put_on_just_before(
    listen_world: Callable[..., World], meili: MeiliServer
) -> None:
    w = listen_world(env=ON, chats=100, epoch=int(time.time()))
    truth = w.sandbox.store(INST).expected_labels()
    newcomer = next(j for j in sorted(truth)
                    if j.endswith("@c.us") and NEW in truth[j] and HOT not in truth[j])  # fmt: skip
    now = int(time.time())
    first = message(SESSION, newcomer, now, body="Is my first order shipped?")
    w.hooks.send(first)
    welcome = scoped(w.cfg, NEW)
    first_id = message_doc_id(INST, first["payload"]["id"])
    wait_until(lambda: first_id in seen(w.cfg, welcome), "the new customer's message in scope")
    # A label put on a chat, and a message in it at once: both in one write, or in flight.
    jid = person(truth, list(w.sandbox.store(INST).expected_jids()), without=HOT)
    w.mutate(label_add=[[jid, "7"]])
    second = message(SESSION, jid, now + 1, body="Call me back about the quote")
    w.hooks.send(second)
    hot = scoped(w.cfg, HOT)
    second_id = message_doc_id(INST, second["payload"]["id"])
    wait_until(lambda: second_id in seen(w.cfg, hot), "the new message in the HOT scope")
    assert first_id not in seen(w.cfg, hot)


def test_listen_label_events_move_a_chats_messages_in_and_out_of_a_scope(
    listen_world: Callable[..., World], meili: MeiliServer
) -> None:
    w = listen_world(env=ON, chats=100, epoch=int(time.time()), messages_per_chat=6)
    truth = w.sandbox.store(INST).expected_labels()
    jids = [j for j in w.sandbox.store(INST).expected_jids() if stored(meili, w.cfg, [j])]
    jid = person(truth, jids, without=HOT)
    mine = stored(meili, w.cfg, [jid])
    hot = scoped(w.cfg, HOT)
    assert not seen(w.cfg, hot, [jid])
    w.mutate(label_add=[[jid, "7"]])
    wait_until(lambda: seen(w.cfg, hot, [jid]) == mine, "the chat's messages in the HOT scope")
    w.mutate(label_remove=[[jid, "7"]])
    wait_until(lambda: not seen(w.cfg, hot, [jid]), "the chat's messages out of the HOT scope")


def test_listen_a_renamed_label_renames_it_on_the_messages_and_a_deleted_one_hides_them(
    listen_world: Callable[..., World], meili: MeiliServer
) -> None:
    w = listen_world(env=ON, chats=100, epoch=int(time.time()), messages_per_chat=4)
    truth = w.sandbox.store(INST).expected_labels()
    carrying = sorted(j for j, names in truth.items() if PAID in names)
    theirs = stored(meili, w.cfg, carrying)
    assert theirs
    renamed = 'Paid "in full", thanks 🙏'
    old, new = scoped(w.cfg, PAID), scoped(w.cfg, renamed)
    assert seen(w.cfg, old) == theirs and not seen(w.cfg, new)
    w.mutate(label_upsert=[{"id": "4", "name": renamed, "color": 3, "colorHex": "#dfaef0"}])
    wait_until(lambda: seen(w.cfg, new) == theirs, "the messages under the label's new name")
    assert not seen(w.cfg, old)
    w.mutate(label_delete=["4"])
    wait_until(lambda: not seen(w.cfg, new), "the messages out of the deleted label's scope")


# -- reindex and sync ----------------------------------------------------------------------


def test_a_reindex_after_wawp_changed_labels_relabels_the_messages_without_asking_for_them(
    backfill_world: Callable[..., tuple[Sandbox, Config]], meili: MeiliServer
) -> None:
    sb, cfg = backfill_world()
    reindex(cfg)
    again = reindex(cfg)  # nothing moved: nothing to relabel
    assert again.messages is not None and again.messages.relabelled == 0
    store = sb.store(INST)
    truth = store.expected_labels()
    jids = [j for j in store.expected_jids() if stored(meili, cfg, [j])]
    gains = person(truth, jids, without=HOT)
    loses = next(j for j in sorted(jids) if ORDER in truth.get(j, ()) and j != gains)
    paid = sorted(j for j, names in truth.items() if PAID in names)
    renamed = "Paid, thanks"
    store.label_chat(gains, "7", True)
    store.label_chat(loses, "2", False)
    store.upsert_label({"id": "4", "name": renamed, "colorHex": "#dfaef0"})
    hot, order, new = scoped(cfg, HOT), scoped(cfg, ORDER), scoped(cfg, renamed)
    assert not seen(cfg, hot, [gains]) and seen(cfg, order, [loses])
    asked = sb.message_requests
    report = reindex(cfg)
    assert sb.message_requests == asked  # the labels came with the chats: no message request
    assert report.messages is not None and report.messages.relabelled > 0
    assert seen(cfg, hot, [gains]) == stored(meili, cfg, [gains])
    assert not seen(cfg, order, [loses])
    assert seen(cfg, new) == stored(meili, cfg, paid) != set()
    assert not seen(cfg, scoped(cfg, PAID))


def test_sync_writes_a_chats_new_messages_with_its_labels(
    backfill_world: Callable[..., tuple[Sandbox, Config]], meili: MeiliServer
) -> None:
    sb, cfg = backfill_world()
    reindex(cfg)
    store = sb.store(INST)
    truth = store.expected_labels()
    jid = next(j for j in sorted(truth) if j.endswith("@c.us") and ORDER in truth[j])
    before = stored(meili, cfg, [jid])
    store.touch(jid)
    sync(cfg)
    new = stored(meili, cfg, [jid]) - before
    assert new
    assert new <= seen(cfg, scoped(cfg, ORDER), [jid])


def test_a_ledger_from_before_label_digests_relabels_once(
    backfill_world: Callable[..., tuple[Sandbox, Config]],
) -> None:
    """An index backfilled before the ledger kept label digests may hold stale copies: the
    first reindex relabels every chat's messages once, the next none."""
    import sqlite3

    from explorer.jobs.messages import ledger_path

    sb, cfg = backfill_world()
    reindex(cfg)
    with sqlite3.connect(ledger_path(cfg)) as db:
        db.execute("DELETE FROM labels")
    first = reindex(cfg)
    assert first.messages is not None and first.messages.relabelled > 0
    second = reindex(cfg)
    assert second.messages is not None and second.messages.relabelled == 0
