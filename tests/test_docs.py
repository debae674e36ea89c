"""The README and docs keep up with the code."""

from __future__ import annotations

import re
from pathlib import Path

import click

from explorer.cli import cli
from explorer.documents import INDEX_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_command_is_in_the_readme_and_has_help() -> None:
    for name, command in cli.commands.items():
        assert f"explorer {name}" in README or f"`{name}`" in README, name
        assert command.help, name
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert f"explorer {name} {sub}" in README, f"{name} {sub}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci == "make test" and "```sh\nmake test\n```" in README


def test_schema_doc_lists_every_field_and_setting() -> None:
    schema = (ROOT / "docs/schema.md").read_text()
    fields = set(INDEX_SETTINGS["displayedAttributes"]) | set(
        INDEX_SETTINGS["searchableAttributes"]
    )
    for field in fields:
        assert re.search(rf"\| `{field}` \|", schema), field
    for attr in INDEX_SETTINGS["filterableAttributes"]:
        assert f"`{attr}`" in schema.split("filterableAttributes")[1].split("\n- ")[0], attr
