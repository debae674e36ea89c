"""The agent page in a real headless Chromium, against a real Meilisearch with sandbox data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import meilisearch
import pytest

from explorer.config import MeiliSettings, load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from explorer.doors.serve import AgentPage
from explorer.jobs.reindex import reindex
from explorer.meili.keys import create_agent_key, create_search_key
from tests.browser import Browser
from tests.conftest import register_secret

A, B = "AGENT000000A", "AGENT000000B"
TOKEN_A = register_secret("agent-page-token-aaaaaaaaaaaa")
TOKEN_B = register_secret("agent-page-token-bbbbbbbbbbbb")
INDEX = "agent_world"
CASES = json.loads((Path(__file__).parent / "data/query_cases.json").read_text())["cases"]


@pytest.fixture(scope="module")
def world(meili: MeiliServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two labelled instances reindexed into a real Meilisearch, the page served for them."""
    # A LID world: many people listed under a LID, most of whose numbers Wawp knows.
    options = SandboxOptions(chats=800, instances={A: TOKEN_A, B: TOKEN_B}, seed=5,
                             lid_share=0.15, lid_known=0.8)  # fmt: skip
    sb = Sandbox(options).start()
    tmp = tmp_path_factory.mktemp("agent")
    path = tmp / "explorer.toml"
    path.write_text(
        f'[wawp]\nwarmup_seconds = 0\n\n[[wawp.instances]]\nid = "{A}"\nlabel = "Cairo"\n'
        f'access_token = "{TOKEN_A}"\n\n[[wawp.instances]]\nid = "{B}"\nlabel = "Lagos"\n'
        f'access_token = "{TOKEN_B}"\n\n[reindex]\nstate_dir = "{tmp / "state"}"\n'
    )
    env = {"WAWP_BASE_URL": sb.url, "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key,
           "EXPLORER_INDEX": INDEX}  # fmt: skip
    cfg = load_config(path, env=env)
    reindex(cfg)
    sb.stop()
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = [dict(d) for d in client.index(INDEX).get_documents({"limit": 10_000}).results]
    key = create_agent_key(cfg.meilisearch, label="agent page test").key
    page = AgentPage(cfg.meilisearch, port=0).start()
    yield {"cfg": cfg, "docs": docs, "key": key, "page": page, "meili": meili}
    page.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser(1400, 1000) as b:
        yield b


def sign_in(b: Browser, world: dict[str, Any], key: str | None = None, query: str = "") -> None:
    b.navigate(f"{world['page'].url}{query}#key={key or world['key']}")
    b.wait_for(
        "document.body.dataset.view === 'sign-in' ||"
        " ['results','empty','error'].includes(document.body.dataset.state)"
    )


def type_query(b: Browser, text: str) -> None:
    b.evaluate("(() => { const q = document.getElementById('q'); q.focus(); q.select(); })()")
    b.insert_text(text)


def first_jid(b: Browser, expected: str) -> str:
    """The first result's JID once the page shows results for what was typed last."""
    script = (
        "(() => { const li = document.querySelector('#results li'); if (!li) return ''; "
        "const b = li.querySelector('button[data-what=JID]'); return b ? b.dataset.copy : ''; })()"
    )
    deadline = time.monotonic() + 10
    got = ""
    while time.monotonic() < deadline:
        got = str(b.evaluate(script))
        if got == expected:
            break
        time.sleep(0.05)
    return got


def typo(name: str) -> str:
    """Swap two letters in the middle of the longest word: a typo people make."""
    words = name.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[longest]
    i = len(w) // 2
    words[longest] = w[: i - 1] + w[i] + w[i - 1] + w[i + 1 :]
    return " ".join(words)


