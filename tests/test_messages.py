"""Messages (issue 33): the sandbox's messages, the backfill in reindex and sync, retention
and purge, against the sandbox over HTTP and the real Meilisearch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import meilisearch
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import Config, load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.synthetic import LABELS, Generator, chat_messages
from explorer.errors import BackfillFailed
from explorer.jobs.messages import Ledger, ledger_path
from explorer.jobs.reindex import last_report, reindex
from explorer.jobs.sync import sync
from explorer.records.messages import (
    MalformedMessage,
    message_doc_id,
    messages_index,
    parse_message,
)
from tests.conftest import SANDBOX_INSTANCE, explorer_env

INST = SANDBOX_INSTANCE
OTHER = "INST00000002"
DAY = 86_400


def get_messages(sb: Sandbox, token: str, chat: str, **params: Any) -> httpx.Response:
    query = {"instance_id": INST, "access_token": token, "chatId": chat, **params}
    return httpx.get(f"{sb.url}/v2/chats/messages", params=query)


# -- the sandbox ---------------------------------------------------------------------------


def test_sandbox_pages_a_chats_messages_newest_first(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=20, messages_per_chat=12)
    chat = sb.store(INST).spec(0).jid
    whole = get_messages(sb, token, chat, limit=100).json()
    pages = [get_messages(sb, token, chat, limit=5, offset=o).json() for o in (0, 5, 10)]
    assert [m for page in pages for m in page] == whole
    assert len(whole) == 12
    stamps = [m["timestamp"] for m in whole if isinstance(m, dict) and m.get("timestamp")]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == sb.store(INST).spec(0).ts  # the newest is the chat's last activity


def test_sandbox_answers_404_for_a_chat_it_does_not_know(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=20)
    assert get_messages(sb, token, "19999999999@c.us").status_code == 404
    assert sb.paths["/v2/chats/messages"] == 1


def test_sandbox_messages_are_deterministic_and_varied(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    gen = Generator(1, INST, 1_764_000_000)
    every = [m for i in range(200) for m in chat_messages(gen, gen.spec(i), 20)]
    again = [m for i in range(200) for m in chat_messages(gen, gen.spec(i), 20)]
    assert every == again
    objects = [m for m in every if isinstance(m, dict)]
    bodies = [m["body"] for m in objects if isinstance(m.get("body"), str)]
    assert any(any("\u0600" <= ch <= "\u06ff" for ch in b) for b in bodies)  # Arabic
    assert any(any("\u0400" <= ch <= "\u04ff" for ch in b) for b in bodies)  # Cyrillic
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in b) for b in bodies)  # CJK
    assert any(any(ord(ch) >= 0x1F300 for ch in b) for b in bodies)  # emoji
    assert any(len(b) >= 1024 * 1024 for b in bodies)
    assert any("\x1b" in b for b in bodies)
    assert any(m["hasMedia"] and m["body"] for m in objects)  # a caption
    assert any(m["hasMedia"] and not m["body"] for m in objects)
    assert any(m.get("participant") for m in objects)
    assert any(m.get("body", "") is None for m in objects)
    assert any("id" not in m for m in objects)
    assert any(m.get("timestamp") is None for m in objects)
    assert any(isinstance(m, str) for m in every)
    stamps = [m["timestamp"] for m in objects if m.get("timestamp")]
    assert max(stamps) - min(stamps) > 180 * 86_400  # months: retention bites


def test_a_touch_adds_a_message_in_front_and_keeps_the_rest(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=20, messages_per_chat=5)
    store = sb.store(INST)
    chat = store.spec(0).jid
    before = get_messages(sb, token, chat).json()
    store.touch(chat)
    after = get_messages(sb, token, chat).json()
    assert after[1:] == before
    assert after[0]["timestamp"] == store.spec(0).ts


# -- reindex, sync, retention, purge ---------------------------------------------------------


@pytest.fixture
def world(
    make_sandbox: Callable[..., Sandbox], meili: MeiliServer, token: str, index_name: str,
    tmp_path: Path,
) -> Callable[..., tuple[Sandbox, Config]]:  # fmt: skip
    """Two instances of 50 chats with 20 messages each (unless told otherwise), and the
    config that reads them with messages on."""

    def make(
        *, messages: bool = True, retention_days: int = 120, batch_size: int = 200,
        retry_budget: float = 20, **options: Any,
    ) -> tuple[Sandbox, Config]:  # fmt: skip
        options.setdefault("chats", 50)
        options.setdefault("messages_per_chat", 20)
        options.setdefault("epoch", int(time.time()))
        options.setdefault("instances", {INST: token, OTHER: token})
        options.setdefault("retry_after", 0.05)
        sb = make_sandbox(**options)
        path = tmp_path / "explorer.toml"
        path.write_text(
            f"[wawp]\nwarmup_seconds = 0\npage_size = 8\nretry_budget_seconds = {retry_budget}\n"
            f'[[wawp.instances]]\nid = "{INST}"\n[[wawp.instances]]\nid = "{OTHER}"\n'
            f"[reindex]\nbatch_size = {batch_size}\n"
            f"[messages]\nenabled = {str(messages).lower()}\nretention_days = {retention_days}\n"
        )
        env = explorer_env(sb, token, meili.url, meili.master_key, index_name)
        env.pop("WAWP_INSTANCE_ID")
        return sb, load_config(path, env=env)

    return make


def expected(sb: Sandbox, cfg: Config) -> dict[str, dict[str, Any]]:
    """The messages a complete backfill writes, by document id: those of every chat the
    crawl indexes, within the window, that parse (but those of a broken messages route)."""
    cutoff = int(time.time()) - cfg.messages.retention_days * DAY
    out = {}
    for inst, store in sb.stores.items():
        merged = store.merged(None)
        for i in store.live(merged):
            jid = store.identity(i)
            if jid == "status@broadcast" or store.broken(i) is not None:
                continue
            for raw in store.messages(i, merged):
                try:
                    msg = parse_message(raw, instance_id=inst, chat_jid=jid)
                except MalformedMessage:
                    continue
                if msg.timestamp >= cutoff:
                    doc_key = message_doc_id(inst, msg.message_id)
                    out[doc_key] = {"jid": jid, "timestamp": msg.timestamp, "body": msg.body}
    return out


def message_docs(client: meilisearch.Client, index: str) -> dict[str, dict[str, Any]]:
    uid = messages_index(index)
    found = client.index(uid).get_documents({"limit": 100_000}).results
    return {d.id: dict(d) for d in found}


def chat_docs(client: meilisearch.Client, index: str) -> dict[tuple[str, str], dict[str, Any]]:
    found = client.index(index).get_documents({"limit": 100_000}).results
    return {(d.instance_id, d.jid): dict(d) for d in found}


def test_after_reindex_every_message_of_the_window_is_searchable(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world()
    report = reindex(cfg)
    want = expected(sb, cfg)
    docs = message_docs(meili_client, index_name)
    assert set(docs) == set(want)
    assert report.messages is not None and report.messages.messages == len(want)
    assert report.messages.malformed > 0  # the sandbox's ids and timestamps that are missing
    cutoff = report.messages.cutoff
    assert min(d["timestamp"] for d in docs.values()) >= cutoff
    assert any(sb.store(INST).spec(i).ts or 0 for i in range(50))
    # Retention bites: some messages of these chats are older than the window.
    assert len(want) < sum(len(s.messages(i)) for s in sb.stores.values() for i in range(50))
    chats = chat_docs(meili_client, index_name)
    for doc in docs.values():
        chat = chats[(doc["instance_id"], doc["jid"])]
        assert doc["chat_name"] == chat["display_name"]
    # Searchable: a phrase of a body finds its message.
    some = next(d for d in docs.values() if "order" in d["body"] and d["body"].isascii())
    hits = meili_client.index(messages_index(index_name)).search(
        some["body"], {"filter": f'jid = "{some["jid"]}"', "limit": 20}
    )["hits"]
    assert some["id"] in {h["id"] for h in hits}
    assert "messages:" in report.summary() and report.to_json()["messages"]["messages"]


def test_bad_messages_are_counted_and_skipped_and_odd_bodies_kept_clean(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(retention_days=400)
    report = reindex(cfg)
    assert report.messages is not None
    samples = " ".join(report.messages.malformed_samples)
    assert "without a usable id" in samples or "without a timestamp" in samples
    docs = message_docs(meili_client, index_name).values()
    big = [d for d in docs if d["body_truncated"]]
    assert big and all(len(d["body"]) <= 4000 for d in big)  # the 1 MB body, capped
    assert not any("\x1b" in d["body"] or "\x07" in d["body"] for d in docs)
    assert any(d["body"] == "" for d in docs)  # a null body is kept as an empty one
    assert any(d["has_media"] and d["body"].startswith("[") for d in docs)
    scripts = ("\u0600", "\u0400", "\u4e00")
    for low in scripts:
        assert any(any(low <= ch <= chr(ord(low) + 0x1FF) for ch in d["body"]) for d in docs)


def test_group_messages_name_their_sender_where_the_chats_index_knows_them(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(retention_days=400)
    reindex(cfg)
    docs = message_docs(meili_client, index_name).values()
    chats = chat_docs(meili_client, index_name)
    senders = [d for d in docs if d["sender"]]
    assert senders and all(d["jid"].endswith("@g.us") for d in senders)
    for d in senders:
        known = chats.get((d["instance_id"], d["sender"]))
        assert d["sender_name"] == (known["name"] if known else None)
    assert any(d["sender_name"] for d in senders)


def test_with_messages_off_not_one_message_request_is_made(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(messages=False)
    reindex(cfg)
    sb.store(INST).touch(sb.store(INST).spec(0).jid)
    sync(cfg)
    assert sb.paths.get("/v2/chats") and "/v2/chats/messages" not in sb.paths
    assert messages_index(index_name) not in {
        i["uid"] for i in meili_client.get_raw_indexes({"limit": 1000})["results"]
    }


def test_a_second_reindex_where_nothing_moved_asks_for_no_messages(
    world: Callable[..., tuple[Sandbox, Config]],
) -> None:
    sb, cfg = world()
    first = reindex(cfg)
    asked = sb.message_requests
    second = reindex(cfg)
    assert sb.message_requests == asked
    assert second.messages is not None and first.messages is not None
    assert second.messages.messages == 0 and second.messages.unchanged == first.messages.listings


def test_sync_fetches_the_new_message_of_a_touched_chat_and_nothing_else(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world()
    reindex(cfg)
    store = sb.store(INST)
    chat = next(store.spec(i) for i in range(50) if store.spec(i).server == "c.us")
    store.touch(chat.jid)
    before = dict(sb.message_chats)
    report = sync(cfg)
    newest = store.messages(chat.index, store.merged(None), 0, 1)[0]
    docs = message_docs(meili_client, index_name)
    assert message_doc_id(INST, newest["id"]) in docs
    asked = {c: n - before.get(c, 0) for c, n in sb.message_chats.items() if n > before.get(c, 0)}
    assert asked == {chat.jid: 1}  # one page: it stopped at what was already indexed
    assert report.messages is not None and report.messages.messages >= 1
    assert "messages:" in report.summary()


def test_an_interrupted_backfill_resumes_without_refetching_finished_chats(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(batch_size=40, latency_ms=5)

    def crash(batches: int) -> None:
        if batches == 3 and "/v2/chats/messages" in sb.paths:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    ledger = Ledger(ledger_path(cfg))
    finished = ledger.load([INST, OTHER])
    ledger.close()
    assert finished
    asked_before = dict(sb.message_chats)
    crawled = sb.paths["/v2/chats"]
    report = reindex(cfg)
    # The reindex was done once the chats were live: this one crawls them anew...
    assert not report.resumed and sb.paths["/v2/chats"] > crawled
    want = expected(sb, cfg)
    docs = message_docs(meili_client, index_name)
    assert set(docs) == set(want)
    for (_, listing), _ in finished.items():
        assert sb.message_chats[listing] == asked_before[listing]  # not asked again


def test_a_chat_deleted_meanwhile_is_skipped_and_counted(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(messages_gone=0.2)
    report = reindex(cfg)
    assert report.messages is not None and report.messages.gone > 0
    assert "gone (404, skipped)" in report.summary()
    assert report.messages.messages == len(message_docs(meili_client, index_name)) > 0


def test_5xx_and_429_on_message_pages_are_retried(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(message_error_rate=0.15, message_burst_every=9, fault_seed=3)
    report = reindex(cfg)
    assert report.messages is not None and report.messages.retries > 0
    assert set(message_docs(meili_client, index_name)) == set(expected(sb, cfg))


def test_messages_past_the_window_are_never_written_and_later_expire(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str, tmp_path: Path,
) -> None:  # fmt: skip
    sb, cfg = world(retention_days=300)
    reindex(cfg)
    older = [d for d in message_docs(meili_client, index_name).values()
             if d["timestamp"] < time.time() - 60 * DAY]  # fmt: skip
    assert older
    # What a label update leaves of a message deleted under it: no timestamp, no body.
    stub = meili_client.index(messages_index(index_name)).update_documents(
        [{"id": "mstub", "labels": ["VIP"], "label_ids": ["5"]}]
    )
    meili_client.wait_for_task(stub.task_uid)
    path = tmp_path / "explorer.toml"
    path.write_text(path.read_text().replace("retention_days = 300", "retention_days = 60"))
    shorter = load_config(path, env=dict(_env_of(cfg)))
    report = reindex(shorter)
    assert report.messages is not None and report.messages.expired >= len(older)
    left = message_docs(meili_client, index_name).values()
    assert "mstub" not in message_docs(meili_client, index_name)
    assert min(d["timestamp"] for d in left) >= report.messages.cutoff


def _env_of(cfg: Config) -> dict[str, str]:
    assert cfg.wawp.access_token is not None and cfg.meilisearch.api_key is not None
    return {
        "WAWP_BASE_URL": cfg.wawp.base_url,
        "WAWP_ACCESS_TOKEN": cfg.wawp.access_token.reveal(),
        "MEILI_URL": cfg.meilisearch.url,
        "MEILI_API_KEY": cfg.meilisearch.api_key.reveal(),
        "EXPLORER_INDEX": cfg.meilisearch.index,
    }


def test_a_resolved_lid_chats_messages_go_under_the_phone_jid(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world(chats=80, lid_share=0.5, lid_known=1.0, lid_pairs=1.0, shape="webjs",
                    retention_days=400)  # fmt: skip
    reindex(cfg)
    docs = message_docs(meili_client, index_name).values()
    chats = chat_docs(meili_client, index_name)
    assert all((d["instance_id"], d["jid"]) in chats for d in docs)
    lid_listed = {m for d in docs for m in [d["message_id"]] if "@lid_" in m}
    assert lid_listed  # messages asked for under a LID...
    assert all(d["jid"].endswith("@c.us") for d in docs if d["message_id"] in lid_listed)
    assert set(message_docs(meili_client, index_name)) == set(expected(sb, cfg))


def test_message_bodies_never_reach_the_logs(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    sb, cfg = world(message_error_rate=0.05, messages_gone=0.05)
    with caplog.at_level(logging.DEBUG):
        reindex(cfg)
    bodies = {
        d["body"] for d in message_docs(meili_client, index_name).values() if len(d["body"]) > 12
    }
    assert bodies
    text = caplog.text
    assert not [b for b in bodies if b in text]


def test_settings_check_covers_the_messages_index_and_apply_creates_it(
    world: Callable[..., tuple[Sandbox, Config]], meili: MeiliServer, index_name: str,
    meili_client: meilisearch.Client,
) -> None:  # fmt: skip
    sb, cfg = world(messages=False)
    reindex(cfg)
    env = {**_env_of(cfg), "EXPLORER_MESSAGES": "1"}
    runner = CliRunner()
    checked = runner.invoke(cli, ["settings", "--check"], env=env)
    assert checked.exit_code == 1 and messages_index(index_name) in checked.output
    applied = runner.invoke(cli, ["settings", "--apply"], env=env)
    assert applied.exit_code == 0, applied.output
    again = runner.invoke(cli, ["settings", "--check"], env=env)
    assert again.exit_code == 0 and f"{messages_index(index_name)}: settings match" in again.output
    meili_client.index(messages_index(index_name)).update_settings({"sortableAttributes": []})
    time.sleep(0.5)
    drifted = runner.invoke(cli, ["settings", "--check", "--json"], env=env)
    assert drifted.exit_code == 1 and "sortableAttributes" in drifted.output


def test_purge_deletes_the_messages_index_only_when_told_yes(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    sb, cfg = world()
    reindex(cfg)
    env = _env_of(cfg)
    runner = CliRunner()
    refused = runner.invoke(cli, ["messages", "purge"], env=env)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert message_docs(meili_client, index_name)
    purged = runner.invoke(cli, ["messages", "purge", "--yes"], env=env)
    assert purged.exit_code == 0 and len(purged.output.strip().splitlines()) == 1
    uids = {i["uid"] for i in meili_client.get_raw_indexes({"limit": 1000})["results"]}
    assert messages_index(index_name) not in uids and index_name in uids
    assert not ledger_path(cfg).exists()


def test_ctrl_c_during_the_backfill_says_the_next_reindex_resumes_it(
    world: Callable[..., tuple[Sandbox, Config]], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    import explorer.jobs.reindex as reindex_mod

    sb, cfg = world()

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(reindex_mod, "backfill", interrupted)
    env = {**_env_of(cfg), "EXPLORER_CONFIG": str(tmp_path / "explorer.toml")}
    result = CliRunner().invoke(cli, ["reindex", "--quiet"], env=env)
    assert result.exit_code == 130
    assert "messages backfill" in result.output and "untouched" not in result.output


def test_a_messages_index_made_with_default_settings_gets_its_own(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """What a write leaves after `messages purge` under a running listen: the index made by
    Meilisearch with its defaults. The next backfill gives it its settings, and retention
    (a filter on timestamp) works."""
    from explorer.meili.settings import messages_settings

    sb, cfg = world()
    uid = messages_index(index_name)
    made = meili_client.index(uid).add_documents([{"id": "mold", "timestamp": 1}])
    meili_client.wait_for_task(made.task_uid)
    assert meili_client.index(uid).get_settings()["filterableAttributes"] == []
    with caplog.at_level(logging.WARNING):
        report = reindex(cfg)
    assert report.messages is not None and report.messages.expired == 1
    assert "mold" not in message_docs(meili_client, index_name)
    assert messages_settings(cfg.meilisearch).drift == {}
    assert f"index {uid} lacks its filterableAttributes" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        reindex(cfg)
    assert "lacks its" not in caplog.text  # settings that match are left alone


def broken_listings(sb: Sandbox) -> set[str]:
    """The chat ids whose messages the backfill asked for and the sandbox always fails."""
    out = set()
    for chat_id in sb.message_chats:
        for store in sb.stores.values():
            try:
                i, _ = store.chat_number(chat_id)
            except KeyError:
                continue
            if store.broken(i) is not None:
                out.add(chat_id)
    return out


def test_a_chat_whose_messages_keep_failing_is_skipped_counted_and_asked_again(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A 500 past the retry budget, a 422, a body that is not a list: one line and a count
    each, the rest of the backfill done, and nothing in the ledger for them."""
    sb, cfg = world(messages_broken=0.1, retry_budget=0.5)
    with caplog.at_level(logging.WARNING):
        report = reindex(cfg)
    broken = broken_listings(sb)
    assert len(broken) >= 3
    assert report.messages is not None and report.messages.failed == len(broken)
    assert f"{len(broken)} failed (skipped, asked again next run)" in report.summary()
    assert report.to_json()["messages"]["failed"] == len(broken)
    assert set(message_docs(meili_client, index_name)) == set(expected(sb, cfg))
    lines = [r.getMessage() for r in caplog.records if "asked again next run" in r.getMessage()]
    assert len(lines) == len(broken) and all("\n" not in line for line in lines)
    assert {"500", "422", "no list in"} <= {
        kind for line in lines for kind in ("500", "422", "no list in") if kind in line
    }
    ledger = Ledger(ledger_path(cfg))
    recorded = {jid for _, jid in ledger.load([INST, OTHER])}
    ledger.close()
    assert recorded and not recorded & broken
    before = dict(sb.message_chats)
    again = reindex(cfg)
    assert again.messages is not None and again.messages.failed == len(broken)
    assert {c for c, n in sb.message_chats.items() if n > before.get(c, 0)} == broken


