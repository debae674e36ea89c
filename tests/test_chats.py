"""Normalisation of every engine's chat objects into one typed record."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from explorer.records.chats import (
    MalformedChat,
    clean_name,
    normalize_chat,
    normalize_jid,
    to_timestamp,
)

NOW = 1_764_000_000


def norm(raw: Any) -> Any:
    return normalize_chat(raw, "INST1", now=NOW)


def test_webjs_chat() -> None:
    chat = norm(
        {
            "id": {"server": "c.us", "user": "15550104821", "_serialized": "15550104821@c.us"},
            "name": "Dana Whitfield",
            "isGroup": False,
            "unreadCount": 2,
            "timestamp": 1760431200,
            "archived": False,
            "pinned": True,
            "isMuted": False,
            "muteExpiration": 0,
            "lastMessage": {"timestamp": 1760431300},
        }
    )
    assert chat.jid == "15550104821@c.us" and chat.chat_type == "individual"
    assert chat.phone == "+15550104821" and chat.lid is None
    assert chat.name == "Dana Whitfield" and chat.instance_id == "INST1"
    assert chat.last_activity == 1760431300  # the newest of the activity fields
    assert (chat.archived, chat.pinned, chat.muted, chat.unread_count) == (False, True, False, 2)
    assert chat.engine_shape == "webjs"


def test_noweb_chat() -> None:
    chat = norm(
        {
            "id": "15550107777@s.whatsapp.net",
            "conversationTimestamp": {"low": 1760429000, "high": 0, "unsigned": True},
            "archived": True,
            "pinned": 1760000000,
            "muteEndTime": NOW + 100,
            "lidJid": "214365879001234@lid",
        }
    )
    assert chat.jid == "15550107777@c.us" and chat.phone == "+15550107777"
    assert chat.lid == "214365879001234"
    assert chat.last_activity == 1760429000
    assert (chat.archived, chat.pinned, chat.muted, chat.unread_count) == (True, True, True, None)
    assert chat.name is None and chat.engine_shape == "noweb"


def test_gows_chat_has_no_flags() -> None:
    chat = norm({"id": "231456789012345@lid", "name": "", "conversationTimestamp": 1760390000})
    assert chat.chat_type == "individual" and chat.phone is None and chat.lid == "231456789012345"
    assert chat.name is None
    assert (chat.archived, chat.pinned, chat.muted, chat.unread_count) == (None, None, None, None)
    assert chat.engine_shape == "gows"


@pytest.mark.parametrize(
    ("jid", "expected", "kind"),
    [
        ("120363041122334455@g.us", "120363041122334455@g.us", "group"),
        ("15550100000-1500000000@g.us", "15550100000-1500000000@g.us", "group"),
        ("120363011112222333@newsletter", "120363011112222333@newsletter", "channel"),
        ("1600000001@broadcast", "1600000001@broadcast", "broadcast"),
        ("15550101234:12@s.whatsapp.net", "15550101234@c.us", "individual"),
        ("15550101234.0:3@s.whatsapp.net", "15550101234@c.us", "individual"),
        ("214365879001234:5@lid", "214365879001234@lid", "individual"),
        (" 15550101234@C.US ", "15550101234@c.us", "individual"),
        ("867051314767696@bot", "867051314767696@bot", "individual"),
    ],
)
def test_jid_kinds(jid: str, expected: str, kind: str) -> None:
    assert normalize_jid(jid) == (expected, kind)


def test_groups_never_get_a_phone() -> None:
    chat = norm({"id": "15550100000-1500000000@g.us", "name": "Old"})
    assert chat.phone is None and chat.is_group


def test_status_broadcast_is_skipped() -> None:
    assert norm({"id": "status@broadcast", "conversationTimestamp": 1}) is None


@pytest.mark.parametrize(
    "raw",
    [
        "just a string",
        None,
        {"name": "no id"},
        {"id": ""},
        {"id": 12345},
        {"id": "no-at-sign"},
        {"id": "123@unknown.server"},
        {"id": {"user": "1"}},
        {"id": "bad user@c.us"},
    ],
)
def test_malformed_chats_raise(raw: Any) -> None:
    with pytest.raises(MalformedChat):
        norm(raw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1760431200, 1760431200),
        (1760431200.7, 1760431200),
        ("1760431200", 1760431200),
        ({"low": 1760431200, "high": 0}, 1760431200),
        (1760431200123, 1760431200),  # milliseconds
        (0, None),
        (-5, None),
        ("soon", None),
        (True, None),
        (None, None),
        ({"low": "x"}, None),
        (float("nan"), None),
    ],
)
def test_timestamps(value: Any, expected: int | None) -> None:
    assert to_timestamp(value) == expected


@pytest.mark.parametrize(
    ("fields", "muted"),
    [
        ({"isMuted": True}, True),
        ({"muteExpiration": -1}, True),
        ({"muteExpiration": 0}, False),
        ({"muteEndTime": NOW - 10}, False),
        ({"muteEndTime": NOW + 10}, True),
        ({"muteEndTime": "garbage"}, None),
        ({}, None),
    ],
)
def test_muted(fields: dict[str, Any], muted: bool | None) -> None:
    assert norm({"id": "1555@g.us", **fields}).muted is muted


def test_wrong_types_become_null_not_errors() -> None:
    chat = norm(
        {
            "id": "15550101234@c.us",
            "name": 42,
            "archived": "yes",
            "pinned": [1],
            "unreadCount": -3,
            "timestamp": "later",
        }
    )
    assert chat.name is None and chat.archived is None and chat.pinned is None
    assert chat.unread_count is None and chat.last_activity is None


def test_names_are_cleaned() -> None:
    assert clean_name("  Ana\n\tSilva\x00 ") == "Ana Silva"
    assert clean_name("   ") is None
    long = clean_name("x" * 5000)
    assert long is not None and len(long) == 256


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=12,
)


@given(JUNK)
def test_normaliser_never_crashes_on_junk(raw: Any) -> None:
    with contextlib.suppress(MalformedChat):
        norm(raw)


@given(
    st.fixed_dictionaries(
        {"id": st.text(max_size=40)},
        optional={
            "name": st.text(max_size=300),
            "timestamp": st.integers() | st.floats() | st.text(max_size=12),
            "conversationTimestamp": st.dictionaries(
                st.sampled_from(["low", "high"]), st.integers()
            ),
            "pinned": st.integers() | st.booleans(),
            "muteEndTime": st.integers() | st.text(max_size=5),
        },
    )
)
def test_normalised_records_are_well_typed(raw: dict[str, Any]) -> None:
    try:
        chat = norm(raw)
    except MalformedChat:
        return
    if chat is None:
        return
    assert "@" in chat.jid and chat.chat_type in ("individual", "group", "channel", "broadcast")
    assert chat.name is None or (0 < len(chat.name) <= 256 and chat.name == chat.name.strip())
    assert chat.last_activity is None or chat.last_activity > 0
    assert chat.phone is None or (chat.phone.startswith("+") and chat.phone[1:].isdigit())


JID_TEXT = st.text(alphabet="0123456789 @.:-_ablcusgwhatspnewr\t٢", max_size=24)
JID_SAMPLES = ["15550104821@c.us", "1@g.us", "12@lid", "7@newsletter", "3@broadcast",
               "15@s.whatsapp.net", "15@C.US", " 15@c.us", "15@c.us ", "1:2@c.us",
               "status@broadcast", " 15@s.whatsapp.net", "15@S.whatsapp.net",
               "15:3@s.whatsapp.net", "٢٠@s.whatsapp.net"]  # fmt: skip


@given(st.one_of(JID_TEXT, st.sampled_from(JID_SAMPLES)))
def test_a_canonical_jid_is_its_own_canonical_form(value: str) -> None:
    try:
        jid, kind = normalize_jid(value)
    except MalformedChat:
        return
    assert normalize_jid(jid) == (jid, kind)
    assert not jid.endswith("@s.whatsapp.net") and jid == jid.strip()


NAME_SAMPLES = ["Dana", " Dana", "Dana ", "Da  na", "Da na", "", " ", "x" * 256, "x" * 257,
                "Dana\t", "Zoë  B", "a\u3000b", "a\x00b", "Zoë B", "名前 テスト", "a\u00a0b",
                "a\u2028b", "a\x85b", "a\u200bb", "a\x1cb", " Zoë", "Zoë "]  # fmt: skip


@given(
    st.one_of(st.text(max_size=300), st.text(" ab\t", max_size=8), st.sampled_from(NAME_SAMPLES))
)
def test_a_clean_name_stays_as_it_is(value: str) -> None:
    name = clean_name(value)
    if name is None:
        return
    assert clean_name(name) == name
    assert name == name.strip() and "  " not in name and len(name) <= 256
    if value.isprintable() and value == " ".join(value.split()) and len(value) <= 256:
        assert name == value  # nothing to clean


@pytest.mark.parametrize(
    ("value", "error"),
    [("@c.us", True), ("1" * 129 + "@c.us", True), ("1" * 128 + "@c.us", False),
     ("@s.whatsapp.net", True), ("1\x1f2@c.us", True), ("1 2@c.us", True),
     ("名前Ω@c.us", True), ("2012\u202e3456@c.us", True), ("\U0001f600" * 40 + "@c.us", True),
     ("120363-1600000000@g.us", False)],
)  # fmt: skip
def test_jids_without_a_plain_user_part_are_malformed(value: str, error: bool) -> None:
    if error:
        with pytest.raises(MalformedChat):
            normalize_jid(value)
    else:
        assert normalize_jid(value)[0] == value


@pytest.mark.parametrize(
    ("value", "lid", "phone"),
    [
        ("123456789012345@lid", "123456789012345@lid", None),
        ("123456789012345:31@lid", "123456789012345@lid", None),
        (" 123456789012345@LID ", "123456789012345@lid", None),
        ("123456789012345", "123456789012345@lid", None),  # bare digits, as some maps give
        ("201001234567@s.whatsapp.net", None, "201001234567@c.us"),
        ("201001234567:4@c.us", None, "201001234567@c.us"),
        ("12345@c.us", None, None),  # too short to be a number
        ("120363041234567890@g.us", None, None),
        ("abc@lid", None, None),
        ("", None, None),
        (None, None, None),
        (12345, None, None),
    ],
)
def test_lid_and_phone_jids_follow_normalize_jid(value: Any, lid: Any, phone: Any) -> None:
    """The LID map, NOWEB's pnJid/lidJid and chat ids are read by one JID rule."""
    from explorer.records.chats import lid_jid, phone_jid

    assert lid_jid(value) == lid
    assert phone_jid(value) == phone