def test_sign_in_through_the_fragment_keeps_the_key_out_of_the_url(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    assert browser.evaluate("document.body.dataset.view") == "finder"
    assert world["key"] not in browser.evaluate("location.href")
    assert browser.evaluate("document.querySelectorAll('#results li').length") == 20
    assert browser.evaluate("document.activeElement.id") == "q"


def test_a_name_with_a_typo_then_a_spaced_phone_number_find_the_right_chat(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    named = next(
        d for d in world["docs"]
        if d["name"] and d["name"].isascii() and max(map(len, d["name"].split())) >= 7
        and sum(1 for o in world["docs"] if o["name"] == d["name"]) == 1
    )  # fmt: skip
    type_query(browser, typo(named["name"]))
    assert first_jid(browser, named["jid"]) == named["jid"], typo(named["name"])
    assert browser.evaluate("document.querySelector('#results li mark') !== null")
    person = next(d for d in world["docs"] if d["phone_display"] and " " in d["phone_display"])
    type_query(browser, person["phone_display"])  # spaced, as people copy numbers
    assert first_jid(browser, person["jid"]) == person["jid"], person["phone_display"]


def location_has(b: Browser, text: str) -> bool:
    return text in str(b.evaluate("location.search"))


def card_of(b: Browser, jid: str) -> dict[str, Any]:
    """What the first result card shows, once it is ``jid``'s."""
    assert first_jid(b, jid) == jid
    return dict(b.evaluate(
        "(() => { const li = document.querySelector('#results li');"
        " const copy = li.querySelector('button[data-what=phone]');"
        " const open = li.querySelector('a.open');"
        " return {phone: li.querySelector('.phone').textContent,"
        " copy: copy ? copy.dataset.copy : null, open: open ? open.href : null}; })()"
    ))  # fmt: skip


def test_a_resolved_lid_chat_is_found_by_a_spaced_number_and_opens_in_whatsapp(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    person = next(
        d for d in world["docs"]
        if d["lid"] and d["phone"] and any(x["jid"].endswith("@lid") for x in d["listings"] or [])
    )  # fmt: skip
    type_query(browser, person["phone_display"])  # "+20 100 234 5678", as people copy it
    shown = card_of(browser, person["jid"])
    assert shown["phone"] == person["phone_display"]
    assert shown["copy"] == person["phone"]
    assert shown["open"] == f"https://wa.me/{person['phone'][1:]}"


def test_an_unresolved_lid_shows_hidden_number_and_the_filter_selects_them(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    hidden = [d for d in world["docs"] if d["phone_hidden"]]
    person = next(d for d in hidden if d["name"] and sum(
        1 for o in world["docs"] if o["name"] == d["name"]) == 1)  # fmt: skip
    type_query(browser, person["lid"])
    shown = card_of(browser, person["jid"])
    assert shown == {"phone": "hidden number", "copy": None, "open": None}
    type_query(browser, "")
    browser.click("#f-phone_hidden")
    phones = "[...document.querySelectorAll('#results li .phone')].map(p => p.textContent)"
    # The filtered list, not the one result the LID found a moment ago.
    browser.wait_for(f"(() => {{ const p = {phones}; return p.length > 1 &&"
                     " p.every(t => t === 'hidden number'); })()")  # fmt: skip
    assert location_has(browser, "phone_hidden=1")
    count = browser.evaluate("document.getElementById('c-phone_hidden').textContent")
    assert count == f"{len(hidden):,}"


def test_the_group_facet_shows_only_groups_with_its_count(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    groups = sum(1 for d in world["docs"] if d["chat_type"] == "group")
    shown = browser.evaluate(
        "document.querySelector('#type-options input[value=group]').parentElement"
        ".querySelector('.count').textContent"
    )
    assert shown.replace(",", "") == str(groups)
    browser.click("#type-options input[value=group]")
    browser.wait_for("location.search.includes('type=group')")
    badges = browser.wait_for(
        "(() => { const b = [...document.querySelectorAll('#results .badge')]"
        ".map(x => x.textContent);"
        " return b.length && b.every(t => t === 'Group') ? b : null; })()"
    )
    assert len(badges) == min(20, groups)
    assert f"{groups:,} chats" in browser.evaluate("document.getElementById('status').textContent")


def test_the_keyboard_moves_through_results_and_clears(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    browser.evaluate("document.activeElement.blur()")
    browser.press("/")
    assert browser.evaluate("document.activeElement.id") == "q"
    selected = "document.querySelector('#results [aria-selected=true]').id"
    assert browser.evaluate(selected) == "r0"
    browser.press("ArrowDown")
    browser.press("ArrowDown")
    assert browser.evaluate(selected) == "r2"
    assert (
        browser.evaluate("document.getElementById('q').getAttribute('aria-activedescendant')")
        == "r2"
    )
    browser.press("ArrowUp")
    assert browser.evaluate(selected) == "r1"
    browser.insert_text("maria")
    browser.wait_for("location.search.includes('q=maria')")
    browser.press("Escape")
    browser.wait_for("document.getElementById('q').value === '' && !location.search.includes('q=')")


def test_the_url_keeps_query_and_filters_and_back_restores_them(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world, query="?q=a&type=individual")
    browser.wait_for("document.querySelector('#type-options input[value=individual]').checked")
    assert browser.evaluate("document.getElementById('q').value") == "a"
    browser.click("#type-options input[value=group]")
    browser.wait_for("location.search.includes('type=group')")
    browser.evaluate("history.back()")
    browser.wait_for("document.querySelector('#type-options input[value=individual]')?.checked")
    assert "key" not in browser.evaluate("location.href")


def test_an_admin_key_is_refused(world: dict[str, Any], browser: Browser) -> None:
    sign_in(browser, world, key=world["meili"].master_key)
    assert browser.evaluate("document.body.dataset.view") == "sign-in"
    message = browser.evaluate("document.getElementById('sign-in-error').textContent")
    assert "admin key" in message and "explorer keys create-agent" in message
    assert browser.evaluate("sessionStorage.length") == 0


def test_a_wrong_key_and_an_unreachable_meilisearch_say_so(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world, key="not-a-real-key-0000000000000000")
    message = browser.evaluate("document.getElementById('sign-in-error').textContent")
    assert "not accepted" in message and "expired or revoked" in message
    dead = AgentPage(MeiliSettings(url="http://127.0.0.1:9", index=INDEX), port=0).start()
    try:
        browser.navigate(f"{dead.url}#key={world['key']}")
        browser.wait_for("document.getElementById('sign-in-error').textContent")
        message = browser.evaluate("document.getElementById('sign-in-error').textContent")
        assert "cannot be reached" in message
    finally:
        dead.stop()


def test_a_tenant_token_sees_only_its_instance(world: dict[str, Any], browser: Browser) -> None:
    token = create_search_key(world["cfg"].meilisearch, instance_id=B).tenant_token
    sign_in(browser, world, key=token)
    assert browser.evaluate("document.body.dataset.view") == "finder"
    assert "Lagos" in browser.evaluate("document.getElementById('who').textContent")
    labels = browser.evaluate(
        "[...document.querySelectorAll('#results .instance')].map(x => x.textContent)"
    )
    assert labels and set(labels) == {"Lagos"}


def test_the_page_prepares_queries_from_the_shared_table(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, world)
    got = browser.evaluate(
        f"{json.dumps([c['input'] for c in CASES])}.map(q => window.explorerQuery.phoneQuery(q))"
    )
    assert got == [c["digits"] for c in CASES]


def test_no_request_leaves_the_page_origin(world: dict[str, Any], browser: Browser) -> None:
    sign_in(browser, world)
    type_query(browser, "a")
    browser.wait_for("location.search.includes('q=a')")
    browser.click("#type-options input[value=individual]")
    browser.wait_for("document.querySelector('#results a.open') !== null")
    hosts = {urlsplit(u).netloc for u in browser.requests if not u.startswith(("data:", "about:"))}
    assert hosts == {urlsplit(world["page"].url).netloc}  # searches go through the page's door
    link = browser.evaluate(
        "(() => { const a = document.querySelector('#results a.open');"
        " return [a.href, a.rel, a.target]; })()"
    )
    assert link[0].startswith("https://wa.me/") and link[1] == "noreferrer noopener"


@pytest.mark.parametrize("width", [360, 1400])
def test_the_page_fits_a_phone_and_a_wide_screen(
    world: dict[str, Any], browser: Browser, width: int
) -> None:
    browser.resize(width, 900, mobile=width < 500)
    sign_in(browser, world)
    overflow = browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow}px wider than a {width}px screen"
    box = browser.evaluate("document.getElementById('q').getBoundingClientRect().width")
    assert box > width * 0.6


def test_the_page_door_passes_on_searches_only(world: dict[str, Any]) -> None:
    import httpx

    base = world["page"].server.url.rstrip("/")  # the door; the page is at /agent/
    master = {"Authorization": f"Bearer {world['meili'].master_key}"}
    ok = httpx.post(f"{base}/indexes/{INDEX}/search", json={"q": "a"}, headers=master)
    assert ok.status_code == 200 and ok.json()["hits"]
    assert "content-encoding" not in ok.headers
    for method, path in [("GET", "/keys"), ("POST", "/keys"),
                         ("GET", f"/indexes/{INDEX}/documents"),
                         ("POST", f"/indexes/{INDEX}/documents"), ("DELETE", f"/indexes/{INDEX}"),
                         ("POST", f"/indexes/{INDEX}/search?x=1"), ("PUT", "/multi-search"),
                         ("POST", f"/indexes/{INDEX}/documents%2F..%2Fsearch"),
                         ("GET", "/../../etc/passwd"), ("POST", "/swap-indexes")]:  # fmt: skip
        resp = httpx.request(method, f"{base}{path}", headers=master, json={})
        assert resp.status_code in (403, 404), (method, path, resp.status_code)
    big = httpx.post(f"{base}/multi-search", content=b"x" * 70_000, headers=master)
    assert big.status_code == 413


def test_the_labels_filter_counts_live_and_each_card_shows_its_labels_as_text_chips(
    world: dict[str, Any], browser: Browser
) -> None:
    from explorer.dev.synthetic import LABELS

    vip, hot = LABELS[4][0], LABELS[6][0]  # quotes and a backslash; an emoji
    docs = world["docs"]
    # One chat whose label is markup and whose colour is not one: both must stay inert.
    target = next(d for d in docs if d.get("labels") and d["name"] and d["name"].isascii())
    evil = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    client = meilisearch.Client(world["meili"].url, world["meili"].master_key)
    task = client.index(INDEX).update_documents(
        [
            {
                "id": target["id"],
                "labels": [*target["labels"], evil],
                "label_details": [
                    *target["label_details"],
                    {"id": "99", "name": evil, "color": "red;background:url(//x)"},
                ],
            }
        ]
    )
    client.wait_for_task(task.task_uid)
    sign_in(browser, world)

    def count(name: str) -> str:
        return ("(() => { const i = [...document.querySelectorAll('#label-options input')]"
                f".find(x => x.value === {json.dumps(name)}); return i &&"
                " i.parentElement.querySelector('.count').textContent; })()")  # fmt: skip

    for name in (vip, hot):
        expected = sum(1 for d in docs if name in (d.get("labels") or []))
        shown = browser.wait_for(count(name))
        assert shown.replace(",", "") == str(expected), name
    browser.evaluate(f"[...document.querySelectorAll('#label-options input')]"
                     f".find(x => x.value === {json.dumps(vip)}).click()")  # fmt: skip
    chips = browser.wait_for(
        "(() => { const c = [...document.querySelectorAll('#results li.hit')].map(li =>"
        " [...li.querySelectorAll('.chip')].map(x => x.textContent));"
        f" return c.length && c.every(x => x.includes({json.dumps(vip)})) ? c : null; }})()"
    )
    assert len(chips) == min(20, sum(1 for d in docs if vip in (d.get("labels") or [])))
    assert "label=VIP" in str(browser.evaluate("location.search"))
    # Live counts: Hot lead now counts only among the VIP chats (any-of within labels).
    assert browser.evaluate(count(vip)).replace(",", "") == str(
        sum(1 for d in docs if vip in (d.get("labels") or []))
    )
    colour = browser.evaluate("getComputedStyle(document.querySelector('#results .chip'))"
                              ".getPropertyValue('--chip').trim()")  # fmt: skip
    assert colour.startswith("#")
    type_query(browser, target["name"])
    browser.evaluate("[...document.querySelectorAll('#label-options input')]"
                     ".forEach(x => { if (x.checked) x.click(); })")  # fmt: skip
    shown = browser.wait_for(
        "(() => { const li = [...document.querySelectorAll('#results li.hit')].find(x =>"
        f" x.querySelector('button[data-what=JID]').dataset.copy === {json.dumps(target['jid'])});"
        " return li ? [...li.querySelectorAll('.chip')].map(x => x.textContent) : null; })()"
    )
    assert evil in shown
    assert browser.evaluate("document.querySelectorAll('#results .chip img, #results .chip b,"
                            " #label-options img').length") == 0  # fmt: skip
    assert browser.evaluate("window.pwned === undefined")
    bad = browser.evaluate(
        "[...document.querySelectorAll('#results .chip')].find(x =>"
        f" x.textContent === {json.dumps(evil)}).style.getPropertyValue('--chip')"
    )
    assert bad == ""
