"""`explorer mcp` through the SDK's own client, over stdio and streamable HTTP, against the real
Meilisearch with sandbox data: the tools and their schemas, finding chats, the key and token
checks, bad arguments, and the housekeeping reports agreeing with the CLI's."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import meilisearch
import pytest
from click.testing import CliRunner
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from explorer.cli import cli
from explorer.config import load_config
from explorer.dev.meili_server import MeiliServer, free_port
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from explorer.jobs.reindex import reindex
from tests.conftest import register_secret

ROOT = Path(__file__).resolve().parent.parent
A, B = "INSTMCP0000A", "INSTMCP0000B"
TOKEN_A = register_secret("mcp-test-token-aaaaaaaaaaaaaaaa")
TOKEN_B = register_secret("mcp-test-token-bbbbbbbbbbbbbbbb")
BEARER = register_secret("mcp-bearer-" + "x" * 24)
INDEX = "mcp_world"
TOOLS = {"search_chats", "get_chat", "zombie_chats", "audit_groups", "index_status",
         "search_messages"}  # fmt: skip


@pytest.fixture(scope="module")
def world(meili: MeiliServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two instances (Cairo, Lagos) reindexed once; one group of Cairo's on its allow-list."""
    sb = Sandbox(
        SandboxOptions(chats=600, instances={A: TOKEN_A, B: TOKEN_B}, epoch=int(time.time()),
                       seed=5)
    ).start()  # fmt: skip
    tmp = tmp_path_factory.mktemp("mcp")
    state = tmp / "state"

    def write_config(allowed: list[str]) -> Path:
        path = tmp / "explorer.toml"
        path.write_text(
            f'[wawp]\nwarmup_seconds = 0\n\n[[wawp.instances]]\nid = "{A}"\nlabel = "Cairo"\n'
            f'access_token = "{TOKEN_A}"\n\n[wawp.instances.audit]\nallowed_groups = '
            f'{json.dumps(allowed)}\n\n[[wawp.instances]]\nid = "{B}"\nlabel = "Lagos"\n'
            f'access_token = "{TOKEN_B}"\n\n[reindex]\nstate_dir = "{state}"\n'
        )
        return path

    env = {"WAWP_BASE_URL": sb.url, "MEILI_URL": meili.url, "EXPLORER_INDEX": INDEX}
    path = write_config([])
    reindex(load_config(path, env={**env, "MEILI_API_KEY": meili.master_key}))
    sb.stop()
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = [dict(d) for d in client.index(INDEX).get_documents({"limit": 10_000}).results]
    allowed = next(d for d in docs if d["instance_id"] == A and d["chat_type"] == "group")
    write_config([allowed["jid"], "Family *"])
    admin_env = {**env, "MEILI_API_KEY": meili.master_key, "EXPLORER_CONFIG": str(path)}
    made = CliRunner().invoke(cli, ["keys", "create-search"], env=admin_env)
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    register_secret(key)
    yield {
        "docs": docs,
        "admin_env": admin_env,
        "key": key,
        "paste": made.stderr,
        "env": {**env, "MEILI_API_KEY": key, "EXPLORER_CONFIG": str(path)},
    }


