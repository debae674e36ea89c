"""Team scope: keys cover the chats index and its messages index and nothing else, and a
scoped credential (a tenant token, `keys create-agent/create-search --instance/--only-label`)
sees only its chats and their messages, whatever door it comes through (the raw API,
`explorer serve`, nginx in front of it, MCP) and whatever filter a search brings.

Labels are not crawled here (another change adds them): the chats are reindexed from the
sandbox and then given labels directly, as the label crawl will write them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import meilisearch
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import MeiliSettings, load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from explorer.doors.serve import AgentPage
from explorer.jobs.reindex import reindex
from explorer.meili.keys import MAX_LABELS, Scope, scope_of, tenant_token, token_key_uid
from explorer.records.messages import (
    MESSAGE_INDEX_SETTINGS,
    Message,
    messages_index,
    to_message_document,
)
from explorer.secrets import Secret
from tests.conftest import register_secret
from tests.test_door import door_address, nginx, send

# At import, before any CliRunner swaps sys.stderr: the SDK's stdio client takes its
# default error stream when its module is first imported.
from tests.test_mcp import call, session, stdio
from tests.test_search import run_query_js

A, B = "SCOPE000000A", "SCOPE000000B"
TOKEN_A = register_secret("scope-test-token-aaaaaaaaaaaa")
TOKEN_B = register_secret("scope-test-token-bbbbbbbbbbbb")
INDEX = "scope_world"
MESSAGES = messages_index(INDEX)
BUILD = INDEX + "_20260101T000000"  # a build in progress: no key made here reaches it
VIP, BILLING = "VIP", "Billing"
TRICKY = 'Billing, "EU" \\ team 🚀'  # a quote, a backslash, a comma and an emoji
LONG = ("Étiquette très longue, " * 20)[:300]
NOBODY = "Nobody uses this label"


def labels_for(instance: str, n: int) -> list[str]:
    """Which labels the n-th chat of an instance carries (by id order)."""
    labels = []
    if n % 5 == 0:
        labels.append(VIP)
    if (instance == A and n % 5 == 1) or (instance == B and n % 6 == 1):
        labels.append(BILLING)
    if instance == A and n % 7 == 2:
        labels.append(TRICKY)
    if instance == A and n == 3:
        labels.append(LONG)
    return labels


@pytest.fixture(scope="module")
def world(meili: MeiliServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two instances (Cairo, Lagos) reindexed, labelled, one message per chat; the door."""
    sb = Sandbox(
        SandboxOptions(chats=300, instances={A: TOKEN_A, B: TOKEN_B}, epoch=int(time.time()),
                       seed=7)
    ).start()  # fmt: skip
    tmp = tmp_path_factory.mktemp("scope")
    path = tmp / "explorer.toml"
    path.write_text(
        f'[wawp]\nwarmup_seconds = 0\n\n[[wawp.instances]]\nid = "{A}"\nlabel = "Cairo"\n'
        f'access_token = "{TOKEN_A}"\n\n[[wawp.instances]]\nid = "{B}"\nlabel = "Lagos"\n'
        f'access_token = "{TOKEN_B}"\n\n[reindex]\nstate_dir = "{tmp / "state"}"\n'
    )
    env = {"WAWP_BASE_URL": sb.url, "MEILI_URL": meili.url, "EXPLORER_INDEX": INDEX}
    admin_env = {**env, "MEILI_API_KEY": meili.master_key, "EXPLORER_CONFIG": str(path)}
    cfg = load_config(path, env=admin_env)
    reindex(cfg)
    sb.stop()
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = [dict(d) for d in client.index(INDEX).get_documents({"limit": 10_000}).results]
    docs.sort(key=lambda d: d["id"])
    seen = {A: 0, B: 0}
    for doc in docs:
        doc["labels"] = labels_for(doc["instance_id"], seen[doc["instance_id"]])
        seen[doc["instance_id"]] += 1
    updates = [{"id": d["id"], "labels": d["labels"]} for d in docs]
    client.wait_for_task(client.index(INDEX).update_documents(updates).task_uid)
    client.wait_for_task(client.create_index(MESSAGES, {"primaryKey": "id"}).task_uid)
    client.wait_for_task(client.index(MESSAGES).update_settings(MESSAGE_INDEX_SETTINGS).task_uid)
    messages = [
        to_message_document(
            Message(d["instance_id"], d["jid"], f"m{n}", 1_770_000_000 + n, False,
                    f"order {n} about the invoice", False, False, None, None),
            chat_name=d["display_name"], labels=tuple(d["labels"]),
        )
        for n, d in enumerate(docs)
    ]  # fmt: skip
    client.wait_for_task(client.index(MESSAGES).add_documents(messages).task_uid)
    client.wait_for_task(client.create_index(BUILD, {"primaryKey": "id"}).task_uid)
    client.wait_for_task(client.index(BUILD).add_documents([{"id": "b1"}]).task_uid)
    page = AgentPage(cfg.meilisearch, port=0).start()
    (tmp / "nginx").mkdir()
    try:
        with nginx(tmp / "nginx", door_address(page)) as nginx_port:
            yield {
                "cfg": cfg,
                "docs": docs,
                "messages": messages,
                "admin_env": admin_env,
                "env": {**env, "EXPLORER_CONFIG": str(path)},
                "page": page,
                "ports": {"serve": page.server.socket.getsockname()[1], "nginx": nginx_port},
            }
    finally:
        page.stop()
        for name in (INDEX, MESSAGES, BUILD):
            client.wait_for_task(client.delete_index(name).task_uid)


