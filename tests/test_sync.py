"""`explorer sync` on the sandbox and the real Meilisearch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import meilisearch
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import Config, load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.errors import MeiliError, WawpProtocolError
from explorer.jobs.reindex import reindex
from explorer.jobs.state import IndexBusy, index_lock, state_dir
from explorer.jobs.sync import sync
from tests.conftest import explorer_env, ground_truth

INST = "INST00000001"


@pytest.fixture
def setup(
    make_sandbox: Callable[..., Sandbox], meili: MeiliServer, token: str, index_name: str,
    tmp_path: Path,
) -> Callable[..., tuple[Sandbox, Config, dict[str, str]]]:  # fmt: skip
    def make(**options: Any) -> tuple[Sandbox, Config, dict[str, str]]:
        options.setdefault("chats", 400)
        sb = make_sandbox(**options)
        path = tmp_path / "explorer.toml"
        path.write_text("[wawp]\nwarmup_seconds = 0\npage_size = 50\n")
        env = explorer_env(
            sb, token, meili.url, meili.master_key, index_name, EXPLORER_CONFIG=str(path)
        )
        return sb, load_config(path, env=env), env

    return make


def live(meili: MeiliServer, index: str) -> dict[str, dict[str, Any]]:
    client = meilisearch.Client(meili.url, meili.master_key)
    return {d.jid: dict(d) for d in client.index(index).get_documents({"limit": 10_000}).results}


def test_new_chat_appears_after_one_sync(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg, _ = setup()
    reindex(cfg)
    added = sb.store(INST).add(2)
    report = sync(cfg)
    docs = live(meili, index_name)
    assert set(added) <= set(docs)
    assert report.upserted >= 2
    assert set(docs) == ground_truth(sb)


def test_renamed_chat_is_updated(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg, _ = setup()
    reindex(cfg)
    sync(cfg)
    target = sorted(ground_truth(sb))[7]
    store = sb.store(INST)
    store.rename(target, "Freshly Renamed Group")
    store.touch(target)  # a rename is a message: the chat's activity moves too
    sync(cfg)
    assert live(meili, index_name)[target]["name"] == "Freshly Renamed Group"


def test_unchanged_account_costs_one_or_two_requests(setup: Callable[..., Any]) -> None:
    sb, cfg, _ = setup(chats=2000)
    reindex(cfg)
    sync(cfg)  # first sync after the reindex re-applies the reindex window
    before = sb.chat_requests
    report = sync(cfg)
    assert sb.chat_requests - before <= 2
    assert report.instances[0].requests <= 2


def test_sync_never_deletes(setup: Callable[..., Any], meili: MeiliServer, index_name: str) -> None:
    sb, cfg, _ = setup()
    reindex(cfg)
    gone = sorted(ground_truth(sb))[:3]
    sb.store(INST).delete(gone)
    sync(cfg)
    assert set(gone) <= set(live(meili, index_name))


def test_sync_waits_then_skips_while_a_reindex_runs(setup: Callable[..., Any]) -> None:
    sb, cfg, env = setup()
    reindex(cfg)
    with index_lock(state_dir(cfg), cfg.meilisearch.index):
        with pytest.raises(IndexBusy):
            sync(cfg, wait=0.3)
        result = CliRunner().invoke(cli, ["sync", "--wait", "0.2"], env=env)
    assert result.exit_code == 0 and "sync skipped" in result.output


def test_sync_during_a_reindex_loses_nothing(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg, _ = setup(chats=600, latency_ms=20)
    reindex(cfg)
    store = sb.store(INST)
    errors: list[BaseException] = []

    def run_reindex() -> None:
        try:
            reindex(cfg)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=run_reindex)
    thread.start()
    time.sleep(0.2)
    added = store.add(3)  # arrives while the build crawls
    sync(cfg, wait=60)  # waits for the reindex, then applies
    thread.join()
    assert not errors
    sync(cfg)
    docs = live(meili, index_name)
    assert set(added) <= set(docs) and set(docs) == ground_truth(sb)


def test_sync_after_a_resumed_reindex_reapplies_what_the_swap_dropped(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg, _ = setup(chats=500)
    reindex(cfg)
    sync(cfg)
    store = sb.store(INST)

    def crash(batches: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)  # a build starts, crawls a bit, dies
    added = store.add(2)
    sync(cfg)  # applied to the live index...
    reindex(cfg)  # ...then the resumed build (older crawl) is swapped in
    sync(cfg)  # and the next sync brings them back
    assert set(added) <= set(live(meili, index_name))


def test_sync_without_an_index_says_run_reindex(setup: Callable[..., Any]) -> None:
    _, cfg, _ = setup()
    with pytest.raises(MeiliError, match="does not exist yet: run `explorer reindex`"):
        sync(cfg)


def test_uppercase_desc_quirk_is_handled(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg, _ = setup(desc_quirk=True)
    reindex(cfg)
    added = sb.store(INST).add(1)
    sync(cfg)
    assert set(added) <= set(live(meili, index_name))


def test_summary_json_and_stats(setup: Callable[..., Any]) -> None:
    sb, cfg, env = setup()
    reindex(cfg)
    sb.store(INST).add(1)
    runner = CliRunner()
    result = runner.invoke(cli, ["sync", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["upserted"] >= 1 and data["instances"][0]["instance_id"] == INST
    line = runner.invoke(cli, ["sync"], env=env)
    assert line.exit_code == 0 and line.stdout.startswith("synced: ")
    stats = json.loads(runner.invoke(cli, ["stats", "--json"], env=env).stdout)
    assert INST in stats["last_sync"]


def test_newest_first_impossible_is_a_clear_error(setup: Callable[..., Any]) -> None:
    import httpx

    from explorer.jobs.sync import _newest_first
    from explorer.secrets import Secret
    from explorer.source.crawl import PageSource
    from explorer.source.wawp import WawpClient

    old_first = [{"id": f"{i}@c.us", "conversationTimestamp": 1_700_000_000 + i} for i in range(5)]
    client = WawpClient(
        "http://wawp.test", "MOCK", Secret("mock-token-1234"),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=old_first)),
    )  # fmt: skip
    source = PageSource(
        client, page_size=50, overlap=5, sort_by="conversationTimestamp", sort_order="desc"
    )
    with client, pytest.raises(WawpProtocolError, match="ignores sortOrder"):
        _newest_first(source)


def _rename_and_touch(sb: Sandbox, jids: list[str]) -> dict[str, str]:
    store = sb.store(INST)
    names = {}
    for n, jid in enumerate(jids):
        names[jid] = f"Changed Since Sync {n}"
        store.rename(jid, names[jid])
        store.touch(jid)
    return names


@pytest.mark.parametrize("cap", [1, 7, 30])
def test_sync_is_complete_when_the_server_caps_pages(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, cap: int
) -> None:
    sb, cfg, _ = setup(chats=300, max_limit=cap)
    reindex(cfg)
    sync(cfg)
    names = _rename_and_touch(sb, sorted(ground_truth(sb))[:70])
    sync(cfg)
    docs = live(meili, index_name)
    assert {jid: docs[jid]["name"] for jid in names} == names


def test_sync_is_complete_under_churn_with_a_cap_and_the_desc_quirk(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg, _ = setup(chats=300)
    reindex(cfg)
    sync(cfg)
    names = _rename_and_touch(sb, sorted(ground_truth(sb))[10:60])
    sb.options.max_limit = 13
    sb.options.desc_quirk = True
    sb.options.churn = 1
    sync(cfg)
    docs = live(meili, index_name)
    surviving = set(names) & ground_truth(sb)
    assert len(surviving) > 30
    assert {jid: docs[jid]["name"] for jid in surviving} == {j: names[j] for j in surviving}