def stdio(env: dict[str, str]) -> Client:
    """The server as a desktop assistant starts it: a child process on stdin/stdout."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "explorer.cli", "mcp"], env=env, cwd=str(ROOT)
    )
    return Client(params)


def session(client: Client, body: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with client as c:
            await body(c)

    anyio.run(main)


async def call(c: Client, tool: str, **arguments: Any) -> Any:
    result = await c.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def error(c: Client, tool: str, **arguments: Any) -> str:
    result = await c.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


# -- the contract ----------------------------------------------------------------------------


def test_tools_and_schema_resource_are_listed_with_their_documented_schemas(
    world: dict[str, Any],
) -> None:
    async def body(c: Client) -> None:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == TOOLS
        search = tools["search_chats"].input_schema
        assert list(search["properties"]) == [
            "query", "chat_type", "instance", "archived", "inactive_days", "sort", "limit",
            "labels",
        ]  # fmt: skip
        assert search["properties"]["labels"]["anyOf"][0]["items"] == {"type": "string"}
        assert search.get("required", []) == []
        assert search["properties"]["limit"]["minimum"] == 1
        assert search["properties"]["limit"]["maximum"] == 50
        assert search["properties"]["chat_type"]["enum"] == [
            "individual", "group", "channel", "broadcast", None,
        ]  # fmt: skip
        assert tools["get_chat"].input_schema["required"] == ["jid_or_phone"]
        assert list(tools["zombie_chats"].input_schema["properties"]) == [
            "days", "chat_type", "instance", "limit",
        ]  # fmt: skip
        assert list(tools["audit_groups"].input_schema["properties"]) == [
            "inactive_days", "instance", "limit",
        ]  # fmt: skip
        assert tools["index_status"].input_schema["properties"] == {}
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40
            assert tool.annotations is not None and tool.annotations.read_only_hint
        documented = (ROOT / "docs" / "mcp.md").read_text()
        for name in TOOLS:
            assert f"`{name}" in documented
        resources = (await c.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["explorer://schema"]
        schema = await c.read_resource("explorer://schema")
        assert schema.contents[0].text == (ROOT / "docs" / "schema.md").read_text()  # type: ignore[union-attr]

    session(stdio(world["env"]), body)


# -- finding chats -----------------------------------------------------------------------------


def test_finds_chats_by_misspelt_name_and_spaced_phone_number(world: dict[str, Any]) -> None:
    person = next(
        d for d in world["docs"]
        if d["chat_type"] == "individual" and (d["name"] or "").isascii()
        and len((d["name"] or "").split()) == 2 and len(d["name"].split()[1]) >= 6
        and d["phone"]
    )  # fmt: skip
    first, last = person["name"].split()
    misspelt = f"{first} {last[:2]}{'x' if last[2] != 'x' else 'y'}{last[3:]}"
    spaced = person["phone_display"]
    assert " " in spaced

    async def body(c: Client) -> None:
        found = await call(c, "search_chats", query=misspelt, limit=5)
        assert person["jid"] in [h["jid"] for h in found["chats"]], (misspelt, found)
        hit = next(h for h in found["chats"] if h["jid"] == person["jid"])
        assert hit["name"] == person["display_name"]
        assert hit["phone"] == spaced
        assert hit["wa_me"] == f"https://wa.me/{person['phone_digits']}"
        assert hit["instance"] in ("Cairo", "Lagos")
        assert hit["last_activity"].endswith("Z") and "ago" in hit["last_activity_words"]
        by_phone = await call(c, "search_chats", query=spaced)
        assert by_phone["phone_query"] == person["phone_digits"]
        assert by_phone["chats"][0]["jid"] == person["jid"]
        whole = await call(c, "get_chat", jid_or_phone=spaced)
        assert person["id"] in [d["id"] for d in whole["chats"]]
        by_jid = await call(c, "get_chat", jid_or_phone=person["jid"])
        assert {d["jid"] for d in by_jid["chats"]} == {person["jid"]}
        groups = await call(c, "search_chats", chat_type="group", instance="Lagos", limit=50)
        assert groups["by_type"] == {"group": groups["total"]}
        assert set(groups["by_instance"]) == {B}
        assert groups["shown"] == min(50, groups["total"]) == len(groups["chats"])
        missing = await error(c, "get_chat", jid_or_phone="999999999999@c.us")
        assert "no chat with that JID or phone number" in missing

    session(stdio(world["env"]), body)


def test_bad_arguments_are_tool_errors_with_the_cli_wording(world: dict[str, Any]) -> None:
    async def body(c: Client) -> None:
        assert "limit must be between 1 and 50, got -1" in await error(
            c, "search_chats", query="maria", limit=-1
        )
        assert "limit must be between 1 and 50, got 51" in await error(c, "zombie_chats", limit=51)
        assert (
            "chat_type must be one of individual, group, channel, broadcast, got 'person'"
            in await error(c, "search_chats", chat_type="person")
        )
        huge = await error(c, "search_chats", query="a" * 10_240)
        assert "query must be at most 200 characters, got 10240" in huge
        assert "sort must be ATTRIBUTE[:asc|desc]" in await error(c, "search_chats", sort="x:up")
        assert "inactive_days must be >= 0, got -3" in await error(
            c, "search_chats", inactive_days=-3
        )
        assert "is not an instance id or label" in await error(
            c, "search_chats", query="zzzzqqq", instance="Paris"
        )
        assert "jid_or_phone" in await error(c, "get_chat", jid_or_phone="not a phone")
        assert "days must be >= 0, got -1" in await error(c, "zombie_chats", days=-1)
        assert "validation error" in await error(c, "search_chats", limit="ten")
        # and the server is still there
        assert (await call(c, "search_chats", query="", limit=1))["shown"] == 1

    session(stdio(world["env"]), body)


# -- the reports agree with the CLI's ------------------------------------------------------------


def test_zombies_and_audit_agree_with_the_cli(world: dict[str, Any]) -> None:
    runner = CliRunner()
    cli_zombies = json.loads(
        runner.invoke(cli, ["zombies", "--json", "--days", "60"], env=world["admin_env"]).stdout
    )
    cli_audit = json.loads(runner.invoke(cli, ["audit", "--json"], env=world["admin_env"]).stdout)
    assert cli_audit["flagged_total"] > 0 and cli_zombies["total"] > 0

    async def body(c: Client) -> None:
        zombies = await call(c, "zombie_chats", days=60, limit=5)
        assert zombies["total"] == cli_zombies["total"]
        assert zombies["archived"] == cli_zombies["archived"]
        assert zombies["shown"] == 5
        oldest = sorted(
            (z["last_activity"] for z in cli_zombies["chats"] if z["last_activity"]),
        )[:5]
        assert [z["last_activity"] for z in zombies["oldest"]] == [
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) for t in oldest
        ]
        audit = await call(c, "audit_groups", limit=3)
        assert audit["flagged_total"] == cli_audit["flagged_total"]
        mine = {i["instance_id"]: (i["groups"], i["allowed"], i["flagged"])
                for i in audit["instances"]}  # fmt: skip
        theirs = {i["instance_id"]: (i["groups"], i["allowed"], len(i["flagged"]))
                  for i in cli_audit["instances"]}  # fmt: skip
        assert mine == theirs
        assert mine[A][1] >= 1  # the allow-listed group
        assert len(audit["flagged"]) == 3 and audit["incomplete"] == []
        status = await call(c, "index_status")
        assert status["documents"] == len(world["docs"])
        assert status["by_instance"][A]["label"] == "Cairo"
        assert status["last_reindex"]["chats"] == len(world["docs"])

    session(stdio(world["env"]), body)


# -- keys ----------------------------------------------------------------------------------------


def test_search_key_creation_prints_the_line_to_paste(world: dict[str, Any]) -> None:
    line = next(x for x in world["paste"].splitlines() if "claude mcp add" in x)
    assert f"--env MEILI_API_KEY={world['key']}" in line
    assert f"--env EXPLORER_INDEX={INDEX}" in line
    assert line.endswith(" mcp")


def test_tenant_token_limits_the_server_to_its_instance(world: dict[str, Any]) -> None:
    made = CliRunner().invoke(cli, ["keys", "create-search", "--instance", B],
                              env=world["admin_env"])  # fmt: skip
    assert made.exit_code == 0, made.output
    token = register_secret(made.stdout.strip())
    assert f"MEILI_API_KEY={token}" in made.stderr
    only_b = sum(1 for d in world["docs"] if d["instance_id"] == B)
    in_b = {d["jid"] for d in world["docs"] if d["instance_id"] == B}
    from_a = next(
        d for d in world["docs"] if d["instance_id"] == A and d["phone"] and d["jid"] not in in_b
    )

    async def body(c: Client) -> None:
        everything = await call(c, "search_chats", limit=50)
        assert everything["by_instance"] == {B: only_b}
        assert {h["instance_id"] for h in everything["chats"]} == {B}
        assert (await call(c, "index_status"))["documents"] == only_b
        sneaky = await call(c, "search_chats", query=from_a["phone_digits"], instance=B)
        assert from_a["jid"] not in [h["jid"] for h in sneaky["chats"]]
        assert "no chat" in await error(c, "get_chat", jid_or_phone=from_a["jid"])
        audit = await call(c, "audit_groups")
        assert [i["instance_id"] for i in audit["instances"]] == [B]

    session(stdio({**world["env"], "MEILI_API_KEY": token}), body)


def server_state(master: meilisearch.Client) -> tuple[Any, ...]:
    """What a key check must leave as it found it: tasks, keys, indexes, documents."""
    return (
        master.http.get("tasks?limit=1")["total"],
        master.http.get("keys?limit=1")["total"],
        [i["uid"] for i in master.http.get("indexes?limit=100")["results"]],
        master.index(INDEX).get_stats().number_of_documents,
    )


def make_key(master: meilisearch.Client, actions: list[str], indexes: list[str]) -> str:
    made = master.http.post("keys", {"actions": actions, "indexes": indexes, "expiresAt": None})
    return register_secret(str(made["key"]))


def test_keys_holding_any_action_beyond_the_read_only_set_are_refused_naming_it(
    world: dict[str, Any], meili: MeiliServer, tmp_path: Path
) -> None:
    master = meilisearch.Client(meili.url, meili.master_key)
    with_search = ["keys.create", "indexes.swap", "tasks.delete", "settings.get",
                   "documents.add", "export", "webhooks.create"]  # fmt: skip
    cases = {make_key(master, ["search", action], [INDEX]): (f"can also {action}:",)
             for action in with_search}  # fmt: skip
    cases[make_key(master, ["*"], [INDEX])] = ("can do every action (`*`)",)
    cases[make_key(master, ["search", "indexes.delete"], ["*"])] = ("indexes.delete",)
    # Meilisearch 1.21's `*.get` (its "read-only admin" keys) covers `export`, a write
    cases[make_key(master, ["search", "*.get"], [INDEX])] = ("settings.get", "export")
    cases[meili.master_key] = ("can search every index on the server and do every action",)
    before = server_state(master)
    for value, powers in cases.items():
        result = CliRunner().invoke(cli, ["mcp"], env={**world["env"], "MEILI_API_KEY": value})
        assert result.exit_code == 3, result.output
        assert all(power in result.stderr for power in powers), result.stderr
        assert "limited to search, indexes.get, stats.get, version" in result.stderr
        assert "explorer keys create-search" in result.stderr
        assert value not in result.output
    # the same through --key-file, and no key at all
    key_file = tmp_path / "key"
    key_file.write_text(meili.master_key + "\n")
    env = {**world["env"], "MEILI_API_KEY": ""}
    result = CliRunner().invoke(cli, ["mcp", "--key-file", str(key_file)], env=env)
    assert result.exit_code == 3 and "search every index" in result.stderr
    result = CliRunner().invoke(cli, ["mcp"], env=env)
    assert result.exit_code == 3 and "no Meilisearch key" in result.stderr
    assert server_state(master) == before  # the probes changed nothing


def test_the_read_only_key_and_a_tenant_token_are_accepted_and_unprobeable_actions_named(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    """Exactly the allow-list passes. Deleting the index itself, dumps and snapshots have no
    route that refuses them harmlessly: a key holding them is accepted (probing would delete
    the index) and the banner names them; a tenant token cannot do them at all."""
    from explorer.doors.mcp_server import prepare

    master = meilisearch.Client(meili.url, meili.master_key)
    made = CliRunner().invoke(cli, ["keys", "create-search", "--instance", A],
                              env=world["admin_env"])  # fmt: skip
    assert made.exit_code == 0, made.output
    token = register_secret(made.stdout.strip())
    read_only = make_key(master, ["search", "indexes.get", "stats.get", "version"], [INDEX])
    unprobeable = make_key(master, ["search", "indexes.delete", "dumps.create",
                                    "snapshots.create"], [INDEX])  # fmt: skip
    env = {k: v for k, v in world["env"].items() if k != "MEILI_API_KEY"}
    before = server_state(master)
    named = (f"not checkable without doing them: deleting index {INDEX!r} itself, "
             "dumps.create, snapshots.create")  # fmt: skip
    for kind, value in (("key", read_only), ("token", token), ("key", unprobeable)):
        cfg = load_config(env["EXPLORER_CONFIG"], env={**env, "MEILI_API_KEY": value})
        launch = prepare(cfg)
        try:
            banner = launch.banner("stdio")
        finally:
            launch.close()
        assert launch.scope.tenant_token == (kind == "token")
        assert (named in banner) == (kind == "key"), banner
    assert server_state(master) == before  # nothing deleted, no dump, no snapshot


def test_every_meilisearch_action_is_allowed_probed_or_named_unprobeable(
    meili: MeiliServer,
) -> None:
    """The allow-list is only as good as its list of the server's actions: Meilisearch names
    them all when it refuses an unknown one, so a new release's actions fail here."""
    from explorer.meili.readonly import PROBES, READ_ONLY_ACTIONS, UNPROBEABLE, WILDCARDS

    refused = httpx.post(
        f"{meili.url}/keys",
        json={"actions": ["no-such-action"], "indexes": ["*"], "expiresAt": None},
        headers={"Authorization": f"Bearer {meili.master_key}"},
    ).json()
    assert refused["code"] == "invalid_api_key_actions"
    listed = set(re.findall(r"`([^`]+)`", refused["message"].split("expected one of", 1)[1]))
    known = {*READ_ONLY_ACTIONS, *(p.action for p in PROBES), *UNPROBEABLE, *WILDCARDS}
    assert listed == known
    assert len(PROBES) == len({p.action for p in PROBES})


