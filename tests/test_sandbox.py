"""The sandbox speaks Wawp over real HTTP: shapes, envelopes, errors and every fault."""

from __future__ import annotations

import json
import socket
import socketserver
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from tests.conftest import ground_truth

INST = "INST00000001"


def get(sb: Sandbox, token: str, path: str = "/v2/chats", **params: Any) -> httpx.Response:
    query = {"instance_id": INST, "access_token": token, **params}
    return httpx.get(sb.url + path, params=query, timeout=10)


def all_ids(sb: Sandbox, token: str, page: int = 100, **params: Any) -> list[str]:
    ids: list[str] = []
    offset = 0
    while True:
        batch = get(sb, token, limit=page, offset=offset, sortBy="id", **params).json()
        ids += [c["id"]["_serialized"] if isinstance(c["id"], dict) else c["id"] for c in batch]
        if len(batch) < page:
            return ids
        offset += page


def test_webjs_shape(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=300, shape="webjs")
    chats = get(sb, token, limit=300, offset=0).json()
    assert isinstance(chats, list) and len(chats) == 300
    sample = chats[0]
    assert set(sample["id"]) == {"server", "user", "_serialized"}
    assert {"name", "isGroup", "unreadCount", "archived", "pinned", "isMuted"} <= set(sample)
    servers = {c["id"]["server"] for c in chats}
    assert {"c.us", "g.us", "lid"} <= servers
    assert all(c["isGroup"] == (c["id"]["server"] == "g.us") for c in chats)


def test_noweb_shape(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=300, shape="noweb")
    chats = get(sb, token, limit=300, offset=0).json()
    ids = [c["id"] for c in chats]
    assert all(isinstance(i, str) for i in ids)
    assert any(i.endswith("@s.whatsapp.net") for i in ids)
    assert not any(i.endswith("@c.us") for i in ids)
    assert all("isGroup" not in c and "unreadCount" not in c for c in chats)
    stamps = [c["conversationTimestamp"] for c in chats]
    assert any(isinstance(s, dict) and {"low", "high"} <= set(s) for s in stamps)
    assert any(isinstance(s, str) for s in stamps)
    assert any(isinstance(c.get("pinned"), int) for c in chats)


def test_gows_shape(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=200, shape="gows")
    chats = get(sb, token, limit=200, offset=0).json()
    assert all(set(c) == {"id", "name", "conversationTimestamp"} for c in chats)


@pytest.mark.parametrize("envelope", ["bare", "data", "indexed"])
def test_envelopes(make_sandbox: Callable[..., Sandbox], token: str, envelope: str) -> None:
    sb = make_sandbox(chats=30, envelope=envelope)
    body = get(sb, token, limit=10, offset=5).json()
    if envelope == "bare":
        items = body
    elif envelope == "data":
        items = body["data"]
    else:
        assert list(body) == [str(n) for n in range(10)]
        items = [body[str(n)] for n in range(10)]
    bare = make_sandbox(chats=30, envelope="bare")
    assert items == get(bare, token, limit=10, offset=5).json()
    assert len(items) == 10


def test_names_cover_scripts_missing_and_duplicates(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=3000, shape="gows")
    names = [c["name"] for c in get(sb, token, limit=3000, offset=0).json()]
    text = "".join(names)
    assert any("\u0600" <= ch <= "\u06ff" for ch in text)  # Arabic
    assert any("\u0400" <= ch <= "\u04ff" for ch in text)  # Cyrillic
    assert any("\u0900" <= ch <= "\u097f" for ch in text)  # Devanagari
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)  # CJK
    assert any(ch in text for ch in "éüèÁñ")  # accented Latin
    assert any(ord(ch) > 0x1F000 for ch in text)  # emoji
    assert "" in names
    assert len(set(names)) < len(names) - 100  # plenty of duplicate names


def test_jid_kinds_are_all_present(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=3000, shape="gows")
    ids = [c["id"] for c in get(sb, token, limit=3000, offset=0).json()]
    assert "status@broadcast" in ids
    assert any(i.startswith("120363") and i.endswith("@g.us") for i in ids)
    assert any("-" in i and i.endswith("@g.us") for i in ids)  # old-style groups
    for suffix in ("@lid", "@newsletter", "@c.us"):
        assert any(i.endswith(suffix) for i in ids)
    assert any(i.endswith("@broadcast") and i != "status@broadcast" for i in ids)
    assert len(set(ids)) == len(ids)


