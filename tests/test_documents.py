"""Document fields built on fast paths agree with the general rules they shortcut."""

from __future__ import annotations

import random
import time

from explorer.documents import _escape, _escape_char, _when, doc_id


def test_ids_escape_reversibly_whatever_the_script() -> None:
    assert _escape("2012345678@c.us") == "2012345678_ac_dus"
    assert _escape("a_b:c.d-e f") == "a_ub_cc_dd-e_x20f"
    assert _escape("Zoë@lid") == "Zo_xc3_xab_alid"
    assert _escape("🍕") == "_xf0_x9f_x8d_x95"


def test_ascii_ids_escape_exactly_as_the_general_rule() -> None:
    rng = random.Random(5)
    samples = ["2012345678@c.us", "120363@g.us", "a_b:c.d-e", "x y/z", "\x00\x7f", ""]
    samples += [
        "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(20))) for _ in range(5000)
    ]
    assert [_escape(s) for s in samples] == ["".join(map(_escape_char, s)) for s in samples]


def test_document_ids_take_the_usual_jids_fast_and_escape_them_as_the_general_rule() -> None:
    rng = random.Random(3)
    alphabet = "0123456789ab-_@.:é "
    jids = ["2012345678@c.us", "120363@g.us", "1234-5678@g.us", "99@lid", "a@b@c.us", "@c.us"]
    jids += ["status@broadcast", "٢٠١@c.us", "123@", "123", "x@newsletter", "A1@S.WHATSAPP.NET"]
    jids += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12))) for _ in range(5000)]
    for instance in ("INST01", "in_st:1", "Zoë"):
        general = "".join(map(_escape_char, instance))
        for jid in jids:
            assert doc_id(instance, jid) == f"{general}__{''.join(map(_escape_char, jid))}", jid


def test_last_active_matches_strftime_for_any_second() -> None:
    rng = random.Random(9)
    stamps = [1, 86_399, 86_400, 951_782_400, 1_764_000_000, 32_503_679_999]
    stamps += [rng.randrange(1, 32_503_680_000) for _ in range(20_000)]
    for ts in stamps:
        assert _when(ts) == time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)), ts
    assert _when(None) is None


def test_remembered_results_stay_right_past_their_limit() -> None:
    from explorer.documents import _Remembered

    calls: list[str] = []

    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    memo = _Remembered(upper, 2)
    assert [memo[t] for t in ("a", "b", "a", "c", "a")] == ["A", "B", "A", "C", "A"]
    assert calls == ["a", "b", "c", "a"] and len(memo) <= 2  # full at "c": forgotten, recomputed
