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

import importlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import phonenumbers
from phonenumbers.phonemetadata import NumberFormat, PhoneMetadata

MIN_SUFFIX: Final = 7
_PHONEISH = re.compile(r"^\s*\+?[\d\s().\-/]+$")


def _digits(text: str) -> str:
    """ASCII digits of every decimal digit in ``text``, whatever its script (``٢٠`` -> ``20``)."""
    if text.isascii():
        body = text[1:] if text[:1] == "+" else text
        return body if body.isdigit() else _NON_DIGITS.sub("", text)
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())


_CODES: Final = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_CODE_TEXT: Final = {str(code): code for code in _CODES}
_NON_DIGITS: Final = re.compile(r"[^0-9]")
# phonenumbers' own rule for putting a national prefix in front of the first group.
_FIRST_GROUP: Final = re.compile(r"(\\\d)")

_GROUP_REF: Final = re.compile(r"\\(\d)(?!\d)")


def _as_format(template: str) -> str | None:
    """``\\1 \\2-\\3`` as ``{0} {1}-{2}`` for ``str.format``: the same text as ``re.sub``
    makes from a whole match, without the template interpreter ``re`` runs on every call.
    None for anything but literals and group references."""
    pieces = _GROUP_REF.split(template)
    out = []
    for n, piece in enumerate(pieces):
        if n % 2:
            if piece == "0":
                return None
            out.append(f"{{{int(piece) - 1}}}")
        elif "\\" in piece:
            return None
        else:
            out.append(piece.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


_INTERNATIONAL: Final = 0
_NATIONAL: Final = 1


@dataclass(frozen=True, slots=True)
class _Rule:
    leading: re.Pattern[str] | None
    pattern: re.Pattern[str]
    templates: tuple[str, str]  # re.sub templates: international, national
    formats: tuple[str | None, str | None]  # the same for str.format, where they convert
    # The national form's digits are these + the number itself, when that can be proven
    # from the rule (the usual case): found by concatenation instead of a regex pass.
    national_digits: str | None


def _whole_groups(pattern: str) -> int | None:
    """How many capturing groups ``pattern`` is made of, when it is nothing but those
    groups one after another (so together they are the whole match); else None."""
    depth = groups = 0
    escaped = in_class = False
    for n, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            if depth == 0:
                if pattern[n + 1 : n + 2] == "?":
                    return None
                groups += 1
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            return None
    return groups if groups and depth == 0 else None


def _digits_before(template: str, groups: int | None) -> str | None:
    """The digits ``template`` adds in front of the number, when it writes every group
    once and in order with no digit between or after them; else None."""
    pieces = _GROUP_REF.split(template)
    if groups is None or pieces[1::2] != [str(g) for g in range(1, groups + 1)]:
        return None
    if any(ch.isdigit() for piece in pieces[2::2] for ch in piece):
        return None
    return "".join(ch for ch in pieces[0] if ch.isdigit())


class _Plan:
    """One country calling code's formatting rules, compiled once.

    ``phonenumbers.format_number`` looks each rule's regular expressions up in ``re``'s
    cache, rebuilds the national template and runs ``re``'s template interpreter on every
    call, and a document needs two forms: that was two thirds of what a document cost. The
    rules, their order and the choice among them are the library's own, and the choice is
    made once for both forms (see :meth:`_align`); tests/test_phones.py holds the output
    equal to the library's for every country.
    """

    __slots__ = ("code", "international", "national", "same", "resume", "by_first")

    def __init__(self, code: int) -> None:
        region = phonenumbers.region_code_for_country_code(code)
        meta = PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())
        if meta is None:
            raise LookupError(code)
        self.code = str(code)
        self.national = self._compile(meta.number_format, national=True)
        self.international = (
            self._compile(meta.intl_number_format, national=False)
            if meta.intl_number_format
            else None  # the national rules, international templates
        )
        self.same, self.resume = self._align()
        # The national rules a number can match, by its first digit, in the library's order:
        # a rule is left out only when its expressions cannot start with that digit.
        # Numbers try 2.8 rules instead of 6 (the synthetic numbers of every country).
        starts = [
            _and(_first_digits(r.leading.pattern) if r.leading else None,
                 _first_digits(r.pattern.pattern))
            for r in self.national
        ]  # fmt: skip
        self.by_first = {
            d: tuple(n for n, can in enumerate(starts) if can is None or d in can)
            for d in "0123456789"
        }

    def _align(self) -> tuple[tuple[int | None, ...], tuple[int, ...]]:
        """Where a calling code has international rules of its own (40 do), they are the
        national ones with some left out, in the same order. So when national rule ``i``
        is chosen, no international rule before its twin can match (their twins came
        earlier and did not), and the twin, ``same[i]``, is the choice; without a twin the
        search goes on from ``resume[i]``. Anything else searches the international rules
        in full (``same`` all None, ``resume`` all 0)."""
        if self.international is None:
            return (), ()
        intl = [(r.leading and r.leading.pattern, r.pattern.pattern) for r in self.international]
        same: list[int | None] = []
        resume: list[int] = []
        j = 0
        for rule in self.national:
            resume.append(j)
            if j < len(intl) and intl[j] == (
                rule.leading and rule.leading.pattern,
                rule.pattern.pattern,
            ):
                same.append(j)
                j += 1
            else:
                same.append(None)
        if j < len(intl):  # not a subsequence after all
            return (None,) * len(self.national), (0,) * len(self.national)
        return tuple(same), tuple(resume)

    @staticmethod
    def _compile(formats: list[NumberFormat], *, national: bool) -> tuple[_Rule, ...]:
        out = []
        for f in formats:
            leading = re.compile(f.leading_digits_pattern[-1]) if f.leading_digits_pattern else None
            plain = f.format
            if f.pattern is None or plain is None:
                raise LookupError(f)  # not in the metadata; the library's path decides
            prefixed = plain
            if national and f.national_prefix_formatting_rule:
                prefixed = _FIRST_GROUP.sub(f.national_prefix_formatting_rule, plain, count=1)
            out.append(
                _Rule(
                    leading,
                    re.compile(f.pattern),
                    (plain, prefixed),
                    (_as_format(plain), _as_format(prefixed)),
                    _digits_before(prefixed, _whole_groups(f.pattern)),
                )
            )
        return tuple(out)

    def forms(self, nsn: str) -> tuple[str, str]:
        """``(international form, national form's digits)`` of the national significant
        number."""
        chosen = _choose(self.national, nsn, self.by_first[nsn[0]])
        if chosen is None:
            return nsn, nsn  # no rule matches: nor does any international one
        i, m = chosen
        rule = self.national[i]
        if rule.national_digits is not None:
            national = rule.national_digits + nsn
        else:
            national = _NON_DIGITS.sub("", _render(rule, m, nsn, _NATIONAL))
        if self.international is None:
            return _render(rule, m, nsn, _INTERNATIONAL), national
        j = self.same[i]
        if j is not None:  # the same pattern: the same match
            return _render(self.international[j], m, nsn, _INTERNATIONAL), national
        chosen = _choose(self.international, nsn, range(self.resume[i], len(self.international)))
        if chosen is None:
            return nsn, national
        j, m = chosen
        return _render(self.international[j], m, nsn, _INTERNATIONAL), national


