"""Customers behind LIDs: resolved, one document per person, findable by number, hidden
numbers shown as such; against the sandbox's LID world and the real Meilisearch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import meilisearch
import phonenumbers
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import Config, load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.jobs.reindex import dry_run, last_report, reindex
from explorer.jobs.sync import sync
from explorer.meili.query import search
from explorer.records.chats import Chat, normalize_chat
from explorer.records.documents import doc_id
from explorer.secrets import Secret
from explorer.source.lids import LidMap, lookup_lid, merge, read_lid_map, resolve
from explorer.source.wawp import RetryPolicy, WawpClient
from tests.conftest import explorer_env, ground_truth

INST = "INST00000001"
SHAPES = ["webjs", "noweb", "gows"]
# A LID world in which every engine lists a person under both ids (older WAHA builds, and
# WEBJS always): the case where resolving and merging matter most.
WORLD: dict[str, Any] = {"chats": 500, "lid_share": 0.2, "lid_known": 0.8, "lid_pairs": 0.5}


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
        env = explorer_env(sb, token, meili.url, meili.master_key, index_name)
        return sb, load_config(path, env=env)

    return make


def people(sb: Sandbox) -> list[dict[str, Any]]:
    """The sandbox's word on every document of a complete, merged index."""
    resp = httpx.get(f"{sb.url}/_sandbox/ids", params={"instance_id": INST, "format": "json"})
    resp.raise_for_status()
    return [json.loads(line) for line in resp.text.splitlines()]


def documents(meili: MeiliServer, index: str) -> dict[str, dict[str, Any]]:
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = client.index(index).get_documents({"limit": 100_000}).results
    by_jid = {d.jid: dict(d) for d in docs}
    assert len(by_jid) == len(docs)
    return by_jid


def resolved_lids(sb: Sandbox) -> list[dict[str, Any]]:
    """People listed under a LID whose number the index must know."""
    return [p for p in people(sb) if any(j.endswith("@lid") for j in p["listed"]) and p["phone"]]


def forms(phone: str) -> dict[str, str]:
    """The number as an agent might type it: spaced international, national, last digits."""
    number = phonenumbers.parse(phone)
    return {
        "spaced": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        "national": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        "last digits": phone[-7:],
    }


