"""Document fields built on fast paths agree with the general rules they shortcut."""

from __future__ import annotations

import random
import time

from explorer.documents import _ESCAPES, _escape, _when


def general_escape(text: str) -> str:
    """The escaping rule written plainly, one character at a time."""
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            out.append("".join(f"_x{b:02x}" for b in ch.encode()))
    return "".join(out)


def test_ascii_ids_escape_exactly_as_the_general_rule() -> None:
    rng = random.Random(5)
    samples = ["2012345678@c.us", "120363@g.us", "a_b:c.d-e", "x y/z", "\x00\x7f", ""]
    samples += [
        "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(20))) for _ in range(5000)
    ]
    samples += ["Zoë@lid", "名字@c.us", "🍕:1"]  # the other path, for contrast
    assert [_escape(s) for s in samples] == [general_escape(s) for s in samples]


def test_last_active_matches_strftime_for_any_second() -> None:
    rng = random.Random(9)
    stamps = [1, 86_399, 86_400, 951_782_400, 1_764_000_000, 32_503_679_999]
    stamps += [rng.randrange(1, 32_503_680_000) for _ in range(20_000)]
    for ts in stamps:
        assert _when(ts) == time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)), ts
    assert _when(None) is None
