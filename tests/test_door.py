"""The agent door (deploy/nginx/agent-ui.conf) run by a real nginx in front of a real
Meilisearch, probed with the master key: only the read routes answer, whatever the trick."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import meilisearch
import pytest

from explorer.dev.meili_server import MeiliServer, free_port

ROOT = Path(__file__).resolve().parent.parent
INDEX = "chats"


def nginx_config(tmp: Path, upstream: str, port: int) -> Path:
    """The project's server block, with only its addresses and the page's folder substituted."""
    server = (ROOT / "deploy/nginx/agent-ui.conf").read_text()
    server = server.replace("meilisearch:7700", upstream)
    server = server.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    server = server.replace("/usr/share/explorer/web/", f"{ROOT / 'explorer/web'}/")
    temp = tmp / "temp"
    temp.mkdir(mode=0o777)
    temps = "".join(
        f"{kind}_temp_path {temp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp / "nginx.conf"
    main.write_text(
        f"worker_processes 1;\ndaemon off;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} warn;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n include /etc/nginx/mime.types;\n access_log off;\n{temps}{server}\n}}\n"
    )
    return main


@pytest.fixture(scope="module")
def door(meili: MeiliServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(binary), "nginx is missing: `make test` installs Debian's nginx"
    client = meilisearch.Client(meili.url, meili.master_key)
    client.wait_for_task(client.create_index(INDEX, {"primaryKey": "id"}).task_uid)
    docs = [{"id": f"d{i}", "display_name": f"Chat {i}", "chat_type": "group"} for i in range(20)]
    client.wait_for_task(client.index(INDEX).add_documents(docs).task_uid)
    tmp = tmp_path_factory.mktemp("door")
    port = free_port()
    conf = nginx_config(tmp, f"127.0.0.1:{meili.port}", port)
    proc = subprocess.Popen([binary, "-p", str(tmp), "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
    yield {"port": port, "meili": meili, "client": client}
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    client.wait_for_task(client.delete_index(INDEX).task_uid)


def send(port: int, method: str, target: str, key: str | None, body: Any = None,
         raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request with the request target exactly as given (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, target, skip_accept_encoding=True)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    if key:
        conn.putheader("Authorization", f"Bearer {key}")
    if payload or method in ("POST", "PUT", "PATCH"):
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(payload)))
    conn.endheaders(payload or None)
    resp = conn.getresponse()
    data = resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, headers, data


def snapshot(client: meilisearch.Client) -> dict[str, Any]:
    """Everything a write or a leak through the door could change or reveal."""
    tasks = client.http.get("tasks?limit=1")
    return {
        "tasks": (tasks["total"], [t["uid"] for t in tasks["results"]]),
        "keys": sorted(k["uid"] + str(k["updatedAt"]) for k in client.http.get("keys")["results"]),
        "indexes": sorted(i["uid"] for i in client.http.get("indexes")["results"]),
        "documents": client.http.get(f"indexes/{INDEX}/documents?limit=100"),
        "settings": client.http.get(f"indexes/{INDEX}/settings"),
    }


ALLOWED = [
    ("GET", "/"),
    ("GET", "/indexes"),
    ("GET", "/stats"),
    ("GET", "/version"),
    ("GET", "/health"),
    ("POST", "/multi-search"),
    ("GET", f"/indexes/{INDEX}/search?q=chat"),
    ("POST", f"/indexes/{INDEX}/search"),
    ("GET", "/agent/"),
    ("GET", "/agent/config.json"),
]

REFUSED = [
    # with the master key, each of these would read or change something
    ("GET", "/keys"), ("POST", "/keys"), ("GET", "/keys/x"), ("DELETE", "/keys/x"),
    ("PATCH", "/keys/x"),
    ("GET", f"/indexes/{INDEX}/documents"), ("GET", f"/indexes/{INDEX}/documents/d1"),
    ("POST", f"/indexes/{INDEX}/documents"), ("PUT", f"/indexes/{INDEX}/documents"),
    ("DELETE", f"/indexes/{INDEX}/documents/d1"), ("DELETE", f"/indexes/{INDEX}/documents"),
    ("POST", f"/indexes/{INDEX}/documents/fetch"),
    ("POST", f"/indexes/{INDEX}/documents/delete-batch"),
    ("POST", f"/indexes/{INDEX}/documents/delete"),
    ("GET", f"/indexes/{INDEX}/settings"), ("PATCH", f"/indexes/{INDEX}/settings"),
    ("DELETE", f"/indexes/{INDEX}/settings"),
    ("PUT", f"/indexes/{INDEX}/settings/filterable-attributes"),
    ("GET", f"/indexes/{INDEX}"), ("PATCH", f"/indexes/{INDEX}"), ("DELETE", f"/indexes/{INDEX}"),
    ("POST", "/indexes"), ("GET", f"/indexes/{INDEX}/stats"),
    ("POST", "/swap-indexes"), ("GET", "/tasks"), ("DELETE", "/tasks?uids=0"),
    ("POST", "/tasks/cancel?uids=0"), ("POST", "/dumps"), ("POST", "/snapshots"),
    ("POST", "/export"), ("GET", "/metrics"), ("GET", "/experimental-features"),
    ("PATCH", "/experimental-features"), ("GET", "/network"), ("GET", "/batches"),
    # methods other than GET/POST on search, and writes on the read routes
    ("PUT", f"/indexes/{INDEX}/search"), ("PATCH", f"/indexes/{INDEX}/search"),
    ("DELETE", f"/indexes/{INDEX}/search"), ("DELETE", "/indexes"), ("POST", "/stats"),
    ("DELETE", "/multi-search"), ("GET", "/multi-search"), ("POST", "/"), ("DELETE", "/"),
    ("POST", "/static/x"), ("POST", "/agent/"), ("DELETE", "/agent/index.html"),
    # path tricks: encoded slashes and dots, doubled slashes, case, trailing slashes
    ("DELETE", f"/indexes/{INDEX}/documents/x%2F..%2F..%2Fsearch"),
    ("DELETE", f"/indexes/{INDEX}/search%2F..%2Fdocuments%2Fd1"),
    ("GET", f"/indexes/{INDEX}/search%2F..%2F..%2F..%2Fkeys"),
    ("POST", f"/indexes/{INDEX}/search/..%2Fdocuments"),
    ("DELETE", f"/indexes/{INDEX}/%2e%2e/{INDEX}/documents/d1"),
    ("GET", "//keys"), ("DELETE", f"//indexes//{INDEX}//documents//d1"),
    ("GET", f"/INDEXES/{INDEX}/documents"), ("GET", "/KEYS"),
    ("GET", "/indexes/"), ("GET", "/keys/"), ("POST", f"/indexes/{INDEX}/search/"),
    ("GET", "/static/..%2Fkeys"), ("GET", "/static/%2e%2e/keys"), ("GET", "/fonts/..%2F..%2Fkeys"),
    ("GET", "/agent/..%2F..%2Fkeys"), ("GET", "/agent/../../../etc/passwd"),
    ("GET", "/agent/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
    ("GET", "/logo.svg/../keys"), ("GET", "/favicon-32x32.png%2F..%2Fkeys"),
    ("GET", "/indexes%2F" + INDEX + "%2Fdocuments"),
]  # fmt: skip


def test_only_the_read_routes_answer_and_nothing_changes(door: dict[str, Any]) -> None:
    port, master = door["port"], door["meili"].master_key
    before = snapshot(door["client"])
    answered = []
    for method, target in REFUSED:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        status, _, data = send(port, method, target, master, body)
        if 200 <= status < 300:
            answered.append((method, target, status, data[:80]))
    # the absolute-form request target: nginx must route it by its path, like any other
    host = f"http://127.0.0.1:{door['meili'].port}"
    for method, path in (("GET", "/keys"), ("DELETE", f"/indexes/{INDEX}/documents/d1")):
        status, _, data = send(port, method, host + path, master)
        if 200 <= status < 300:
            answered.append((method, host + path, status, data[:80]))
    assert answered == []
    assert snapshot(door["client"]) == before


def test_the_read_routes_work_for_the_pages(door: dict[str, Any]) -> None:
    port, master = door["port"], door["meili"].master_key
    for method, target in ALLOWED:
        body = (
            {"queries": [{"indexUid": INDEX, "q": "chat"}]}
            if target == "/multi-search"
            else ({"q": "chat"} if method == "POST" else None)
        )
        status, _, data = send(port, method, target, master, body)
        assert 200 <= status < 300, (method, target, status, data[:200])
    status, _, html = send(port, "GET", "/", None)
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', html)
    assert assets, "the web UI's page names no assets"
    for asset in assets:
        assert send(port, "GET", asset.decode(), None)[0] == 200, asset


def test_tricks_that_normalise_to_search_are_sent_as_search(door: dict[str, Any]) -> None:
    """What goes upstream is the path nginx validated: a search, never the raw document URI."""
    for target in (f"/indexes/{INDEX}/documents/x%2F..%2F..%2Fsearch",
                   f"/indexes/{INDEX}/documents/../search"):  # fmt: skip
        status, _, data = send(door["port"], "GET", target, door["meili"].master_key)
        assert status == 200 and "hits" in json.loads(data), (target, data[:100])
        status, _, _ = send(door["port"], "DELETE", target, door["meili"].master_key)
        assert status == 403


def test_a_large_body_is_refused(door: dict[str, Any]) -> None:
    big = json.dumps({"q": "x" * 70_000}).encode()
    status, _, _ = send(
        door["port"], "POST", f"/indexes/{INDEX}/search", door["meili"].master_key, raw=big
    )
    assert status == 413


def test_pages_carry_csp_and_no_referrer(door: dict[str, Any]) -> None:
    for target in ("/", "/agent/", "/keys"):
        _, headers, _ = send(door["port"], "GET", target, None)
        assert "default-src 'self'" in headers["content-security-policy"], target
        assert "connect-src 'self'" in headers["content-security-policy"], target
        assert headers["referrer-policy"] == "no-referrer", target


def test_the_meilisearch_ui_through_the_door_loads_everything_it_asks_for(
    door: dict[str, Any], tmp_path: Path
) -> None:
    """In a real browser with an agent key: assets, fonts and /version all answer, and no
    request leaves the door (field values are never fetched as images)."""
    from urllib.parse import urlsplit

    from explorer.config import MeiliSettings
    from explorer.keys import create_agent_key
    from explorer.secrets import Secret
    from tests.browser import Browser

    meili = door["meili"]
    settings = MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=INDEX)
    key = create_agent_key(settings, label="door ui").key
    door["client"].wait_for_task(
        door["client"]
        .index(INDEX)
        .add_documents(
            [{"id": "w1", "display_name": "Link Holder", "wa_link": "https://example.invalid/x"}]
        )
        .task_uid
    )
    base = f"http://127.0.0.1:{door['port']}"
    with Browser(1400, 1000) as b:
        b.navigate(f"{base}/?api_key={key}")
        b.wait_for("document.body.innerText.includes('Chat 1')", timeout=20)
        b.screenshot(Path(os.environ.get("EXPLORER_DOOR_SHOT", tmp_path / "ui.png")))
        hosts = {urlsplit(u).netloc for u in b.requests if u.startswith("http")}
        failed = [
            (u, status) for u, status in b.responses
            # The UI's own 401s before it applies the key, and its multi-search calls with an
            # empty indexUid (400), happen without a proxy too: anything else is the door's.
            if status >= 400 and status != 401 and not (status == 400 and "multi-search" in u)
        ]  # fmt: skip
    assert hosts == {urlsplit(base).netloc}, hosts
    assert failed == [], failed
