"""The package's folders are its architecture (docs/architecture.md): imports run down
the data path, never up, and tooling stays apart. import-linter reads the contracts from
pyproject.toml; this runs it as a developer would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_follow_the_data_path() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency: make install"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout, done.stdout


def test_every_module_is_in_the_architecture_picture() -> None:
    """A newcomer reads docs/architecture.md to find a module: each one is drawn there."""
    picture = (ROOT / "docs/architecture.md").read_text()
    package = ROOT / "explorer"
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        assert path.name in picture, f"{path.relative_to(ROOT)} is missing from the picture"
