"""Search for people on the real Meilisearch: names, phones, filters, keys, JSON."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import meilisearch
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.config import load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from explorer.jobs.reindex import reindex
from explorer.meili.query import Filters
from tests.conftest import register_secret

A, B = "INST0000000A", "INST0000000B"
TOKEN_A = register_secret("search-test-token-aaaaaaaaaaaa")
TOKEN_B = register_secret("search-test-token-bbbbbbbbbbbb")
EPOCH = int(time.time())


@pytest.fixture(scope="module")
def world(meili: MeiliServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two instances (labels Cairo and Lagos) reindexed once into one index for the module."""
    sb = Sandbox(
        SandboxOptions(chats=1500, instances={A: TOKEN_A, B: TOKEN_B}, epoch=EPOCH, seed=11)
    ).start()
    tmp = tmp_path_factory.mktemp("search")
    path = tmp / "explorer.toml"
    path.write_text(
        f'[wawp]\nwarmup_seconds = 0\n\n[[wawp.instances]]\nid = "{A}"\nlabel = "Cairo"\n'
        f'access_token = "{TOKEN_A}"\n\n[[wawp.instances]]\nid = "{B}"\nlabel = "Lagos"\n'
        f'access_token = "{TOKEN_B}"\n\n[reindex]\nstate_dir = "{tmp / "state"}"\n'
    )
    env = {
        "WAWP_BASE_URL": sb.url,
        "MEILI_URL": meili.url,
        "MEILI_API_KEY": meili.master_key,
        "EXPLORER_INDEX": "search_world",
    }
    cfg = load_config(path, env=env)
    reindex(cfg)
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = client.index("search_world").get_documents({"limit": 10_000}).results
    yield {
        "cfg": cfg,
        "env": {**env, "EXPLORER_CONFIG": str(path)},
        "docs": [dict(d) for d in docs],
    }
    sb.stop()


