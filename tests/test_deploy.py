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


@pytest.mark.parametrize(
    "unit", ["explorer-reindex.service", "explorer-sync.service", "explorer-serve.service"]
)
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
        "meilisearch", "door", "nginx", "explorer", "listener", "sandbox"
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


def test_compose_puts_nginx_in_front_of_the_door_and_the_listener() -> None:
    """nginx is the only way in: its servers proxy to the door (`explorer serve`) and the
    listener at the addresses compose gives them, and neither of those is published."""
    result = compose("config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    proxy = services["nginx"]
    pairs = [
        (v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
        for v in proxy["volumes"]
    ]
    mounts = {str(target): Path(str(source)) for source, target in pairs}
    assert all(source.exists() for source in mounts.values()), mounts
    main = mounts["/etc/nginx/nginx.conf"].read_text()
    assert "include /etc/nginx/conf.d/*.conf;" in main and "load_module" not in main
    agents = mounts["/etc/nginx/conf.d/default.conf"].read_text()
    hooks = mounts["/etc/nginx/conf.d/webhooks.conf"].read_text()
    assert mounts["/etc/nginx/conf.d/default.conf"] == ROOT / "deploy/nginx/agent-ui.conf"
    assert mounts["/etc/nginx/conf.d/webhooks.conf"] == ROOT / "deploy/nginx/webhooks.conf"
    assert "js_" not in agents and not (ROOT / "deploy/nginx/door.js").exists()
    door, listener = services["door"], services["listener"]
    assert parse_invocation(door["command"]) == "serve" and "ports" not in door
    assert parse_invocation(listener["command"]) == "listen" and "ports" not in listener
    assert "server door:" + door["command"][door["command"].index("--port") + 1] in agents
    assert "listener:" + listener["command"][listener["command"].index("--port") + 1] in hooks
    published = {
        str(p["target"]) if isinstance(p, dict) else p.split(":")[-1].split("/")[0]
        for p in proxy["ports"]
    }
    assert published == {re.search(r"listen (\d+);", c).group(1) for c in (agents, hooks)}  # type: ignore[union-attr]
    assert "MEILI_API_KEY" not in door.get("environment", {})  # agents bring their own keys


def test_the_webhooks_server_passes_only_posts_to_the_receiver(tmp_path: Path) -> None:
    """deploy/nginx/webhooks.conf run by a real nginx in front of a stand-in receiver:
    events (with their signature header and body intact) pass; nothing else does; a
    trickled head is closed."""
    import http.client
    import http.server
    import socket
    import threading

    from tests.test_door import nginx
    from tests.test_server import read_all

    got: list[tuple[str, str, bytes, str | None]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.command, self.path, body, self.headers.get("X-Webhook-Hmac")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    where = f"127.0.0.1:{receiver.server_address[1]}"
    try:
        with nginx(tmp_path, where, "1s", conf="webhooks.conf", upstream="listener:8701") as port:

            def request(method: str, path: str) -> int:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request(method, path, body=b'{"event": "x"}' if method == "POST" else None,
                             headers={"X-Webhook-Hmac": "abc"})  # fmt: skip
                status = conn.getresponse().status
                conn.close()
                return status

            assert request("POST", "/webhooks/wawp") == 200
            assert request("POST", "/webhooks/wawp/some-secret") == 200
            assert request("GET", "/webhooks/wawp") == 403
            assert request("POST", "/metrics") == 404
            assert request("GET", "/healthz") == 404
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"POST /webhooks/wawp HTTP/1.1\r\nHost: x\r\n")
                read_all(sock)  # returns once nginx closed it, after its 1 s head deadline
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert got == [
        ("POST", "/webhooks/wawp", b'{"event": "x"}', "abc"),
        ("POST", "/webhooks/wawp/some-secret", b'{"event": "x"}', "abc"),
    ]
