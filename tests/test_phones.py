"""Phone forms: what an agent reads, and every form a chat is found under."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from explorer.records.phones import (
    MIN_SUFFIX,
    phone_forms,
    phone_query,
    phone_variants,
    pretty_phone,
)


def example_numbers() -> list[str]:
    """Every example number the metadata holds: real shapes, so real format rules match."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):  # the same test ids in every process
        for kind in PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                out.append(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            out.append(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    return out


EXAMPLES = example_numbers()


def test_every_countrys_display_form_reads_back_as_the_same_number() -> None:
    assert len(EXAMPLES) > 1000
    wrong = []
    for e164 in EXAMPLES:
        display = phone_forms(e164)[0]
        back = phonenumbers.format_number(phonenumbers.parse(display), PhoneNumberFormat.E164)
        if back != e164 or not display.startswith("+"):
            wrong.append((e164, display))
    assert not wrong[:5], f"{len(wrong)} of {len(EXAMPLES)}"


@pytest.mark.parametrize("e164", EXAMPLES[::7])
def test_a_chat_is_found_under_the_national_forms_people_dial(e164: str) -> None:
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    dialled = "".join(ch for ch in national if ch.isdigit())
    variants = phone_variants(e164)
    assert variants[0] == "00" + e164[1:]
    for form in (dialled, phonenumbers.national_significant_number(number)):
        assert form in variants or form == e164[1:] or len(form) < MIN_SUFFIX


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
    assert phone_forms("+200000000")[0] == "+20 0000000"  # leading zeros are kept


def test_search_results_show_the_same_form_as_the_index() -> None:
    assert pretty_phone("+79161234567") == phone_forms("+79161234567")[0] == "+7 916 123-45-67"
    assert pretty_phone("not a number") == "not a number"
    assert pretty_phone(None) == ""


@given(st.from_regex(r"\+[1-9][0-9]{0,16}", fullmatch=True))
def test_variants_are_distinct_digit_strings_the_number_can_be_typed_as(e164: str) -> None:
    digits = e164[1:]
    variants = phone_variants(e164)
    assert variants[0] == f"00{digits}"
    assert len(set(variants)) == len(variants)
    assert digits not in variants
    for v in variants[1:]:
        assert v.isdigit() and len(v) >= MIN_SUFFIX
    # the last 7, 8, ... digits, at least up to the national number (codes are 1-3 digits)
    assert all(digits[-n:] in variants for n in range(MIN_SUFFIX, len(digits) - 3))


def test_a_query_that_looks_like_a_number_searches_its_digits() -> None:
    assert phone_query("+20 123 456 7890") == "201234567890"
    assert phone_query("0020 123-456-7890") == "201234567890"
    assert phone_query("(012) 3456.7890") == "01234567890"
    assert phone_query("+٢٠ ١٢٣ ٤٥٦ ٧٨٩٠") == "201234567890"
    assert phone_query("123 45") is None  # too short to mean a number
    assert phone_query("Maria 1234567") is None
