"""`explorer audit` and `explorer zombies` on the sandbox and a real Meilisearch."""

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
from explorer.config import load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.jobs.reindex import reindex
from tests.conftest import explorer_env

INST = "INST00000001"
DAY = 86_400


@pytest.fixture
def world(
    make_sandbox: Callable[..., Sandbox], meili: MeiliServer, token: str, index_name: str,
    tmp_path: Path, request: pytest.FixtureRequest,
) -> Callable[..., dict[str, Any]]:  # fmt: skip
    def make(shape: str = "webjs", config: str = "", reindexed: bool = True) -> dict[str, Any]:
        sb = make_sandbox(chats=400, shape=shape)
        path = tmp_path / "explorer.toml"
        path.write_text(f"[wawp]\nwarmup_seconds = 0\n{config}")
        env = explorer_env(sb, token, meili.url, meili.master_key, index_name,
                           EXPLORER_CONFIG=str(path))  # fmt: skip
        cfg = load_config(path, env=env)
        if reindexed:
            reindex(cfg)
        client = meilisearch.Client(meili.url, meili.master_key)
        docs = (
            [dict(d) for d in client.index(index_name).get_documents({"limit": 10_000}).results]
            if reindexed
            else []
        )
        return {"sb": sb, "cfg": cfg, "env": env, "docs": docs, "path": path}

    return make


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def groups_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (d for d in docs if d["chat_type"] in ("group", "channel")), key=lambda d: d["jid"]
    )


@pytest.mark.parametrize("shape", ["webjs", "noweb", "gows"])
@pytest.mark.parametrize("live", [False, True], ids=["index", "live"])
def test_the_allow_list_admits_some_groups_and_flags_exactly_the_others(
    world: Callable[..., dict[str, Any]], tmp_path: Path, shape: str, live: bool
) -> None:
    w = world(shape)
    groups = groups_of(w["docs"])
    named = [g for g in groups if g["name"]]
    assert len(groups) > 20 and named
    by_jid = groups[::3]  # every third group by JID, through the file
    pattern = named[1]["name"][:3] + "*"  # and those whose name starts like this one
    allow_file = tmp_path / "allowed.txt"
    allow_file.write_text("# groups the bot belongs in\n\n" + "".join(
        f"{g['jid']}   # {g['name']}\n" for g in by_jid
    ))  # fmt: skip
    w["path"].write_text(
        w["path"].read_text()
        + f'\n[audit]\nallowed_groups = ["{pattern}"]\nallowed_groups_file = "{allow_file}"\n'
    )
    admitted = {g["jid"] for g in by_jid} | {
        g["jid"] for g in named if g["name"].casefold().startswith(pattern[:3].casefold())
    }
    expected = {g["jid"] for g in groups} - admitted
    args = ["audit", "--json"] + (["--live"] if live else [])
    result = run(w["env"], *args)
    assert result.exit_code == 4, result.output
    data = json.loads(result.stdout)
    assert data["source"] == ("live" if live else "index")
    flagged = {f["jid"] for f in data["instances"][0]["flagged"]}
    assert flagged == expected
    assert data["instances"][0]["groups"] == len(groups)
    assert all(f["reasons"] == ["not on the allow-list"] for f in data["instances"][0]["flagged"])
    ids = run(w["env"], "audit", "--ids", *(["--live"] if live else []))
    assert ids.stdout.splitlines() == [
        f"{INST}\t{f['jid']}" for f in data["instances"][0]["flagged"]
    ]
    table = run(w["env"], "audit", *(["--live"] if live else []))
    assert ("live crawl" in table.stdout) == live and ("the index" in table.stdout) != live
    assert table.exit_code == 4 and "WHY" in table.stdout


