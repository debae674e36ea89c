"""The README and docs keep up with the code."""

from __future__ import annotations

import re
from pathlib import Path

import click

from explorer.cli import cli
from explorer.dev.cli_reference import render
from explorer.records.documents import INDEX_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def all_commands(
    group: click.Group = cli, prefix: str = "explorer"
) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += all_commands(command, f"{prefix} {name}")
    return found


def test_the_cli_reference_is_generated_from_the_current_help() -> None:
    written = (ROOT / "docs/cli.md").read_text()
    assert written == render(), "docs/cli.md is stale: run `make docs`"


def test_every_command_has_help_and_a_section_in_the_reference() -> None:
    reference = render()
    for path, command in all_commands():
        assert command.help, path
        if not command.hidden:
            assert f"\n## {path}\n" in reference, path


def test_the_reference_shows_each_commands_options() -> None:
    section = render().split("\n## explorer search\n")[1].split("\n## ")[0]
    for option in ("--inactive-days", "--sort", "--json", "--groups"):
        assert option in section


def test_the_readme_links_the_reference_and_the_deeper_docs() -> None:
    for doc in ("docs/cli.md", "docs/architecture.md", "docs/development.md",
                "docs/sandbox.md", "docs/benchmarks.md", "docs/schema.md"):  # fmt: skip
        assert f"]({doc})" in README, doc
        assert (ROOT / doc).is_file(), doc


def test_the_readme_is_a_short_read() -> None:
    assert len(README.splitlines()) < 270  # 260 until message text (issue 33)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", README), "dated notes belong in docs/"
    assert not re.search(r"\d µs", README), "measurements belong in docs/benchmarks.md"


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

    benchmarks = (ROOT / "docs/benchmarks.md").read_text()
    commands = sorted(set(re.findall(r"^(\S*python\S* benchmarks/\w+\.py)", benchmarks, re.M)))
    assert len(commands) >= 6, commands
    for command in commands:
        assert command.startswith(".venv/bin/python "), command
    running = {  # at once: each spends its time importing
        command: subprocess.Popen(
            ["bash", "-c", f"{command} --help"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for command in commands
    }
    for command, proc in running.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, command + err


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
