"""WhatsApp Business labels: read by each reindex, kept by sync, applied from webhooks by
listen, and a filter everywhere (CLI, Python API, MCP); against the sandbox and the real
Meilisearch."""

from __future__ import annotations

import json
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
from explorer.dev.synthetic import LABELS
from explorer.jobs.reindex import reindex
from explorer.jobs.sync import sync
from explorer.meili.query import search
from explorer.records.documents import INDEX_SETTINGS
from tests.conftest import explorer_env
from tests.test_listen import SESSION, World, wait_until, world  # noqa: F401 - the fixture

INST = "INST00000001"
OTHER = "INST00000002"
VIP = LABELS[4][0]  # VIP "gold" \ 'plus'
BILLING = LABELS[5][0]  # Billing, EU
HOT = LABELS[6][0]  # 🔥 Hot lead
LONG = LABELS[7][0]  # 300 characters
# A small LID world: a share of people behind a LID, most of whose numbers the map knows.
WORLD: dict[str, Any] = {"chats": 400, "lid_share": 0.2, "lid_known": 0.7, "lid_pairs": 0.5}


@pytest.fixture
def setup(
    make_sandbox: Callable[..., Sandbox],
    meili: MeiliServer,
    token: str,
    index_name: str,
    tmp_path: Path,
) -> Callable[..., tuple[Sandbox, Config]]:
    def make(retry_budget: float = 20, **options: Any) -> tuple[Sandbox, Config]:
        sb = make_sandbox(**{**WORLD, **options})
        path = tmp_path / "explorer.toml"
        path.write_text(
            "[wawp]\nwarmup_seconds = 0\npage_size = 40\n"
            f"retry_budget_seconds = {retry_budget}\n[reindex]\nbatch_size = 100\n"
        )
        ids = ",".join(sb.options.instances)
        env = explorer_env(sb, token, meili.url, meili.master_key, index_name,
                           WAWP_INSTANCE_ID=ids)  # fmt: skip
        return sb, load_config(path, env=env)

    return make


def documents(meili: MeiliServer, index: str) -> list[dict[str, Any]]:
    client = meilisearch.Client(meili.url, meili.master_key)
    return [dict(d) for d in client.index(index).get_documents({"limit": 100_000}).results]


def labelled(docs: list[dict[str, Any]], instance: str = INST) -> dict[str, set[str]]:
    return {d["jid"]: set(d["labels"]) for d in docs
            if d["instance_id"] == instance and d.get("labels")}  # fmt: skip


