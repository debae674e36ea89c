"""Messages (issue 33): the sandbox's messages, the backfill in reindex and sync, retention
and purge, against the sandbox over HTTP and the real Meilisearch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from explorer.dev.sandbox import Sandbox
from explorer.dev.synthetic import Generator, chat_messages
from tests.conftest import SANDBOX_INSTANCE

INST = SANDBOX_INSTANCE


def get_messages(sb: Sandbox, token: str, chat: str, **params: Any) -> httpx.Response:
    query = {"instance_id": INST, "access_token": token, "chatId": chat, **params}
    return httpx.get(f"{sb.url}/v2/chats/messages", params=query)


# -- the sandbox ---------------------------------------------------------------------------


def test_sandbox_pages_a_chats_messages_newest_first(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=20, messages_per_chat=12)
    chat = sb.store(INST).spec(0).jid
    whole = get_messages(sb, token, chat, limit=100).json()
    pages = [get_messages(sb, token, chat, limit=5, offset=o).json() for o in (0, 5, 10)]
    assert [m for page in pages for m in page] == whole
    assert len(whole) == 12
    stamps = [m["timestamp"] for m in whole if isinstance(m, dict) and m.get("timestamp")]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == sb.store(INST).spec(0).ts  # the newest is the chat's last activity


def test_sandbox_answers_404_for_a_chat_it_does_not_know(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=20)
    assert get_messages(sb, token, "19999999999@c.us").status_code == 404
    assert sb.paths["/v2/chats/messages"] == 1


def test_sandbox_messages_are_deterministic_and_varied(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    gen = Generator(1, INST, 1_764_000_000)
    every = [m for i in range(200) for m in chat_messages(gen, gen.spec(i), 20)]
    again = [m for i in range(200) for m in chat_messages(gen, gen.spec(i), 20)]
    assert every == again
    objects = [m for m in every if isinstance(m, dict)]
    bodies = [m["body"] for m in objects if isinstance(m.get("body"), str)]
    assert any(any("\u0600" <= ch <= "\u06ff" for ch in b) for b in bodies)  # Arabic
    assert any(any("\u0400" <= ch <= "\u04ff" for ch in b) for b in bodies)  # Cyrillic
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in b) for b in bodies)  # CJK
    assert any(any(ord(ch) >= 0x1F300 for ch in b) for b in bodies)  # emoji
    assert any(len(b) >= 1024 * 1024 for b in bodies)
    assert any("\x1b" in b for b in bodies)
    assert any(m["hasMedia"] and m["body"] for m in objects)  # a caption
    assert any(m["hasMedia"] and not m["body"] for m in objects)
    assert any(m.get("participant") for m in objects)
    assert any(m.get("body", "") is None for m in objects)
    assert any("id" not in m for m in objects)
    assert any(m.get("timestamp") is None for m in objects)
    assert any(isinstance(m, str) for m in every)
    stamps = [m["timestamp"] for m in objects if m.get("timestamp")]
    assert max(stamps) - min(stamps) > 180 * 86_400  # months: retention bites


def test_a_touch_adds_a_message_in_front_and_keeps_the_rest(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=20, messages_per_chat=5)
    store = sb.store(INST)
    chat = store.spec(0).jid
    before = get_messages(sb, token, chat).json()
    store.touch(chat)
    after = get_messages(sb, token, chat).json()
    assert after[1:] == before
    assert after[0]["timestamp"] == store.spec(0).ts
