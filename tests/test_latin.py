"""Names typed in Latin letters find names in other scripts (issue 35): the folding, and
the real index finding them without outranking a name typed in its own script."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import meilisearch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from explorer.config import MeiliSettings
from explorer.dev.meili_server import MeiliServer
from explorer.dev.synthetic import Generator, render
from explorer.meili.client import IndexStore
from explorer.meili.query import Searcher
from explorer.records.chats import Chat, normalize_chat
from explorer.records.documents import INDEX_SETTINGS, to_document
from explorer.records.latin import latin_forms
from explorer.secrets import Secret

FOLDED = [
    # letters Unicode keeps whole, and ligatures
    ("Łukasz Kowalski", ["lukasz kowalski"]),
    ("Łucja", ["lucja"]),
    ("Nguyễn Đức", ["nguyen duc"]),
    ("Anke Straßer", ["anke strasser"]),
    ("Ørjan", ["orjan"]),
    ("Þórunn", ["thorunn"]),
    ("Guðrún", ["gudrun"]),
    ("Ægir", ["aegir"]),
    ("Işıl", ["isil"]),
    # Cyrillic: soft and hard signs join their word (Meilisearch splits on apostrophes)
    ("Анна Петрова", ["anna petrova"]),
    ("Наталья", ["natalya"]),
    # ... and BGN/PCGN's ye/yo, x for кс, as a second form
    ("Елена", ["elena", "yelena"]),
    ("Фёдор", ["fedor", "fyodor"]),
    ("Алексей", ["aleksey", "alexey"]),
    ("Ольга", ["olga"]),
    ("Команда продаж", ["komanda prodazh"]),
    # Greek: digraphs as on Greek passports (ELOT 743)
    ("Σοφία Παπαδοπούλου", ["sofia papadopoulou", "sophia papadopoulou"]),
    ("Γιάννης", ["giannis", "yannis"]),  # ... and as often written abroad
    ("Χρήστος", ["christos", "hristos"]),
    ("Ευάγγελος", ["evangelos"]),
    ("Ελευθερία", ["eleftheria"]),
    ("Παύλος", ["pavlos"]),
    ("Μπάμπης", ["bampis"]),
    ("Μαΐου", ["maiou"]),  # a diaeresis: two vowels, not a pair
    ("Προϋπόθεση", ["proypothesi"]),
    # Armenian, Georgian
    ("Շուշան", ["shushan"]),
    ("ნინო", ["nino"]),
    # Devanagari, as Hindi is written: inherent a, schwa deletion, ee/oo beside i/u
    ("राहुल शर्मा", ["rahul sharma"]),
    ("पटेल", ["patel"]),
    ("कमला", ["kamla"]),
    ("कृष्ण", ["krishna"]),
    ("दोस्त", ["dost"]),
    ("दीपक", ["dipak", "deepak"]),
    ("लक्ष्मी", ["lakshmi", "lakshmee", "laxmi"]),
    ("संजय", ["sanjay"]),
    # Arabic: what the letters say, then the table's usual spellings
    ("سارة", ["sara", "sarah"]),
    ("علي", ["ali"]),
    ("إيمان", ["iman", "eman"]),  # ... and as Egypt writes them
    ("جميلة", ["jmila", "jamila", "gmila"]),
    ("حسن", ["hsn", "hassan", "hasan"]),
    (
        "محمد",
        ["mhmd", "mohamed", "muhammad", "mohammed", "mohammad", "mohamad", "muhammed", "mahamad"],
    ),
    (
        "عبد الله",
        ["abd al lh", "abd", "abdel", "abdul", "abdullah", "abdallah", "abdulla", "abad al lah"],
    ),
    ("فريق المبيعات", ["friq al mbiat", "fariq al mabiat"]),  # and a for short vowels
    ("جمال", ["jmal", "gamal", "jamal", "gmal"]),  # the table, then Egypt's g
    # mixed: only the parts that need it change, emoji and Han drop out
    ("Игорь ❤️", ["igor"]),
    ("Łukasz 王", ["lukasz"]),
]

NOTHING = [
    "Liam Smith",  # plain Latin: the index does not grow
    "O'Brien",
    "José Álvarez",  # accents Unicode decomposes: Meilisearch folds them itself
    "Ştefan",
    "İbrahim",
    "Zoë",
    "王伟",  # Han: no single reading
    "山田",
    "Family 👨‍👩‍👧",
    "",
    None,
]


@pytest.mark.parametrize(("name", "forms"), FOLDED)
def test_a_name_is_folded_to_latin_as_people_type_it(name: str, forms: list[str]) -> None:
    assert latin_forms(name) == forms


@pytest.mark.parametrize("name", NOTHING)
def test_nothing_is_added_where_latin_typing_already_finds_the_name(name: str | None) -> None:
    assert latin_forms(name) == []


def chat(jid: str, name: str | None, activity: int, *, group: bool = False) -> Chat:
    return Chat(
        instance_id="INST1",
        jid=jid,
        chat_type="group" if group else "individual",
        name=name,
        phone=None if group else "+" + jid.split("@")[0],
        lid=None,
        last_activity=activity,
        archived=False,
        pinned=False,
        muted=False,
        unread_count=0,
        engine_shape="webjs",
    )


def test_the_document_carries_the_helper_hidden_and_searchable() -> None:
    doc = to_document(chat("79161234567@c.us", "Анна Петрова", 1), label=None, crawled_at=1)
    assert doc["name_latin"] == ["anna petrova"]
    plain = to_document(chat("79161234568@c.us", "Anna Smith", 1), label=None, crawled_at=1)
    assert plain["name_latin"] == []
    searchable = INDEX_SETTINGS["searchableAttributes"]
    assert "name_latin" in searchable and "name_latin" not in INDEX_SETTINGS["displayedAttributes"]
    # ranked after the name and the phone fields
    assert (
        searchable.index("name_latin") > searchable.index("lid") > searchable.index("display_name")
    )


EPOCH = 1_764_000_000
# query -> the chat's name; each more recent than its Latin namesake below, so recency
# cannot be what ranks the namesake first
TARGETS = {
    "anna": "Анна Петрова",
    "lukasz": "Łukasz Wiśniewski",
    "duc": "Nguyễn Đức",
    "strasser": "Anke Straßer",
    "sofia": "Σοφία Παπαδοπούλου",
    "natalya": "Наталья Соколова",
    "rahul": "राहुल शर्मा",
    "mohamed": "محمد حسن",
}
NAMESAKES = {
    "anna": "Anna Smith",
    "lukasz": "Lukasz Nowak",
    "duc": "Duc Tran",
    "strasser": "Peter Strasser",
    "sofia": "Sofia Rossi",
}


@pytest.fixture(scope="module")
def latin_index(meili: MeiliServer) -> dict[str, Any]:
    """The targets and their namesakes among 3,000 sandbox chats (those whose names hold a
    target's word left out, so a target is the only chat each query should find)."""
    uid = "latin_names"
    settings = MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=uid)
    docs = []
    gen = Generator(5, "INST1", EPOCH)
    for i in range(3_000):
        c = normalize_chat(render(gen.spec(i), "webjs"), "INST1", now=EPOCH)
        if c is None:
            continue
        plain = unicodedata.normalize("NFKD", c.name or "").encode("ascii", "ignore").decode()
        folded = " ".join([plain.lower(), *latin_forms(c.name)])
        if not any(q in folded for q in TARGETS):
            docs.append(to_document(c, label=None, crawled_at=EPOCH))
    jids = {}
    for k, (q, name) in enumerate(TARGETS.items()):
        jids[q] = f"7000000{k:04d}@c.us"
        docs.append(to_document(chat(jids[q], name, EPOCH - k), label=None, crawled_at=EPOCH))
    for k, (q, name) in enumerate(NAMESAKES.items()):
        jids["own " + q] = f"7100000{k:04d}@c.us"
        older = EPOCH - 86_400 * (k + 1)
        docs.append(to_document(chat(jids["own " + q], name, older), label=None, crawled_at=EPOCH))
    store = IndexStore(settings)
    store.delete(uid)
    store.create(uid)
    store.apply_settings(uid, INDEX_SETTINGS)
    store.wait([store.add(uid, docs)])
    return {"settings": settings, "jids": jids, "uid": uid}


