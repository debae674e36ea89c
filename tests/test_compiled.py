"""The per-chat modules compiled by mypyc (setup.py) behave as their Python source does.

A compiled module checks its annotations at run time and has its own integer and string
code paths, so "mypy-clean" is not proof enough: the same inputs go through both, each in a
process of its own (tests/compiled_outputs.py), and every output and error must match.
"""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import explorer.chats
import explorer.documents
import explorer.phones

HERE = Path(__file__).resolve().parent
MODULES = (explorer.chats, explorer.documents, explorer.phones)


def _compiled() -> bool:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return all(str(m.__file__).endswith(suffixes) for m in MODULES)


def _outputs(*flags: str) -> list[Any]:
    run = subprocess.run(
        [sys.executable, str(HERE / "compiled_outputs.py"), *flags],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return list(json.loads(run.stdout))


@pytest.mark.skipif(not _compiled(), reason="the per-chat modules are not compiled here")
def test_compiled_modules_give_what_their_source_gives() -> None:
    (source_files, *from_source), (built_files, *from_compiled) = (
        _outputs("--source"),
        _outputs(),
    )
    assert all(f.endswith(".py") for f in source_files)
    assert not any(f.endswith(".py") for f in built_files)
    assert len(from_source) > 15_000
    assert sum(isinstance(x, list) and x[:1] == ["error"] for x in from_source) > 100
    for n, (want, got) in enumerate(zip(from_source, from_compiled, strict=True)):
        assert got == want, f"output {n} differs"


def test_compiled_modules_are_built_from_the_current_source() -> None:
    for module in MODULES:
        built = Path(str(module.__file__))
        source = built.with_name(built.name.split(".")[0] + ".py")
        if built != source:
            assert built.stat().st_mtime >= source.stat().st_mtime, (
                f"{source.name} changed after it was compiled: run `make install`"
            )
