"""Deployment files: every command they run is a valid `explorer` invocation; compose validates."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path

import click
import pytest
import yaml

from explorer.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def parse_invocation(args: list[str]) -> str:
    """Parse like click would at run time (no callback runs); returns the command name."""
    ctx = cli.make_context("explorer", list(args))
    with warnings.catch_warnings():  # protected_args: deprecated, still the way in click 8
        warnings.simplefilter("ignore", DeprecationWarning)
        rest = [*ctx.protected_args, *ctx.args]
    name, command, remaining = cli.resolve_command(ctx, rest)
    assert command is not None and name is not None
    command.make_context(name, remaining, parent=ctx)
    return name


def explorer_args(command_line: str) -> list[list[str]]:
    """Each `explorer ...` invocation inside a shell line, up to its redirection or `;`."""
    found = []
    for match in re.finditer(
        r"(?:^|[;&|]\s*|\s)(?:/usr/local/bin/)?explorer\s+(--[^;|&>]*)", command_line
    ):
        found.append(shlex.split(match.group(1)))
    return found


def test_cron_lines_are_valid_invocations() -> None:
    lines = [
        line
        for line in (ROOT / "deploy/cron/explorer.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    commands = [args for line in lines for args in explorer_args(line)]
    assert [parse_invocation(a) for a in commands] == ["reindex", "sync"]
    assert all("rc" in line or "||" in line for line in lines)  # failures are reported


@pytest.mark.parametrize("unit", ["explorer-reindex.service", "explorer-sync.service"])
def test_systemd_exec_start_is_valid(unit: str) -> None:
    text = (ROOT / "deploy/systemd" / unit).read_text()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", text, re.M)
    assert exec_start and exec_start.group(1).endswith("/explorer")
    name = parse_invocation(shlex.split(exec_start.group(2)))
    assert name in unit
    if "reindex" in unit:
        assert "RestartPreventExitStatus=2 3" in text


def test_kubernetes_cronjob_args_and_exit_codes() -> None:
    doc = yaml.safe_load((ROOT / "deploy/kubernetes/cronjob.yaml").read_text())
    job = doc["spec"]["jobTemplate"]["spec"]
    container = job["template"]["spec"]["containers"][0]
    assert parse_invocation(container["args"]) == "reindex"
    rule = job["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2, 3]
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `make tools` installs Debian's package"
    return subprocess.run(
        [
            binary,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(ROOT / ".env.example"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_compose_file_validates() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr
    with_profile = compose("--profile", "try", "config", "--services")
    assert with_profile.returncode == 0, with_profile.stderr
    assert set(with_profile.stdout.split()) == {
        "meilisearch", "agent-ui", "explorer", "listener", "sandbox"
    }  # fmt: skip


def test_compose_pins_meilisearch_and_keeps_the_master_key_inside() -> None:
    result = compose("config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    meili = config["services"]["meilisearch"]
    assert meili["image"] == "getmeili/meilisearch:v1.21.0"
    assert "ports" not in meili  # only the read-only proxy is published
    assert any(
        str(v).endswith(":/meili_data:rw") or "/meili_data" in str(v) for v in meili["volumes"]
    )
    assert "healthcheck" in meili and "/health" in " ".join(meili["healthcheck"]["test"])
    explorer = config["services"]["explorer"]
    assert parse_invocation(explorer["command"]) == "schedule"
    sandbox = config["services"]["sandbox"]
    assert parse_invocation(sandbox["command"]) == "sandbox"


def test_compose_refuses_to_start_without_a_master_key(tmp_path: Path) -> None:
    env = tmp_path / "empty.env"
    env.write_text("WAWP_INSTANCE_ID=x\nWAWP_ACCESS_TOKEN=y\n")
    binary = shutil.which("docker-compose")
    assert binary
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(env), "config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "MEILI_MASTER_KEY" in result.stderr


def test_dockerfile_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER explorer$", text, re.M) and "python:3.11-slim" in text
    assert 'ENTRYPOINT ["explorer"]' in text


def test_unknown_option_is_caught_by_the_validator() -> None:
    with pytest.raises(click.UsageError):
        parse_invocation(["reindex", "--no-such-flag"])


def test_compose_door_loads_njs_and_mounts_what_agent_ui_conf_names() -> None:
    """The index pinning runs in njs: the image's nginx must load it and find door.js."""
    result = compose("config")
    assert result.returncode == 0, result.stderr
    ui = yaml.safe_load(result.stdout)["services"]["agent-ui"]
    pairs = [
        (v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
        for v in ui["volumes"]
    ]
    mounts = {str(target): Path(str(source)) for source, target in pairs}
    assert all(source.exists() for source in mounts.values()), mounts
    main = (ROOT / "deploy/nginx/nginx.conf").read_text()
    assert mounts["/etc/nginx/nginx.conf"].read_text() == main
    assert re.search(r"^load_module modules/ngx_http_js_module\.so;", main, re.M)
    assert "include /etc/nginx/conf.d/*.conf;" in main
    server = mounts["/etc/nginx/conf.d/default.conf"].read_text()
    assert "js_import door from /etc/nginx/door.js;" in server
    assert "/etc/nginx/door.js" in mounts
