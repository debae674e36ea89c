"""Fetching Meilisearch from its official release, against a local server posing as one."""

from __future__ import annotations

import hashlib
import json
import platform
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from explorer.dev.meili_bin import ASSETS, MEILI_VERSION, ReleaseUnreachable, fetch_release
from explorer.errors import MeiliBinaryError

FAKE_BINARY = f"#!/bin/sh\necho meilisearch {MEILI_VERSION}\n".encode()
ASSET = ASSETS.get((platform.system(), platform.machine()), "meilisearch-linux-amd64")


def release_server(digest: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/api/release":
                assets = [{"name": ASSET, "digest": digest}, {"name": "other", "digest": None}]
                body = json.dumps({"tag_name": f"v{MEILI_VERSION}", "assets": assets}).encode()
            elif self.path == f"/download/{ASSET}":
                body = FAKE_BINARY
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def release(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    digest = request.param if hasattr(request, "param") else None
    good = "sha256:" + hashlib.sha256(FAKE_BINARY).hexdigest()
    server = release_server(digest or good)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {
        "EXPLORER_MEILI_RELEASE_API": f"{base}/api/release",
        "EXPLORER_MEILI_RELEASE_URL": f"{base}/download",
    }
    server.shutdown()
    server.server_close()


@pytest.mark.skipif((platform.system(), platform.machine()) not in ASSETS, reason="no build")
def test_the_official_release_is_fetched_and_checked(
    release: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "cache" / "meilisearch"
    assert fetch_release(target, release) == target
    assert target.read_bytes() == FAKE_BINARY and target.stat().st_mode & 0o111


@pytest.mark.parametrize("release", ["sha256:" + "0" * 64], indirect=True)
def test_a_checksum_mismatch_is_refused_and_installs_nothing(
    release: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "cache" / "meilisearch"
    with pytest.raises(MeiliBinaryError, match="checksum mismatch"):
        fetch_release(target, release)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no partial download left behind


@pytest.mark.parametrize("release", ["md5:abc"], indirect=True)
def test_a_release_without_a_sha256_is_refused(release: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(MeiliBinaryError, match="lists no sha256"):
        fetch_release(tmp_path / "meilisearch", release)


def test_an_unreachable_release_host_means_fall_back(tmp_path: Path) -> None:
    env = {
        "EXPLORER_MEILI_RELEASE_API": "http://127.0.0.1:9/api",
        "EXPLORER_MEILI_RELEASE_URL": "http://127.0.0.1:9/dl",
    }
    with pytest.raises(ReleaseUnreachable):
        fetch_release(tmp_path / "meilisearch", env)
