"""The Python API: what `import explorer` offers, and errors in the library's own terms."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import explorer
from explorer.config import Config, MeiliSettings


def test_all_names_resolve_and_errors_are_exported() -> None:
    for name in explorer.__all__:
        assert getattr(explorer, name) is not None, name
    assert issubclass(explorer.QueryError, explorer.ExplorerError)
    assert explorer.ReindexReport.__name__ == "ReindexReport"
    assert explorer.SyncReport.__name__ == "SyncReport"


def test_the_search_function_hides_no_module() -> None:
    assert callable(explorer.search)
    assert importlib.import_module("explorer.meili.query").search is explorer.search
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("explorer.search")


def test_library_errors_speak_of_arguments_not_flags() -> None:
    cfg = Config(meilisearch=MeiliSettings(url="http://127.0.0.1:9"))
    with pytest.raises(explorer.QueryError) as info:
        explorer.search("x", config=cfg, limit=5000)
    assert info.value.param == "limit" and str(info.value).startswith("limit must be")
    assert "--" not in str(info.value)
    with pytest.raises(explorer.QueryError, match="^sort must be"):
        explorer.search("x", config=cfg, sort=["colour"])


def test_starting_the_cli_does_not_import_the_sandbox_server() -> None:
    code = (
        "import sys, explorer.cli; "
        "print(sorted(m for m in ('explorer.dev.sandbox', 'explorer.dev.synthetic', 'http.server', "
        "'meilisearch', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
