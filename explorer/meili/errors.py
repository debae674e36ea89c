"""Rules about talking to Meilisearch that both of its clients here share.

Reindexing uses the official client (:mod:`explorer.meili.client`); searching uses httpx directly
(:mod:`explorer.meili.query`), so that ``explorer search`` starts without importing the official
client. Whichever met a reply, this module decides what it means for the operator
(:func:`error`) and how to walk a list Meilisearch hands out a page at a time (:func:`pages`).
It imports neither client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from explorer.errors import AUTH_CODES, MeiliError, MeiliRefused, meili_refused, meili_unreachable

ADMIN_NEED = "an admin key for reindex"
SEARCH_NEED = "a search key is enough to search"


def missing_index(index: str) -> MeiliError:
    """The live index is not there: the one thing to do is build it."""
    return MeiliError(f"index {index!r} does not exist yet: run `explorer reindex`")


def error(
    url: str,
    *,
    status: int | None,
    code: str | None,
    message: str,
    index: str | None = None,
    need: str = ADMIN_NEED,
) -> MeiliError:
    """One :class:`MeiliError` for an error reply, whichever client received it.

    ``index``: the index the request named, so that ``index_not_found`` says to build it.
    ``need``: what kind of key the request needs, for a refused key.
    """
    if code == "index_not_found" and index is not None:
        return missing_index(index)
    if status in (401, 403) or code in AUTH_CODES:
        return MeiliError(meili_refused(url, code, need))
    text = f"Meilisearch at {url}: {message} [{code or status or '?'}]"
    if status is not None and 400 <= status < 500 and status not in _NOT_THE_REQUEST:
        return MeiliRefused(text)
    return MeiliError(text)


_NOT_THE_REQUEST = (404, 408, 429)  # an index missing, a timeout, a rate limit: wait, retry


def unreachable(url: str) -> MeiliError:
    return MeiliError(meili_unreachable(url))


PAGE = 100


def pages(
    get: Callable[[int, int], dict[str, Any]], *, limit: int = PAGE
) -> Iterator[dict[str, Any]]:
    """Every item of an offset-paginated list (``results`` and ``total``), page by page.

    ``get(limit, offset)`` fetches one page. It stops at ``total`` and at an empty page, so
    a list that shrinks while it is read ends instead of asking forever.
    """
    offset = 0
    while True:
        page = get(limit, offset)
        results = page.get("results") or []
        yield from results
        offset += len(results)
        if not results or offset >= int(page.get("total", 0)):
            return
