"""`explorer forget`: a person erased from the live indexes and a build in progress, and
kept out by reindex, sync and listen until --undo; the record holds hashes, not numbers.

Against the sandbox and the real Meilisearch; reindex and listen as their own tests run
them (their fixtures, reused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import meilisearch
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import Config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.webhooks import message
from explorer.jobs.forget import (
    ForgetRecordDamaged,
    forget,
    is_forgotten,
    list_forgotten,
    undo_forget,
)
from explorer.jobs.reindex import reindex
from explorer.jobs.state import state_dir
from explorer.jobs.sync import sync
from explorer.meili.client import IndexStore
from explorer.records.documents import doc_id
from explorer.records.messages import (
    MESSAGE_INDEX_SETTINGS,
    message_doc_id,
    messages_index,
    parse_message,
    to_message_document,
)
from explorer.records.phones import pretty_phone
from tests import test_listen, test_messages, test_reindex
from tests.conftest import explorer_env, ground_truth
from tests.test_listen import SESSION, World, wait_until
from tests.test_reindex import INST, indexes, live_jids

reindex_config = test_reindex.config_for  # their fixtures, under names of this file's own
listen_world = test_listen.world
messages_world = test_messages.world
GROUP = "120363000000009001@g.us"


def person(sb: Sandbox, n: int = 0) -> str:
    return sorted(j for j in ground_truth(sb) if j.endswith("@c.us"))[n]


def add_messages(cfg: Config, jid: str) -> dict[str, str]:
    """Three messages: with ``jid``, from ``jid`` in a group, and someone else's."""
    store = IndexStore(cfg.meilisearch)
    uid = messages_index(cfg.meilisearch.index)
    store.ensure(uid, MESSAGE_INDEX_SETTINGS)
    now = int(time.time())
    raws = {
        "theirs": ({"id": f"false_{jid}_AAAA01", "timestamp": now, "body": "order 4411"}, jid),
        "in_group": (
            {
                "id": f"false_{GROUP}_AAAA02_{jid}",
                "timestamp": now,
                "participant": jid,
                "body": "I am late",
            },
            GROUP,
        ),  # fmt: skip
        "other": (
            {
                "id": f"false_{GROUP}_AAAA03",
                "timestamp": now,
                "participant": "4915100009999@c.us",
                "body": "me too",
            },
            GROUP,
        ),  # fmt: skip
    }
    docs = [to_message_document(parse_message(raw, instance_id=INST, chat_jid=chat), chat_name=None)
            for raw, chat in raws.values()]  # fmt: skip
    store.wait([store.add(uid, docs)])
    return {k: message_doc_id(INST, raw["id"]) for k, (raw, _) in raws.items()}


def cli_env(sb: Sandbox, token: str, meili: MeiliServer, index: str, tmp: Path) -> dict[str, Any]:
    return explorer_env(sb, token, meili.url, meili.master_key, index,
                        EXPLORER_CONFIG=str(tmp / "explorer.toml"))  # fmt: skip