# -- reindex -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["webjs", "gows"])
def test_each_chat_carries_its_labels_with_lid_label_ids_resolved_to_the_person(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(shape=shape, merges=shape != "webjs")
    report = reindex(cfg)
    truth = sb.store(INST).expected_labels()
    docs = documents(meili, index_name)
    assert labelled(docs) == truth
    # Labels Wawp gave under a LID whose number the map knows are on the number's document.
    lid_labelled = {
        jid for label_id in sb.store(INST).label_defs
        for jid in sb.store(INST).label_chats(label_id) or [] if jid.endswith("@lid")
    }  # fmt: skip
    on_numbers = [j for j in truth if j.endswith("@c.us") and any(
        sb.store(INST).identity(sb.store(INST).lid_numbers()[lid.partition("@")[0]]) == j
        for lid in lid_labelled)]  # fmt: skip
    assert len(on_numbers) >= 3
    assert report.labels == len(LABELS) and report.labelled_chats == len(truth)
    assert f"{len(LABELS)} labels on {len(truth)} chats" in report.summary()
    one = next(d for d in docs if d.get("label_ids"))
    assert len(one["label_ids"]) == len(one["label_details"]) >= len(one["labels"])
    assert all(x["color"].startswith("#") for x in one["label_details"])


def test_the_label_fields_are_filterable_and_shown_but_not_searched() -> None:
    patterns = INDEX_SETTINGS["filterableAttributes"][0]["attributePatterns"]
    assert {"labels", "label_ids"} <= set(patterns)
    assert not {"labels", "label_ids", "label_details"} & set(
        INDEX_SETTINGS["searchableAttributes"]
    )
    assert {"labels", "label_ids", "label_details"} <= set(INDEX_SETTINGS["displayedAttributes"])


def test_the_same_label_name_in_two_instances_is_one_filter_with_both_counts(
    setup: Callable[..., Any], token: str
) -> None:
    sb, cfg = setup(chats=200, instances={INST: token, OTHER: token})
    reindex(cfg)
    result = search("", config=cfg, labels=[BILLING], limit=1000)
    by_instance = {i: sum(1 for h in result.hits if h["instance_id"] == i) for i in (INST, OTHER)}
    for inst in (INST, OTHER):
        truth = sum(1 for names in sb.store(inst).expected_labels().values() if BILLING in names)
        assert by_instance[inst] == truth > 0
    assert result.facets["labels"][BILLING] == result.total == sum(by_instance.values())
    narrowed = search("", config=cfg, labels=[BILLING], instance=OTHER, limit=1000)
    assert {h["instance_id"] for h in narrowed.hits} == {OTHER}


@pytest.mark.parametrize("name", [VIP, BILLING, HOT, LONG])
def test_odd_label_names_are_found_exactly_as_typed(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, name: str
) -> None:
    sb, cfg = setup(chats=300)
    reindex(cfg)
    truth = {j for j, names in sb.store(INST).expected_labels().items() if name in names}
    assert truth
    hits = search("", config=cfg, labels=[name], limit=1000).hits
    assert {h["jid"] for h in hits} == truth
    assert all(name in h["labels"] for h in hits)


def test_several_labels_match_any_of_them(setup: Callable[..., Any]) -> None:
    sb, cfg = setup(chats=300)
    reindex(cfg)
    truth = {j for j, names in sb.store(INST).expected_labels().items()
             if names & {VIP, HOT}}  # fmt: skip
    hits = search("", config=cfg, labels=[VIP, HOT], limit=1000).hits
    assert {h["jid"] for h in hits} == truth


def test_labels_404_indexes_as_before_and_says_so_once(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = setup(chats=150, labels_404=True)
    report = reindex(cfg)
    docs = documents(meili, index_name)
    assert report.swapped and len(docs) == report.new_count
    assert not any("labels" in d for d in docs)
    assert report.labels_unavailable == {INST: "/v2/labels answered 404"}
    lines = report.summary().splitlines()
    assert lines[0] == (f"Labels could not be read on {INST} (/v2/labels answered 404); "
                        "indexed without labels")  # fmt: skip
    assert report.to_json()["labels_unavailable"] == {INST: "/v2/labels answered 404"}


def test_labels_500_past_retries_still_completes_the_reindex_and_says_what_is_missing(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = setup(chats=150, labels_fail=1000, retry_budget=1)
    report = reindex(cfg)
    assert report.swapped and report.new_count == len(documents(meili, index_name))
    assert (
        INST in report.labels_incomplete and "/v2/labels failed" in report.labels_incomplete[INST]
    )
    assert f"The labels of {INST} are incomplete" in report.summary().splitlines()[0]


def test_sync_keeps_the_labels_of_the_chats_it_rewrites(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = setup(chats=200)
    reindex(cfg)
    truth = sb.store(INST).expected_labels()
    jid = next(j for j in sorted(truth) if j.endswith("@c.us"))
    sb.store(INST).touch(jid)
    report = sync(cfg)
    assert report.upserted >= 1
    doc = next(d for d in documents(meili, index_name) if d["jid"] == jid)
    assert set(doc["labels"]) == truth[jid] and doc["last_activity"] >= 1_764_000_000


def test_cli_search_label_repeatable_and_json(setup: Callable[..., Any]) -> None:
    sb, cfg = setup(chats=200)
    reindex(cfg)
    env = cfg_env(cfg)
    out = CliRunner().invoke(cli, ["search", "--label", VIP, "--label", HOT, "--json",
                                   "--limit", "100"], env=env)  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    truth = {j for j, n in sb.store(INST).expected_labels().items() if n & {VIP, HOT}}
    assert {h["jid"] for h in data["hits"]} == truth
    assert data["filter"] == [f'labels IN ["VIP \\"gold\\" \\\\ \'plus\'", "{HOT}"]']


def cfg_env(cfg: Config) -> dict[str, str]:
    return {
        "WAWP_BASE_URL": cfg.wawp.base_url,
        "WAWP_INSTANCE_ID": ",".join(i.id for i in cfg.wawp.instances),
        "WAWP_ACCESS_TOKEN": cfg.wawp.access_token.reveal() if cfg.wawp.access_token else "",
        "MEILI_URL": cfg.meilisearch.url,
        "MEILI_API_KEY": cfg.meilisearch.api_key.reveal() if cfg.meilisearch.api_key else "",
        "EXPLORER_INDEX": cfg.meilisearch.index,
    }


# -- listen ------------------------------------------------------------------------------


def labels_of(w: World, jid: str) -> set[str]:
    return set((w.doc(jid) or {}).get("labels") or [])


def first_labelled(w: World, label_name: str | None = None) -> tuple[str, set[str]]:
    truth = w.sandbox.store(INST).expected_labels()
    return next((j, n) for j, n in sorted(truth.items())
                if j.endswith("@c.us") and (label_name is None or label_name in n))  # fmt: skip


def test_listen_puts_a_label_on_a_chat_and_takes_it_off(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
) -> None:
    w = world()
    truth = w.sandbox.store(INST).expected_labels()
    jid = next(j for j in sorted(w.sandbox.store(INST).expected_jids())
               if j.endswith("@c.us") and HOT not in truth.get(j, set()))  # fmt: skip
    before = labels_of(w, jid)
    w.mutate(label_add=[[jid, "7"]])
    wait_until(lambda: labels_of(w, jid) == before | {HOT}, "the label on the chat")
    doc = w.doc(jid) or {}
    assert (
        "7" in doc["label_ids"]
        and {"id": "7", "name": HOT, "color": "#ff9dff"} in doc["label_details"]
    )
    w.mutate(label_remove=[[jid, "7"]])
    wait_until(lambda: labels_of(w, jid) == before, "the label taken off")
    assert w.applied() >= 2


def test_listen_renames_a_label_on_every_chat_and_a_deleted_one_disappears(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
) -> None:
    w = world()
    truth = w.sandbox.store(INST).expected_labels()
    carrying = sorted(j for j, n in truth.items() if "Paid" in n)
    assert len(carrying) >= 3
    renamed = 'Paid "in full", thanks 🙏'
    w.mutate(label_upsert=[{"id": "4", "name": renamed, "color": 3, "colorHex": "#dfaef0"}])
    for jid in carrying:
        wait_until(lambda j=jid: renamed in labels_of(w, j) and "Paid" not in labels_of(w, j),
                   f"the new name on {jid}")  # fmt: skip
    hits = search("", config=w.cfg, labels=[renamed], limit=1000).hits
    assert sorted(h["jid"] for h in hits) == carrying
    w.mutate(label_delete=["4"])
    for jid in carrying:
        wait_until(lambda j=jid: renamed not in labels_of(w, j), f"the label gone from {jid}")
        assert "4" not in (w.doc(jid) or {}).get("label_ids", [])
    assert search("", config=w.cfg, labels=[renamed]).total == 0


def test_listen_resolves_a_label_given_under_a_lid_to_the_person(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
) -> None:
    w = world(lid_share=0.3, lid_known=1.0, lid_pairs=0.0)
    store = w.sandbox.store(INST)
    number = next(
        i
        for i in sorted(store.lid_numbers().values())
        if store.identity(i).endswith("@c.us")
        and BILLING not in store.expected_labels().get(store.identity(i), set())
    )
    lid, phone = f"{store.spec(number).lid}@lid", store.identity(number)
    w.mutate(label_add=[[lid, "6"]])
    wait_until(lambda: BILLING in labels_of(w, phone), "the label on the number's document")
    assert w.doc(lid) is None  # no "hidden number" document for the LID


def test_listen_keeps_an_unknown_labels_id_then_writes_its_name_from_wawp(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
) -> None:
    from explorer.dev.webhooks import label_chat_event

    w = world()
    jid, before = first_labelled(w)
    # Wawp knows label 42, listen has heard nothing of it.
    w.sandbox.store(INST).upsert_label({"id": "42", "name": "Returns, 'EU'", "colorHex": "#123456"})
    w.hooks.send(label_chat_event("label.chat.added", SESSION, jid, "42"))
    wait_until(lambda: "42" in (w.doc(jid) or {}).get("label_ids", []), "the label's id")
    wait_until(lambda: labels_of(w, jid) == before | {"Returns, 'EU'"}, "its name from Wawp")


def test_listen_skips_and_counts_a_label_on_a_chat_the_index_does_not_hold(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
) -> None:
    from explorer.dev.webhooks import label_chat_event, message

    w = world()
    ghost = "4915199999999@c.us"
    w.hooks.send(label_chat_event("label.chat.added", SESSION, ghost, "1"))
    marker = "4915100000002@c.us"
    w.hooks.send(message(SESSION, marker, 1_764_000_100))
    wait_until(lambda: w.doc(marker), "the marker after the label event")
    wait_until(lambda: w.metrics().get("explorer_webhook_label_unknown_chats_total") == 1,
               "the skipped label counted")  # fmt: skip
    assert w.doc(ghost) is None


# -- MCP ---------------------------------------------------------------------------------


def test_mcp_search_chats_filters_by_labels_and_counts_them(setup: Callable[..., Any]) -> None:
    from explorer.doors.mcp_server import Explorer

    sb, cfg = setup(chats=300)
    reindex(cfg)
    truth = {j for j, n in sb.store(INST).expected_labels().items() if n & {VIP, LONG}}
    ex = Explorer(cfg)
    try:
        found = ex.search_chats(labels=[VIP, LONG], limit=50)
    finally:
        ex.close()
    assert found["total"] == len(truth) and {c["jid"] for c in found["chats"]} <= truth
    assert sum(found["by_label"].get(n, 0) for n in (VIP, LONG)) >= len(truth)
    assert all(set(c["labels"]) & {VIP, LONG} for c in found["chats"])


def test_zombies_with_a_label_lists_only_silent_chats_carrying_it(
    setup: Callable[..., Any],
) -> None:
    sb, cfg = setup(chats=300)
    reindex(cfg)
    out = CliRunner().invoke(cli, ["zombies", "--days", "30", "--label", "New customer",
                                   "--json"], env=cfg_env(cfg))  # fmt: skip
    assert out.exit_code == 4, out.output
    found = {c["jid"] for c in json.loads(out.output)["chats"]}
    labelled = {j for j, n in sb.store(INST).expected_labels().items() if "New customer" in n}
    assert found and found <= labelled
    live = CliRunner().invoke(cli, ["zombies", "--label", "VIP", "--live"], env=cfg_env(cfg))
    assert live.exit_code == 2 and "label cannot be used with --live" in live.output
