"""Document ids and the fields a person reads."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from explorer.records.chats import normalize_chat
from explorer.records.documents import _escape, _when, chat_from_document, doc_id, to_document


def test_ids_escape_reversibly_whatever_the_script() -> None:
    assert _escape("2012345678@c.us") == "2012345678_ac_dus"
    assert _escape("a_b:c.d-e f") == "a_ub_cc_dd-e_x20f"
    assert _escape("Zoë@lid") == "Zo_xc3_xab_alid"
    assert _escape("🍕") == "_xf0_x9f_x8d_x95"


def test_a_document_id_joins_instance_and_jid() -> None:
    assert doc_id("INST01", "2012345678@c.us") == "INST01__2012345678_ac_dus"
    assert doc_id("in_st:1", "a@b@c.us") == "in_ust_c1__a_ab_ac_dus"


PARTS = st.text(alphabet="0123456789ab-_@.:é _x", min_size=1, max_size=12)


@given(PARTS, PARTS, PARTS, PARTS)
def test_different_chats_never_share_a_document_id(a: str, b: str, c: str, d: str) -> None:
    assert (doc_id(a, b) == doc_id(c, d)) == ((a, b) == (c, d))
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,511}", doc_id(a, b))


def test_last_active_is_utc_to_the_minute() -> None:
    assert _when(1_764_000_000) == "2025-11-24 16:00 UTC"
    assert _when(951_782_459) == "2000-02-29 00:00 UTC"
    assert _when(1) == "1970-01-01 00:00 UTC"
    assert _when(None) is None


def test_a_document_shows_the_name_else_the_number_else_the_jid() -> None:
    def shown(raw: dict[str, object]) -> object:
        chat = normalize_chat(raw, "INST1", now=1_764_000_000)
        assert chat is not None
        return to_document(chat, label=None, crawled_at=1)["display_name"]

    assert shown({"id": "79161234567@c.us", "name": "Dana"}) == "Dana"
    assert shown({"id": "79161234567@c.us"}) == "+79161234567"
    assert shown({"id": "120363041122334455@g.us"}) == "120363041122334455@g.us"


def test_a_document_gives_back_the_chat_it_was_made_from() -> None:
    """chat_from_document undoes to_document: sync and a resumed reindex rely on it."""
    from dataclasses import replace

    raw = {"id": "201001234567@c.us", "name": "Amélie", "archived": True, "unreadCount": 3,
           "timestamp": 1760431200, "pinned": True}  # fmt: skip
    chat = normalize_chat(raw, "INST00000001")
    assert chat is not None
    chat = replace(chat, lid="123456789012345", username="amelie",
                   listings=(("123456789012345@lid", 1760431100, 1),))  # fmt: skip
    assert chat_from_document(to_document(chat, label=None, crawled_at=0)) == chat