def test_nothing_flagged_exits_0_and_silent_groups_are_flagged_when_asked(
    world: Callable[..., dict[str, Any]],
) -> None:
    w = world(config='\n[audit]\nallowed_groups = ["*"]\n')
    clean = run(w["env"], "audit")
    assert clean.exit_code == 0 and "Nothing flagged." in clean.stdout
    now = time.time()
    silent = {
        g["jid"] for g in groups_of(w["docs"])
        if g["last_activity"] is None or now - g["last_activity"] >= 30 * DAY
    }  # fmt: skip
    assert silent
    result = run(w["env"], "audit", "--json", "--inactive-days", "30")
    assert result.exit_code == 4
    flagged = json.loads(result.stdout)["instances"][0]["flagged"]
    assert {f["jid"] for f in flagged} == silent
    assert all(r.startswith(("silent", "no activity")) for f in flagged for r in f["reasons"])


def test_a_per_instance_allow_list_replaces_the_global_one(
    world: Callable[..., dict[str, Any]],
) -> None:
    w = world(config=f'\n[audit]\nallowed_groups = ["*"]\n\n[[wawp.instances]]\nid = "{INST}"\n'
                     '[wawp.instances.audit]\nallowed_groups = []\n')  # fmt: skip
    data = json.loads(run(w["env"], "audit", "--json").stdout)
    assert len(data["instances"][0]["flagged"]) == len(groups_of(w["docs"]))


@pytest.mark.parametrize(
    "content, where",
    [("120363000000000001@g.us\nnot a jid at all\n", ":2: not a group JID"),
     ("# ok\n201234567890@c.us\n", ":2: '201234567890@c.us' is a individual JID")],
)  # fmt: skip
def test_a_malformed_allow_list_file_is_a_one_line_config_error(
    world: Callable[..., dict[str, Any]], tmp_path: Path, content: str, where: str
) -> None:
    w = world()
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    result = run({**w["env"], "EXPLORER_AUDIT_ALLOWED_FILE": str(bad)}, "audit")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}{where}")
    missing = run({**w["env"], "EXPLORER_AUDIT_ALLOWED_FILE": str(tmp_path / "nope")}, "audit")
    assert missing.exit_code == 2 and "allow-list file not found" in missing.output


def test_an_empty_index_is_a_clear_message_not_an_all_clean_table(
    world: Callable[..., dict[str, Any]],
) -> None:
    w = world(reindexed=False)
    for command in ("audit", "zombies"):
        result = run(w["env"], command)
        assert result.exit_code == 1, result.output
        assert "is empty or missing: run `explorer reindex` first" in result.output
        assert "Nothing flagged" not in result.output and "None found" not in result.output


@pytest.mark.parametrize("live", [False, True], ids=["index", "live"])
def test_zombies_are_counted_per_instance_and_type_with_archived(
    world: Callable[..., dict[str, Any]], live: bool
) -> None:
    w = world("webjs")
    now = time.time()
    expected = [
        d for d in w["docs"] if d["last_activity"] is None or now - d["last_activity"] >= 90 * DAY
    ]
    result = run(w["env"], "zombies", "--json", *(["--live"] if live else []))
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    assert {c["jid"] for c in data["chats"]} == {d["jid"] for d in expected}
    counts: dict[str, dict[str, int]] = {}
    for d in expected:
        cell = counts.setdefault(d["chat_type"], {"zombies": 0, "archived": 0})
        cell["zombies"] += 1
        cell["archived"] += bool(d["archived"])
    assert data["counts"] == {INST: counts}
    assert data["archived"] == sum(c["archived"] for c in counts.values()) > 0
    groups = run(w["env"], "zombies", "--json", "--type", "group", "--days", "30")
    assert {c["chat_type"] for c in json.loads(groups.stdout)["chats"]} == {"group"}
    table = run(w["env"], "zombies", "--limit", "5")
    assert f"{INST}: " in table.stdout and "archived)" in table.stdout
    assert "... and" in table.stdout


def test_zombies_for_an_unknown_instance_say_so(world: Callable[..., dict[str, Any]]) -> None:
    w = world()
    result = run(w["env"], "zombies", "--instance", "Nowhere")
    assert result.exit_code == 2 and "'Nowhere' is not an instance" in result.output


def test_json_and_ids_together_are_a_usage_error(world: Callable[..., dict[str, Any]]) -> None:
    w = world()
    assert run(w["env"], "audit", "--json", "--ids").exit_code == 2
