"""Searching what was said: `explorer search --messages` and `explorer.search_messages`,
on a real Meilisearch holding documents made by the message record."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.config import load_config
from explorer.dev.meili_server import MeiliServer
from explorer.records.filters import MessageFilters
from explorer.records.messages import messages_index, parse_message, to_message_document
from explorer.records.output import HL_POST, HL_PRE, marked, terminal_safe
from tests import messages_world as w


@pytest.fixture(scope="module")
def world(meili: MeiliServer) -> dict[str, Any]:
    index = f"msgs_{secrets.token_hex(4)}"
    # One document as an older or foreign writer might have left it: raw escapes in the
    # body, never cleaned by the record. The terminal must still show it as text.
    raw = w.message_documents()[0] | {
        "id": "mraw", "message_id": "raw-escape", "jid": "447700900123@c.us",
        "chat_name": "Mallory", "body": "screen \x1b[2J\x1b]0;pwned\x07 cleared? \x9b31m red",
    }  # fmt: skip
    w.build(meili.url, meili.master_key, index, messages=[*w.message_documents(), raw])
    env = {"MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key, "EXPLORER_INDEX": index,
           "EXPLORER_MESSAGES": "1"}  # fmt: skip
    return {"index": index, "env": env, "meili": meili}


def run(world: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(cli, ["search", "--messages", *args], env=env or world["env"])
    assert result.exit_code == 0, result.output
    return result


def as_json(world: dict[str, Any], *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(world, "--json", *args).stdout)
    return data


def ids(data: dict[str, Any]) -> list[str]:
    return [h["message_id"].rpartition("_")[2] for h in data["hits"]]


def test_the_json_hits_name_the_chat_and_the_message(world: dict[str, Any]) -> None:
    data = as_json(world, "order 4411")
    assert data["total"] == 2 and data["total_exact"] is True
    assert set(ids(data)) == {"m-sara-1", "m-sara-2"}
    hit = next(h for h in data["hits"] if h["message_id"].endswith("m-sara-1"))
    assert list(hit)[:8] == ["instance_id", "jid", "message_id", "timestamp", "time", "from_me",
                             "body", "display_name"]  # fmt: skip
    assert hit["instance_id"] == w.A and hit["jid"] == w.SARA
    assert hit["display_name"] == "Sara Ahmed" and hit["from_me"] is False
    assert hit["body"] == "Hello, is order 4411 shipped yet?"
    assert hit["timestamp"] == w.NOW - 5 * w.DAY and hit["time"].endswith("Z")


@pytest.mark.parametrize(
    "chat", ["+20 100 123 4567", "0100 123 4567", "00201001234567", "201001234567@s.whatsapp.net"]
)
def test_a_chat_is_named_by_its_number_in_any_form_or_its_jid(
    world: dict[str, Any], chat: str
) -> None:
    data = as_json(world, "--chat", chat)
    assert {h["jid"] for h in data["hits"]} == {w.SARA}
    assert data["total"] == 4
    # with no query: newest first
    stamps = [h["timestamp"] for h in data["hits"]]
    assert stamps == sorted(stamps, reverse=True)


def test_an_instance_is_named_by_its_label_or_id(world: dict[str, Any]) -> None:
    assert {h["jid"] for h in as_json(world, "--instance", "Lagos")["hits"]} == {w.KOFI}
    assert {h["jid"] for h in as_json(world, "refund", "--instance", w.B)["hits"]} == {w.KOFI}
    assert as_json(world, "refund", "--instance", "Cairo")["total"] == 0


def test_unknown_instance_and_chat_say_so_in_one_line(world: dict[str, Any]) -> None:
    for args, words in ((["--instance", "Paris"], "--instance 'Paris' is not an instance"),
                        (["--chat", "0300 000 0000"], "--chat '0300 000 0000': no chat with"),
                        (["--chat", "hi"], "--chat must be a phone number or a JID")):  # fmt: skip
        result = CliRunner().invoke(cli, ["search", "--messages", *args], env=world["env"])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and words in errors[0], result.stderr


def test_since_and_until_take_dates_and_datetimes(world: dict[str, Any]) -> None:
    import datetime as dt

    day = dt.datetime.fromtimestamp(w.NOW - 10 * w.DAY, dt.UTC).date().isoformat()
    only_that_day = as_json(world, "--since", day, "--until", day)
    assert set(ids(only_that_day)) == {"m-kofi-1", "m-kofi-2"}
    moment = dt.datetime.fromtimestamp(w.NOW - 10 * w.DAY, dt.UTC).isoformat()
    assert set(ids(as_json(world, "--chat", w.KOFI, "--until", moment))) == {"m-kofi-1", "m-kofi-3"}
    recent = as_json(world, "--since", moment)
    assert all(h["timestamp"] >= w.NOW - 10 * w.DAY for h in recent["hits"]) and recent["total"]


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--since", "yesterday"], "--since must be a date like 2026-01-31"),
     (["--until", "2026-13-01"], "--until must be a date like 2026-01-31"),
     (["--since", "2026-11-02", "--until", "2026-11-01"], "--until '2026-11-01' is before"),
     (["--from-me", "--from-them"], "--from-me and --from-them contradict each other"),
     (["--archived"], "--archived/--not-archived filters chats, not --messages")],
)  # fmt: skip
def test_bad_filters_are_one_line_usage_errors(
    world: dict[str, Any], args: list[str], words: str
) -> None:
    result = CliRunner().invoke(cli, ["search", "--messages", *args], env=world["env"])
    assert result.exit_code == 2
    assert words in result.stderr, result.stderr


def test_message_options_need_messages(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["search", "--chat", w.SARA], env=world["env"])
    assert result.exit_code == 2 and "--chat needs --messages" in result.stderr


def test_from_me_and_from_them_split_a_conversation(world: dict[str, Any]) -> None:
    mine = as_json(world, "--chat", w.SARA, "--from-me")
    theirs = as_json(world, "--chat", w.SARA, "--from-them")
    assert ids(mine) == ["m-sara-2"]
    assert set(ids(theirs)) == {"m-sara-1", "m-sara-3", "m-sara-4"}


def test_the_type_filter_applies_to_messages(world: dict[str, Any]) -> None:
    groups = as_json(world, "--groups")
    assert {h["jid"] for h in groups["hits"]} == {w.DRIVERS}
    assert all(h["chat_type"] == "group" for h in groups["hits"])


def test_people_see_the_snippet_marked_the_chat_the_sender_and_the_time(
    world: dict[str, Any],
) -> None:
    out = run(world, "late").stdout
    head, body = out.splitlines()[:2]
    assert "Drivers Cairo" in head and "Ali the driver" in head and " UTC (1 day ago)" in head
    assert "running **late**" in body  # no terminal: plain markers
    mine = run(world, "warehouse").stdout.splitlines()[0]
    assert "Sara Ahmed  ·  sent  ·" in mine
    assert HL_PRE not in out and HL_POST not in out


def test_a_body_with_terminal_escapes_cannot_reach_the_terminal(world: dict[str, Any]) -> None:
    result = run(world, "screen cleared")
    assert (
        "\x1b" not in result.stdout and "\x9b" not in result.stdout and "\x07" not in result.stdout
    )
    assert "**screen** �[2J�]0;pwned� **cleared**? �31m red" in result.stdout
    raw = json.loads(run(world, "screen cleared", "--json").stdout)["hits"][0]["body"]
    assert "\x1b[2J" in raw  # the machine form is the stored text; JSON escapes it


def test_marks_on_a_terminal_are_styles_and_nothing_from_the_body() -> None:
    shown = marked(f"a \x1b[2J{HL_PRE}late\x1b[0m{HL_POST}\nnext", colour=True)
    styled = "\x1b[1m\x1b[4mlate\ufffd[0m\x1b[0m"  # click's bold+underline, then reset
    assert shown == f"a \ufffd[2J{styled} next"
    assert terminal_safe("a\u202eb\u200dc\td") == "a\ufffdb\u200dc d"


def test_a_body_cleaned_by_the_record_keeps_no_escape() -> None:
    raw = w.raw_message(w.SARA, "x", 10, False, "\x1b[2Jclear")
    doc = to_message_document(parse_message(raw, instance_id=w.A, chat_jid=w.SARA), chat_name="S")
    assert doc["body"] == "[2Jclear"


def test_the_python_api_searches_with_the_same_filters(world: dict[str, Any]) -> None:
    cfg = load_config(env=world["env"])
    result = explorer.search_messages("refund", config=cfg, from_me=True)
    assert [h["message_id"].rpartition("_")[2] for h in result.hits] == ["m-kofi-2"]
    assert "\x01" not in json.dumps(result.to_json())
    assert explorer.search_messages(config=cfg, chat="+233 20 123 4567").total == 3


def test_messages_off_is_one_line_and_exit_2(world: dict[str, Any]) -> None:
    env = {**world["env"], "EXPLORER_MESSAGES": "0"}
    result = CliRunner().invoke(cli, ["search", "--messages", "order"], env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: messages are not enabled: set messages.enabled = true in the config (or "
        "EXPLORER_MESSAGES=1) and run `explorer reindex` to index them"
    )
    with pytest.raises(explorer.MessagesDisabled):
        explorer.search_messages("order", config=load_config(env=env))


def test_a_missing_messages_index_is_one_line(world: dict[str, Any]) -> None:
    lonely = f"lonely_{secrets.token_hex(4)}"
    env = {**world["env"], "EXPLORER_INDEX": lonely}
    result = CliRunner().invoke(cli, ["search", "--messages", "order"], env=env)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: the messages index {messages_index(lonely)!r} does not exist yet: run "
        "`explorer reindex` with messages enabled"
    )


def test_no_body_reaches_the_logs(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["-vv", "search", "--messages", "warehouse"], env=world["env"])
    assert result.exit_code == 0
    assert "warehouse" not in result.stderr


def test_filters_are_written_in_the_index_own_fields() -> None:
    assert MessageFilters(instance_ids=("a",), jids=("1@c.us", "2@c.us"), from_me=False,
                          since="2026-11-01", until="2026-11-01").expressions() == [
        'instance_id = "a"', 'jid IN ["1@c.us", "2@c.us"]', "timestamp >= 1793491200",
        "timestamp < 1793577600", "from_me = false",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "query", ["شكرا", "الفاتورة شكرا", "آسف بنك مكسور", "Ребята заказ", "order shipped"]
)
def test_a_phrase_finds_its_message_in_any_script(world: dict[str, Any], query: str) -> None:
    """Meilisearch guesses each text's language on its own and normalises by its guess: an
    Arabic message it took for Persian had ك and ي folded to ک and ی, the query typed in
    Arabic did not, and "آسف بنك مكسور" found nothing (MESSAGE_LOCALES)."""
    assert as_json(world, query)["total"] >= 1, query