def test_forget_erases_a_person_and_reindex_and_sync_keep_them_out(
    make_sandbox: Callable[..., Sandbox],
    reindex_config: Callable[..., Config],
    meili: MeiliServer,
    meili_client: meilisearch.Client,
    token: str,
    index_name: str,
    tmp_path: Path,
) -> None:
    sb = make_sandbox(chats=300)
    cfg = reindex_config(sb)
    reindex(cfg)
    jid = person(sb)
    digits = jid.partition("@")[0]
    ids = add_messages(cfg, jid)
    env = cli_env(sb, token, meili, index_name, tmp_path)
    typed = pretty_phone("+" + digits)  # "+20 100 123 4567": as a person types it
    result = CliRunner().invoke(cli, ["forget", typed], env=env)
    assert result.exit_code == 0, result.output
    assert "removed 1 chat document, 2 messages" in result.output
    assert jid not in live_jids(meili_client, index_name)
    msgs = meili_client.index(messages_index(index_name))
    left = {d.id for d in msgs.get_documents({"limit": 100}).results}
    assert left == {ids["other"]}
    assert is_forgotten(cfg, INST, jid) and not is_forgotten(cfg, INST, person(sb, 1))
    # Reindex and sync do not bring them back; the build's count check still holds.
    report = reindex(cfg)
    assert report.swapped and jid not in live_jids(meili_client, index_name)
    assert live_jids(meili_client, index_name) == ground_truth(sb) - {jid}
    sb.store(INST).touch(jid)
    sync(cfg)
    assert jid not in live_jids(meili_client, index_name)
    # The record holds keyed hashes: the number is in no file of the state directory.
    for file in state_dir(cfg).rglob("*"):
        if file.is_file():
            assert digits.encode() not in file.read_bytes(), file
    assert (state_dir(cfg) / "forget.key").stat().st_mode & 0o777 == 0o600
    assert (state_dir(cfg) / "forgotten.json").stat().st_mode & 0o777 == 0o600
    listed = CliRunner().invoke(cli, ["forget", "--list"], env=env)
    assert listed.exit_code == 0 and "1 forgotten" in listed.output
    assert "all instances" in listed.output and digits not in listed.output
    # --undo: the next sync indexes them again.
    undone = CliRunner().invoke(cli, ["forget", "--undo", f"{jid}"], env=env)
    assert undone.exit_code == 0 and "1 record removed" in undone.output
    sb.store(INST).touch(jid)
    sync(cfg)
    assert jid in live_jids(meili_client, index_name)
    assert not list_forgotten(cfg).entries


def test_forget_reaches_a_build_in_progress(
    make_sandbox: Callable[..., Sandbox],
    reindex_config: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=900)
    cfg = reindex_config(sb)
    reindex(cfg)

    def crash(batches: int) -> None:
        if batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    # This test's own build: the worker's Meilisearch may hold other tests' builds.
    build = next(i for i in indexes(meili_client) if i.startswith(f"{index_name}__build_"))
    wait_until(lambda: not meili_client.get_tasks({"statuses": ["enqueued", "processing"]}).results,
               "the build's batches indexed")  # fmt: skip
    built = {d.jid for d in meili_client.index(build).get_documents(
        {"limit": 10_000, "fields": ["jid"]}).results}  # fmt: skip
    crawled = sorted(j for j in built if j.endswith("@c.us"))[0]
    later = sorted(j for j in ground_truth(sb) - built if j.endswith("@c.us"))[0]
    report = forget(cfg, crawled)
    assert report.chats == 1 and report.builds == 1
    assert forget(cfg, later).builds == 0  # not crawled yet: the resumed crawl drops it
    assert crawled not in {d.jid for d in meili_client.index(build).get_documents(
        {"limit": 10_000, "fields": ["jid"]}).results}  # fmt: skip
    resumed = reindex(cfg)  # its count check takes what forget removed into account
    assert resumed.resumed and resumed.swapped
    assert live_jids(meili_client, index_name) == ground_truth(sb) - {crawled, later}


def test_forget_says_in_one_line_what_is_wrong(
    make_sandbox: Callable[..., Sandbox],
    reindex_config: Callable[..., Config],
    meili: MeiliServer,
    token: str,
    index_name: str,
    tmp_path: Path,
) -> None:
    sb = make_sandbox(chats=10)
    reindex_config(sb)
    env = cli_env(sb, token, meili, index_name, tmp_path)
    cases = {
        ("forget", "hello"): "not a phone number or a WhatsApp JID",
        ("forget", "0100 123 4567"): "not an international number",
        ("forget", "12@nowhere.example"): "not a WhatsApp JID",
        ("forget", "+49 151 2345 6789", "--instance", "NOPE"): "unknown instance 'NOPE'",
        ("forget",): "give a PHONE|JID, or --list",
        ("forget", "--list", "+49 151 2345 6789"): "--list takes no PHONE|JID",
    }
    for argv, expected in cases.items():
        result = CliRunner().invoke(cli, list(argv), env=env)
        assert result.exit_code == 2, (argv, result.output)
        assert expected in result.output, (argv, result.output)
        if argv[1:2] != ("--list",):
            assert "Traceback" not in result.output
    assert not (state_dir(reindex_config(sb)) / "forgotten.json").exists()  # nothing recorded