def run(world: dict[str, Any], *args: str) -> Any:
    result = CliRunner().invoke(cli, ["search", "--json", *args], env=world["env"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def jids(data: Any) -> list[str]:
    return [h["jid"] for h in data["hits"]]


def pick(world: dict[str, Any], **match: Any) -> dict[str, Any]:
    for doc in world["docs"]:
        if all(doc.get(k) == v for k, v in match.items()):
            return doc
    raise LookupError(match)


def egyptian(world: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in world["docs"] if (d["phone"] or "").startswith("+2010"))


# -- phone numbers ----------------------------------------------------------------------------


def phone_forms(doc: dict[str, Any]) -> dict[str, str]:
    digits = doc["phone_digits"]  # 20 10x xxxxxxx
    nsn = digits[2:]
    return {
        "spaced international": f"+20 {nsn[:3]} {nsn[3:6]} {nsn[6:]}",
        "00 international": f"0020 {nsn}",
        "digits": digits,
        "national with trunk 0": "0" + nsn,
        "national significant": nsn,
        "last 7 digits": digits[-7:],
        "last 9 digits": digits[-9:],
    }


def test_every_phone_format_finds_the_chat_through_the_cli(world: dict[str, Any]) -> None:
    doc = egyptian(world)
    for form, query in phone_forms(doc).items():
        found = jids(run(world, query, "--limit", "5"))
        assert doc["jid"] in found, form


def test_phone_formats_typed_in_the_web_ui(world: dict[str, Any], meili: MeiliServer) -> None:
    """What the dashboard sends: the raw text, all searchable fields, no CLI normalising."""
    doc = egyptian(world)
    index = meilisearch.Client(meili.url, meili.master_key).index("search_world")
    works = {}
    for form, query in phone_forms(doc).items():
        hits = index.search(query, {"limit": 5})["hits"]
        works[form] = doc["jid"] in [h["jid"] for h in hits]
    # index-side variants make every digits-only form work in the UI; spaces split tokens
    assert works == {
        "spaced international": False,
        "00 international": False,
        "digits": True,
        "national with trunk 0": True,
        "national significant": True,
        "last 7 digits": True,
        "last 9 digits": True,
    }
    assert doc["jid"] in [h["jid"] for h in index.search("0020" + doc["phone_digits"][2:])["hits"]]


def test_a_phone_number_never_matches_its_neighbour(world: dict[str, Any]) -> None:
    doc = egyptian(world)
    digits = doc["phone_digits"]
    wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    assert doc["jid"] not in jids(run(world, wrong))


# -- names --------------------------------------------------------------------------------------


def test_names_with_typos_accents_prefixes_and_scripts(world: dict[str, Any]) -> None:
    doc = (
        pick(world, name="José Álvarez")
        if any(d["name"] == "José Álvarez" for d in world["docs"])
        else next(d for d in world["docs"] if d["name"] and "Álvarez" in d["name"])
    )
    hits = run(world, "jose alvarez", "--limit", "50")["hits"]
    assert any("Álvarez" in (h["name"] or "") for h in hits)  # accent-insensitive
    typo = run(world, "Alvarex", "--limit", "50")["hits"]  # one typo
    assert any("Álvarez" in (h["name"] or "") for h in typo)
    prefix = run(world, "Alva", "--limit", "50")["hits"]
    assert any("Álvarez" in (h["name"] or "") for h in prefix)
    assert doc["name"]


@pytest.mark.parametrize("name_part", ["محمد", "Дмитрий", "राहुल", "王伟", "Müller"])
def test_any_script_is_searchable(world: dict[str, Any], name_part: str) -> None:
    hits = run(world, name_part, "--limit", "20")["hits"]
    assert hits and all(name_part.lower() in (h["name"] or "").lower() for h in hits[:3])


def test_first_name_alone_finds_full_names(world: dict[str, Any]) -> None:
    full = next(d for d in world["docs"] if d["name"] and " " in d["name"] and d["name"].isascii())
    first = full["name"].split()[0]
    assert full["jid"] in jids(run(world, first, "--limit", "1000"))


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["--type", "group"], lambda h: h["chat_type"] == "group"),
        (["--groups"], lambda h: h["is_group"] is True),
        (["--individuals"], lambda h: h["chat_type"] == "individual"),
        (["--type", "channel"], lambda h: h["chat_type"] == "channel"),
        (["--type", "broadcast"], lambda h: h["chat_type"] == "broadcast"),
        (["--instance", A], lambda h: h["instance_id"] == A),
        (["--instance", "Lagos"], lambda h: h["instance_id"] == B),
        (["--archived"], lambda h: h["archived"] is True),
        (["--not-archived"], lambda h: h["archived"] is not True),
        (["--pinned"], lambda h: h["pinned"] is True),
        (["--not-pinned"], lambda h: h["pinned"] is not True),
        (["--muted"], lambda h: h["muted"] is True),
        (["--not-muted"], lambda h: h["muted"] is not True),
        (["--inactive-days", "90"], lambda h: h["last_activity"] is None
         or h["last_activity"] < time.time() - 90 * 86400),
        (["--active-since", time.strftime("%Y-%m-%d", time.gmtime(EPOCH - 5 * 86400))],
         lambda h: h["last_activity"] >= EPOCH - 6 * 86400),
    ],
)  # fmt: skip
def test_each_filter_narrows_to_matching_chats(
    world: dict[str, Any], args: list[str], check: Any
) -> None:
    data = run(world, *args, "--limit", "1000")
    assert data["hits"], "a filter matched nothing: the fixture data should cover it"
    assert all(check(h) for h in data["hits"])
    assert data["total"] < len(world["docs"])


def test_sort_limit_and_offset(world: dict[str, Any]) -> None:
    desc = run(world, "--sort", "last_activity:desc", "--individuals", "--limit", "30")["hits"]
    stamps = [h["last_activity"] for h in desc if h["last_activity"] is not None]
    assert stamps == sorted(stamps, reverse=True)
    page2 = run(world, "--sort", "last_activity:desc", "--individuals", "--limit", "10",
                "--offset", "10")["hits"]  # fmt: skip
    assert [h["jid"] for h in page2] == [h["jid"] for h in desc[10:20]]
    names = [h["name"] for h in run(world, "--groups", "--sort", "name", "--limit", "50")["hits"]]
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sort", "phone:desc"], "--sort must be"),
        (["--sort", "name:sideways"], "--sort must be"),
        (["--active-since", "last tuesday"], "--active-since must be a date"),
        (["--type", "robot"], "Invalid value for '--type'"),
        (["--limit", "0"], "Invalid value for '--limit'"),
        (["--inactive-days", "-3"], "Invalid value for '--inactive-days'"),
    ],
)
def test_bad_options_are_one_line_exit_2(
    world: dict[str, Any], args: list[str], needle: str
) -> None:
    result = CliRunner().invoke(cli, ["search", "x", *args], env=world["env"])
    assert result.exit_code == 2
    assert needle in result.output and "Traceback" not in result.output


