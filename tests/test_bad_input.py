"""Bad input of every kind: one clear line, never a traceback, never a lost run."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.cli import cli
from explorer.config import load_config
from explorer.dev.meili_server import free_port
from explorer.errors import ConfigError, WawpProtocolError
from explorer.secrets import Secret
from explorer.source.crawl import Crawler, CrawlOptions
from explorer.source.wawp import RetryPolicy, WawpClient

KEYS = ["wawp", "meilisearch", "reindex", "instances", "base_url", "access_token", "timeout",
        "page_size", "concurrency", "overlap", "url", "api_key", "index", "min_ratio", "id",
        "label", "batch_size", "bogus"]  # fmt: skip
VALUES = st.one_of(
    st.integers(-5, 10**6), st.floats(allow_nan=False), st.booleans(),
    st.sampled_from(['"http://x:1"', '"not a url"', '"chats"', '"bad name!"', '""']),
    st.text(max_size=12).map(lambda t: '"' + t.replace("\\\\", "").replace('"', "") + '"'),
    st.just("[1, 2]"), st.just("{ a = 1 }"),
)  # fmt: skip


@st.composite
def toml_docs(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            lines.append(f"[{draw(st.sampled_from(KEYS))}]")
        elif kind == 1:
            lines.append("[[wawp.instances]]")
        elif kind == 2:
            lines.append(f"{draw(st.sampled_from(KEYS))} = {draw(VALUES)}")
        else:
            lines.append(draw(st.text(max_size=20)))
    return "\n".join(lines)


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(toml_docs())
def test_fuzzed_config_files_load_or_fail_in_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, env={})
    except ConfigError as exc:  # anything else is a bug and fails the test
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message.strip(), message


def test_non_utf8_config_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[wawp]\nbase_url = "http://caf\xe9"\n')
    with pytest.raises(ConfigError, match="latin1.toml"):
        load_config(path, env={})


WORDS = ["search", "reindex", "sync", "stats", "settings", "keys", "create-search", "check",
         "--type", "group", "--limit", "0", "5", "--sort", "name:up", "--json", "--instance",
         "--inactive-days", "-1", "--active-since", "2026-13-45", "--dry-run", "--force",
         "--quiet", "--config", "/nonexistent.toml", "--meili-url", "ftp://x", "--wait", "x",
         "--base-url", "notaurl", "--archived", "--not-archived", "--nope", "", "ü", "--index",
         "bad index"]  # fmt: skip


@settings(
    max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(st.lists(st.sampled_from(WORDS), max_size=6))
def test_fuzzed_command_lines_never_trace_back(tmp_path: Path, argv: list[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "c.toml"
    config.write_text("[wawp]\nretry_budget_seconds = 0\nwarmup_seconds = 0\ntimeout = 1\n")
    env = {"WAWP_BASE_URL": closed, "MEILI_URL": closed, "WAWP_INSTANCE_ID": "FUZZ",
           "WAWP_ACCESS_TOKEN": "fuzz-token-123456", "EXPLORER_CONFIG": str(config)}  # fmt: skip
    result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code in (0, 1, 2, 3), (argv, result.output)
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (argv, repr(result.exception))
    assert "fuzz-token-123456" not in result.output


def crawl_mock(handler: Any) -> tuple[list[Any], Crawler]:
    client = WawpClient(
        "http://wawp.test", "MOCK", Secret("mock-token-123"),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(budget_seconds=2, base_delay=0.01, max_delay=0.02),
    )  # fmt: skip
    with client:
        crawler = Crawler(client, CrawlOptions(page_size=50, warmup_seconds=0))
        return [c for p in crawler.pages() for c in p.chats], crawler


def test_invalid_utf8_page_is_a_protocol_error() -> None:
    with pytest.raises(WawpProtocolError, match="unexpected reply"):
        crawl_mock(lambda r: httpx.Response(200, content=b'[{"id": "1@c.us", "name": "\xff\xfe"}]'))


def test_hostile_chat_fields_are_tamed() -> None:
    page = [
        {"id": "1@c.us", "name": "A" * 100_000},
        {"id": "2@c.us", "name": "Ctrl\x00\x07\x1b[31mred\u2028line"},
        {"id": "3@c.us", "name": ["not", "a", "string"], "timestamp": {"nested": True}},
        {"id": "4@c.us", "archived": "yes", "unreadCount": "many", "pinned": {"x": 1}},
        {"id": {"_serialized": 5}},
        {"id": "6@g.us", "name": "\ud800 lone surrogate? no: valid json escape"},
    ]
    body = json.dumps(page).encode()  # ASCII-escaped: the lone surrogate stays valid JSON
    chats, crawler = crawl_mock(
        lambda r: httpx.Response(200, content=body if r.url.params["offset"] == "0" else b"[]")
    )
    by_jid = {c.jid: c for c in chats}
    assert len(by_jid["1@c.us"].name or "") == 256
    cleaned = by_jid["2@c.us"].name or ""
    assert cleaned.startswith("Ctrl") and "red" in cleaned
    assert not any(unicodedata.category(ch) in ("Cc", "Zl") for ch in cleaned)
    assert by_jid["3@c.us"].name is None and by_jid["3@c.us"].last_activity is None
    assert by_jid["4@c.us"].archived is None and by_jid["4@c.us"].unread_count is None
    assert crawler.stats.malformed == 1  # the object id without a string
    assert "6@g.us" in by_jid and "\ud800" not in (by_jid["6@g.us"].name or "")
