"""Phone numbers in every form a person types them.

Index side, :func:`phone_variants` stores the digit strings an agent might type for a
number: international with ``00``, the national significant number, the national form
with its trunk prefix (``0`` in most countries), and the last 7+ digits. They go into one
searchable, hidden field, so the Meilisearch web UI finds a chat from any of those forms
too (digits only: the UI cannot join ``+20 123 456 7890`` back together).

Query side, :func:`phone_query` turns anything that looks like a number into its digits.
Country rules come from ``phonenumbers`` (the ``phonenumberslite`` package), not from us.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import phonenumbers

MIN_SUFFIX: Final = 7
_PHONEISH = re.compile(r"^\s*\+?[\d\s().\-/]+$")


def _digits(text: str) -> str:
    """ASCII digits of every decimal digit in ``text``, whatever its script (``٢٠`` -> ``20``)."""
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())


_CODES: Final = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _parse(digits: str) -> phonenumbers.PhoneNumber | None:
    """The number ``+<digits>``. Digits from a JID are already E.164 (country code, then the
    national significant number), so the number is built directly: ``phonenumbers.parse``
    would spend more time normalising free text than formatting takes."""
    for size in (1, 2, 3):  # country calling codes are prefix-free
        code = int(digits[:size]) if digits[:size].isdigit() else 0
        if code in _CODES:
            nsn = digits[size:]
            if not nsn.isdigit():
                return None
            zeros = len(nsn) - len(nsn.lstrip("0"))
            return phonenumbers.PhoneNumber(
                country_code=code,
                national_number=int(nsn),
                italian_leading_zero=True if zeros else None,
                number_of_leading_zeros=zeros if zeros > 1 else None,
            )
    return None


def phone_forms(e164: str) -> tuple[str, list[str]]:
    """``(display, variants)`` of one number, parsing it once: parsing and formatting are
    most of what building a document costs."""
    digits = _digits(e164)
    number = _parse(digits)
    display = (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if number is not None
        else e164
    )
    return display, _variants(digits, number)


def phone_variants(e164: str) -> list[str]:
    """Digit strings under which the number ``+<digits>`` should be found (no duplicates)."""
    digits = _digits(e164)
    return _variants(digits, _parse(digits))


def _variants(digits: str, number: phonenumbers.PhoneNumber | None) -> list[str]:
    out = [f"00{digits}"]
    nsn = None
    if number is not None:
        nsn = phonenumbers.national_significant_number(number)
        national = _digits(
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        )
        out += [nsn, national]
    shortest_full = min(len(nsn) if nsn else len(digits), len(digits))
    out += [digits[-n:] for n in range(MIN_SUFFIX, shortest_full)]
    seen = {digits}
    unique = []
    for v in out:
        if v and v not in seen and len(v) >= MIN_SUFFIX:
            seen.add(v)
            unique.append(v)
    return unique


def phone_query(query: str) -> str | None:
    """The digits to search for when ``query`` looks like a phone number, else None."""
    if not _PHONEISH.match(query):
        return None
    digits = _digits(query)
    if len(digits) < MIN_SUFFIX:
        return None
    if query.strip().startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    return digits


def pretty_phone(phone: object) -> str:
    """``+201234567890`` as people write it: ``+20 123 456 7890`` (unknown plans unchanged)."""
    if not isinstance(phone, str):
        return ""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
