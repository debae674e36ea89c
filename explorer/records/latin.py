"""Names as people type them in Latin letters: the hidden ``name_latin`` helper.

Meilisearch folds accents that Unicode decomposes (``Ş`` is ``S`` plus a cedilla), so
``stefan`` finds ``Ştefan``. It does not fold letters that Unicode keeps whole (``Ł``,
``Đ``, ``Ø``, ``Þ``, ``ß``), nor other scripts, so ``lukasz`` missed ``Łukasz`` and
``anna`` missed ``Анна``. :func:`latin_forms` writes such a name in Latin letters for the
index; a name already in plain Latin gets nothing, so most documents do not grow.

``anyascii`` (ISC) does the letters, with fixes where its output is not what people type
(checked against common names, docs/benchmarks.md "Names typed in Latin letters"):

- apostrophes and quotes it writes for signs (Cyrillic ``ь``, Arabic ``ع``) are dropped:
  Meilisearch would split ``Natal'ya`` into two words, and people type ``Natalya``; a
  second Cyrillic form has BGN/PCGN's ``ye``/``yo`` and ``x`` for ``кс`` (``Yelena``,
  ``Fyodor``, ``Alexei``);
- Greek digraphs follow ELOT 743, the standard of Greek passports (``ου`` ``ou``, ``ευ``
  ``ev``/``ef``, ``γγ`` ``ng``, ``μπ`` ``b`` at a word's edge), where anyascii writes
  letter by letter (``Papadopoyloy``); a second form is the spelling common abroad
  (``Yannis``, ``Hristos``, ``Sophia``); Armenian ``ու`` is ``u``;
- Devanagari is written here (anyascii leaves out the inherent vowel: ``ptel`` for
  ``पटेल``): Hindi usage, its final and medial schwa dropped (``कमला`` ``kamla``), and a
  second form with ``ee``/``oo`` for long vowels (``deepak`` beside ``dipak``), a third
  with ``x`` for ``क्ष`` (``laxmi``);
- Arabic is written here too (anyascii gives bare consonants, ``mhmd``): long vowels and
  ``ة`` as people write them, ``ال`` as ``al``; a second form with ``a`` for the short
  vowels the script does not write (``hsn`` ``hasan``), one with Egypt's ``g`` and ``e``
  (``gamila``, ``eman``), and for the commonest names their usual spellings from a small
  table (:data:`ARABIC_SPELLINGS`): ``محمد`` can be ``muhammad`` or ``mohamed``, and no rule
  can tell. A consonant skeleton instead (``mhmd`` for ``mohamed`` too) was measured and
  not kept: it finds ``محمود`` for ``mohamed``.

Han, kana and Hangul are left alone: a Han name has no one reading (Chinese or Japanese),
and Meilisearch segments those scripts itself.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

from anyascii import anyascii

# Scripts transliterated (the first word of a character's Unicode name).
SCRIPTS: Final = frozenset(
    {"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "GEORGIAN", "DEVANAGARI", "ARABIC", "HEBREW", "THAI"}
)
_WORD_SEP: Final = re.compile(r"[^a-z0-9]+")
_MARK: Final = ("Mn", "Mc", "Me")


def latin_forms(name: str | None) -> list[str]:
    """The name in Latin letters, lower case, then any further usual spellings; empty when
    Meilisearch already finds the name as typed in Latin (plain Latin, decomposable
    accents) or when it has no letters of :data:`SCRIPTS` beyond those."""
    if not name or name.isascii() or _decomposes(name):
        return []
    return list(_forms(name))


@lru_cache(maxsize=4096)
def _forms(name: str) -> tuple[str, ...]:
    """Cached: names repeat (a crawl sees the same first names many times)."""
    runs = _runs(unicodedata.normalize("NFC", name))
    if all(script == "DIGIT" or script == "LATIN" and _decomposes(text) for script, text in runs):
        return ()
    words: list[str] = []
    extra: list[str] = []
    for script, text in runs:
        latin, more = _transliterate(script, text)
        words.append(latin)
        extra += more
    first = _clean(" ".join(words))
    if not first:
        return ()
    return tuple(dict.fromkeys([first, *filter(None, map(_clean, extra))]))


def _clean(latin: str) -> str:
    """Lower case words of ASCII letters and digits, one space apart."""
    return " ".join(_WORD_SEP.sub(" ", latin.lower()).split())


def _script(ch: str) -> str | None:
    """The script of a letter, ``DIGIT`` for a decimal digit of any script, None for the
    rest (marks, spaces, symbols, emoji)."""
    if ch.isdecimal():
        return "DIGIT"
    if unicodedata.category(ch) in _MARK or not ch.isalpha():
        return None
    return unicodedata.name(ch, "?").split(" ", 1)[0]


def _runs(text: str) -> list[tuple[str, str]]:
    """``(script, text)`` runs of letters of one script with their marks; everything else
    (spaces, digits, symbols, emoji, and letters of other scripts) separates words."""
    runs: list[tuple[str, str]] = []
    current, buf = "", []
    for ch in text:
        script = _script(ch)
        if script is None and current and (ch.isspace() or unicodedata.category(ch) in _MARK):
            buf.append(" " if ch.isspace() else ch)  # a mark belongs to the letter before it
            continue
        if script is not None and script not in SCRIPTS and script != "DIGIT":
            script = None
        if script != current:
            if current:
                runs.append((current, "".join(buf).rstrip()))
            current, buf = script or "", []
        if script == "DIGIT":
            buf.append(str(unicodedata.decimal(ch)))
        elif script:
            buf.append(ch)
    if current:
        runs.append((current, "".join(buf).rstrip()))
    return runs


def _decomposes(text: str) -> bool:
    """Whether Meilisearch finds this Latin text typed without accents: every letter is
    ASCII once its combining marks are gone."""
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) not in _MARK
    ).isascii()


def _transliterate(script: str, text: str) -> tuple[str, list[str]]:
    """``(Latin text, further spellings)`` of a run of one script."""
    if script == "DIGIT":
        return text, []
    if script == "DEVANAGARI":
        return _devanagari(text)
    if script == "ARABIC":
        return _arabic(text)
    if script == "GREEK":
        elot = _plain(anyascii(_greek_digraphs(text)))
        popular = _plain(anyascii(_greek_digraphs(text, popular=True)))
        return elot, [popular] if popular != elot else []
    if script == "CYRILLIC":
        # BGN/PCGN's ye and yo where anyascii writes e (Yelena, Fyodor beside Elena,
        # Fedor), and x for кс (Alexei, Xenia)
        yes = _CYRILLIC_YO.sub("yo", _CYRILLIC_YE.sub("ye", text))
        yes = yes.replace("кс", "x").replace("Кс", "X").replace("КС", "X")
        plain, ye = _plain(anyascii(text)), _plain(anyascii(yes))
        return plain, [ye] if ye != plain else []
    if script == "ARMENIAN":
        text = text.replace("ու", "u").replace("Ու", "U").replace("ՈՒ", "U")
    return _plain(anyascii(text)), []


# е at the start of a word or after a vowel or sign; ё anywhere
_CYRILLIC_YE: Final = re.compile(r"(?<![^\sаеёиоуыэюяъьАЕЁИОУЫЭЮЯ])[еЕ]")
_CYRILLIC_YO: Final = re.compile("[ёЁ]")


def _plain(latin: str) -> str:
    """Signs written as apostrophes and quotes join the letters around them (``Natalya``)."""
    return latin.replace("'", "").replace('"', "").replace("`", "")


# Greek (ELOT 743) ---------------------------------------------------------------------

_GREEK_VOWELS: Final = "αεηιοωυ"
_GREEK_VOICELESS: Final = "θκξπστφχψ"


def _greek_digraphs(text: str, *, popular: bool = False) -> str:
    """The letter pairs ELOT 743 writes as one sound, in Latin; the rest is anyascii's.
    ``popular``: as names are often written abroad instead, ``γι`` before a vowel as
    ``y``, ``χ`` as ``h``, ``φ`` as ``ph``, ``αι`` as ``e`` (Yannis, Hristos, Sophia)."""
    out = []
    for word in re.split(r"(\s+)", text):
        # lower case, accents off, but a diaeresis kept: it says "two vowels, not a pair"
        plain = "".join(
            c
            for c in unicodedata.normalize("NFD", word.lower())
            if c == "\u0308" or unicodedata.category(c) not in _MARK
        )
        if popular:
            plain = re.sub("γι(?=[αεηιοωυ])", "y", plain)
            plain = re.sub("αι(?!\u0308)", "e", plain.replace("χ", "h").replace("φ", "ph"))
        out.append(_greek_word(plain))
    return "".join(out)


def _greek_word(w: str) -> str:
    w = re.sub("ου(?!\u0308)", "ou", w)

    def vowel_u(m: re.Match[str]) -> str:
        after = m.group(2)
        first = {"α": "a", "ε": "e", "η": "i"}[m.group(1)]
        soft = after and (after in _GREEK_VOWELS or after not in _GREEK_VOICELESS)
        return first + ("v" if soft else "f") + after

    w = re.sub("([αεη])υ(?!\u0308)(.?)", vowel_u, w)
    w = w.replace("γγ", "ng").replace("γξ", "nx").replace("γχ", "nch")
    w = re.sub(r"^μπ|μπ$", "b", w).replace("μπ", "mp")
    w = re.sub(r"^ντ", "d", w).replace("ντ", "nt")
    w = re.sub(r"^γκ", "g", w).replace("γκ", "gk")
    return w.replace("\u0308", "")


# Devanagari (Hindi usage) -------------------------------------------------------------

_DEVA_CONSONANTS: Final = {
    "क": "k", "ख": "kh", "ग": "g", "घ": "gh", "ङ": "n", "च": "ch", "छ": "chh", "ज": "j",
    "झ": "jh", "ञ": "n", "ट": "t", "ठ": "th", "ड": "d", "ढ": "dh", "ण": "n", "त": "t",
    "थ": "th", "द": "d", "ध": "dh", "न": "n", "ऩ": "n", "प": "p", "फ": "ph", "ब": "b",
    "भ": "bh", "म": "m", "य": "y", "र": "r", "ऱ": "r", "ल": "l", "ळ": "l", "ऴ": "l",
    "व": "v", "श": "sh", "ष": "sh", "स": "s", "ह": "h",
}  # fmt: skip
# With a nukta (NFC keeps these decomposed): the sounds of Persian and English loans.
_DEVA_NUKTA: Final = {
    "क": "q",
    "ख": "kh",
    "ग": "gh",
    "ज": "z",
    "ड": "r",
    "ढ": "rh",
    "फ": "f",
    "य": "y",
}
_NUKTA: Final = "\u093c"
# Vowels, independent and as signs: (usual, long form) where the long one differs.
_DEVA_VOWELS: Final = {
    "अ": "a", "आ": "ā", "इ": "i", "ई": "ī", "उ": "u", "ऊ": "ū", "ऋ": "ri", "ए": "e",
    "ऐ": "ai", "ओ": "o", "औ": "au", "ऍ": "e", "ऑ": "o",
    "ा": "ā", "ि": "i", "ी": "ī", "ु": "u", "ू": "ū", "ृ": "ri", "े": "e", "ै": "ai",
    "ो": "o", "ौ": "au", "ॅ": "e", "ॉ": "o",
}  # fmt: skip
_VIRAMA: Final = "्"
# A cluster ending in one of these keeps its final ``a`` (krishna, mitra, aditya, padma);
# others lose it (dost).
_KEEPS_FINAL_A: Final = frozenset({"y", "r", "l", "v", "n", "m"})
_NASAL: Final = {"ं", "ँ"}


def _devanagari(text: str) -> tuple[str, list[str]]:
    """Hindi as people write it: ``शर्मा`` ``sharma``, ``पटेल`` ``patel``, ``कमला``
    ``kamla``; with ``ee``/``oo`` for long ``ī``/``ū`` as a second form (``deepak``),
    and ``x`` for ``क्ष`` as a third (``laxmi``)."""
    words = [_deva_word(w) for w in text.split()]
    words = [w.replace("ā", "a") for w in words]
    short = " ".join(w.replace("ī", "i").replace("ū", "u") for w in words)
    long = " ".join(w.replace("ī", "ee").replace("ū", "oo") for w in words)
    x = short.replace("ksh", "x")  # Laxmi, Laxman
    return short, [form for form in (long, x) if form != short]


def _deva_word(word: str) -> str:
    """Syllables (consonants, vowel) with the inherent ``a`` where no sign replaces it,
    then Hindi's schwa deletion: not at the end of a word (unless after two consonants:
    ``krishna``), nor between two single consonants after a vowel (``kamla``)."""
    sylls: list[tuple[list[str], str | None, str]] = []  # consonants, vowel, nasal/h
    cons: list[str] = []
    pending = False  # a consonant waits for its vowel
    for i, ch in enumerate(word):
        nukta = word[i + 1 : i + 2] == _NUKTA
        if ch in _DEVA_CONSONANTS:
            if pending:
                sylls.append((cons, "a", ""))
                cons = []
            cons.append(
                _DEVA_NUKTA.get(ch, "") if nukta and ch in _DEVA_NUKTA else _DEVA_CONSONANTS[ch]
            )
            pending = True
        elif ch == _VIRAMA:
            pending = False
        elif ch in _DEVA_VOWELS:
            sylls.append((cons, _DEVA_VOWELS[ch], ""))
            cons, pending = [], False
        elif ch in _NASAL or ch == "ः":
            if pending:
                sylls.append((cons, "a", ""))
                cons, pending = [], False
            if sylls:
                c, v, _ = sylls[-1]
                sylls[-1] = (c, v, "h" if ch == "ः" else "n")
        else:  # a sign Hindi names do not use (ॐ, vocalic l): anyascii's letters
            if pending:
                sylls.append((cons, "a", ""))
                cons, pending = [], False
            sylls.append(([_plain(anyascii(ch)).lower()], "", ""))
    if pending:
        sylls.append((cons, "a", ""))
    elif cons:
        sylls.append((cons, None, ""))  # a final virama
    vowels: list[str | None] = [v for _, v, _ in sylls]
    last = len(sylls) - 1
    final = sylls[last][0] if sylls else []
    if (
        last > 0
        and vowels[last] == "a"
        and not sylls[last][2]
        and final
        and (len(final) == 1 or final[-1] not in _KEEPS_FINAL_A)
    ):
        vowels[last] = None
    for k in range(last - 1, 0, -1):
        if (
            vowels[k] == "a"
            and not sylls[k][2]
            and len(sylls[k][0]) == 1
            and len(sylls[k + 1][0]) == 1
            and vowels[k + 1] is not None
            and vowels[k - 1] is not None
        ):
            vowels[k] = None
    out = []
    for k, (c, _, nasal) in enumerate(sylls):
        out.append("".join(c) + (vowels[k] or ""))
        if nasal == "n":
            following = sylls[k + 1][0][:1] if k < last else []
            out.append("m" if following and following[0][:1] in ("p", "b", "m") else "n")
        elif nasal:
            out.append(nasal)
    return "".join(out)


# Arabic -------------------------------------------------------------------------------

_AR_LETTERS: Final = {
    "ب": "b", "ت": "t", "ث": "th", "ج": "j", "ح": "h", "خ": "kh", "د": "d", "ذ": "dh",
    "ر": "r", "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d", "ط": "t", "ظ": "z",
    "غ": "gh", "ف": "f", "ق": "q", "ك": "k", "ل": "l", "م": "m", "ن": "n", "ه": "h",
    "ة": "a", "ى": "a", "ء": "", "ؤ": "u", "ئ": "i", "پ": "p", "چ": "ch", "گ": "g",
    "ژ": "zh", "ک": "k", "ی": "i",
}  # fmt: skip
_AR_HARAKAT: Final = re.compile("[\u064b-\u065f\u0670\u0640]")  # short vowels, tatweel
_AR_ALEFS: Final = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})

# The usual Latin spellings of the commonest Arabic given and family names, for the index
# only: the script writes no short vowels, so a rule writes one spelling and people type
# several. Keys are written without vowel signs; looked up with every alef as ``ا``, ``ى``
# as ``ي`` and ``ة`` as ``ه``. Spellings from Egyptian, Levantine, Gulf and Maghreb usage
# and the standard transcriptions; one typo from any of them is also found.
ARABIC_SPELLINGS: Final[dict[str, tuple[str, ...]]] = {
    "محمد": ("mohamed", "muhammad", "mohammed", "mohammad", "mohamad", "muhammed"),
    "أحمد": ("ahmed", "ahmad"),
    "محمود": ("mahmoud", "mahmud"),
    "مصطفى": ("mostafa", "mustafa", "moustafa"),
    "علي": ("ali",),
    "عمر": ("omar", "umar"),
    "عثمان": ("othman", "osman", "uthman"),
    "خالد": ("khaled", "khalid"),
    "حسن": ("hassan", "hasan"),
    "حسين": ("hussein", "hussain", "hossein", "husain"),
    "إبراهيم": ("ibrahim", "ebrahim"),
    "إسماعيل": ("ismail", "ismael"),
    "يوسف": ("youssef", "yousef", "yusuf", "youssif", "yousif"),
    "يونس": ("younes", "yunus", "younis"),
    "عبد": ("abd", "abdel", "abdul"),
    "عبدالله": ("abdullah", "abdallah", "abdulla"),
    "عبد الله": ("abdullah", "abdallah", "abdulla"),
    "عبدالرحمن": ("abdelrahman", "abdulrahman", "abdalrahman", "abderrahmane"),
    "عبد الرحمن": ("abdelrahman", "abdulrahman", "abdalrahman", "abderrahmane"),
    "سعيد": ("said", "saeed", "saied"),
    "كريم": ("karim", "kareem"),
    "طارق": ("tarek", "tariq", "tarik"),
    "عمرو": ("amr", "amro"),
    "وليد": ("walid", "waleed"),
    "ياسر": ("yasser", "yaser", "yasir"),
    "حمزة": ("hamza", "hamzah"),
    "بلال": ("bilal", "belal"),
    "سامي": ("sami", "samy"),
    "هشام": ("hisham", "hesham"),
    "نبيل": ("nabil", "nabeel"),
    "سمير": ("samir", "sameer"),
    "عادل": ("adel", "adil"),
    "أشرف": ("ashraf",),
    "أسامة": ("osama", "usama", "ousama"),
    "حسام": ("hossam", "hussam", "husam"),
    "جمال": ("gamal", "jamal"),
    "رامي": ("rami", "ramy"),
    "فيصل": ("faisal", "faysal", "fesal"),
    "سلمان": ("salman",),
    "سليمان": ("suleiman", "sulaiman", "soliman", "sulayman"),
    "منصور": ("mansour", "mansur"),
    "السيد": ("elsayed", "el sayed", "al sayed", "sayed", "sayyid"),
    "الزهراء": ("alzahraa", "al zahraa", "zahraa", "zahra"),
    "فاطمة": ("fatima", "fatma", "fatemah", "fatimah"),
    "مريم": ("mariam", "maryam", "meriem", "mariem"),
    "عائشة": ("aisha", "aicha", "ayesha", "aysha"),
    "خديجة": ("khadija", "khadijah", "khadiga"),
    "زينب": ("zainab", "zeinab", "zaynab"),
    "نور": ("nour", "noor", "nur"),
    "سارة": ("sara", "sarah"),
    "ليلى": ("layla", "leila", "laila", "leyla"),
    "هدى": ("huda", "hoda"),
    "أمينة": ("amina", "aminah"),
    "ياسمين": ("yasmin", "yasmine", "yasmeen", "jasmin"),
    "سلمى": ("salma",),
    "هناء": ("hanaa", "hana"),
    "منى": ("mona", "muna"),
    "رانيا": ("rania", "ranya"),
    "دينا": ("dina",),
    "نهى": ("noha", "nuha"),
    "هبة": ("heba", "hiba"),
    "أسماء": ("asmaa", "asma"),
    "ريم": ("reem", "rim"),
    "فرح": ("farah",),
    "رشا": ("rasha",),
    "شيماء": ("shaimaa", "shaima", "shayma"),
    "آية": ("aya", "ayah"),
    "نادية": ("nadia", "nadya"),
    "سعاد": ("souad", "suad"),
}


@lru_cache(maxsize=1)
def _arabic_table() -> dict[str, tuple[str, ...]]:
    return {k.translate(_AR_ALEFS): v for k, v in ARABIC_SPELLINGS.items()}


def _arabic(text: str) -> tuple[str, list[str]]:
    """Arabic letters as written in Latin, and the table's spellings of the words (and
    two-word names, ``عبد الله``) it knows."""
    words = _AR_HARAKAT.sub("", unicodedata.normalize("NFKC", text)).split()
    table = _arabic_table()
    extra: list[str] = []
    for k, word in enumerate(words):
        extra += table.get(word.translate(_AR_ALEFS), ())
        if k + 1 < len(words):
            extra += table.get(f"{word} {words[k + 1]}".translate(_AR_ALEFS), ())
    latin = " ".join(_arabic_word(w) for w in words)
    vowelled = _a_vowelled(latin)
    if vowelled != latin:
        extra.append(vowelled)
    # as Egypt writes them: g for ج and e for إ (Gamal, Maged, Eman, Ebrahim)
    egypt = re.sub(r"\bi", "e", latin) if "إ" in text else latin
    egypt = egypt.replace("j", "g") if "ج" in text else egypt
    if egypt != latin:
        extra.append(egypt)
    return latin, extra


_UNIT: Final = re.compile(r"sh|kh|th|dh|gh|[a-z]")


def _a_vowelled(latin: str) -> str:
    """An ``a`` between two consonants the script wrote with no vowel between them
    (``hsn`` ``hasan``, ``jmila`` ``jamila``): the short vowel Arabic names have most often.
    Found under either form; benchmarks/latin.py measures what it buys."""
    out = []
    for word in latin.split():
        units = _UNIT.findall(word)
        w = units[0] if units else ""
        for prev, unit in zip(units, units[1:], strict=False):
            if prev not in "aiu" and unit not in "aiu":
                w += "a"
            w += unit
        out.append(w)
    return " ".join(out)


def _arabic_word(word: str) -> str:
    """Long vowels (``ا`` ``و`` ``ي``) as vowels between consonants and as ``w``/``y``
    beside vowels, ``ة``/``ى`` as ``a``, ``ال`` as ``al``, a first ``ع`` as ``a``, other
    ``ع`` and ``ء`` as nothing: what the script says without its short vowels."""
    prefix = ""
    if word.startswith("ال") and len(word) > 3:
        prefix, word = "al ", word[2:]
    out: list[str] = []
    vowel_before = False  # what the letter before became
    for i, ch in enumerate(word):
        alef_after = word[i + 1 : i + 2] in ("ا", "أ", "إ", "آ")
        if ch in "اأإآٱ":
            latin = "i" if ch == "إ" else "a"
        elif ch == "ع":
            latin = "" if vowel_before or alef_after or word[i + 1 : i + 2] in ("و", "ي") else "a"
            latin = "a" if i == 0 and not alef_after else latin
        elif ch in "وي":
            # a vowel after a consonant, unless an alef follows: a consonant beside vowels
            if i > 0 and out[-1] == ("u" if ch == "و" else "i"):
                latin = ""  # إي, ئي: one long vowel
            elif i > 0 and not vowel_before and not alef_after:
                latin = "u" if ch == "و" else "i"
            else:
                latin = "w" if ch == "و" else "y"
        else:
            latin = _AR_LETTERS.get(ch, _plain(anyascii(ch)).lower())
        out.append(latin)
        if latin:
            vowel_before = latin[-1] in "aiu"
    return prefix + "".join(out)
