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
from phonenumbers import PhoneNumber, PhoneNumberFormat

MIN_SUFFIX: Final = 7
_PHONEISH: Final = re.compile(r"^\s*\+?[\d\s().\-/]+$")


_NOT_DECIMAL: Final = re.compile(r"\D")  # in a str pattern, \d is every script's digits


def _digits(text: str) -> str:
    """ASCII digits of every decimal digit in ``text``, whatever its script (``٢٠`` -> ``20``)."""
    digits = _NOT_DECIMAL.sub("", text)
    return digits if digits.isascii() else "".join(str(unicodedata.decimal(d)) for d in digits)


def _number(digits: str) -> PhoneNumber | None:
    """The number whose E.164 form is ``+`` and ``digits``; None without a known calling
    code. Split by hand, not by ``phonenumbers.parse``: parse would also strip what looks
    like a national prefix from the digits after the code (``+1 1...``), and a WhatsApp
    number is already international."""
    for size in (1, 2, 3):  # calling codes are prefix-free
        code = int(digits[:size] or 0)
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            nsn = digits[size:]
            if not nsn:
                return None
            # Leading zeros are part of the number (Italy): kept as parse keeps them.
            zeros = min(len(nsn) - len(nsn.lstrip("0")), len(nsn) - 1)
            return PhoneNumber(
                country_code=code,
                national_number=int(nsn),
                italian_leading_zero=True if zeros else None,
                number_of_leading_zeros=zeros if zeros > 1 else None,
            )
    return None


def phone_forms(e164: str) -> tuple[str, list[str]]:
    """``(display, variants)`` of one number: the international form people read, and the
    digit strings it should be found under. A number without a known calling code keeps
    its digits as they are."""
    digits = _digits(e164)
    number = _number(digits)
    if number is None:
        return e164, _variants(digits, None, None)
    display = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = _digits(phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))
    nsn = phonenumbers.national_significant_number(number)
    return display, _variants(digits, nsn, national)


def phone_variants(e164: str) -> list[str]:
    """Digit strings under which the number ``+<digits>`` should be found (no duplicates)."""
    return phone_forms(e164)[1]


def _variants(digits: str, nsn: str | None, national: str | None) -> list[str]:
    """``00`` + the number, its national significant number, its national form, then the
    last 7, 8, ... digits (shorter than the national number), each once and at least 7
    digits long, never the E.164 digits themselves (the ``phone_digits`` field has those)."""
    shortest = len(digits) if nsn is None else len(nsn)
    suffixes = [digits[-n:] for n in range(MIN_SUFFIX, shortest)]
    out = [f"00{digits}"]
    for variant in (nsn, national, *suffixes):
        if variant and len(variant) >= MIN_SUFFIX and variant != digits and variant not in out:
            out.append(variant)
    return out


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
    """``+201234567890`` as people write it: ``+20 123 456 7890`` (anything else unchanged)."""
    if not isinstance(phone, str):
        return ""
    if not (phone[:1] == "+" and phone[1:].isascii() and phone[1:].isdigit()):
        return phone
    return phone_forms(phone)[0]
