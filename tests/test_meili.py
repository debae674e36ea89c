"""The one client module: Meilisearch's errors in one wording, lists read to their end,
one search body, and the official client's quirks kept inside."""

from __future__ import annotations

import socket
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from explorer.config import MeiliSettings
from explorer.dev.meili_server import MeiliServer
from explorer.errors import MeiliError, MeiliRefused
from explorer.meili.client import (
    PHONE_FIELDS,
    SEARCH_NEED,
    IndexStore,
    Meili,
    error,
    pages,
    search_body,
)
from explorer.records.output import HL_PRE
from explorer.secrets import Secret

URL = "http://127.0.0.1:7700"


def test_a_missing_index_says_to_build_it() -> None:
    found = error(URL, status=404, code="index_not_found", message="Index `x` not found.",
                  index="chats")  # fmt: skip
    assert str(found) == "index 'chats' does not exist yet: run `explorer reindex`"


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (401, "missing_authorization_header", "needs an API key: set MEILI_API_KEY"),
        (403, "invalid_api_key", "refused the API key [invalid_api_key]"),
        (403, None, "refused the API key [forbidden]"),
    ],
)
def test_a_refused_key_says_what_to_set(status: int, code: str | None, words: str) -> None:
    message = str(error(URL, status=status, code=code, message="The provided API key is invalid."))
    assert words in message and "admin key" in message
    searching = str(error(URL, status=status, code=code, message="x", need=SEARCH_NEED))
    assert "a search key is enough" in searching


def test_any_other_error_keeps_meilisearchs_words_and_code() -> None:
    found = error(
        URL, status=400, code="invalid_search_filter", message="Attribute `x` is not filterable."
    )
    assert (
        str(found)
        == f"Meilisearch at {URL}: Attribute `x` is not filterable. [invalid_search_filter]"
    )
    assert str(error(URL, status=502, code=None, message="Bad gateway")).endswith("[502]")


def test_pages_reads_every_item_in_order() -> None:
    items = list(range(250))
    asked: list[tuple[int, int]] = []

    def get(limit: int, offset: int) -> dict[str, Any]:
        asked.append((limit, offset))
        return {"results": items[offset : offset + limit], "total": len(items)}

    assert list(pages(get, limit=100)) == items
    assert asked == [(100, 0), (100, 100), (100, 200)]


def test_pages_ends_when_the_list_shrinks_while_it_is_read() -> None:
    def get(limit: int, offset: int) -> dict[str, Any]:
        return {"results": [] if offset else [1, 2], "total": 10}  # total is stale

    assert list(pages(get, limit=2)) == [1, 2]


# -- the search body -----------------------------------------------------------------------


def test_a_phone_query_searches_its_digits_in_the_phone_fields_only() -> None:
    body = search_body("+20 123 456 7890", phone=True, highlight=True)
    assert body["q"] == "201234567890" and body["attributesToSearchOn"] == PHONE_FIELDS
    assert body["highlightPreTag"] == HL_PRE
    named = search_body("+20 123 456 7890")  # a name search: the text as typed, everywhere
    assert named["q"] == "+20 123 456 7890" and "attributesToSearchOn" not in named


def test_nothing_is_highlighted_without_a_query() -> None:
    assert "attributesToHighlight" not in search_body("", highlight=True, facets=["chat_type"])


# -- the official client's quirks, on the real server ------------------------------------------


def settings_for(meili: MeiliServer, index: str = "nothing_here") -> MeiliSettings:
    return MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=index)


def test_a_refused_search_says_only_what_meilisearch_said(
    meili: MeiliServer, index_name: str
) -> None:
    """The client appends a hint about versions to some errors; it says nothing here."""
    store = IndexStore(settings_for(meili, index_name))
    store.create(index_name)
    with pytest.raises(MeiliRefused) as caught:
        store.search(index_name, search_body(filter="colour = blue"))
    assert str(caught.value).endswith("[invalid_search_filter]"), caught.value
    assert "Hint" not in str(caught.value)
    store.delete(index_name)


def test_deleting_documents_by_id_warns_nobody(meili: MeiliServer, index_name: str) -> None:
    store = IndexStore(settings_for(meili, index_name))
    store.create(index_name)
    store.wait([store.add(index_name, [{"id": "a"}, {"id": "b"}])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.wait([store.delete_ids(index_name, ["a"])])
    assert store.count(index_name) == 1
    store.delete(index_name)


def test_threads_never_share_a_client(meili: MeiliServer) -> None:
    """The official client rewrites one headers dict per request: one client per thread."""
    shared = Meili(settings_for(meili))
    mine = shared.client
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(shared.client))
    thread.start()
    thread.join()
    assert shared.client is mine and theirs[0] is not mine


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_a_meilisearch_that_never_answers_is_told_from_one_that_is_down(
    silent_server: str,
) -> None:
    slow = Meili(MeiliSettings(url=silent_server), request_timeout=1)
    with pytest.raises(MeiliError, match="did not answer in time"):
        slow.search("chats", search_body())
    down = Meili(MeiliSettings(url="http://127.0.0.1:9"), request_timeout=1)
    with pytest.raises(MeiliError, match="is unreachable: check that it is running"):
        down.search("chats", search_body())


@pytest.mark.parametrize(
    ("status", "code", "refused"),
    [(400, "invalid_document_id", True), (413, "payload_too_large", True),
     (404, "index_not_found", False), (429, None, False), (408, None, False),
     (500, "internal", False), (502, None, False), (503, None, False),
     (401, "missing_authorization_header", False), (403, "invalid_api_key", False)],
)  # fmt: skip
def test_only_a_request_meilisearch_refuses_is_refused(
    status: int, code: str | None, refused: bool
) -> None:
    """What listen sets aside as a dead letter (MeiliRefused) against what keeps its queue
    waiting: Meilisearch down or busy, a key or an index missing."""
    from explorer.meili.client import error

    found = error("http://m", status=status, code=code, message="x")
    assert isinstance(found, MeiliRefused) is refused
