"""A raw WAHA message -> a messages-index document (explorer.records.messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.config import load_config
from explorer.errors import ConfigError
from explorer.records.messages import (
    MAX_BODY,
    MalformedMessage,
    message_doc_id,
    messages_index,
    parse_message,
    to_message_document,
)

GROUP = "120363025246125486@g.us"
PERSON = "201234567890@c.us"


def _raw(**fields: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "id": "false_201234567890@c.us_3EB0C767D26A1D0B5C2F",
        "timestamp": 1764932400,
        "from": PERSON,
        "fromMe": False,
        "body": "Is order 4411 shipped?",
        "hasMedia": False,
    }
    raw.update(fields)
    return raw


def test_a_text_message_becomes_a_document_of_its_chat() -> None:
    msg = parse_message(_raw(), instance_id="inst1", chat_jid=PERSON)
    doc = to_message_document(msg, chat_name="Sara")
    assert doc["body"] == "Is order 4411 shipped?"
    assert (doc["instance_id"], doc["jid"], doc["chat_name"]) == ("inst1", PERSON, "Sara")
    assert doc["timestamp"] == 1764932400 and doc["from_me"] is False
    assert doc["sender"] is None and doc["has_media"] is False
    assert doc["id"] == message_doc_id("inst1", "false_201234567890@c.us_3EB0C767D26A1D0B5C2F")


def test_the_same_message_id_in_two_instances_is_two_documents() -> None:
    assert message_doc_id("a", "x") != message_doc_id("b", "x")
    assert message_doc_id("a", "x").isalnum()


@pytest.mark.parametrize(
    "fields, body, media",
    [
        ({"hasMedia": True, "body": "", "media": {"mimetype": "image/jpeg"}}, "[photo]", "image"),
        ({"hasMedia": True, "body": "the invoice", "type": "document"}, "the invoice", "document"),
        ({"hasMedia": True, "body": None}, "[media]", "media"),
        ({"hasMedia": True, "body": "", "type": "ptt"}, "[voice message]", "ptt"),
    ],
)
def test_media_keep_their_caption_or_a_type_word_never_content(
    fields: dict[str, object], body: str, media: str
) -> None:
    msg = parse_message(_raw(**fields), instance_id="i", chat_jid=PERSON)
    assert (msg.body, msg.media_type, msg.has_media) == (body, media, True)


def test_control_and_direction_characters_go_and_long_bodies_are_capped() -> None:
    msg = parse_message(
        _raw(body="pay\u202e now\x00\x07\nline two\tend"), instance_id="i", chat_jid=PERSON
    )
    assert msg.body == "pay now\nline two\tend"
    long = parse_message(_raw(body="Ω" * 1_000_000), instance_id="i", chat_jid=PERSON)
    assert len(long.body) == MAX_BODY and long.body_truncated


def test_in_groups_the_sender_is_kept() -> None:
    msg = parse_message(
        _raw(participant="201111111111@s.whatsapp.net"), instance_id="i", chat_jid=GROUP
    )
    assert msg.sender == "201111111111@c.us"


@pytest.mark.parametrize(
    "raw",
    [None, "text", _raw(id=None), _raw(id=""), _raw(timestamp=None), _raw(timestamp="soon")],
)
def test_a_message_without_id_or_timestamp_is_refused(raw: object) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(raw, instance_id="i", chat_jid=PERSON)


def test_the_messages_index_is_named_after_the_chats_index() -> None:
    assert messages_index("chats") == "chats-messages"


def test_messages_are_off_unless_turned_on(tmp_path: Path) -> None:
    assert load_config(env={}).messages.enabled is False
    cfg = load_config(env={"EXPLORER_MESSAGES": "on", "EXPLORER_MESSAGES_RETENTION_DAYS": "30"})
    assert (cfg.messages.enabled, cfg.messages.retention_days) == (True, 30)
    with pytest.raises(ConfigError, match="EXPLORER_MESSAGES"):
        load_config(env={"EXPLORER_MESSAGES": "maybe"})
    toml = tmp_path / "c.toml"
    toml.write_text("[messages]\nenabled = true\nretention_days = 0\n")
    with pytest.raises(ConfigError, match="messages.retention_days"):
        load_config(toml, env={})