def test_listen_drops_a_forgotten_persons_events_until_undone(
    listen_world: Callable[..., World],
) -> None:
    w = listen_world(env={"EXPLORER_MESSAGES": "1"})
    jid = "4915100009001@c.us"
    now = int(time.time())
    w.hooks.send(message(SESSION, jid, now, body="before"))
    wait_until(lambda: w.doc(jid), "their chat")
    forget(w.cfg, jid)
    assert w.doc(jid) is None
    said = message(SESSION, jid, now + 1, body="after forget")
    in_group = message(SESSION, GROUP, now + 1, body="me again", participant=jid)
    marker = message(SESSION, "4915100009002@c.us", now + 2, body="marker")
    for event in (said, in_group, marker):
        w.hooks.send(event)
    msgs = meilisearch.Client(w.meili.url, w.meili.master_key).index(messages_index(w.index))

    def has(event: dict[str, Any]) -> bool:
        try:
            msgs.get_document(message_doc_id(INST, event["payload"]["id"]))
        except meilisearch.errors.MeilisearchApiError:
            return False
        return True

    wait_until(lambda: has(marker), "the marker behind their events")
    assert w.doc(jid) is None and not has(said) and not has(in_group)
    assert w.doc(GROUP) is not None  # the group itself is not theirs
    assert w.metrics()["explorer_webhook_messages_skipped_total{reason=forgotten}"] == 2
    assert undo_forget(w.cfg, "+" + jid.partition("@")[0]).undone == 1
    again = message(SESSION, jid, now + 3, body="welcome back")
    w.hooks.send(again)
    wait_until(lambda: has(again) and w.doc(jid), "their chat and message after --undo")
    assert doc_id(INST, jid) == (w.doc(jid) or {}).get("id")


# -- a damaged record -------------------------------------------------------------------


def test_a_damaged_record_stops_every_job_with_one_line(
    make_sandbox: Callable[..., Sandbox],
    reindex_config: Callable[..., Config],
    meili: MeiliServer,
    token: str,
    index_name: str,
    tmp_path: Path,
) -> None:
    from explorer.doors.listen import Listener

    sb = make_sandbox(chats=30)
    cfg = reindex_config(sb)
    reindex(cfg)
    forget(cfg, person(sb))
    env = cli_env(sb, token, meili, index_name, tmp_path)
    record, key = state_dir(cfg) / "forgotten.json", state_dir(cfg) / "forget.key"
    good = {record: record.read_bytes(), key: key.read_bytes()}
    damages = {
        record: [b'{"entries": [', b'{"entries": [{"hashes": [], "at": "noon"}]}'],
        key: [b"not hex\n", b"abcd\n", None],
    }
    for path, variants in damages.items():
        for damage in variants:
            if damage is None:
                path.unlink()
            else:
                path.write_bytes(damage)
            for job in (lambda: reindex(cfg), lambda: sync(cfg), lambda: Listener(cfg)):
                with pytest.raises(ForgetRecordDamaged, match=path.name):
                    job()
            result = CliRunner().invoke(cli, ["forget", person(sb, 1)], env=env)
            assert result.exit_code == 1 and path.name in result.output, result.output
            assert len(result.output.strip().splitlines()) == 1, result.output
            assert (record.read_bytes() if record.exists() else None) == (
                damage if path == record else good[record]
            )  # nothing overwritten: the entries are not lost
            for p, data in good.items():
                p.write_bytes(data)
    assert is_forgotten(cfg, INST, person(sb)) and reindex(cfg).swapped


def test_concurrent_forgets_lose_no_entry(
    make_sandbox: Callable[..., Sandbox], reindex_config: Callable[..., Config]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sb = make_sandbox(chats=10)
    cfg = reindex_config(sb)
    numbers = [f"+4915100{n:05d}" for n in range(12)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda n: forget(cfg, n), numbers))
    assert len(list_forgotten(cfg).entries) == len(numbers)
    with ThreadPoolExecutor(6) as pool:
        undone = list(pool.map(lambda n: undo_forget(cfg, n).undone, numbers[:6]))
    assert undone == [1] * 6 and len(list_forgotten(cfg).entries) == 6
    assert not list(state_dir(cfg).glob("*.tmp"))


