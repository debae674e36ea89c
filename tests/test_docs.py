"""The README and docs keep up with the code."""

from __future__ import annotations

import re
from pathlib import Path

import click

from explorer.cli import cli
from explorer.documents import INDEX_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shown_commands(readme: str) -> set[str]:
    """Command paths (``keys create-agent``) the README shows being run in a code block."""
    shown = set()
    fence: str | None = None
    for line in readme.splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence not in ("sh", "bash", "console"):
            continue
        found = re.match(r"\s*(?:\$ )?(?:\S*/)?explorer ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", line)
        if found:
            words = found.group(1).split()
            shown.add(words[0])
            shown.add(" ".join(words))
    return shown


def missing_commands(readme: str) -> list[str]:
    shown = shown_commands(readme)
    missing = []
    for name, command in cli.commands.items():
        if name not in shown:
            missing.append(name)
        if isinstance(command, click.Group):
            missing += [f"{name} {sub}" for sub in command.commands if f"{name} {sub}" not in shown]
    return missing


def test_every_command_is_shown_running_in_the_readme_and_has_help() -> None:
    assert missing_commands(README) == []
    for command in cli.commands.values():
        assert command.help


def test_the_readme_check_notices_a_command_without_an_example() -> None:
    without_sync = "\n".join(line for line in README.splitlines() if "explorer sync" not in line)
    assert missing_commands(without_sync) == ["sync"]
    prose_only = README.replace("```sh\nexplorer keys create-agent", "```text\nkeys create-agent")
    assert "keys create-agent" in missing_commands(prose_only)


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