def _choose(
    rules: tuple[_Rule, ...], nsn: str, candidates: Iterable[int]
) -> tuple[int, re.Match[str] | None] | None:
    """The library's choice among ``candidates`` (indexes, in order): the first rule whose
    leading digits match and whose pattern matches the whole number. The match comes along
    when it is also the one substitution ``re.sub`` would make (it starts the search and
    runs to the end)."""
    for n in candidates:
        rule = rules[n]
        if rule.leading is not None and not rule.leading.match(nsn):
            continue
        m = rule.pattern.match(nsn)
        if m is None:
            continue
        if m.end() == len(nsn):
            return n, m
        if rule.pattern.fullmatch(nsn):
            return n, None
    return None


def _render(rule: _Rule, m: re.Match[str] | None, nsn: str, form: int) -> str:
    fmt = rule.formats[form]
    if m is not None and fmt is not None:
        return fmt.format(*m.groups(""))
    return rule.pattern.sub(rule.templates[form], nsn)


try:  # re's own parser, to read which digit an expression can start with
    _PARSER: Any = importlib.import_module("re._parser")
    _OPS: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - a Python that moved it: every rule is a candidate
    _PARSER = _OPS = None


def _first_digits(pattern: str) -> frozenset[str] | None:
    """The digits a match of ``pattern`` can start with; None when that cannot be told."""
    if _PARSER is None:
        return None
    try:
        return _first(_PARSER.parse(pattern))
    except Exception:  # noqa: BLE001 - a private parser: not knowing is always safe
        return None


