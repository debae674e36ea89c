"""Searching the live index: filters, phone-number queries, and a small Python API.

A person waits on this path (`explorer search` is a whole process per query). The body of
each search is :func:`explorer.meili.client.search_body`, sent through the one client
module; what that costs at start-up and per search is in docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from explorer.config import Config, MeiliSettings, load_config
from explorer.errors import QueryError
from explorer.meili.client import SEARCH_NEED, Meili, search_body
from explorer.records.filters import Filters
from explorer.records.phones import phone_query

__all__ = ["Filters", "SearchResult", "Searcher", "search"]

SORTABLE: Final = ("last_activity", "name", "display_name")
# Their counts cover every match, where estimatedTotalHits stops at maxTotalHits: the exact
# total, and the counts by type and instance (`explorer search --json`, `explorer stats`).
FACETS: Final = ("chat_type", "instance_id")


def parse_sort(value: str) -> str:
    attr, _, direction = value.partition(":")
    direction = direction or "asc"
    if attr not in SORTABLE or direction not in ("asc", "desc"):
        raise QueryError(
            "sort",
            f"must be ATTRIBUTE[:asc|desc] with ATTRIBUTE one of {', '.join(SORTABLE)}, "
            f"got {value!r}",
        )
    return f"{attr}:{direction}"


@dataclass
class SearchResult:
    query: str
    phone_digits: str | None
    filter: list[str]
    sort: list[str]
    total: int
    limit: int
    offset: int
    processing_ms: int
    hits: list[dict[str, Any]] = field(default_factory=list)
    total_exact: bool = True  # False: Meilisearch's estimate (it stops at maxTotalHits)
    facets: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_text(self) -> str:
        """ "1,497 chats", or "~1,000 chats (estimate)" when no exact count was possible."""
        if self.total_exact:
            return f"{self.total:,} chat{'s' * (self.total != 1)}"
        return f"~{self.total:,} chats (estimate)"

    def to_json(self) -> dict[str, Any]:
        """The stable machine output of `explorer search --json`."""
        return {
            "query": self.query,
            "phone_query": self.phone_digits,
            "filter": self.filter,
            "sort": self.sort,
            "total": self.total,
            "total_exact": self.total_exact,
            "facets": self.facets,
            "limit": self.limit,
            "offset": self.offset,
            "hits": [{k: v for k, v in hit.items() if not k.startswith("_")} for hit in self.hits],
        }


class Searcher:
    """Searches of one index, with a key that may only search."""

    def __init__(self, settings: MeiliSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self._meili = Meili(settings, request_timeout=timeout, need=SEARCH_NEED)

    def close(self) -> None:
        """Nothing to release: the client keeps no connection between requests."""

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(
        self,
        query: str = "",
        filters: Filters | None = None,
        *,
        sort: list[str] | None = None,
        limit: int = 20,
        offset: int = 0,
        highlight: bool = True,
    ) -> SearchResult:
        if not 1 <= limit <= 1000:
            raise QueryError("limit", f"must be between 1 and 1000, got {limit}")
        if offset < 0:
            raise QueryError("offset", f"must be >= 0, got {offset}")
        expressions = (filters or Filters()).expressions()
        sort = [parse_sort(s) for s in sort or []]
        # Counts per label only when filtering by label: an index built before labels
        # (schema 4) refuses a facet on a field it does not filter, and searches there
        # must keep working until the next reindex.
        counted = (*FACETS, "labels") if filters is not None and filters.labels else FACETS
        body = search_body(query, phone=True, filter=expressions, sort=sort, limit=limit,
                           offset=offset, facets=counted, highlight=highlight)  # fmt: skip
        data = self.raw_search(body)
        facets = data.get("facetDistribution") or {}
        by_type = facets.get("chat_type")
        exact = isinstance(by_type, dict)
        if isinstance(by_type, dict):
            total = sum(by_type.values())
        else:
            total = int(data.get("estimatedTotalHits", 0))
        if total == 0 and filters is not None and filters.instance is not None:
            self.check_instance(filters.instance)
        return SearchResult(
            query=query,
            phone_digits=phone_query(query),  # what search_body searched for instead
            filter=expressions,
            sort=sort,
            total=total,
            total_exact=exact,
            facets={k: v for k, v in facets.items() if isinstance(v, dict)},
            limit=limit,
            offset=offset,
            processing_ms=int(data.get("processingTimeMs", 0)),
            hits=list(data.get("hits", [])),
        )

    def known_instances(self) -> dict[str, str | None]:
        """Instance id -> label, for every instance with chats in the index."""
        body = search_body(limit=1000, facets=["instance_id"], distinct="instance_id",
                           fields=["instance_id", "instance_label"])  # fmt: skip
        data = self.raw_search(body)
        known: dict[str, str | None] = {
            k: None for k in data.get("facetDistribution", {}).get("instance_id", {})
        }
        for hit in data.get("hits", []):
            known[hit["instance_id"]] = hit.get("instance_label")
        return known

    def check_instance(self, name: str) -> None:
        """Raise QueryError naming the known instances if ``name`` is none of them."""
        known = self.known_instances()
        if name in known or name in known.values():
            return
        listed = ", ".join(f"{i} ({label})" if label else i for i, label in sorted(known.items()))
        raise QueryError(
            "instance",
            f"{name!r} is not an instance id or label in index {self.settings.index!r}; "
            f"known: {listed or 'none (the index is empty)'}",
        )

    def raw_search(self, body: dict[str, Any]) -> dict[str, Any]:
        """Meilisearch's reply to one :func:`~explorer.meili.client.search_body` on this
        index, errors translated: for callers that need more than :meth:`search` (the MCP
        tools' counts and lookups)."""
        return self._meili.search(self.settings.index, body)


def search(
    query: str = "",
    *,
    config: Config | None = None,
    chat_type: str | None = None,
    instance: str | None = None,
    archived: bool | None = None,
    pinned: bool | None = None,
    muted: bool | None = None,
    inactive_days: int | None = None,
    active_since: str | None = None,
    sort: list[str] | None = None,
    limit: int = 20,
    offset: int = 0,
    number_hidden: bool | None = None,
    labels: list[str] | tuple[str, ...] | str | None = None,
) -> SearchResult:
    """Search the live index with the same filters as `explorer search`. ``labels``: chats
    carrying any of these label names (one name may be given as a string).

    >>> from explorer import search
    >>> search("ahmed", chat_type="individual", sort=["last_activity:desc"]).hits
    >>> search("sara", labels=["VIP"]).hits
    """
    cfg = config or load_config()
    names = (labels,) if isinstance(labels, str) else tuple(labels or ())
    filters = Filters(
        chat_type,
        instance,
        archived,
        pinned,
        muted,
        inactive_days,
        active_since,
        number_hidden,
        names,
    )
    with Searcher(cfg.meilisearch) as searcher:
        return searcher.search(
            query, filters, sort=sort, limit=limit, offset=offset, highlight=False
        )