# -- HTTP --------------------------------------------------------------------------------------


@pytest.fixture
def http_server(world: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    token_file = tmp_path / "bearer"
    token_file.write_text(BEARER)
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "mcp", "--http", "--port", str(port),
         "--token-file", str(token_file)],
        env={**world["env"], "PATH": "/usr/bin:/bin"}, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield url
        proc.terminate()
        proc.wait(10)


def test_http_transport_needs_its_bearer_token(http_server: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(http_server, json=body, headers=headers).status_code == 401
    wrong = {**headers, "Authorization": "Bearer " + "y" * 35}
    assert httpx.post(http_server, json=body, headers=wrong).status_code == 401

    async def main() -> None:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {BEARER}"})
        async with http, Client(streamable_http_client(http_server, http_client=http)) as c:
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS
            found = await call(c, "search_chats", query="", chat_type="channel", limit=2)
            assert found["shown"] == 2 and found["by_type"] == {"channel": found["total"]}
            assert "limit must be between" in await error(c, "search_chats", limit=0)

    anyio.run(main)


def test_http_transport_refuses_to_start_without_a_token(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["mcp", "--http"], env=world["env"])
    assert result.exit_code == 2
    assert "EXPLORER_MCP_TOKEN" in result.stderr and "--token-file" in result.stderr
    short = CliRunner().invoke(cli, ["mcp", "--http"],
                               env={**world["env"], "EXPLORER_MCP_TOKEN": "short"})  # fmt: skip
    assert short.exit_code == 2 and "the MCP bearer token must be at least 16" in short.stderr


# -- the documented configurations, as a new user pastes them ------------------------------------


def documented() -> tuple[list[str], list[dict[str, Any]]]:
    """docs/mcp.md's `claude mcp add` lines and its JSON client configurations."""
    text = (ROOT / "docs" / "mcp.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    lines = [b.strip() for kind, b in blocks if kind == "sh" and b.startswith("claude mcp add")]
    configs = [json.loads(b) for kind, b in blocks if kind == "json"]
    return lines, configs


def as_user(text: str, world: dict[str, Any], meili: MeiliServer, port: int = 8702) -> str:
    """The placeholders a reader replaces (and the one-line VS Code input it asks for)."""
    exe = str(Path(sys.executable).with_name("explorer"))
    return (
        text.replace("/home/you/whatsapp-explorer/.venv/bin/explorer", exe)
        .replace("http://127.0.0.1:7700", meili.url)
        .replace("YOUR_SEARCH_KEY", world["key"])
        .replace("${input:meili-search-key}", world["key"])
        .replace("YOUR_MCP_TOKEN", BEARER)
        .replace("${input:mcp-token}", BEARER)
        .replace("127.0.0.1:8702", f"127.0.0.1:{port}")
    )


async def lists_the_tools(c: Client) -> None:
    assert {t.name for t in (await c.list_tools()).tools} == TOOLS
    assert (await call(c, "search_chats", limit=1))["shown"] == 1


def test_documented_stdio_configurations_start_the_server(
    world: dict[str, Any], meili: MeiliServer
) -> None:
    lines, configs = documented()
    extra = {"EXPLORER_INDEX": INDEX}  # the docs' index is `chats`, the test's is not
    stdio_line = next(x for x in lines if "--transport" not in x)
    argv = shlex.split(as_user(stdio_line, world, meili))
    assert argv[:4] == ["claude", "mcp", "add", "whatsapp-explorer"]
    split = argv.index("--")
    env = dict(argv[i + 1].split("=", 1) for i in range(4, split) if argv[i] == "--env")
    servers = [StdioServerParameters(command=argv[split + 1], args=argv[split + 2 :],
                                     env={**env, **extra})]  # fmt: skip
    for config in configs:
        for server in (config.get("mcpServers") or config.get("servers") or {}).values():
            if server.get("type", "stdio") == "stdio":
                server = json.loads(as_user(json.dumps(server), world, meili))
                servers.append(StdioServerParameters(
                    command=server["command"], args=server["args"], env={**server["env"], **extra}
                ))  # fmt: skip
    assert len(servers) == 3  # Claude Code, Claude Desktop, VS Code
    for params in servers:
        session(Client(params), lists_the_tools)


def test_documented_http_configurations_reach_the_server(
    http_server: str, world: dict[str, Any], meili: MeiliServer
) -> None:
    port = int(http_server.rsplit(":", 1)[1].split("/")[0])
    lines, configs = documented()
    http_line = shlex.split(as_user(next(x for x in lines if "--transport http" in x), world,
                                    meili, port))  # fmt: skip
    url = http_line[http_line.index("whatsapp-explorer") + 1]
    header = http_line[http_line.index("--header") + 1]
    targets = [(url, dict([header.split(": ", 1)]))]
    for config in configs:
        for server in (config.get("servers") or {}).values():
            if server.get("type") == "http":
                server = json.loads(as_user(json.dumps(server), world, meili, port))
                targets.append((server["url"], server["headers"]))
    assert len(targets) == 2  # Claude Code, VS Code

    async def main() -> None:
        for target, headers in targets:
            http = httpx2.AsyncClient(headers=headers)
            async with http, Client(streamable_http_client(target, http_client=http)) as c:
                await lists_the_tools(c)

    anyio.run(main)


def test_http_transport_on_a_busy_port_is_one_line(world: dict[str, Any]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**world["env"], "EXPLORER_MCP_TOKEN": BEARER}
        result = CliRunner().invoke(cli, ["mcp", "--http", "--port", str(port)], env=env)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Error: cannot listen on 127.0.0.1:{port}")
    )


def test_key_file_and_token_from_the_environment_are_used(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from explorer.doors.mcp_server import prepare

    key_file = tmp_path / "search-key"
    key_file.write_text(world["key"] + "\n")
    env = {k: v for k, v in world["env"].items() if k != "MEILI_API_KEY"}
    cfg = load_config(env["EXPLORER_CONFIG"], env=env)
    launch = prepare(cfg, key_file=str(key_file), http=True, env={"EXPLORER_MCP_TOKEN": BEARER})
    try:
        assert launch.token is not None and launch.token.reveal() == BEARER
        assert not launch.scope.tenant_token and set(launch.scope.instances) == {A, B}
        assert "with a search key; instances: INSTMCP0000A (Cairo)" in launch.banner("stdio")
    finally:
        launch.close()
    (tmp_path / "empty").write_text("\n")
    result = CliRunner().invoke(cli, ["mcp", "--key-file", str(tmp_path / "empty")], env=env)
    assert result.exit_code == 2 and "the Meilisearch key file is empty" in result.stderr