def cli_ok(world: dict[str, Any], *args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env=world["admin_env"])
    assert result.exit_code == 0, result.output
    return result


def mint(world: dict[str, Any], *args: str, command: str = "create-search") -> str:
    """A credential from the CLI, registered so that no output may show it."""
    return register_secret(cli_ok(world, "keys", command, *args).stdout.strip())


def expected(world: dict[str, Any], instance: str | None, labels: tuple[str, ...]) -> set[str]:
    return {
        d["id"]
        for d in world["docs"]
        if (instance is None or d["instance_id"] == instance)
        and (not labels or set(labels) & set(d["labels"]))
    }


def search(meili_url: str, key: str, index: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{meili_url}/indexes/{index}/search", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def chat_ids(reply: httpx.Response) -> set[str]:
    assert reply.status_code == 200, reply.text
    return {h["id"] for h in reply.json()["hits"]}


def message_chats(world: dict[str, Any], reply: httpx.Response) -> set[str]:
    """The chat ids (chats index) of the messages in a reply."""
    assert reply.status_code == 200, reply.text
    by_chat = {(d["instance_id"], d["jid"]): d["id"] for d in world["docs"]}
    return {by_chat[(h["instance_id"], h["jid"])] for h in reply.json()["hits"]}


EVERYTHING = {"q": "", "limit": 1000}
# Filters a user may bring to widen a scoped search: Meilisearch ANDs the token's own.
WIDENING = (
    f'instance_id = "{A}" OR instance_id = "{B}"',
    f"instance_id = {B} OR labels = {VIP}",
    '(labels = "A") OR (instance_id != "")',
    'labels != "x" OR NOT labels EXISTS OR labels EXISTS',
    ")) OR ((instance_id EXISTS",  # an attempt to close the rule's parentheses: refused
    [[f'instance_id = "{B}"', 'instance_id != "x"']],  # the array form: OR inside
)


# -- what keys cover ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["create-agent", "create-search"])
def test_keys_cover_the_chats_index_and_its_messages_index_and_nothing_else(
    world: dict[str, Any], meili: MeiliServer, command: str
) -> None:
    key = mint(world, command=command)
    master = meilisearch.Client(meili.url, meili.master_key)
    made = next(k for k in master.http.get("keys?limit=1000")["results"] if k["key"] == key)
    assert made["indexes"] == [INDEX, MESSAGES]
    assert chat_ids(search(meili.url, key, INDEX, EVERYTHING)) == {d["id"] for d in world["docs"]}
    assert len(search(meili.url, key, MESSAGES, EVERYTHING).json()["hits"]) == len(
        world["messages"]
    )
    assert search(meili.url, key, BUILD, EVERYTHING).status_code == 403


def test_an_instance_token_filters_the_messages_too(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    token = mint(world, "--instance", B)
    mine = expected(world, B, ())
    assert chat_ids(search(meili.url, token, INDEX, EVERYTHING)) == mine
    assert message_chats(world, search(meili.url, token, MESSAGES, EVERYTHING)) == mine


def test_the_mcp_key_check_accepts_the_new_keys_and_scoped_tokens(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    from explorer.doors.mcp_server import check_key

    for value, is_token in (
        (mint(world), False),
        (mint(world, command="create-agent"), False),
        (mint(world, "--instance", A, "--only-label", VIP), True),
        (mint(world, "--only-label", VIP, command="create-agent"), True),
    ):
        scope = check_key(MeiliSettings(meili.url, Secret(value), INDEX))
        assert scope.tenant_token == is_token
        assert scope.instances  # it reaches the index


# -- a scope holds through every door ----------------------------------------------------------


SCOPES = [
    (A, (VIP, BILLING)),
    (None, (VIP,)),
    (B, ()),
    (None, (TRICKY,)),
    (None, (LONG,)),
    (A, (TRICKY, LONG)),
]


@pytest.mark.parametrize(("instance", "labels"), SCOPES)
def test_a_scoped_token_sees_only_its_chats_and_their_messages_through_the_raw_api(
    world: dict[str, Any], meili: MeiliServer, instance: str | None, labels: tuple[str, ...]
) -> None:
    args = [*(["--instance", instance] if instance else []),
            *[a for name in labels for a in ("--only-label", name)]]  # fmt: skip
    token = mint(world, *args)
    mine = expected(world, instance, labels)
    assert mine and mine != {d["id"] for d in world["docs"]}
    assert chat_ids(search(meili.url, token, INDEX, EVERYTHING)) == mine
    assert message_chats(world, search(meili.url, token, MESSAGES, EVERYTHING)) == mine
    assert search(meili.url, token, BUILD, EVERYTHING).status_code == 403
    # searches only: not the index list the Meilisearch web UI starts with (docs/agents.md)
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{meili.url}/indexes", headers=auth).status_code in (401, 403)


@pytest.mark.parametrize("user_filter", WIDENING, ids=str)
def test_a_users_filter_with_or_and_parentheses_cannot_widen_the_scope(
    world: dict[str, Any], meili: MeiliServer, user_filter: Any
) -> None:
    token = mint(world, "--instance", A, "--only-label", VIP)
    mine = expected(world, A, (VIP,))
    body = {**EVERYTHING, "filter": user_filter}
    everything = {d["id"] for d in world["docs"]}
    for index, ids in ((INDEX, chat_ids), (MESSAGES, lambda r: message_chats(world, r))):
        master = search(meili.url, meili.master_key, index, body)
        scoped = search(meili.url, token, index, body)
        if master.status_code != 200:  # a filter Meilisearch refuses widens nothing either
            assert scoped.status_code == 400, scoped.text
            continue
        assert ids(master) - mine, "the filter should reach beyond the scope without it"
        assert ids(scoped) <= mine
    # the same through multi-search and a federated search
    multi = httpx.post(f"{meili.url}/multi-search", timeout=10,
                       headers={"Authorization": f"Bearer {token}"},
                       json={"federation": {"limit": 1000}, "queries": [
                           {"indexUid": INDEX, "q": "", "filter": user_filter},
                           {"indexUid": INDEX, "q": ""}]})  # fmt: skip
    if multi.status_code == 200:
        assert {h["id"] for h in multi.json()["hits"]} <= mine < everything


@pytest.mark.parametrize("door", ["serve", "nginx"])
def test_a_scoped_token_holds_through_the_agent_door(world: dict[str, Any], door: str) -> None:
    token = mint(world, "--instance", A, "--only-label", VIP, "--only-label", TRICKY,
                 command="create-agent")  # fmt: skip
    mine = expected(world, A, (VIP, TRICKY))
    port = world["ports"][door]
    url = world["cfg"].meilisearch.url
    for user_filter in (None, *WIDENING[:3]):
        body = {**EVERYTHING, **({"filter": user_filter} if user_filter else {})}
        status, _, data = send(port, "POST", f"/indexes/{INDEX}/search", token, body)
        assert status == 200, data
        through_door = {h["id"] for h in json.loads(data)["hits"]}
        assert through_door <= mine
        assert through_door == chat_ids(search(url, token, INDEX, body))  # as Meilisearch says
        assert user_filter is not None or through_door == mine
        multi = {"queries": [{"indexUid": INDEX, **body}]}
        status, _, data = send(port, "POST", "/multi-search", token, multi)
        assert status == 200, data
        assert {h["id"] for h in json.loads(data)["results"][0]["hits"]} == through_door


def test_a_scoped_token_is_the_mcp_servers_key(world: dict[str, Any]) -> None:
    token = mint(world, "--instance", B, "--only-label", VIP)
    mine = expected(world, B, (VIP,))
    outside = next(d for d in world["docs"] if d["id"] not in mine and d["phone_digits"])

    async def body(c: Any) -> None:
        everything = await call(c, "search_chats", limit=50)
        assert everything["by_instance"] == {B: len(mine)}
        assert {h["jid"] for h in everything["chats"]} <= {
            d["jid"] for d in world["docs"] if d["id"] in mine
        }
        sneaky = await call(c, "search_chats", query=outside["phone_digits"])
        assert outside["jid"] not in [h["jid"] for h in sneaky["chats"]]
        assert (await call(c, "index_status"))["documents"] == len(mine)

    session(stdio({**world["env"], "MEILI_API_KEY": token}), body)


# -- listing and revoking ----------------------------------------------------------------------


def test_keys_list_shows_each_scope_and_revoking_the_parent_ends_the_token(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    made = cli_ok(world, "keys", "create-agent", "--label", "Billing team", "--instance",
                  "Cairo", "--only-label", BILLING, "--only-label", TRICKY)  # fmt: skip
    token = register_secret(made.stdout.strip())
    uid = token_key_uid(token)
    assert uid and f"explorer keys revoke {uid}" in made.stderr
    assert search(meili.url, token, INDEX, {"q": ""}).status_code == 200
    unscoped = mint(world)
    listed = json.loads(cli_ok(world, "keys", "list", "--json").stdout)
    entry = next(k for k in listed if k["uid"] == uid)
    assert entry["scope"] == {"instance_id": A, "labels": [BILLING, TRICKY]}  # by id
    assert entry["description"] == (
        f"WhatsApp Explorer agents (Billing team) scope: instance {A}; "
        f'labels "Billing", {json.dumps(TRICKY, ensure_ascii=False)}'
    )
    text = cli_ok(world, "keys", "list").stdout
    assert f"{uid}  " in text and "(Billing team) scope: instance" in text
    assert any(k["scope"] is None for k in listed)  # the unscoped key, at least
    gone = cli_ok(world, "keys", "revoke", token)  # the token names its parent
    assert uid in gone.stdout
    assert search(meili.url, token, INDEX, {"q": ""}).status_code in (401, 403)
    assert search(meili.url, unscoped, INDEX, {"q": ""}).status_code == 200  # only that one


# -- bad input -----------------------------------------------------------------------------------


def refused(world: dict[str, Any], *args: str, command: str = "create-search") -> str:
    """The one-line error for a scope, and no key made for it."""
    before = json.loads(cli_ok(world, "keys", "list", "--json").stdout)
    result = CliRunner().invoke(cli, ["keys", command, *args], env=world["admin_env"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    after = json.loads(cli_ok(world, "keys", "list", "--json").stdout)
    assert len(after) == len(before)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


@pytest.mark.parametrize("command", ["create-agent", "create-search"])
def test_an_instance_nobody_configured_or_indexed_is_one_line_naming_the_known(
    world: dict[str, Any], command: str
) -> None:
    line = refused(world, "--instance", "NOSUCHINST01", command=command)
    assert "--instance 'NOSUCHINST01' is neither a configured instance" in line
    assert f"{A} (Cairo)" in line and f"{B} (Lagos)" in line and "--force" in line


def test_a_label_no_chat_carries_is_refused_unless_forced(world: dict[str, Any]) -> None:
    line = refused(world, "--only-label", VIP, "--only-label", NOBODY)
    assert f'--only-label "{NOBODY}": no chat of index' in line and "--force" in line
    # Lagos carries VIP but not the tricky label: named within the instance
    line = refused(world, "--instance", B, "--only-label", TRICKY)
    assert f"no chat of instance {B} carries it" in line
    token = mint(world, "--only-label", NOBODY, "--force")
    assert search(world["cfg"].meilisearch.url, token, INDEX, EVERYTHING).json()["hits"] == []


def test_empty_and_too_many_labels_are_one_line(world: dict[str, Any]) -> None:
    assert "--only-label cannot be empty" in refused(world, "--only-label", " ")
    many = [a for n in range(MAX_LABELS + 1) for a in ("--only-label", f"L{n}")]
    assert f"a scope takes at most {MAX_LABELS}" in refused(world, *many, "--force")
    fits = [a for n in range(MAX_LABELS) for a in ("--only-label", f"L{n}")]
    assert mint(world, *fits, "--force").count(".") == 2  # 100 short ones fit


def test_a_token_too_long_for_the_door_is_refused_before_any_key_is_made(
    world: dict[str, Any],
) -> None:
    long = [a for n in range(40) for a in ("--only-label", f"{n} {LONG}")]
    line = refused(world, *long, "--force")
    assert "the token would be" in line and "name fewer or shorter labels" in line


def test_a_scope_names_an_instance_by_its_label(world: dict[str, Any], meili: MeiliServer) -> None:
    token = mint(world, "--instance", "Lagos")
    assert chat_ids(search(meili.url, token, INDEX, EVERYTHING)) == expected(world, B, ())


# -- the filter and the token ------------------------------------------------------------------


def test_the_scope_filter_quotes_every_name() -> None:
    scope = scope_of(A, [TRICKY, VIP, TRICKY])
    assert scope.labels == (TRICKY, VIP)  # repeats count once
    assert scope.filter() == (
        f'instance_id = "{A}" AND labels IN ["Billing, \\"EU\\" \\\\ team 🚀", "VIP"]'
    )
    assert not Scope() and Scope(labels=(VIP,))


def test_the_token_carries_one_rule_per_index_and_names_its_parent() -> None:
    settings = MeiliSettings("http://127.0.0.1:1", None, INDEX)
    uid = "6062abda-a5aa-4414-ac91-ecd7944c0f8d"
    token = tenant_token(settings, uid, "k" * 64, Scope(B, (VIP,)), None)
    payload = token.split(".")[1]
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    rule = {"filter": f'instance_id = "{B}" AND labels IN ["VIP"]'}
    assert claims["searchRules"] == {INDEX: rule, MESSAGES: rule}
    assert token_key_uid(token) == uid and token_key_uid("not.a-token") is None


def test_the_page_reads_the_scope_a_token_carries() -> None:
    settings = MeiliSettings("http://127.0.0.1:1", None, INDEX)
    uid = "6062abda-a5aa-4414-ac91-ecd7944c0f8d"
    scopes = [Scope(A, (VIP, TRICKY, LONG)), Scope(labels=(BILLING,)), Scope(B)]
    tokens = [tenant_token(settings, uid, "k" * 64, s, None) for s in scopes]
    got = run_query_js(
        f"return [...data, 'plainkey'].map((t) => q.scopeOf(t, {json.dumps(INDEX)}));", tokens
    )
    assert got == [{"instance": s.instance_id, "labels": list(s.labels)} for s in scopes] + [None]


# -- the page -------------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    from tests.browser import Browser

    with Browser(1200, 800) as b:
        yield b


def test_the_agent_page_shows_its_scope_in_the_header(
    world: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    token = mint(world, "--instance", A, "--only-label", VIP, "--only-label", TRICKY,
                 command="create-agent")  # fmt: skip
    browser.navigate(f"{world['page'].url}#key={token}")
    browser.wait_for("['results','empty','error'].includes(document.body.dataset.state)")
    line = browser.evaluate("document.getElementById('scope').textContent")
    assert line == f"Scope: instance Cairo · labels VIP, “{TRICKY}”"
    assert browser.evaluate("document.getElementById('scope').hidden") is False
    shown = browser.evaluate(
        "[...document.querySelectorAll('#results button[data-what=JID]')].map(b => b.dataset.copy)"
    )
    mine = {d["jid"] for d in world["docs"] if d["id"] in expected(world, A, (VIP, TRICKY))}
    assert shown and set(shown) <= mine
    browser.screenshot(tmp_path / "scope.png")
    browser.resize(390, 800, mobile=True)  # a long scope is cut short, whole on hover
    width = browser.evaluate("document.getElementById('scope').getBoundingClientRect().width")
    assert 0 < width < 390
    # a plain key has no scope line
    browser.evaluate("sessionStorage.clear()")
    browser.navigate(f"{world['page'].url}?q=#key={mint(world, command='create-agent')}")
    browser.wait_for("['results','empty','error'].includes(document.body.dataset.state)")
    assert browser.evaluate("document.getElementById('scope').hidden") is True


def test_keys_list_reads_a_scope_from_the_key_name_and_an_older_keys_description() -> None:
    named = {"name": 'explorer-scope {"instance_id": null, "labels": ["VIP"]}',
             "description": "WhatsApp Explorer agents (Amira) scope: label \"VIP\""}  # fmt: skip
    assert Scope.from_key(named) == Scope(None, ("VIP",))
    older = {"name": None, "description": "WhatsApp Explorer search (instance ABC123)"}
    assert Scope.from_key(older) == Scope("ABC123")
    plain = {"name": None, "description": "WhatsApp Explorer agents (Amira)"}
    assert Scope.from_key(plain) is None
    assert Scope.from_key({"name": "explorer-scope {broken", "description": ""}) is None
