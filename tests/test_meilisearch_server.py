from __future__ import annotations

import os
from pathlib import Path

import meilisearch
import pytest

from explorer.dev.meili_bin import MEILI_VERSION, NPM_INTEGRITY, find_meilisearch, integrity_of
from explorer.dev.meili_server import MeiliServer
from explorer.errors import MeiliBinaryError


def test_real_server_indexes_and_finds_a_document(
    meili_client: meilisearch.Client, index_name: str
) -> None:
    task = meili_client.create_index(index_name, {"primaryKey": "id"})
    assert meili_client.wait_for_task(task.task_uid, timeout_in_ms=30_000).status == "succeeded"
    index = meili_client.index(index_name)
    task = index.add_documents([{"id": "201234567890_c_us", "name": "Ahmed Mohamed"}])
    assert meili_client.wait_for_task(task.task_uid, timeout_in_ms=30_000).status == "succeeded"
    hits = index.search("ahmed")["hits"]
    assert [h["id"] for h in hits] == ["201234567890_c_us"]


def test_server_reports_the_pinned_version(meili_client: meilisearch.Client) -> None:
    assert meili_client.get_version()["pkgVersion"] == MEILI_VERSION


def test_server_requires_the_master_key(meili: MeiliServer) -> None:
    with pytest.raises(meilisearch.errors.MeilisearchApiError) as exc:
        meilisearch.Client(meili.url, "wrong-key").get_indexes()
    assert exc.value.status_code == 403


def test_meili_bin_env_must_be_executable(tmp_path: Path) -> None:
    fake = tmp_path / "meilisearch"
    fake.write_text("not a binary")
    with pytest.raises(MeiliBinaryError, match="not an executable file"):
        find_meilisearch({"MEILI_BIN": str(fake)})


def test_meili_bin_env_wins(tmp_path: Path) -> None:
    fake = tmp_path / "meilisearch"
    fake.write_text("#!/bin/sh\necho meilisearch 0.0.0\n")
    fake.chmod(0o755)
    assert find_meilisearch({"MEILI_BIN": str(fake)}) == fake


def test_cached_binary_is_reused_without_fetching() -> None:
    found = find_meilisearch(fetch=True)
    # a second lookup with fetching disabled must find the same file: nothing downloads twice
    env = {k: v for k, v in os.environ.items() if k != "MEILI_BIN"}
    assert find_meilisearch(env, fetch=False) == found


def test_integrity_hash_matches_npm_format(tmp_path: Path) -> None:
    sample = tmp_path / "x"
    sample.write_bytes(b"hello")
    value = integrity_of(sample)
    assert value.startswith("sha512-") and len(value) == len(NPM_INTEGRITY)
    assert value != NPM_INTEGRITY
