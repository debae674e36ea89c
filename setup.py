"""The per-chat modules, compiled with mypyc where a C compiler is at hand.

Normalising a chat, building its document and formatting its phone number run once per
chat; every other module runs once per page or per run. Compiled, those three cost about
a third less CPU, and a reindex a sixth less end to end (benchmarks/reindex.py prints
which kind it ran). They are the same mypy-strict Python either way: without a
compiler, or with ``EXPLORER_PURE_PYTHON=1``, the package installs as plain Python and
behaves the same (tests/test_compiled.py).

The build is all or nothing: a compiled module imports the group's shared library, so
one that built without the other would fail at import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["explorer/chats.py", "explorer/documents.py", "explorer/phones.py"]


class AllOrNothing(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, no headers: plain Python
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            print(
                f"warning: the per-chat modules were not compiled ({type(exc).__name__}); "
                "installing them as plain Python",
                file=sys.stderr,
            )


def extensions() -> list[Any]:
    if os.environ.get("EXPLORER_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify

    # Imports beyond the three modules are followed only for their types, and the build
    # environment holds none of the runtime dependencies but phonenumbers.
    return mypycify(
        ["--follow-imports=silent", "--ignore-missing-imports", *COMPILED],
        group_name="explorer._compiled",
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": AllOrNothing})