def _first(items: Any) -> frozenset[str] | None:
    if not items or items.getwidth()[0] == 0:
        return None  # it can match nothing, and then what follows decides
    op, arg = items[0]
    if op is _OPS.LITERAL:
        return frozenset(chr(arg)) & _DIGIT_SET
    if op is _OPS.IN:
        out: set[str] = set()
        for kind, value in arg:
            if kind is _OPS.LITERAL:
                out.add(chr(value))
            elif kind is _OPS.RANGE:
                out.update(chr(c) for c in range(value[0], value[1] + 1))
            elif kind is _OPS.CATEGORY and value is _OPS.CATEGORY_DIGIT:
                out.update(_DIGIT_SET)
            else:
                return None  # a negated set, say
        return frozenset(out) & _DIGIT_SET
    if op is _OPS.BRANCH:
        branches = [_first(branch) for branch in arg[1]]
        if any(b is None for b in branches):
            return None
        return frozenset().union(*branches)  # type: ignore[arg-type]
    if op is _OPS.SUBPATTERN:
        return _first(arg[3])
    if op in (_OPS.MAX_REPEAT, _OPS.MIN_REPEAT) and arg[0] > 0:
        return _first(arg[2])
    return None


def _and(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Both must hold; None is "any digit"."""
    if a is None:
        return b
    return a if b is None else a & b


_DIGIT_SET: Final = frozenset("0123456789")
_PLANS: dict[int, _Plan | None] = {}


def _plan(code: int) -> _Plan | None:
    if code not in _PLANS:
        try:
            _PLANS[code] = _Plan(code)
        except LookupError:
            _PLANS[code] = None
    return _PLANS[code]


def _code_of(digits: str) -> tuple[int, int] | None:
    """``(country calling code, its length)`` that ``digits`` starts with."""
    for size in (1, 2, 3):  # country calling codes are prefix-free
        code = _CODE_TEXT.get(digits[:size])
        if code is not None:
            return code, size
    return None


# The code for each of the 1,000 ways a number can start, found once by the rule above.
_BY_FIRST_THREE: Final = {f"{n:03d}": _code_of(f"{n:03d}") for n in range(1000)}


def _split(digits: str) -> tuple[int, str] | None:
    """``(country calling code, national significant number)`` of E.164 digits."""
    found = _BY_FIRST_THREE.get(digits[:3]) if len(digits) >= 3 else _code_of(digits)
    if found is None:
        return None
    code, size = found
    nsn = digits[size:]
    return (code, nsn) if nsn.isdigit() else None


def phone_forms(e164: str) -> tuple[str, list[str]]:
    """``(display, variants)`` of one number: the international form people read, and the
    digit strings it should be found under. A number without a known calling code keeps
    its digits as they are."""
    digits = _digits(e164)
    split = _split(digits)
    plan = _plan(split[0]) if split else None
    if split is None or plan is None:
        return e164, _unique(digits, None, None)
    nsn = split[1]
    international, national = plan.forms(nsn)
    return f"+{plan.code} {international}", _unique(digits, nsn, national)


def phone_variants(e164: str) -> list[str]:
    """Digit strings under which the number ``+<digits>`` should be found (no duplicates)."""
    return phone_forms(e164)[1]


def _unique(digits: str, nsn: str | None, national: str | None) -> list[str]:
    """``00`` + the number, its national forms, then its suffixes, each once, never the
    E.164 digits themselves (the ``phone_digits`` field has those)."""
    out = [f"00{digits}"]
    # The number is a suffix of the digits: it is shorter, so never equal to them.
    shortest = len(digits) if nsn is None else len(nsn)
    if nsn is not None and shortest >= MIN_SUFFIX:
        out.append(nsn)
    suffixes = _SUFFIXES[shortest] if shortest < len(_SUFFIXES) else _suffixes(shortest)
    if national is not None and len(national) >= MIN_SUFFIX and national not in (digits, nsn):
        out.append(national)
        if len(national) < shortest:  # in theory: a national form shorter than the number
            rest = [digits[s] for s in suffixes]
            if national in rest:
                rest.remove(national)
            return out + rest
    out += map(digits.__getitem__, suffixes)  # the last 7, 8, ... digits: one C loop
    return out


def _suffixes(shortest: int) -> tuple[slice, ...]:
    return tuple(slice(-n, None) for n in range(MIN_SUFFIX, shortest))


_SUFFIXES: Final = tuple(_suffixes(n) for n in range(24))


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
