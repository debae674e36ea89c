"""Outputs of the per-chat modules for many inputs, as JSON on stdout, for
tests/test_compiled.py. ``--source`` imports the modules from their .py files even where
compiled ones sit beside them (run in a process of its own: imports are once a process).

Inputs: every engine shape of the sandbox, odd values of every field, and seeded junk.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any

COMPILED = ("explorer.chats", "explorer.documents", "explorer.phones")


class _Source:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name not in COMPILED:
            return None
        found = PathFinder.find_spec(name, path)
        assert found is not None and found.origin is not None
        source = Path(found.origin).with_name(name.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(name, source)


def outcome(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        value = fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - the error is the output
        return ["error", type(exc).__name__, str(exc)]
    if type(value).__name__ == "Chat":
        value = [getattr(value, name) for name in value.__dataclass_fields__]
    return value


_NUMBERS = [0, -1, 1, 2**31, 2**63, 10**20, 1_700_000_000, 1_700_000_000_000, 0.5, 1e300]
_TEXTS = ["", " ", "-1", "0", "1700000000", "abc", "12.5", "٢٠٢٤", "a\tb\n", "\u200b é \U0001f600"]
_JIDS = ["201001234567@c.us", "1203630@g.us", "x@lid", "447700900123@s.whatsapp.net",
         "status@broadcast", "1@newsletter", "12:3@s.whatsapp.net", "x y@c.us", "@"]  # fmt: skip
_KEYS = ["id", "name", "timestamp", "low", "high", "_serialized", "user", "server", "pinned",
         "isMuted", "muteExpiration", "muteEndTime", "unreadCount", "archived", "lidJid",
         "conversationTimestamp", "lastMessage", "displayName", "isGroup"]  # fmt: skip


def junk(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 2 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice(_NUMBERS)
    if kind == 2:
        return rng.choice(_TEXTS)
    if kind == 3:
        return "".join(rng.choice("ab 09@.:_\t\né\u0663\u200b\U0001f600") for _ in range(9))
    if kind == 4:
        return rng.choice(_JIDS)
    if kind == 5:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(_KEYS): junk(rng, depth + 1) for _ in range(rng.randrange(6))}


def main() -> None:
    if "--source" in sys.argv:
        sys.meta_path.insert(0, _Source())
    import explorer.chats as chats
    import explorer.documents as documents
    import explorer.phones as phones
    from explorer.dev.synthetic import Generator, render

    gen = Generator(7, "inst", 1_764_000_000)
    rng = random.Random(14)
    raws: list[Any] = [
        render(gen.spec(i), s) for s in ("webjs", "noweb", "gows") for i in range(1500)
    ]
    raws += [junk(rng) for _ in range(3000)]
    fields = ("name", "timestamp", "pinned", "muteEndTime", "unreadCount", "lidJid", "archived")
    raws += [{"id": rng.choice(_JIDS), **{f: junk(rng) for f in fields}} for _ in range(3000)]
    out: list[Any] = [[m.__file__ for m in (chats, documents, phones)]]
    for raw in raws:
        chat = outcome(chats.normalize_chat, raw, "inst", now=1_764_000_000)
        out.append(chat)
        if isinstance(chat, list) and chat[:1] != ["error"]:
            made = chats.normalize_chat(raw, "inst", now=1_764_000_000)
            out.append(outcome(documents.to_document, made, label="Ünï", crawled_at=1))
    numbers = ["+201001234567", "+12025550123", "+447700900123", "+999123", "+1", "+", ""]
    numbers += ["+٢٠١٠٠١٢٣٤٥٦٧", " +20 100 123-4567 ", "0020 100"]
    numbers += [f"+{rng.randrange(10**6, 10**15)}" for _ in range(3000)]
    for value in numbers:
        out.append([outcome(fn, value) for fn in (phones.phone_forms, phones.pretty_phone)])
        out.append(outcome(phones.phone_query, value))
    for jid in _JIDS + ["a_b@g.us", "é@lid", "", "12345@c.us"]:
        out.append([outcome(documents.doc_id, "inst-1_x", jid), outcome(chats.normalize_jid, jid)])
    json.dump(out, sys.stdout, default=repr)


if __name__ == "__main__":
    main()
