"""`explorer reindex` against the real Meilisearch and the sandbox."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import meilisearch
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import explorer.jobs.reindex as reindex_mod
from explorer.cli import cli
from explorer.config import Config, load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.errors import MeiliError, SafetyCheckFailed
from explorer.jobs.reindex import dry_run, last_report, reindex
from explorer.jobs.state import IndexBusy, index_lock, state_dir
from explorer.records.documents import doc_id
from tests.conftest import explorer_env, ground_truth

INST = "INST00000001"


def env_for(sb: Sandbox, token: str, meili: MeiliServer, index: str) -> dict[str, str]:
    return explorer_env(sb, token, meili.url, meili.master_key, index)


@pytest.fixture
def config_for(
    meili: MeiliServer, token: str, index_name: str, tmp_path: Any
) -> Callable[..., Config]:
    def make(sb: Sandbox, **wawp: Any) -> Config:
        path = tmp_path / "explorer.toml"
        extra = "".join(f"{k} = {v!r}\n" for k, v in wawp.items())
        path.write_text(
            "[wawp]\nwarmup_seconds = 0\npage_size = 40\nretry_budget_seconds = 20\n"
            + extra
            + '\n[[wawp.instances]]\nid = "INST00000001"\nlabel = "Support"\n'
            + "\n[reindex]\nbatch_size = 100\n"
        )
        env = env_for(sb, token, meili, index_name)
        env.pop("WAWP_INSTANCE_ID")
        return load_config(path, env=env)

    return make


def live_jids(client: meilisearch.Client, index: str) -> set[str]:
    docs = client.index(index).get_documents({"limit": 100_000, "fields": ["jid"]}).results
    return {d.jid for d in docs}


def indexes(client: meilisearch.Client) -> set[str]:
    return {i["uid"] for i in client.get_raw_indexes({"limit": 1000})["results"]}


def test_reindex_builds_the_exact_set_and_swaps(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=700)
    report = reindex(config_for(sb))
    assert report.swapped and report.new_count == len(ground_truth(sb))
    assert live_jids(meili_client, index_name) == ground_truth(sb)
    assert not any(i.startswith(f"{index_name}__build_") for i in indexes(meili_client))
    assert report.by_type.keys() == {"individual", "group", "channel", "broadcast"}
    assert not (state_dir(config_for(sb)) / f"reindex-{index_name}.json").exists()


SCHEMA: dict[str, tuple[type, ...]] = {
    "phone_display": (str, type(None)),
    "last_active": (str, type(None)),
    "id": (str,),
    "jid": (str,),
    "instance_id": (str,),
    "instance_label": (str, type(None)),
    "chat_type": (str,),
    "is_group": (bool,),
    "name": (str, type(None)),
    "display_name": (str,),
    "phone": (str, type(None)),
    "phone_digits": (str, type(None)),
    "lid": (str, type(None)),
    "wa_link": (str, type(None)),
    "last_activity": (int, type(None)),
    "archived": (bool, type(None)),
    "pinned": (bool, type(None)),
    "muted": (bool, type(None)),
    "unread_count": (int, type(None)),
    "engine_shape": (str,),
    "crawled_at": (int,),
}


@pytest.mark.parametrize("shape", ["webjs", "noweb", "gows"])
def test_every_schema_field_is_present_and_typed(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
    shape: str,
) -> None:
    sb = make_sandbox(chats=300, shape=shape)
    reindex(config_for(sb))
    hits = meili_client.index(index_name).search("", {"limit": 1000})["hits"]
    assert len(hits) == len(ground_truth(sb))
    for doc in hits:
        for key, types in SCHEMA.items():
            assert isinstance(doc[key], types), (key, doc[key])
        assert doc["chat_type"] in ("individual", "group", "channel", "broadcast")
        assert doc["is_group"] == (doc["chat_type"] == "group")
        assert doc["instance_id"] == INST and doc["instance_label"] == "Support"
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,511}", doc["id"])
        if doc["phone"]:
            assert doc["phone"] == "+" + doc["phone_digits"] and doc["jid"].endswith("@c.us")
            assert doc["wa_link"] == f"wa.me/{doc['phone_digits']}"  # no scheme: see schema
            assert doc["phone_display"].replace(" ", "").replace("-", "") == doc["phone"]
        assert "http" not in json.dumps(doc)  # the web UI would fetch it as an image
        if doc["last_activity"] is not None:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", doc["last_active"])


def test_cards_in_the_web_ui_start_with_what_a_person_reads(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    """The UI shows fields in the order the index first saw them, six before "Show more"."""
    sb = make_sandbox(chats=100)
    reindex(config_for(sb))
    raw = meili_client.http.get(f"indexes/{index_name}/documents?limit=1")["results"][0]
    first_six = list(raw)[:6]
    # Meilisearch registers the primary key before any other field: `id` always leads.
    assert first_six == [
        "id", "display_name", "phone_display", "chat_type", "instance_label", "last_active",
    ]  # fmt: skip


def test_vanished_chats_vanish_and_renames_show(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=300)
    cfg = config_for(sb)
    reindex(cfg)
    store = sb.store(INST)
    gone = sorted(ground_truth(sb))[:5]
    store.delete(gone)
    keep = sorted(ground_truth(sb))[10]
    store.rename(keep, "Renamed Customer Zzyzx")
    reindex(cfg)
    jids = live_jids(meili_client, index_name)
    assert jids == ground_truth(sb) and not set(gone) & jids
    hits = meili_client.index(index_name).search("Zzyzx")["hits"]
    assert [h["jid"] for h in hits] == [keep]


def test_failed_task_aborts_without_swapping(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(chats=200)
    cfg = config_for(sb)
    reindex(cfg)
    before = live_jids(meili_client, index_name)
    real = reindex_mod.to_document

    def broken(chat: Any, **kw: Any) -> dict[str, Any]:
        doc = real(chat, **kw)
        if chat.chat_type == "channel":
            doc["id"] = chat.jid  # '@' and '.' are invalid in a Meilisearch id
        return doc

    monkeypatch.setattr(reindex_mod, "to_document", broken)
    with pytest.raises(MeiliError, match="invalid_document_id"):
        reindex(cfg)
    assert live_jids(meili_client, index_name) == before
    assert not any(i.startswith(f"{index_name}__build_") for i in indexes(meili_client))


def test_gate_refuses_an_empty_build(
    make_sandbox: Callable[..., Sandbox],
    meili: MeiliServer,
    token: str,
    index_name: str,
    meili_client: meilisearch.Client,
) -> None:
    full = make_sandbox(chats=150)
    env = {**env_for(full, token, meili, index_name)}
    with open("explorer.toml", "w") as fh:  # the isolated cwd: no 60 s warm-up wait
        fh.write("[wawp]\nwarmup_seconds = 0.2\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["reindex", "-q"], env=env).exit_code == 0
    before = live_jids(meili_client, index_name)
    empty = make_sandbox(chats=0)
    env["WAWP_BASE_URL"] = empty.url
    result = runner.invoke(cli, ["reindex", "-q"], env={**env, "WAWP_BASE_URL": empty.url})
    assert result.exit_code == 3, result.output
    assert "refusing to swap: the new index is empty" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert live_jids(meili_client, index_name) == before
    forced = runner.invoke(cli, ["reindex", "-q", "--force"], env=env)
    assert forced.exit_code == 0 and live_jids(meili_client, index_name) == set()


def test_gate_refuses_a_shrunken_build(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=300)
    cfg = config_for(sb)
    reindex(cfg)
    sb.store(INST).delete(sorted(ground_truth(sb))[:200])
    with pytest.raises(SafetyCheckFailed, match="less than 50%"):
        reindex(cfg)
    assert len(live_jids(meili_client, index_name)) > 250
    report = reindex(cfg, force=True)
    assert report.swapped and live_jids(meili_client, index_name) == ground_truth(sb)


def test_an_interrupted_reindex_asks_for_no_more_pages(
    make_sandbox: Callable[..., Sandbox], config_for: Callable[..., Config]
) -> None:
    sb = make_sandbox(chats=3000, latency_ms=20)
    cfg = config_for(sb, concurrency=4)

    def crash(batches: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as interrupted:  # its traceback holds the crawl
        reindex(cfg, after_batch=crash)
    asked = sb.chat_requests
    time.sleep(0.3)  # a prefetch still running would ask for a page every 5 ms
    assert sb.chat_requests == asked and interrupted.value is not None


def test_interrupted_reindex_resumes_to_the_exact_set(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=900)
    cfg = config_for(sb)

    def crash(batches: int) -> None:
        if batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    assert index_name not in indexes(meili_client)  # nothing went live
    served_before = sb.served[INST]
    report = reindex(cfg)
    assert report.resumed
    assert live_jids(meili_client, index_name) == ground_truth(sb)
    served_after = sb.served[INST] - served_before
    assert served_after < 900 * 0.8  # it continued, it did not start over


def test_restart_discards_the_unfinished_build(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=400)
    cfg = config_for(sb)

    def crash(batches: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    report = reindex(cfg, restart=True)
    assert not report.resumed and live_jids(meili_client, index_name) == ground_truth(sb)


def test_leftover_build_indexes_are_cleaned_up(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    stale = f"{index_name}__build_20200101T000000Z"
    meili_client.wait_for_task(meili_client.create_index(stale).task_uid, timeout_in_ms=30_000)
    reindex(config_for(make_sandbox(chats=50)))
    assert stale not in indexes(meili_client)


def test_dry_run_reports_and_writes_nothing(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
) -> None:
    sb = make_sandbox(chats=300)
    cfg = config_for(sb)
    reindex(cfg)
    store = sb.store(INST)
    truth = sorted(ground_truth(sb))
    store.delete(truth[:4])
    store.add(3)
    store.rename(truth[20], "Someone Else")
    before_indexes = indexes(meili_client)
    before = live_jids(meili_client, index_name)
    report = dry_run(cfg)
    assert (report.added, report.removed, report.changed) == (3, 4, 1)
    assert indexes(meili_client) == before_indexes
    assert live_jids(meili_client, index_name) == before


def test_dry_run_cli_json(
    make_sandbox: Callable[..., Sandbox], meili: MeiliServer, token: str, index_name: str
) -> None:
    sb = make_sandbox(chats=60)
    result = CliRunner().invoke(
        cli, ["reindex", "--dry-run", "--json"], env=env_for(sb, token, meili, index_name)
    )
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["dry_run"] and data["added"] == len(ground_truth(sb)) and data["removed"] == 0


def test_a_second_reindex_is_refused_while_one_runs(
    make_sandbox: Callable[..., Sandbox], config_for: Callable[..., Config], index_name: str
) -> None:
    cfg = config_for(make_sandbox(chats=20))
    with index_lock(state_dir(cfg), index_name), pytest.raises(IndexBusy) as exc:
        reindex(cfg)
    assert exc.value.exit_code == 1 and "another reindex or sync" in str(exc.value)


def test_summary_line_and_json(
    make_sandbox: Callable[..., Sandbox], meili: MeiliServer, token: str, index_name: str
) -> None:
    sb = make_sandbox(chats=120)
    env = env_for(sb, token, meili, index_name)
    result = CliRunner().invoke(cli, ["reindex"], env=env)
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("reindexed: ") and f"{index_name}: none -> " in line
    assert token not in result.output and meili.master_key not in result.output


def test_settings_check_and_apply(
    make_sandbox: Callable[..., Sandbox],
    meili: MeiliServer,
    token: str,
    index_name: str,
    meili_client: meilisearch.Client,
) -> None:
    env = env_for(make_sandbox(chats=30), token, meili, index_name)
    runner = CliRunner()
    assert runner.invoke(cli, ["reindex", "-q"], env=env).exit_code == 0
    ok = runner.invoke(cli, ["settings", "--check"], env=env)
    assert ok.exit_code == 0 and "match" in ok.output, ok.output
    task = meili_client.index(index_name).update_sortable_attributes(["name"])
    meili_client.wait_for_task(task.task_uid, timeout_in_ms=30_000)
    drift = runner.invoke(cli, ["settings", "--check"], env=env)
    assert drift.exit_code == 1 and "sortableAttributes" in drift.output
    fixed = runner.invoke(cli, ["settings", "--apply"], env=env)
    assert fixed.exit_code == 0
    assert runner.invoke(cli, ["settings"], env=env).exit_code == 0


@given(st.text(max_size=20), st.text(max_size=40), st.text(max_size=20), st.text(max_size=40))
def test_document_ids_are_valid_and_collision_free(a: str, b: str, c: str, d: str) -> None:
    x, y = doc_id(a, b), doc_id(c, d)
    assert re.fullmatch(r"[A-Za-z0-9_-]*", x)
    assert (x == y) == ((a, b) == (c, d))


def reindex_killed_after_its_swap(
    cfg: Config, index_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reindex that dies right after its swap, before deleting the build it swapped out."""
    real_delete = reindex_mod.IndexStore.delete

    def dying_delete(self: Any, uid: str) -> None:
        if uid.startswith(f"{index_name}__build_") and self.exists(index_name):
            raise KeyboardInterrupt  # killed right after the swap
        real_delete(self, uid)

    with monkeypatch.context() as patch:
        patch.setattr(reindex_mod.IndexStore, "delete", dying_delete)
        with pytest.raises(KeyboardInterrupt):
            reindex(cfg)