def test_json_output_schema(world: dict[str, Any]) -> None:
    data = run(world, "a", "--limit", "3")
    assert set(data) == {
        "query",
        "total_exact",
        "facets",
        "phone_query",
        "filter",
        "sort",
        "total",
        "limit",
        "offset",
        "hits",
    }
    for hit in data["hits"]:
        assert {"id", "jid", "instance_id", "chat_type", "is_group", "name", "display_name",
                "phone", "last_activity", "archived", "pinned", "muted", "unread_count",
                "wa_link", "phone_display", "last_active"} <= set(hit)  # fmt: skip
        assert not any(k.startswith("_") for k in hit)
        assert "phone_variants" not in hit and "type_words" not in hit


def test_table_output(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["search", "--groups", "--limit", "5"], env=world["env"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PHONE", "TYPE", "LAST", "ACTIVITY", "INSTANCE"]
    assert len(lines) == 6 and all("group" in line for line in lines[1:])
    assert " of " in result.stderr


def test_python_api_matches_the_cli(world: dict[str, Any]) -> None:
    api = explorer.search("", config=world["cfg"], chat_type="group", limit=50)
    cli_hits = run(world, "--groups", "--limit", "50")["hits"]
    assert [h["jid"] for h in api.hits] == [h["jid"] for h in cli_hits]


# -- the web UI without filter controls -------------------------------------------------------


def test_typed_words_narrow_results_in_the_ui(world: dict[str, Any], meili: MeiliServer) -> None:
    index = meilisearch.Client(meili.url, meili.master_key).index("search_world")
    groups = index.search("group", {"limit": 20})["hits"]
    assert groups and all(h["chat_type"] == "group" for h in groups)
    cairo = index.search("cairo", {"limit": 20})["hits"]
    assert cairo and all(h["instance_label"] == "Cairo" for h in cairo)


# -- keys ---------------------------------------------------------------------------------------


def test_agent_key_is_the_smallest_the_ui_accepts(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    result = CliRunner().invoke(cli, ["keys", "create-agent"], env=world["env"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    auth = {"Authorization": f"Bearer {key}"}
    listed = httpx.get(f"{meili.url}/indexes", headers=auth).json()["results"]
    assert [i["uid"] for i in listed] == ["search_world"]  # other indexes stay hidden
    assert httpx.get(f"{meili.url}/stats", headers=auth).status_code == 200
    assert httpx.get(f"{meili.url}/version", headers=auth).status_code == 200  # the UI asks
    search = httpx.post(f"{meili.url}/multi-search", headers=auth,
                        json={"queries": [{"indexUid": "search_world", "q": "a"}]})  # fmt: skip
    assert search.status_code == 200
    write = httpx.post(
        f"{meili.url}/indexes/search_world/documents", headers=auth, json=[{"id": "x"}]
    )
    assert write.status_code == 403


def test_search_key_cannot_write_or_list(world: dict[str, Any], meili: MeiliServer) -> None:
    result = CliRunner().invoke(
        cli, ["keys", "create-search", "--expires-in-days", "30"], env=world["env"]
    )
    assert result.exit_code == 0
    auth = {"Authorization": f"Bearer {result.stdout.strip()}"}
    ok = httpx.post(f"{meili.url}/indexes/search_world/search", headers=auth, json={"q": ""})
    assert ok.status_code == 200
    assert httpx.get(f"{meili.url}/indexes", headers=auth).status_code == 403
    write = httpx.post(
        f"{meili.url}/indexes/search_world/documents", headers=auth, json=[{"id": "x"}]
    )
    assert write.status_code == 403


def test_tenant_token_sees_only_its_instance(world: dict[str, Any], meili: MeiliServer) -> None:
    result = CliRunner().invoke(cli, ["keys", "create-search", "--instance", B], env=world["env"])
    assert result.exit_code == 0, result.output
    auth = {"Authorization": f"Bearer {result.stdout.strip()}"}
    reply = httpx.post(
        f"{meili.url}/indexes/search_world/search",
        headers=auth,
        json={"q": "", "limit": 1000, "facets": ["instance_id"]},
    ).json()
    only_b = sum(1 for d in world["docs"] if d["instance_id"] == B)
    assert reply["facetDistribution"]["instance_id"] == {B: only_b}
    sneaky = httpx.post(f"{meili.url}/indexes/search_world/search", headers=auth,
                        json={"q": "", "filter": f"instance_id = {A}"}).json()  # fmt: skip
    assert sneaky["hits"] == []


# -- stats --------------------------------------------------------------------------------------


def test_stats(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["stats", "--json"], env=world["env"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["documents"] == len(world["docs"])
    assert (
        sum(data["chat_type"].values()) == sum(data["instance_id"].values()) == len(world["docs"])
    )
    assert data["last_reindex"]["new_count"] == len(world["docs"])
    human = CliRunner().invoke(cli, ["stats"], env=world["env"])
    assert "by chat_type" in human.stdout and "last reindex:" in human.stdout


def test_a_fresh_build_has_no_settings_drift_and_says_so_in_json(world: dict[str, Any]) -> None:
    from explorer.meili.settings import index_settings

    report = index_settings(world["cfg"].meilisearch)
    assert report.ok and report.drift == {} and not report.applied
    out = CliRunner().invoke(cli, ["settings", "--json"], env=world["env"])
    assert out.exit_code == 0
    assert json.loads(out.stdout) == {"index": "search_world", "drift": {}, "applied": False}


def test_search_on_a_missing_index_says_so(world: dict[str, Any]) -> None:
    env = {**world["env"], "EXPLORER_INDEX": "nope_not_here"}
    result = CliRunner().invoke(cli, ["search", "x"], env=env)
    assert result.exit_code == 1 and "does not exist yet" in result.output


def test_matches_are_highlighted_on_a_terminal_only(world: dict[str, Any]) -> None:
    from explorer.meili.query import Searcher
    from explorer.records.output import hits_table

    with Searcher(world["cfg"].meilisearch) as searcher:
        hits = searcher.search("alvar", limit=3).hits
    assert hits
    coloured = hits_table(hits, colour=True)
    plain = hits_table(hits, colour=False)
    assert "\x1b[1;33m" in "".join(coloured[1:])  # the matched part is marked
    assert not any("\x1b" in line or "\x01" in line for line in plain)
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in coloured[1:]] == plain[1:]


def test_counts_are_exact_beyond_max_total_hits(world: dict[str, Any]) -> None:
    everything = run(world, "--limit", "1")
    assert everything["total"] == len(world["docs"]) > 1000 and everything["total_exact"]
    individuals = sum(1 for d in world["docs"] if d["chat_type"] == "individual")
    assert run(world, "--individuals", "--limit", "1")["total"] == individuals > 1000
    by_instance = run(world, "--limit", "1")["facets"]["instance_id"]
    assert by_instance == {
        i: sum(1 for d in world["docs"] if d["instance_id"] == i) for i in (A, B)
    }
    line = CliRunner().invoke(cli, ["search", "--individuals", "--limit", "5"], env=world["env"])
    assert f"1-5 of {individuals:,} chats" in line.stderr and "~" not in line.stderr


@pytest.mark.parametrize("command", ["search", "zombies"])
@pytest.mark.parametrize(
    ("flags", "line"),
    [(["--groups", "--individuals"], "--groups and --individuals"),
     (["--type", "group", "--individuals"], "--type group and --individuals"),
     (["--individuals", "--type", "channel"], "--type channel and --individuals")],
)  # fmt: skip
def test_contradictory_type_filters_are_a_usage_error(
    command: str, flags: list[str], line: str
) -> None:
    result = CliRunner().invoke(cli, [command, *flags])
    assert result.exit_code == 2
    assert f"Error: {line} contradict each other: pick one type" in result.output.splitlines()


def test_an_agreeing_pair_of_type_filters_is_fine(world: dict[str, Any]) -> None:
    assert all(h["chat_type"] == "group" for h in run(world, "--groups", "--type", "group")["hits"])


def test_an_unknown_instance_is_named_with_the_known_ones(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["search", "--instance", "Cairo support"], env=world["env"])
    assert result.exit_code == 2, result.output
    assert "'Cairo support' is not an instance" in result.output
    assert f"{A} (Cairo)" in result.output and f"{B} (Lagos)" in result.output
    assert run(world, "--instance", "Cairo", "--limit", "1")["total"] > 0


def test_a_tenant_token_for_an_unknown_instance_needs_force(world: dict[str, Any]) -> None:
    args = ["keys", "create-search", "--instance", "NOSUCHINST01"]
    refused = CliRunner().invoke(cli, args, env=world["env"])
    assert refused.exit_code == 2 and "--force" in refused.output and A in refused.output
    forced = CliRunner().invoke(cli, [*args, "--force"], env=world["env"])
    assert forced.exit_code == 0 and forced.stdout.count(".") == 2  # a JWT


def test_a_missing_key_says_to_set_meili_api_key(world: dict[str, Any]) -> None:
    env = {**world["env"], "MEILI_API_KEY": ""}
    result = CliRunner().invoke(cli, ["search", "x"], env=env)
    assert result.exit_code == 1
    assert "needs an API key: set MEILI_API_KEY" in result.output and "***" not in result.output


def test_unreachable_meilisearch_has_one_wording_everywhere(world: dict[str, Any]) -> None:
    env = {**world["env"], "MEILI_URL": "http://127.0.0.1:9"}
    outputs = [
        CliRunner().invoke(cli, args, env=env).output
        for args in (["search", "x"], ["stats"], ["settings"])
    ]
    want = "Meilisearch at http://127.0.0.1:9 is unreachable: check that it is running"
    assert all(want in out for out in outputs), outputs


def test_json_log_format_makes_the_error_line_json(world: dict[str, Any]) -> None:
    env = {**world["env"], "MEILI_URL": "http://127.0.0.1:9"}
    for args in (["search", "x"], ["search", "--groups", "--individuals"]):
        result = CliRunner().invoke(cli, ["--log-format", "json", *args], env=env)
        assert result.exit_code in (1, 2)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and all(json.loads(line)["level"] for line in lines), result.stderr
        assert json.loads(lines[-1])["exit_code"] == result.exit_code


# -- one table of cases for the Python side and the agent page's JavaScript ---------------------

DATA = Path(__file__).parent / "data"
QUERY_CASES = json.loads((DATA / "query_cases.json").read_text())["cases"]
FILTER_TABLE = json.loads((DATA / "filter_cases.json").read_text())
FILTER_CASES = FILTER_TABLE["cases"]
QUERY_JS = Path(explorer.__file__).parent / "web" / "query.js"
# the page's names
PAGE_NAMES = {"chat_type": "type", "inactive_days": "inactive", "number_hidden": "phone_hidden"}


def run_query_js(program: str, data: Any) -> Any:
    """Run ``program`` (a JS module body that sees ``q``, query.js's exports, and ``data``)
    under Node and return what it prints as JSON."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed (`make tools` installs it)")
    source = (
        f"import * as q from {json.dumps(QUERY_JS.as_uri())};\n"
        "const data = JSON.parse(require_stdin());\n"
        f"console.log(JSON.stringify((() => {{ {program} }})()));\n"
        "function require_stdin() { return fs.readFileSync(0, 'utf8'); }\n"
        "import fs from 'node:fs';\n"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", source], input=json.dumps(data),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("case", QUERY_CASES, ids=lambda c: c["input"] or "empty")
def test_query_preparation_matches_the_shared_table(case: dict[str, Any]) -> None:
    from explorer.records.phones import phone_query

    assert phone_query(case["input"]) == case["digits"]


def test_the_page_prepares_queries_by_the_same_table() -> None:
    inputs = [c["input"] for c in QUERY_CASES]
    got = run_query_js("return data.map((text) => q.phoneQuery(text));", inputs)
    assert got == [c["digits"] for c in QUERY_CASES]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: json.dumps(c["filters"]))
def test_filters_match_the_shared_table(case: dict[str, Any]) -> None:
    assert Filters(**case["filters"]).expressions(now=case["now"]) == case["clauses"]


@pytest.mark.parametrize("case", FILTER_TABLE["errors"], ids=lambda c: json.dumps(c["filters"]))
def test_a_bad_filter_names_its_argument(case: dict[str, Any]) -> None:
    with pytest.raises(explorer.QueryError) as info:
        Filters(**case["filters"]).expressions()
    assert info.value.param == case["param"]


@pytest.mark.parametrize(
    ("chat_type", "groups", "individuals", "kind"),
    [(None, False, False, None), ("channel", False, False, "channel"),
     (None, True, False, "group"), (None, False, True, "individual"),
     ("group", True, False, "group"), ("individual", False, True, "individual")],
)  # fmt: skip
def test_type_shorthands_name_one_type(
    chat_type: str | None, groups: bool, individuals: bool, kind: str | None
) -> None:
    assert Filters.chat_type_from(chat_type, groups=groups, individuals=individuals) == kind


@pytest.mark.parametrize(
    ("chat_type", "groups", "individuals", "param", "problem"),
    [(None, True, True, "groups", "and --individuals"),
     ("group", False, True, "type", "group and --individuals"),
     ("channel", True, False, "type", "channel and --groups"),
     ("broadcast", True, True, "type", "broadcast and --groups and --individuals")],
)  # fmt: skip
def test_type_shorthands_that_disagree_are_named(
    chat_type: str | None, groups: bool, individuals: bool, param: str, problem: str
) -> None:
    with pytest.raises(explorer.QueryError) as info:
        Filters.chat_type_from(chat_type, groups=groups, individuals=individuals)
    assert info.value.param == param
    assert info.value.problem == f"{problem} contradict each other: pick one type"


def test_the_page_writes_the_same_filters_as_the_table() -> None:
    cases = [c for c in FILTER_CASES if "python_only" not in c]
    assert len(cases) >= 6
    page = [
        {"f": {PAGE_NAMES.get(k, k): v for k, v in c["filters"].items()}, "now": c["now"] * 1000}
        for c in cases
    ]
    got = run_query_js("return data.map((c) => q.filterClauses(c.f, c.now));", page)
    assert got == [c["clauses"] for c in cases]


def test_the_page_leaves_out_the_facet_it_counts() -> None:
    f = {"type": "group", "instance": "Lagos", "archived": True}
    got = run_query_js(
        "return ['type', 'instance', 'archived'].map((s) => q.filterClauses(data, 0, s));", f
    )
    assert [len(clauses) for clauses in got] == [2, 2, 2]
    assert not any(c.startswith("chat_type") for c in got[0])
    assert not any("instance_id" in c for c in got[1])
    assert "archived = true" not in got[2]


def test_agent_keys_are_listed_and_revoked(world: dict[str, Any], meili: MeiliServer) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create-agent", "--label", "Amira"], env=world["env"])
    key = made.stdout.strip()
    auth = {"Authorization": f"Bearer {key}"}
    search = f"{meili.url}/indexes/search_world/search"
    assert httpx.post(search, headers=auth, json={"q": "a"}).status_code == 200
    listed = json.loads(runner.invoke(cli, ["keys", "list", "--json"], env=world["env"]).stdout)
    assert any(k["description"] == "WhatsApp Explorer agents (Amira)" for k in listed)
    gone = runner.invoke(cli, ["keys", "revoke", key], env=world["env"])
    assert gone.exit_code == 0 and "revoked" in gone.stdout
    assert httpx.post(search, headers=auth, json={"q": "a"}).status_code == 403
    # every key, not the first page: other tests make keys on the same server
    admin = meilisearch.Client(meili.url, meili.master_key).get_keys({"limit": 1000}).results
    other = next(k for k in admin if k.name == "Default Search API Key")
    refused = runner.invoke(cli, ["keys", "revoke", other.uid], env=world["env"])
    assert refused.exit_code == 1 and "not this tool's to revoke" in refused.output


def test_keys_are_listed_beside_a_key_expiring_on_a_whole_second(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    """Other tools write expiresAt without a fraction of a second, which the official
    client's key model cannot read (meilisearch 0.43): listing and revoking go around it."""
    master = {"Authorization": f"Bearer {meili.master_key}"}
    other = httpx.post(f"{meili.url}/keys", headers=master, json={
        "description": "another tool's key", "actions": ["search"], "indexes": ["*"],
        "expiresAt": "2042-04-02T00:42:42Z",
    }).json()  # fmt: skip
    try:
        runner = CliRunner()
        made = runner.invoke(cli, ["keys", "create-agent", "--label", "Zeinab"], env=world["env"])
        assert made.exit_code == 0, made.output
        listed = runner.invoke(cli, ["keys", "list", "--json"], env=world["env"])
        assert listed.exit_code == 0, listed.output
        described = {k["description"] for k in json.loads(listed.stdout)}
        assert "WhatsApp Explorer agents (Zeinab)" in described
        assert "another tool's key" not in described
        refused = runner.invoke(cli, ["keys", "revoke", other["uid"]], env=world["env"])
        assert refused.exit_code == 1 and "not this tool's to revoke" in refused.output
    finally:
        httpx.delete(f"{meili.url}/keys/{other['uid']}", headers=master)
