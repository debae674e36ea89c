"""One wording for Meilisearch's errors, and lists read to their end, whichever client asked."""

from __future__ import annotations

from typing import Any

import pytest

from explorer.meili.client import SEARCH_NEED, error, pages

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
