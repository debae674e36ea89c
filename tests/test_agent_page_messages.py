"""Messages on the agent page and through its door: what was said beside the chats, in a
real headless Chromium, against a real Meilisearch; the door pinned to the chats index and
its messages index."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import meilisearch
import pytest

from explorer.config import MeiliSettings
from explorer.dev.meili_server import MeiliServer
from explorer.doors.serve import AgentPage
from explorer.records.filters import MessageFilters
from explorer.records.messages import messages_index
from tests import messages_world as w
from tests.browser import Browser
from tests.test_agent_page import sign_in, type_query
from tests.test_door import door_address, nginx, send
from tests.test_mcp import make_key
from tests.test_search import run_query_js

HTML = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b> parcel 9913'
CASES = json.loads((Path(__file__).parent / "data/message_filter_cases.json").read_text())["cases"]
OTHER = "other_secret_index"


@pytest.fixture(scope="module")
def world(meili: MeiliServer) -> Iterator[dict[str, Any]]:
    index = f"pagemsg_{secrets.token_hex(4)}"
    extra = [(w.A, w.SARA, "m-html", 4 * w.DAY, False, HTML, {})]
    w.build(meili.url, meili.master_key, index, messages=w.message_documents(extra))
    master = meilisearch.Client(meili.url, meili.master_key)
    agent = ["search", "indexes.get", "stats.get", "version"]
    key = make_key(master, agent, [index, messages_index(index)])
    settings = MeiliSettings(url=meili.url, index=index)
    pages = {
        "on": AgentPage(settings, port=0, messages=True).start(),
        "off": AgentPage(settings, port=0).start(),
    }
    yield {"index": index, "key": key, "pages": pages, "meili": meili, "master": master}
    for page in pages.values():
        page.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser(1400, 1000) as b:
        yield b


def page_world(world: dict[str, Any], which: str) -> dict[str, Any]:
    return {"page": world["pages"][which], "key": world["key"]}


def messages_shown(b: Browser, count: int) -> list[dict[str, Any]]:
    script = (
        "[...document.querySelectorAll('#messages li')].map((li) => ({"
        " chat: li.querySelector('.msg-chat').textContent,"
        " from: li.querySelector('.msg-from').textContent,"
        " body: li.querySelector('.msg-body').textContent,"
        " marks: [...li.querySelectorAll('.msg-body mark')].map((m) => m.textContent),"
        " when: li.querySelector('.msg-when').textContent }))"
    )
    deadline = time.monotonic() + 10
    shown: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        shown = list(b.evaluate(script))
        if len(shown) == count:
            break
        time.sleep(0.05)
    return shown


def test_messages_show_beside_chats_with_the_match_marked(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, page_world(world, "on"))
    type_query(browser, "order 441")  # as typed, before the last digit
    shown = messages_shown(browser, 2)
    assert {m["chat"] for m in shown} == {"Sara Ahmed"}, shown
    assert {m["from"] for m in shown} == {"Received", "You sent"}
    assert all(m["marks"] == ["order", "441"] for m in shown), shown  # the prefix typed
    assert all("ago" in m["when"] for m in shown)
    assert browser.evaluate("document.getElementById('messages-col').hidden") is False
    status = browser.evaluate("document.getElementById('messages-status').textContent")
    assert status.startswith("2 messages say")
    type_query(browser, "sara")  # a name: the chat, and no message of hers for her name
    browser.wait_for("document.body.dataset.state === 'results'")
    assert messages_shown(browser, 0) == []
    type_query(browser, "late")
    group = messages_shown(browser, 1)[0]
    assert group["chat"] == "Drivers Cairo" and group["from"] == "Ali the driver"
    # the sign-in's admin-key probe is refused (403), as it should be; nothing else failed
    assert [e for e in browser.console_errors if "status of 403" not in e] == []


def test_a_body_is_text_never_markup(world: dict[str, Any], browser: Browser) -> None:
    sign_in(browser, page_world(world, "on"))
    type_query(browser, "parcel 9913")
    shown = messages_shown(browser, 1)
    assert shown[0]["body"].startswith('<img src=x onerror="document.body.dataset.pwned=1">')
    assert browser.evaluate("document.querySelector('#messages img, #messages b')") is None
    assert browser.evaluate("document.body.dataset.pwned") is None


def test_a_click_on_a_message_shows_its_chat(world: dict[str, Any], browser: Browser) -> None:
    sign_in(browser, page_world(world, "on"))
    type_query(browser, "refund Monday")
    assert len(messages_shown(browser, 1)) == 1
    browser.click("#messages li")
    browser.wait_for("!document.getElementById('message-chat').hidden")
    jid = browser.evaluate(
        "document.querySelector('#message-chat button[data-what=JID]').dataset.copy"
    )
    assert jid == w.KOFI
    name = browser.evaluate("document.querySelector('#message-chat .name').textContent")
    assert name == "Kofi Mensah"


def test_the_page_filters_apply_to_messages(world: dict[str, Any], browser: Browser) -> None:
    sign_in(browser, page_world(world, "on"), query="?type=group")
    type_query(browser, "customer")  # the group's own message, not Sara's
    assert [m["chat"] for m in messages_shown(browser, 1)] == ["Drivers Cairo"]
    sign_in(browser, page_world(world, "on"), query=f"?instance={w.B}")
    type_query(browser, "order")
    assert [m["chat"] for m in messages_shown(browser, 1)] == ["Kofi Mensah"]
    sign_in(browser, page_world(world, "on"), query="?archived=1")
    type_query(browser, "order")
    messages_shown(browser, 3)
    status = browser.evaluate("document.getElementById('messages-status').textContent")
    assert "chat state filters do not apply to messages" in status


def test_with_messages_off_there_is_no_column_and_no_error(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, page_world(world, "off"))
    type_query(browser, "order")
    browser.wait_for(
        "document.body.dataset.state === 'results' || document.body.dataset.state === 'empty'"
    )
    time.sleep(0.3)
    assert browser.evaluate("document.getElementById('messages-col').hidden") is True
    assert browser.evaluate("document.getElementById('error').hidden") is True
    assert browser.evaluate("window.explorerDebug.state.messages") is None
    assert not [u for u in browser.requests if "-messages" in u]


def test_a_missing_messages_index_hides_the_column(
    world: dict[str, Any], browser: Browser, meili: MeiliServer
) -> None:
    index = f"nomsgs_{secrets.token_hex(4)}"
    from explorer.meili.client import IndexStore
    from explorer.records.documents import INDEX_SETTINGS
    from explorer.secrets import Secret

    store = IndexStore(MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=index))
    store.create(index)
    store.apply_settings(index, INDEX_SETTINGS)
    store.wait([store.add(index, w.chat_documents())])
    key = make_key(world["master"], ["search"], [index, messages_index(index)])
    page = AgentPage(MeiliSettings(url=meili.url, index=index), port=0, messages=True).start()
    try:
        sign_in(browser, {"page": page, "key": key})
        type_query(browser, "sara")
        browser.wait_for("document.body.dataset.state === 'results'")
        assert browser.evaluate("document.getElementById('messages-col').hidden") is True
        assert browser.evaluate("document.getElementById('error').hidden") is True
    finally:
        page.stop()


@pytest.mark.parametrize("case", CASES, ids=lambda c: json.dumps(c["page"]))
def test_message_filters_match_the_shared_table(case: dict[str, Any]) -> None:
    python = {**case["python"], "instance_ids": tuple(case["python"].get("instance_ids", ()))}
    assert MessageFilters(**python).expressions() == case["clauses"]


def test_the_page_writes_message_filters_by_the_same_table() -> None:
    got = run_query_js("return data.map((f) => q.messageFilterClauses(f));",
                       [c["page"] for c in CASES])  # fmt: skip
    assert got == [c["clauses"] for c in CASES]


# -- the door: the chats index and its messages index, nothing else --------------------------


@pytest.fixture(scope="module")
def doors(
    world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """The door with messages, alone and behind nginx as compose runs it; and without."""
    master = world["master"]
    master.wait_for_task(master.create_index(OTHER, {"primaryKey": "id"}).task_uid)
    master.wait_for_task(master.index(OTHER).add_documents([{"id": "s", "text": "x"}]).task_uid)
    on = world["pages"]["on"]
    unlimited = {"rate=30r/s;": "rate=100000r/s;", "burst=200": "burst=100000"}
    with nginx(tmp_path_factory.mktemp("door-msgs"), door_address(on), "2s",
               subs=unlimited) as port:  # fmt: skip
        yield {"serve": on.server.socket.getsockname()[1], "nginx": port,
               "off": world["pages"]["off"].server.socket.getsockname()[1]}  # fmt: skip


@pytest.mark.parametrize("via", ["serve", "nginx"])
def test_the_door_searches_chats_and_messages_in_one_request(
    world: dict[str, Any], doors: dict[str, int], via: str
) -> None:
    index, messages = world["index"], messages_index(world["index"])
    body = {"queries": [{"indexUid": index, "q": "sara"}, {"indexUid": messages, "q": "4411"}]}
    status, _, data = send(doors[via], "POST", "/multi-search", world["key"], body)
    assert status == 200, data
    chats, found = json.loads(data)["results"]
    assert chats["hits"] and len(found["hits"]) == 2
    status, _, data = send(doors[via], "POST", f"/indexes/{messages}/search", world["key"],
                           {"q": "refund"})  # fmt: skip
    assert status == 200 and json.loads(data)["hits"]
    status, _, data = send(doors[via], "GET", "/indexes", world["meili"].master_key)
    assert sorted(i["uid"] for i in json.loads(data)["results"]) == sorted([index, messages])
    status, _, data = send(doors[via], "GET", "/agent/config.json", None)
    assert json.loads(data) == {"meili": "", "index": index, "messages": messages}


@pytest.mark.parametrize("via", ["serve", "nginx", "off"])
def test_any_other_index_stays_out_even_with_the_master_key(
    world: dict[str, Any], doors: dict[str, int], via: str
) -> None:
    index, messages = world["index"], messages_index(world["index"])
    others = [OTHER, f"{index}-messages-x", f"{messages}s"]
    if via == "off":
        others.append(messages)  # message search off: its index is any other index
    for other in others:
        body = {"queries": [{"indexUid": index, "q": ""}, {"indexUid": other, "q": ""}]}
        status, _, data = send(doors[via], "POST", "/multi-search", world["meili"].master_key,
                               body)  # fmt: skip
        assert status in (400, 403, 404), (other, data)
        message = json.loads(data)["message"]
        assert other in message and "This door searches only" in message
        assert "explorer-door-" not in message
    if via == "off":
        status, _, data = send(doors["off"], "GET", "/agent/config.json", None)
        assert json.loads(data)["messages"] is None


def test_each_keystroke_is_one_request_for_chats_and_messages(
    world: dict[str, Any], browser: Browser
) -> None:
    sign_in(browser, page_world(world, "on"))
    type_query(browser, "refun")
    messages_shown(browser, 2)
    before = list(browser.requests)
    browser.insert_text("d")  # one keystroke: "refund"
    browser.wait_for("window.explorerDebug.state.q === 'refund'")
    messages_shown(browser, 2)
    time.sleep(0.3)
    sent = browser.requests[len(before) :]
    assert [u.rpartition("/")[2] for u in sent] == ["multi-search"], sent


def test_a_messages_index_removed_while_signed_in_drops_the_column_not_the_search(
    world: dict[str, Any], browser: Browser, meili: MeiliServer
) -> None:
    index = f"gone_{secrets.token_hex(4)}"
    w.build(meili.url, meili.master_key, index)
    key = make_key(world["master"], ["search"], [index, messages_index(index)])
    page = AgentPage(MeiliSettings(url=meili.url, index=index), port=0, messages=True).start()
    try:
        sign_in(browser, {"page": page, "key": key})
        type_query(browser, "refund")
        assert len(messages_shown(browser, 2)) == 2
        master = world["master"]
        master.wait_for_task(master.delete_index(messages_index(index)).task_uid)
        type_query(browser, "kofi")
        browser.wait_for("document.body.dataset.state === 'results'")
        assert browser.evaluate("document.getElementById('messages-col').hidden") is True
        assert browser.evaluate("document.getElementById('error').hidden") is True
        assert browser.evaluate("window.explorerDebug.state.messages") is None
    finally:
        page.stop()