# -- with messages on ---------------------------------------------------------------------


def senders_and_chats(client: meilisearch.Client, index: str) -> tuple[set[str], set[str]]:
    docs = test_messages.message_docs(client, index).values()
    return {d.get("sender") or "" for d in docs}, {d["jid"] for d in docs}


def group_sender(client: meilisearch.Client, index: str) -> str:
    """A person with a chat of their own who also writes in a group."""
    senders, chats = senders_and_chats(client, index)
    return sorted(j for j in senders & chats if j.endswith("@c.us"))[0]


def test_the_backfill_keeps_a_forgotten_person_out(
    messages_world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = messages_world()
    reindex(cfg)
    jid = group_sender(meili_client, index_name)
    forget(cfg, jid)
    # A new messages index (a ledger clear): every chat is fetched again, groups too.
    meili_client.wait_for_task(meili_client.delete_index(messages_index(index_name)).task_uid)
    reindex(cfg)
    senders, chats = senders_and_chats(meili_client, index_name)
    assert jid not in senders and jid not in chats
    assert any(s for s in senders)  # others' group messages are there
    sb.store(INST).touch(jid)
    sync(cfg)
    assert jid not in set().union(*senders_and_chats(meili_client, index_name))


def test_forget_leaves_no_trace_in_the_state_dir_and_undo_brings_messages_back(
    messages_world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = messages_world()
    reindex(cfg)
    whole = test_messages.message_docs(meili_client, index_name)
    jid = group_sender(meili_client, index_name)
    digits = jid.partition("@")[0]
    forget(cfg, jid)
    assert jid not in set().union(*senders_and_chats(meili_client, index_name))
    reindex(cfg)
    for file in state_dir(cfg).rglob("*"):
        if file.is_file():
            assert digits.encode() not in file.read_bytes(), file
    assert undo_forget(cfg, jid).undone == 1
    reindex(cfg)
    assert set(test_messages.message_docs(meili_client, index_name)) == set(whole)


def test_listen_deletes_what_a_forgotten_number_wrote_under_its_lid(
    listen_world: Callable[..., World],
) -> None:
    import httpx

    w = listen_world(env={"EXPLORER_MESSAGES": "1"}, lid_share=0.3, lid_known=0.5)
    resp = httpx.get(f"{w.sandbox.url}/_sandbox/ids",
                     params={"instance_id": INST, "format": "json"})  # fmt: skip
    people = [json.loads(line) for line in resp.text.splitlines()]
    known = next(p for p in people if p["lid"] and p["jid"].endswith("@c.us"))
    phone, lid = known["jid"], known["lid"].partition("@")[0] + "@lid"
    client = meilisearch.Client(w.meili.url, w.meili.master_key)
    client.wait_for_task(client.index(w.index).delete_document(doc_id(INST, phone)).task_uid)
    forget(w.cfg, phone)  # the index knows no LID for them: only the number is recorded
    assert not is_forgotten(w.cfg, INST, lid)
    msgs = client.index(messages_index(w.index))

    def get(event: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return dict(msgs.get_document(message_doc_id(INST, event["payload"]["id"])))
        except meilisearch.errors.MeilisearchApiError:
            return None

    now = int(time.time())
    said = message(SESSION, lid, now, body="sent from a LID")
    w.hooks.send(said)
    wait_until(lambda: is_forgotten(w.cfg, INST, lid), "the LID learnt as theirs")
    wait_until(lambda: get(said) is None and w.doc(lid) is None, "their LID's message gone")
    assert w.applied() >= 1
    assert w.doc(phone) is None
    in_group = message(SESSION, GROUP, now + 1, body="a LID in a group", participant=lid)
    marker = message(SESSION, GROUP, now + 2, body="marker", participant="4915100009999@c.us")
    w.hooks.send(in_group)
    w.hooks.send(marker)
    wait_until(lambda: get(marker), "the marker behind it")
    assert get(in_group) is None and get(said) is None
