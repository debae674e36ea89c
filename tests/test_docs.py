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
    section = schema.split("filterableAttributes")[1].split("\n- ")[0]
    for rule in INDEX_SETTINGS["filterableAttributes"]:
        for attr in rule["attributePatterns"]:
            assert f"`{attr}`" in section, attr


def test_benchmark_commands_run_as_written() -> None:
    import subprocess

    commands = sorted(set(re.findall(r"^(\S*python\S* benchmarks/\w+\.py)", README, re.M)))
    assert len(commands) == 6, commands
    for command in commands:
        assert command.startswith(".venv/bin/python "), command
        out = subprocess.run(
            ["bash", "-c", f"{command} --help"], cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, command + out.stderr


def test_one_meilisearch_cache_for_make_and_the_module() -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "EXPLORER_CACHE_DIR"}
    dry = subprocess.run(
        ["make", "-n", "-p", "meilisearch"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert "explorer.dev.meili_bin" in dry.stdout
    assert "EXPLORER_CACHE_DIR" not in dry.stdout  # make uses the module's own default


def test_the_demo_directory_is_ignored_by_git() -> None:
    import subprocess

    out = subprocess.run(["git", "check-ignore", "-q", ".demo/env"], cwd=ROOT)
    assert out.returncode == 0


def test_config_example_says_where_state_really_goes() -> None:
    example = (ROOT / "config.example.toml").read_text()
    comment = example.split("# state_dir")[0].rsplit("\n\n", 1)[-1]
    assert "next to the config file" not in comment and "EXPLORER_STATE_DIR" in comment