@pytest.mark.parametrize("shape", SHAPES)
def test_a_resolved_lid_chat_is_found_by_its_number_in_every_form(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(shape=shape, merges=False)
    report = reindex(cfg)
    targets = resolved_lids(sb)
    assert len(targets) >= 20
    assert report.lids_resolved == len(targets) and report.lid_chats > report.lids_resolved
    docs = documents(meili, index_name)
    for person in targets[:8]:
        doc = docs[person["jid"]]
        assert doc["phone"] == person["phone"] and doc["lid"] == person["lid"]
        assert doc["phone_display"] and doc["phone_display"] != "hidden number"
        assert doc["wa_link"] == f"wa.me/{person['phone'][1:]}" and not doc["phone_hidden"]
        for form, typed in forms(person["phone"]).items():
            hits = search(typed, config=cfg, limit=5).hits
            assert person["jid"] in [h["jid"] for h in hits], f"{form} {typed!r} missed"


@pytest.mark.parametrize("shape", SHAPES)
def test_a_person_listed_twice_is_one_document(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(shape=shape, merges=False)
    report = reindex(cfg)
    truth = people(sb)
    pairs = [p for p in truth if len(p["listed"]) == 2]
    assert len(pairs) >= 10 and report.lid_pairs_merged == len(pairs)
    docs = documents(meili, index_name)
    assert set(docs) == {p["jid"] for p in truth} == ground_truth(sb)
    for person in pairs:
        doc = docs[person["jid"]]
        assert {x["jid"] for x in doc["listings"]} == set(person["listed"])
        assert doc["lid"] == person["lid"] and doc["phone"] == person["phone"]
        assert doc["last_activity"] == person["last_activity"]
        if shape == "webjs":  # the only engine that counts unread messages
            assert doc["unread_count"] == person["unread"]
        assert doc_id(INST, f"{person['lid']}@lid") not in {d["id"] for d in docs.values()}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_unresolved_lid_is_shown_hidden_and_found_by_name_and_lid(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(shape=shape)
    reindex(cfg)
    hidden = [p for p in people(sb) if p["hidden"]]
    assert hidden
    docs = documents(meili, index_name)
    for person in hidden:
        doc = docs[person["jid"]]
        assert doc["phone"] is None and doc["wa_link"] is None and doc["phone_hidden"]
        assert doc["phone_display"] == "hidden number"
        assert person["lid"] not in doc["display_name"]
    named = next(p for p in hidden if docs[p["jid"]]["name"])
    by_lid = search(named["lid"], config=cfg, limit=5).hits
    assert named["jid"] in [h["jid"] for h in by_lid]
    by_name = search(docs[named["jid"]]["name"], config=cfg, number_hidden=True, limit=1000)
    assert named["jid"] in [h["jid"] for h in by_name.hits]
    only_hidden = search("", config=cfg, number_hidden=True, limit=1000)
    assert {h["jid"] for h in only_hidden.hits} == {p["jid"] for p in hidden}
    others = search("", config=cfg, number_hidden=False, limit=1000)
    assert others.total == len(docs) - len(hidden)


def test_a_username_is_found_with_or_without_the_at(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = setup(shape="noweb", merges=False)
    reindex(cfg)
    person = next(p for p in people(sb) if p["username"])
    for typed in (person["username"], "@" + person["username"]):
        hits = search(typed, config=cfg, limit=5).hits
        assert person["jid"] in [h["jid"] for h in hits], typed
    assert documents(meili, index_name)[person["jid"]]["username"] == person["username"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_mapping_learnt_between_two_syncs_moves_the_chat(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(shape=shape, merges=False)
    reindex(cfg)
    sync(cfg)
    hidden = [p for p in people(sb) if p["hidden"]][:3]
    assert len(hidden) == 3
    resp = httpx.post(
        f"{sb.url}/_sandbox/mutate",
        params={"instance_id": INST},
        json={"learn": [f"{p['lid']}@lid" for p in hidden]},
    )
    resp.raise_for_status()
    report = sync(cfg)
    assert sum(i.moved for i in report.instances) == 3
    docs = documents(meili, index_name)
    assert set(docs) == ground_truth(sb)
    for person in hidden:
        assert f"{person['lid']}@lid" not in docs
        moved = next(d for d in docs.values() if d["lid"] == person["lid"])
        assert moved["phone"] and not moved["phone_hidden"]
        assert person["jid"] not in docs
        hits = search(forms(moved["phone"])["spaced"], config=cfg, limit=5).hits
        assert moved["jid"] in [h["jid"] for h in hits]
    assert "moved" in report.summary()
    again = sync(cfg)
    assert sum(i.moved for i in again.instances) == 0
    assert set(documents(meili, index_name)) == set(docs)
    assert again.instances[0].lid_requests == 1  # the count: the map kept from the last run


@pytest.mark.parametrize("shape", SHAPES)
def test_an_instance_without_the_lids_route_is_indexed_as_today(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(shape=shape, merges=False, lids_404=True)
    report = reindex(cfg)
    assert report.swapped and report.lids_unavailable == {INST: "/v2/lids answered 404"}
    lines = [line for line in report.summary().splitlines() if "could not be resolved" in line]
    assert len(lines) == 1 and INST in lines[0]
    assert set(documents(meili, index_name)) == ground_truth(sb)
    # Only NOWEB's own pnJid can still name a number.
    assert (report.lids_resolved > 0) == (shape == "noweb")


def reindex_by_cli(
    sb: Sandbox, cfg: Config, token: str, tmp_path: Path
) -> tuple[list[str], dict[str, Any]]:
    """`explorer reindex` as cron runs it, with the test's config file: the lines it
    printed, and its report as `explorer stats` reads it."""
    key = cfg.meilisearch.api_key
    assert key is not None
    env = explorer_env(sb, token, cfg.meilisearch.url, key.reveal(), cfg.meilisearch.index)
    env["EXPLORER_CONFIG"] = str(tmp_path / "explorer.toml")
    result = CliRunner().invoke(cli, ["reindex", "--quiet"], env=env)
    assert result.exit_code == 0, result.output
    report = last_report(cfg)
    assert report is not None
    return result.output.strip().splitlines(), report


def assert_one_document_per_person(sb: Sandbox, meili: MeiliServer, index: str) -> None:
    """Every person the sandbox lists twice is one document holding both listings."""
    truth = people(sb)
    docs = documents(meili, index)
    assert set(docs) == {p["jid"] for p in truth} == ground_truth(sb)
    pairs = [p for p in truth if len(p["listed"]) == 2]
    assert len(pairs) >= 10
    for person in pairs:
        doc = docs[person["jid"]]
        assert {x["jid"] for x in doc["listings"]} == set(person["listed"]), person["jid"]
        assert doc["lid"] == person["lid"] and doc["phone"] == person["phone"]
        assert doc["last_activity"] == person["last_activity"]


def test_pn_jid_twins_are_merged_when_wawp_has_no_lids_route(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, token: str, tmp_path: Path
) -> None:
    sb, cfg = setup(shape="noweb", lids_404=True, pn_twins=True)
    lines, report = reindex_by_cli(sb, cfg, token, tmp_path)
    assert (
        lines[0]
        == f"LIDs could not be resolved on {INST} (/v2/lids answered 404); indexed as they are"
    )
    truth = people(sb)
    pairs = [p for p in truth if len(p["listed"]) == 2]
    assert report["swapped"] and report["new_count"] == len(truth)
    assert report["lids_unavailable"] == {INST: "/v2/lids answered 404"}
    assert report["lid_pairs_merged"] == len(pairs)
    listed = [j for p in truth for j in p["listed"]]
    assert report["lid_chats"] == sum(1 for j in listed if j.endswith("@lid"))
    assert report["lids_resolved"] == len(resolved_lids(sb))
    # Both orders occur: the phone chat before its LID chat in the crawl, and after.
    assert {p["listed"][0] < p["listed"][1] for p in pairs} == {True, False}
    assert_one_document_per_person(sb, meili, index_name)
    again = dry_run(cfg)  # a dry run counts the same people
    assert (again.new_count, again.added, again.removed) == (len(truth), 0, 0)
    assert again.lid_pairs_merged == len(pairs)


def test_a_lid_map_that_breaks_midway_still_reindexes_and_says_so(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, token: str, tmp_path: Path
) -> None:
    # Pages of 40 mappings; from the third on, every request answers 500 past its retries.
    sb, cfg = setup(
        chats=1500, shape="noweb", pn_twins=True, max_limit=40, lids_fail_from=80, retry_budget=1
    )
    lines, report = reindex_by_cli(sb, cfg, token, tmp_path)
    assert report["swapped"] and report["retries"] > 0
    why = report["lids_incomplete"][INST]
    assert "80 mappings" in why and "500" in why
    assert lines[:-1] == [
        f"The LID map of {INST} is incomplete ({why}); LIDs it did not give are indexed as they are"
    ]
    truth = people(sb)
    assert report["new_count"] == len(truth)
    assert report["lid_pairs_merged"] == sum(1 for p in truth if len(p["listed"]) == 2)
    # Resolved: the 80 mappings read, and beyond them the chats that name their number.
    assert report["lids_resolved"] == len(resolved_lids(sb)) > 80
    assert_one_document_per_person(sb, meili, index_name)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_lid_map_page_that_fails_is_retried(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str, shape: str
) -> None:
    sb, cfg = setup(chats=1500, lids_fail=2, shape=shape, merges=False)
    report = reindex(cfg)
    assert report.retries >= 2 and sb.lid_requests >= 2 + 1
    assert set(documents(meili, index_name)) == ground_truth(sb)
    assert report.lids_resolved == len(resolved_lids(sb))


def test_the_lid_map_is_read_in_pages_at_once_and_one_lid_looked_up(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=4000, lid_share=0.3, lid_known=0.9, max_limit=100)
    with WawpClient(sb.url, INST, Secret(token), retry=RetryPolicy(budget_seconds=5)) as client:
        lids = read_lid_map(client, page_size=1000, concurrency=3)
        truth = resolved_lids(sb)
        assert len(lids) == len(truth) > 300  # pages capped at 100, followed
        assert all(lids.phone_of(f"{p['lid']}@lid") == p["phone"][1:] + "@c.us" for p in truth)
        person = truth[0]
        assert lookup_lid(client, f"{person['lid']}@lid") == person["phone"][1:] + "@c.us"
        hidden = next(p for p in people(sb) if p["hidden"])
        assert lookup_lid(client, hidden["lid"]) is None
    gone = make_sandbox(chats=50, lids_404=True)
    with WawpClient(gone.url, INST, Secret(token)) as client:
        assert read_lid_map(client).unavailable == "/v2/lids answered 404"
        assert lookup_lid(client, "123@lid") is None


def test_an_interrupted_reindex_without_the_lids_route_resumes_and_merges_pn_jid_twins(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = setup(chats=900, shape="noweb", lids_404=True, pn_twins=True)

    def crash(batches: int) -> None:
        if batches == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    report = reindex(cfg)
    assert report.resumed and report.swapped
    assert report.new_count == len(people(sb))
    assert_one_document_per_person(sb, meili, index_name)


def test_an_interrupted_reindex_resumes_and_still_merges_pairs(
    setup: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = setup(chats=900)

    def crash(batches: int) -> None:
        if batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(cfg, after_batch=crash)
    report = reindex(cfg)
    assert report.resumed
    truth = people(sb)
    docs = documents(meili, index_name)
    assert set(docs) == {p["jid"] for p in truth}
    for person in (p for p in truth if len(p["listed"]) == 2):
        assert docs[person["jid"]]["unread_count"] == person["unread"]


def test_among_equal_matches_the_most_recently_active_comes_first(
    setup: Callable[..., Any],
) -> None:
    sb, cfg = setup(chats=3000)
    reindex(cfg)
    hits = search("Liam", config=cfg, limit=50).hits
    exact = [h for h in hits if h["name"] == "Liam"]
    assert len(exact) >= 3
    stamps = [h["last_activity"] or 0 for h in exact]
    assert stamps == sorted(stamps, reverse=True)


def test_the_cli_counts_lids_and_finds_a_resolved_one_by_number(
    setup: Callable[..., Any], token: str
) -> None:
    sb, cfg = setup(merges=False)
    key = cfg.meilisearch.api_key
    assert key is not None
    env = explorer_env(sb, token, cfg.meilisearch.url, key.reveal(), cfg.meilisearch.index)
    result = CliRunner().invoke(cli, ["reindex", "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["lid_chats"] > out["lids_resolved"] > 0 and out["lid_pairs_merged"] > 0
    person = resolved_lids(sb)[0]
    typed = forms(person["phone"])["spaced"]
    found = CliRunner().invoke(cli, ["search", typed, "--json", "--limit", "5"], env=env)
    assert person["jid"] in [h["jid"] for h in json.loads(found.output)["hits"]], typed


def _person(jid: str, name: str, ts: int, unread: int) -> Chat:
    raw = {"id": jid, "name": name, "timestamp": ts, "unreadCount": unread, "isGroup": False}
    chat = normalize_chat(raw, INST)
    assert chat is not None
    return resolve(chat, LidMap(INST, {"123@lid": "201001234567@c.us"}))


def test_merge_keeps_each_listing_once() -> None:
    lid_side = _person("123@lid", "Liam", 50, 2)
    phone_side = _person("201001234567@c.us", "+20 100 123 4567", 90, 3)
    both = merge(lid_side, phone_side)
    assert both.jid == "201001234567@c.us" and both.name == "Liam"
    assert (both.last_activity, both.unread_count) == (90, 5)
    again = merge(both, _person("123@lid", "Liam", 120, 1))  # a later sync meets it again
    assert (again.last_activity, again.unread_count) == (120, 4)