def test_death_between_swap_and_cleanup_is_finished_on_the_next_run(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(chats=200)
    cfg = config_for(sb)
    reindex(cfg)
    sb.store(INST).add(5)
    reindex_killed_after_its_swap(cfg, index_name, monkeypatch)
    assert live_jids(meili_client, index_name) == ground_truth(sb)  # the swap did happen
    report = reindex(cfg)
    assert report.resumed and report.swapped
    assert live_jids(meili_client, index_name) == ground_truth(sb)
    assert not any(i.startswith(f"{index_name}__build_") for i in indexes(meili_client))
    # sync's watermark comes from this record: it must name the build now live
    live_stamp = meili_client.index(index_name).get_documents({"limit": 1}).results[0].crawled_at
    recorded = last_report(cfg)
    assert recorded is not None and recorded["crawled_at"] == live_stamp


def test_several_instances_share_one_index(
    make_sandbox: Callable[..., Sandbox],
    meili: MeiliServer,
    token: str,
    index_name: str,
    meili_client: meilisearch.Client,
    tmp_path: Any,
) -> None:
    sb = make_sandbox(chats=150, instances={INST: token, "INST00000002": token + "b"})
    path = tmp_path / "multi.toml"
    path.write_text(
        f'[wawp]\nwarmup_seconds = 0\n\n[[wawp.instances]]\nid = "{INST}"\nlabel = "Cairo"\n'
        f'\n[[wawp.instances]]\nid = "INST00000002"\nlabel = "Lagos"\naccess_token = "{token}b"\n'
    )
    env = env_for(sb, token, meili, index_name)
    env.pop("WAWP_INSTANCE_ID")
    report = reindex(load_config(path, env=env))
    docs = meili_client.index(index_name).get_documents({"limit": 1000}).results
    by_instance: dict[str, set[str]] = {}
    for d in docs:
        by_instance.setdefault(d.instance_id, set()).add(d.jid)
        assert d.instance_label == {"INST00000001": "Cairo", "INST00000002": "Lagos"}[d.instance_id]
    assert by_instance == {INST: ground_truth(sb), "INST00000002": ground_truth(sb, "INST00000002")}
    assert report.new_count == len(docs)


def test_a_sync_after_a_death_between_swap_and_cleanup_cannot_undo_the_swap(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from explorer.jobs.sync import sync

    sb = make_sandbox(chats=200)
    cfg = config_for(sb)
    reindex(cfg)
    added = sb.store(INST).add(5)
    reindex_killed_after_its_swap(cfg, index_name, monkeypatch)
    for jid in ground_truth(sb):
        sb.store(INST).touch(jid)
    time.sleep(1.1)  # documents carry whole-second stamps: the sync's must differ
    sync(cfg)  # cron's sync gets the free lock and rewrites every document
    report = reindex(cfg)
    assert report.resumed and report.swapped
    assert set(added) <= live_jids(meili_client, index_name) == ground_truth(sb)
    assert not any(i.startswith(f"{index_name}__build_") for i in indexes(meili_client))


def test_one_chat_under_two_raw_ids_is_one_document_and_the_count_check_holds(
    make_sandbox: Callable[..., Sandbox],
    config_for: Callable[..., Config],
    meili_client: meilisearch.Client,
    index_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from explorer.source.wawp import WawpClient

    sb = make_sandbox(chats=200)
    cfg = config_for(sb)
    real_page = WawpClient.chats_page
    aliased: list[str] = []

    def aliasing_page(self: WawpClient, **kw: Any) -> list[Any]:
        # Some engines list a chat under x@c.us and again under x@s.whatsapp.net.
        items = real_page(self, **kw)
        out = []
        for n, item in enumerate(items):
            out.append(item)
            jid = item["id"]["_serialized"]
            alias = jid.replace("@c.us", "@s.whatsapp.net")
            following = items[n + 1]["id"]["_serialized"] if n + 1 < len(items) else "~"
            if jid.endswith("@c.us") and int(jid[-6]) % 3 == 0 and alias < following:  # sorted
                item_id = {**item["id"], "server": "s.whatsapp.net", "_serialized": alias}
                out.append({**item, "id": item_id})
                aliased.append(jid)
        return out

    monkeypatch.setattr(WawpClient, "chats_page", aliasing_page)
    report = reindex(cfg)
    assert aliased and report.swapped
    assert report.merged >= len(set(aliased)) > 0
    assert live_jids(meili_client, index_name) == ground_truth(sb)
    assert "merged into one document" in caplog.text


def test_the_summary_says_what_was_skipped(
    make_sandbox: Callable[..., Sandbox], config_for: Callable[..., Config]
) -> None:
    sb = make_sandbox(chats=120)
    report = reindex(config_for(sb))
    assert report.skipped == 1
    assert "1 skipped (status@broadcast)" in report.summary() and "0 merged" in report.summary()