def test_a_failed_backfill_leaves_the_chats_live_and_the_next_reindex_crawls_anew(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Every chat's messages failing is the route's failure, not a chat's: the backfill
    stops and the reindex says so in one line (exit 1), its chats swapped live and its own
    state done, so the next night's run crawls the chats again."""
    sb, cfg = world(messages_broken=1.0, retry_budget=0.2)
    env = {**_env_of(cfg), "EXPLORER_CONFIG": str(tmp_path / "explorer.toml")}
    result = CliRunner().invoke(cli, ["reindex", "--quiet"], env=env)
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "chats reindexed and live" in last
    assert "messages backfill failed" in last and "in a row" in last
    assert len(chat_docs(meili_client, index_name)) > 0
    assert not (tmp_path / "state" / f"reindex-{index_name}.json").exists()
    crawled = sb.paths["/v2/chats"]
    with pytest.raises(BackfillFailed) as caught:
        reindex(cfg)
    assert not caught.value.report.resumed and sb.paths["/v2/chats"] > crawled
    assert caught.value.report.swapped and caught.value.report.messages_failed
    assert last_report(cfg)["messages_failed"]  # type: ignore[index]


def test_labels_a_chat_lost_are_off_its_messages_before_any_fetching(
    world: Callable[..., tuple[Sandbox, Config]], meili_client: meilisearch.Client,
    index_name: str,
) -> None:  # fmt: skip
    """Relabelled first: while the backfill fetches (and after it fails) a scope never sees
    a chat's messages under a label it lost."""
    sb, cfg = world()
    reindex(cfg)
    store = sb.store(INST)
    truth = store.expected_labels()
    order = LABELS[1][0]
    docs = message_docs(meili_client, index_name).values()
    loses = next(
        d["jid"] for d in docs if d["instance_id"] == INST and order in truth.get(d["jid"], ())
    )
    store.label_chat(loses, "2", False)
    store.touch(next(j for j in store.expected_jids() if j != loses))  # something to fetch
    carried: list[set[str]] = []
    asked = sb.message_requests

    def labels_now() -> set[str]:
        found = (
            meili_client.index(messages_index(index_name))
            .get_documents({"filter": f'jid = "{loses}"', "fields": ["labels"], "limit": 1000})
            .results
        )
        return {label for d in found for label in d.labels}

    def crash(batches: int) -> None:
        if sb.message_requests > asked:  # a batch of the backfill's, not of the chats'
            carried.append(labels_now())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    assert carried and order not in carried[0]  # already while fetching
    assert order not in labels_now()