def test_data_is_deterministic_per_seed(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    a = get(make_sandbox(chats=50, seed=7), token, limit=50, offset=0).json()
    b = get(make_sandbox(chats=50, seed=7), token, limit=50, offset=0).json()
    c = get(make_sandbox(chats=50, seed=8), token, limit=50, offset=0).json()
    assert a == b and a != c


def test_sorting_and_pages(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=120, shape="gows")
    asc = all_ids(sb, token, page=25, sortOrder="asc")
    assert asc == sorted(asc) and len(asc) == 120
    desc = [
        c["id"] for c in get(sb, token, limit=200, offset=0, sortBy="id", sortOrder="desc").json()
    ]
    assert desc == asc[::-1]
    by_ts = get(sb, token, limit=200, offset=0, sortBy="conversationTimestamp", sortOrder="desc")
    stamps = [c["conversationTimestamp"] for c in by_ts.json()]
    assert stamps == sorted(stamps, reverse=True)
    by_name = [c["name"] for c in get(sb, token, limit=200, offset=0, sortBy="name").json()]
    assert by_name == sorted(by_name)


def test_uppercase_desc_is_honoured_unless_quirk(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    plain = make_sandbox(chats=20, shape="gows")
    ids = [c["id"] for c in get(plain, token, limit=20, offset=0, sortOrder="DESC").json()]
    assert ids == sorted(ids, reverse=True)
    quirky = make_sandbox(chats=20, shape="gows", desc_quirk=True)
    ids = [c["id"] for c in get(quirky, token, limit=20, offset=0, sortOrder="DESC").json()]
    assert ids == sorted(ids)
    ids = [c["id"] for c in get(quirky, token, limit=20, offset=0, sortOrder="desc").json()]
    assert ids == sorted(ids, reverse=True)


def test_no_limit_returns_everything_ignoring_offset(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=40)
    assert len(get(sb, token, offset=30).json()) == 40


def test_ground_truth_matches_a_full_listing(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=500, shape="noweb")
    listed = {i.replace("@s.whatsapp.net", "@c.us") for i in all_ids(sb, token)}
    assert ground_truth(sb) == listed - {"status@broadcast"}


def test_mutations_show_in_listing_and_truth(sandbox: Sandbox, token: str) -> None:
    store = sandbox.store(INST)
    victim = next(iter(ground_truth(sandbox)))
    added = store.add(2)
    store.delete([victim])
    truth = ground_truth(sandbox)
    assert victim not in truth and set(added) <= truth
    listed = set(all_ids(sandbox, token))
    assert victim not in listed and set(added) <= listed
    store.rename(added[0], "Brand New Name")
    chats = get(sandbox, token, limit=1000, offset=0).json()
    assert {c["id"]["_serialized"]: c["name"] for c in chats}[added[0]] == "Brand New Name"


def test_mutate_endpoint(sandbox: Sandbox, token: str) -> None:
    resp = httpx.post(f"{sandbox.url}/_sandbox/mutate", json={"instance_id": INST, "add": 3})
    assert resp.status_code == 200 and len(resp.json()["added"]) == 3
    assert set(resp.json()["added"]) <= ground_truth(sandbox)


# -- errors -------------------------------------------------------------------------------


def test_wrong_or_missing_token_is_401(sandbox: Sandbox) -> None:
    for token in ("nope", ""):
        resp = get(sandbox, token, limit=1, offset=0)
        assert resp.status_code == 401
        assert resp.json() == {
            "status": 401,
            "message": "Unauthorized",
            "error": "Invalid or missing access token",
        }


def test_header_token_is_accepted(sandbox: Sandbox, token: str) -> None:
    resp = httpx.get(
        sandbox.url + "/v2/chats",
        params={"instance_id": INST, "limit": 1, "offset": 0},
        headers={"access-token": token},
    )
    assert resp.status_code == 200


def test_unknown_instance_is_404(sandbox: Sandbox, token: str) -> None:
    resp = httpx.get(
        sandbox.url + "/v2/chats", params={"instance_id": "NOPE", "access_token": token}
    )
    assert resp.status_code == 404 and "instance_id" in resp.json()["error"]


@pytest.mark.parametrize(
    "params",
    [{"limit": "x"}, {"limit": -1}, {"offset": -5}, {"sortBy": "messageTimestamp"}],
)
def test_bad_parameters_are_400(sandbox: Sandbox, token: str, params: dict[str, Any]) -> None:
    resp = get(sandbox, token, **{"limit": 10, "offset": 0, **params})
    assert resp.status_code == 400
    body = resp.json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    assert isinstance(body["message"], list)


def test_missing_instance_is_400(sandbox: Sandbox, token: str) -> None:
    resp = httpx.get(sandbox.url + "/v2/chats", params={"access_token": token})
    assert resp.status_code == 400


def test_session_info(sandbox: Sandbox, token: str) -> None:
    body = get(sandbox, token, "/v2/session/info").json()
    assert body["status"] == "WORKING" and body["me"]["id"].endswith("@c.us")


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["202", "422", "empty"])
def test_cold_start(make_sandbox: Callable[..., Sandbox], token: str, mode: str) -> None:
    sb = make_sandbox(chats=10, cold_start=0.6, cold_mode=mode)
    resp = get(sb, token, limit=10, offset=0)
    if mode == "202":
        assert resp.status_code == 202
    elif mode == "422":
        assert resp.status_code == 422
        assert resp.json()["status"] == "STARTING" and resp.json()["expected"] == ["WORKING"]
    else:
        assert resp.status_code == 200 and resp.json() == []
    assert get(sb, token, "/v2/session/info").json()["status"] == "STARTING"
    time.sleep(0.7)
    assert len(get(sb, token, limit=10, offset=0).json()) == 10
    assert get(sb, token, "/v2/session/info").json()["status"] == "WORKING"


def test_429_bursts_with_retry_after(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=10, burst_every=5, burst_length=2, retry_after=2)
    codes = [get(sb, token, limit=1, offset=0) for _ in range(10)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429, 429] * 2
    assert codes[3].headers["Retry-After"] == "2"


def test_error_rate_gives_500_and_502(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=10, error_rate=0.5, fault_seed=3)
    codes = [get(sb, token, limit=1, offset=0).status_code for _ in range(60)]
    assert {200, 500, 502} == set(codes)
    assert 15 < codes.count(200) < 45


class FakeTime:
    """The sandbox's clock and sleep: time moves only when the sandbox sleeps or the test
    says so, and every sleep is written down (what the sandbox waited for)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def test_latency_and_jitter(
    make_sandbox: Callable[..., Sandbox], token: str, fake_time: FakeTime
) -> None:
    sb = make_sandbox(chats=10, latency_ms=150, jitter_ms=50, clock=fake_time.clock,
                      sleep=fake_time.sleep)  # fmt: skip
    for _ in range(3):
        assert get(sb, token, limit=1, offset=0).status_code == 200
    assert len(fake_time.slept) == 3 and len(set(fake_time.slept)) == 3  # jitter varies
    assert all(0.15 <= s <= 0.2 for s in fake_time.slept), fake_time.slept


def test_latency_is_the_time_to_the_reply_including_the_work(
    make_sandbox: Callable[..., Sandbox], token: str, fake_time: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A remote server's 100 ms includes building the page; adding the work on top made
    the sandbox slower than the latency it claims, and every benchmark ratio worse."""
    sb = make_sandbox(chats=50, latency_ms=500, clock=fake_time.clock, sleep=fake_time.sleep)
    store = sb.store(INST)
    slow_item = store.item

    def item(i: int, merged: bool = False) -> bytes:
        if i == store.order("id")[0]:
            fake_time.now += 0.4  # the page takes 400 ms to build
        return slow_item(i, merged)

    monkeypatch.setattr(store, "item", item)
    assert get(sb, token, limit=10, offset=0).status_code == 200
    # Inside: it waits out the 100 ms the work left of the latency; on top it would wait 500.
    assert fake_time.slept == [pytest.approx(0.1)]


def test_prerendered_sandbox_serves_the_same_chats(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    plain = make_sandbox(chats=300, shape="noweb")
    ready = make_sandbox(chats=300, shape="noweb", prerender=True)
    ready.store(INST).prerender()
    assert get(ready, token, limit=300, offset=0).json() == get(plain, token, limit=300).json()


def test_spikes(make_sandbox: Callable[..., Sandbox], token: str, fake_time: FakeTime) -> None:
    sb = make_sandbox(chats=10, latency_ms=20, spike_rate=1.0, spike_ms=300,
                      clock=fake_time.clock, sleep=fake_time.sleep)  # fmt: skip
    get(sb, token, limit=1, offset=0)
    assert fake_time.slept == [pytest.approx(0.32)]


def test_page_size_cap(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=100, max_limit=25)
    assert len(get(sb, token, limit=100, offset=0).json()) == 25


def test_churn_changes_the_list_between_requests(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=200, churn=3, fault_seed=1)
    before = ground_truth(sb)
    get(sb, token, limit=1, offset=0)
    after = ground_truth(sb)
    assert len(before - after) == 3 and len(after - before) == 3


def test_sandbox_help_documents_every_option() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0
    for option in (
        "--chats", "--seed", "--shape", "--envelope", "--instance", "--latency-ms",
        "--jitter-ms", "--spike-rate", "--error-rate", "--burst-every", "--retry-after",
        "--cold-start", "--cold-mode", "--churn", "--max-limit", "--desc-quirk",
        "--rate-limit", "--prerender", "--lids-fail-from", "--pn-twins",
        "--lid-share FLOAT RANGE", "[default: 0.08; 0<=x<=0.76]", "--merge / --no-merge",
        "--shape [webjs|noweb|gows]", "ID:TOKEN",
    ):  # fmt: skip
        assert option in result.output


def test_every_sandbox_option_is_a_flag_with_the_same_default_and_help() -> None:
    """Each option is written once, in SandboxOptions: the command's flags come from it."""
    command = cli.commands["sandbox"]
    flags = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for spec in fields(SandboxOptions):
        assert spec.name in flags, f"no flag for SandboxOptions.{spec.name}"
        assert flags[spec.name].help == spec.metadata["help"]
    given = command.make_context("sandbox", []).params
    del given["host"], given["port"], given["instances"]  # instances: parsed by the command
    assert SandboxOptions(**given) == SandboxOptions()


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"chats": -1}, "chats must be >= 0"), ({"burst_length": 0}, "burst_length must be >= 1"),
     ({"lid_share": 0.8}, "lid_share must be between 0 and 0.76"),
     ({"cold_mode": "500"}, "cold_mode must be one of 202, 422, empty")],
)  # fmt: skip
def test_the_python_api_keeps_to_the_bounds_the_flags_show(
    options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        SandboxOptions(**options)


def test_keep_alive_responses_do_not_stall(
    make_sandbox: Callable[..., Sandbox], token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stall of ~40 ms per reply (Nagle + delayed ACK) would inflate every benchmark: the
    sandbox's connections send without waiting for the client's ACK (TCP_NODELAY), as
    production servers do. benchmarks/sandbox.py prints the time per keep-alive reply."""
    nodelay: list[int] = []
    setup = socketserver.StreamRequestHandler.setup

    def spy(handler: socketserver.StreamRequestHandler) -> None:
        setup(handler)
        nodelay.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(socketserver.StreamRequestHandler, "setup", spy)
    sb = make_sandbox(chats=100)
    params = {"instance_id": INST, "access_token": token, "limit": 50}
    with httpx.Client(base_url=sb.url) as client:
        for offset in (0, 50):
            assert client.get("/v2/chats", params={**params, "offset": offset}).status_code == 200
    with httpx.Client(base_url=sb.url) as client:
        assert client.get("/v2/chats", params=params).status_code == 200
    assert len(nodelay) == 2 and all(nodelay), nodelay  # two connections, both without Nagle


LID_WORLD: dict[str, Any] = {"lid_share": 0.2, "lid_known": 0.8, "lid_pairs": 0.5}


def lid_people(sb: Sandbox) -> list[dict[str, Any]]:
    resp = httpx.get(f"{sb.url}/_sandbox/ids", params={"instance_id": INST, "format": "json"})
    return [json.loads(line) for line in resp.text.splitlines()]


def test_the_lid_map_pages_counts_and_looks_up(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=1000, **LID_WORLD)
    count = get(sb, token, "/v2/lids/count").json()["count"]
    pairs: list[dict[str, Any]] = []
    while len(batch := get(sb, token, "/v2/lids", limit=50, offset=len(pairs)).json()) == 50:
        pairs += batch
    pairs += batch
    assert len(pairs) == count > 100 and all(p["pn"].endswith("@c.us") for p in pairs)
    assert len({p["lid"] for p in pairs}) == count
    known = {p["lid"] for p in pairs}
    unknown = [p for p in lid_people(sb) if p["hidden"]]
    assert unknown and not {f"{p['lid']}@lid" for p in unknown} & known  # absent from the list
    assert get(sb, token, "/v2/lids/" + pairs[3]["lid"]).json() == pairs[3]
    assert get(sb, token, f"/v2/lids/{unknown[0]['lid']}%40lid").json()["pn"] is None
    by_number = get(sb, token, "/v2/lids/pn/" + pairs[3]["pn"].partition("@")[0]).json()
    assert by_number == pairs[3]


def test_pairs_are_listed_unless_the_engine_merges(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    for shape, merges in [("webjs", True), ("noweb", True), ("gows", False)]:
        sb = make_sandbox(chats=600, shape=shape, merges=merges, **LID_WORLD)
        ids = all_ids(sb, token, page=1000)
        truth = lid_people(sb)
        pairs = [p for p in truth if len(p["listed"]) == 2]
        listed = len(ground_truth(sb)) + 1  # status@broadcast is listed, never indexed
        assert len(ids) == len(set(ids)) == listed + len(pairs)
        if shape == "noweb":  # merges: each person once, under the phone when it is known
            under_lid = [p for p in truth if any(j.endswith("@lid") for j in p["listed"])]
            assert not pairs and all(p["hidden"] for p in under_lid)
            older = make_sandbox(chats=600, shape=shape, merges=False, **LID_WORLD)
            assert all_ids(sb, token, page=1000, merge="false") == all_ids(older, token, 1000)
            assert [p for p in lid_people(older) if len(p["listed"]) == 2]
        else:
            assert pairs


def test_noweb_names_the_number_and_the_lid_beside_an_id(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=800, shape="noweb", merges=False, **LID_WORLD)
    chats = get(sb, token, limit=800, merge="false").json()
    with_pn = [c for c in chats if "pnJid" in c]
    assert with_pn and all(c["id"].endswith("@lid") for c in with_pn)
    assert all(c["pnJid"].endswith("@s.whatsapp.net") for c in with_pn)
    truth = {f"{p['lid']}@lid": p for p in lid_people(sb) if p["lid"]}
    assert all(not truth[c["id"]]["hidden"] for c in with_pn)  # only known numbers
    assert any("lidJid" in c and c["id"].endswith("@s.whatsapp.net") for c in chats)
    assert any("username" in c for c in chats)


def test_lids_can_answer_404_or_fail_first(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    gone = make_sandbox(chats=100, lids_404=True, **LID_WORLD)
    for path in ("/v2/lids", "/v2/lids/count", "/v2/lids/123@lid"):
        assert get(gone, token, path).status_code == 404
    flaky = make_sandbox(chats=100, lids_fail=2, **LID_WORLD)
    codes = [get(flaky, token, "/v2/lids", limit=10).status_code for _ in range(3)]
    assert codes == [500, 500, 200]


def test_lids_can_fail_from_an_offset_on_for_good(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=400, lids_fail_from=20, **LID_WORLD)
    assert len(get(sb, token, "/v2/lids", limit=20, offset=0).json()) == 20
    codes = [get(sb, token, "/v2/lids", limit=20, offset=20).status_code for _ in range(3)]
    assert codes == [500, 500, 500]
    assert get(sb, token, "/v2/lids/count").status_code == 200


def test_pn_twins_list_each_pn_jid_lid_chat_again_under_a_phone_that_names_no_lid(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=800, shape="noweb", pn_twins=True, **LID_WORLD)
    chats = {c["id"]: c for c in get(sb, token, limit=2000).json()}  # merge on: ignored
    named = {c["pnJid"]: c for c in chats.values() if "pnJid" in c}
    assert len(named) >= 20 and set(named) <= set(chats)  # each number is a chat too
    assert not any("lidJid" in chats[pn] for pn in named)
    twice = {p["jid"] for p in lid_people(sb) if len(p["listed"]) == 2}
    assert {pn.replace("@s.whatsapp.net", "@c.us") for pn in named} <= twice
    with pytest.raises(ValueError, match="shape noweb"):
        make_sandbox(chats=10, pn_twins=True)


def test_learning_a_lid_moves_it_in_the_ground_truth(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=600, **LID_WORLD)
    hidden = next(p for p in lid_people(sb) if p["hidden"])
    before = get(sb, token, "/v2/lids/count").json()["count"]
    resp = httpx.post(f"{sb.url}/_sandbox/mutate", params={"instance_id": INST},
                      json={"learn": [f"{hidden['lid']}@lid"]})  # fmt: skip
    assert resp.status_code == 200
    assert get(sb, token, "/v2/lids/count").json()["count"] == before + 1
    assert hidden["jid"] not in ground_truth(sb)
    pn = get(sb, token, f"/v2/lids/{hidden['lid']}").json()["pn"]
    assert pn in ground_truth(sb)


def test_sandbox_help_lists_the_lid_options() -> None:
    out = CliRunner().invoke(cli, ["sandbox", "--help"]).output
    for flag in ("--lid-share", "--lid-known", "--lid-pairs", "--no-merge", "--lids-404"):
        assert flag in out