def searches(latin_index: dict[str, Any], meili: MeiliServer, q: str) -> dict[str, list[str]]:
    """The JIDs of the top 5 as the CLI, the page and MCP ask (``Searcher``) and as the
    Meilisearch web UI asks (the raw text, every searchable field)."""
    with Searcher(latin_index["settings"]) as searcher:
        cli = [h["jid"] for h in searcher.search(q, limit=5, highlight=False).hits]
    index = meilisearch.Client(meili.url, meili.master_key).index(latin_index["uid"])
    ui = [h["jid"] for h in index.search(q, {"limit": 5})["hits"]]
    return {"cli": cli, "ui": ui}


@pytest.mark.parametrize("query", list(TARGETS))
def test_a_name_typed_in_latin_finds_the_chat_in_its_script(
    latin_index: dict[str, Any], meili: MeiliServer, query: str
) -> None:
    for path, hits in searches(latin_index, meili, query).items():
        assert latin_index["jids"][query] in hits, (path, query, hits)


@pytest.mark.parametrize("query", list(NAMESAKES))
def test_a_name_typed_in_its_own_script_still_ranks_first(
    latin_index: dict[str, Any], meili: MeiliServer, query: str
) -> None:
    jids = latin_index["jids"]
    for path, hits in searches(latin_index, meili, query).items():
        assert hits[:2] == [jids["own " + query], jids[query]], (path, query, hits)
    native = TARGETS[query].split()[0]  # typed in the target's own script
    for path, hits in searches(latin_index, meili, native).items():
        assert hits[0] == jids[query], (path, native, hits)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_any_name_folds_to_plain_latin_words_or_nothing(name: str) -> None:
    for form in latin_forms(name):
        assert form and re.fullmatch(r"[a-z0-9]+( [a-z0-9]+)*", form), (name, form)


SCRIPT_SAMPLES = "ऀँंःऄअआइकक़ख़ग्ज़ड़ॐऌ्ािीुूृॅॉ़ اأإآٱءئؤعويةىًّْـ ΐϊΰϋουαυμπντγκ ЁёЪъЬь ՈւՈՒու"


@given(st.text(alphabet=SCRIPT_SAMPLES, max_size=20))
def test_signs_in_any_order_never_break_the_folding(name: str) -> None:
    for form in latin_forms(name):
        assert re.fullmatch(r"[a-z0-9]+( [a-z0-9]+)*", form), (name, form)
