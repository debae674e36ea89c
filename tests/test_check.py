from __future__ import annotations

import meilisearch
from click.testing import CliRunner

from explorer.cli import cli
from explorer.dev.meili_server import MeiliServer, free_port
from explorer.dev.sandbox import Sandbox
from tests.conftest import explorer_env


def env_for(sb: Sandbox, token: str, meili: MeiliServer, **extra: str) -> dict[str, str]:
    return explorer_env(sb, token, meili.url, meili.master_key, **extra)


def test_check_all_ok(sandbox: Sandbox, token: str, meili: MeiliServer) -> None:
    result = CliRunner().invoke(cli, ["check"], env=env_for(sandbox, token, meili))
    assert result.exit_code == 0, result.output
    assert "INST00000001" in result.output and "session WORKING" in result.output
    assert "Meilisearch 1.21.0" in result.output
    assert token not in result.output and meili.master_key not in result.output


def test_check_reports_bad_token(sandbox: Sandbox, token: str, meili: MeiliServer) -> None:
    env = env_for(sandbox, token, meili, WAWP_ACCESS_TOKEN="wrong-token-123456")
    result = CliRunner().invoke(cli, ["check"], env=env)
    assert result.exit_code == 1
    assert "401" in result.output and "WAWP_ACCESS_TOKEN" in result.output
    assert "wrong-token-123456" not in result.output


def test_check_reports_unknown_instance(sandbox: Sandbox, token: str, meili: MeiliServer) -> None:
    env = env_for(sandbox, token, meili, WAWP_INSTANCE_ID="INST00000001,NOSUCHINST99")
    result = CliRunner().invoke(cli, ["check"], env=env)
    assert result.exit_code == 1
    lines = {line.split()[1]: line for line in result.output.splitlines()}
    assert "OK" in lines["INST00000001"]
    assert "404" in lines["NOSUCHINST99"] and "instance id" in lines["NOSUCHINST99"]


def test_check_stopped_meilisearch_is_one_line_exit_1(
    sandbox: Sandbox, token: str, meili: MeiliServer
) -> None:
    env = env_for(sandbox, token, meili, MEILI_URL=f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(cli, ["check"], env=env)
    assert result.exit_code == 1
    meili_lines = [line for line in result.output.splitlines() if line.startswith("meilisearch")]
    assert len(meili_lines) == 1 and "unreachable" in meili_lines[0]
    assert "Traceback" not in result.output


def test_check_reports_a_key_without_permission(
    sandbox: Sandbox, token: str, meili: MeiliServer, meili_client: meilisearch.Client
) -> None:
    key = meili_client.create_key(
        {"actions": ["search"], "indexes": ["chats"], "expiresAt": None}
    ).key
    result = CliRunner().invoke(
        cli, ["check"], env=env_for(sandbox, token, meili, MEILI_API_KEY=key)
    )
    assert result.exit_code == 1
    assert "lacks permission" in result.output and "indexes.get" in result.output
    assert key not in result.output


def test_check_unreachable_wawp(token: str, meili: MeiliServer) -> None:
    env = {
        "WAWP_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "WAWP_INSTANCE_ID": "INST00000001",
        "WAWP_ACCESS_TOKEN": token,
        "MEILI_URL": meili.url,
        "MEILI_API_KEY": meili.master_key,
    }
    result = CliRunner().invoke(cli, ["check"], env=env)
    assert result.exit_code == 1
    assert "connection failed" in result.output
    assert token not in result.output


def test_check_json_gives_each_target_its_verdict(
    sandbox: Sandbox, token: str, meili: MeiliServer
) -> None:
    import json

    env = env_for(sandbox, token, meili, WAWP_INSTANCE_ID="INST00000001,NOSUCHINST99")
    result = CliRunner().invoke(cli, ["check", "--json"], env=env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    verdicts = {(c["kind"], c["target"]): c["ok"] for c in report["checks"]}
    assert report["ok"] is False
    assert verdicts == {
        ("wawp", "INST00000001"): True,
        ("wawp", "NOSUCHINST99"): False,
        ("meilisearch", meili.url): True,
    }
    assert token not in result.output
