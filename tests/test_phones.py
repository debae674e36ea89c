"""Phone forms built from compiled country rules agree with phonenumbers itself."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from explorer.phones import (
    _CODES,
    _code_of,
    _first_digits,
    _split,
    _unique,
    phone_forms,
    pretty_phone,
)


def reference(e164: str) -> tuple[str, list[str]] | None:
    """What phonenumbers itself makes of the number, formatted twice. Built from the E.164
    split, not ``phonenumbers.parse``: parse would strip a national prefix off digits that
    are already international (``+1 1...``). None without a known calling code."""
    digits = e164[1:]
    sizes = [n for n in (1, 2, 3) if int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
    if not sizes:
        return None
    rest = digits[sizes[0] :]
    zeros = len(rest) - len(rest.lstrip("0"))
    number = phonenumbers.PhoneNumber(
        country_code=int(digits[: sizes[0]]),
        national_number=int(rest),
        italian_leading_zero=True if zeros else None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )
    display = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    nsn = phonenumbers.national_significant_number(number)
    national = "".join(
        ch for ch in phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL) if ch.isdigit()
    )
    out, seen = [], {digits}
    for v in [f"00{digits}", nsn, national] + [digits[-n:] for n in range(7, len(nsn))]:
        if v not in seen and len(v) >= 7:
            seen.add(v)
            out.append(v)
    return display, out


def example_numbers() -> list[str]:
    """Every example number the metadata holds: real shapes, so real format rules match."""
    out = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                out.append(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            out.append(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    return out


def random_numbers(seed: int = 7) -> list[str]:
    """Every calling code, every plausible length, every leading digit: the odd ones too."""
    rng = random.Random(seed)
    out = []
    for code in sorted(_CODES):
        for length in range(4, 16 - len(str(code))):
            for first in "0123456789":
                rest = "".join(rng.choice("0123456789") for _ in range(length - 1))
                out.append(f"+{code}{first}{rest}")
    return out


@pytest.mark.parametrize("source", [example_numbers, random_numbers])
def test_phone_forms_match_phonenumbers_for_every_country(source: object) -> None:
    numbers = source()  # type: ignore[operator]
    pairs = [(n, ref) for n in numbers if (ref := reference(n)) is not None]
    assert len(pairs) > 1000
    wrong = [(n, phone_forms(n), ref) for n, ref in pairs if phone_forms(n) != ref]
    assert not wrong[:5], f"{len(wrong)} of {len(pairs)} differ"


def test_phone_forms_of_familiar_numbers() -> None:
    assert phone_forms("+201234567890")[0] == "+20 12 34567890"
    assert phone_forms("+79161234567") == (
        "+7 916 123-45-67",
        ["0079161234567", "9161234567", "89161234567", "1234567", "61234567", "161234567"],
    )
    assert phone_forms("+4915112345678")[1][:3] == [
        "004915112345678",
        "15112345678",
        "015112345678",
    ]


def test_numbers_without_country_rules_keep_their_digits() -> None:
    assert phone_forms("+9991234567") == (
        "+9991234567",
        ["009991234567", "1234567", "91234567", "991234567"],
    )
    # phonenumbers reads an all-zero national number as one zero more than it has
    assert phone_forms("+200000000")[0] == "+20 0000000"


def test_search_results_show_the_same_form_as_the_index() -> None:
    assert pretty_phone("+79161234567") == phone_forms("+79161234567")[0] == "+7 916 123-45-67"
    assert pretty_phone("not a number") == "not a number"
    assert pretty_phone(None) == ""


@pytest.mark.parametrize(
    ("pattern", "starts"),
    [
        (r"[2-9]\d{7}", "23456789"),
        (r"1[0-2]|[3-9]", "13456789"),
        (r"(\d{3})(\d{4})", "0123456789"),
        (r"(?:80|9[01])\d", "89"),
        (r"(1[38])(\d{4})", "1"),
        (r"(?:1)?2\d", None),  # may start with 1 or 2: read as "any"
        (r"(?:|5)7", None),
        (r"(?=4)4\d", None),
    ],
)
def test_the_first_digits_a_rule_can_start_with_are_read_from_its_expression(
    pattern: str, starts: str | None
) -> None:
    assert _first_digits(pattern) == (None if starts is None else frozenset(starts))


def _unique_by_definition(digits: str, nsn: str | None, national: str | None) -> list[str]:
    """``00`` + the digits, the number, its national form, then the last 7, 8, ... digits
    (shorter than the number), each once, never the digits themselves."""
    out = [f"00{digits}"]
    shortest = len(digits) if nsn is None else len(nsn)
    if nsn is not None and shortest >= 7:
        out.append(nsn)
    suffixes = [digits[-n:] for n in range(7, shortest)]
    if national is not None and len(national) >= 7 and national not in (digits, nsn):
        out.append(national)
        suffixes = [s for s in suffixes if s != national]
    return out + suffixes


@given(st.text("0123456789", min_size=1, max_size=30), st.integers(0, 4),
       st.one_of(st.none(), st.text("0123456789", max_size=30)), st.booleans())  # fmt: skip
def test_search_variants_follow_their_definition(
    digits: str, code_size: int, national: str | None, suffix_national: bool
) -> None:
    nsn = digits[code_size:] if 0 < code_size < len(digits) else None
    if suffix_national and national is None and len(digits) > 8:
        national = digits[-8:]  # a national form shorter than the number: only in theory
    assert _unique(digits, nsn, national) == _unique_by_definition(digits, nsn, national)


@given(st.text("0123456789", min_size=1, max_size=20))
def test_a_number_splits_into_its_calling_code_and_the_rest(digits: str) -> None:
    found = _code_of(digits)
    expected = (found[0], digits[found[1] :]) if found and digits[found[1] :].isdigit() else None
    assert _split(digits) == expected
