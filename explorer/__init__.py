"""WhatsApp Explorer: crawl Wawp chats into a Meilisearch index.

The public Python API is what ``__all__`` lists, plus the functions
``explorer.jobs.reindex.reindex`` and ``explorer.jobs.sync.sync`` (modules keep their own names: no
function hides a module). Their report types are imported on first use, so
``import explorer`` stays cheap for a search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from explorer.secrets import install_log_redaction

install_log_redaction()

from explorer.config import Config, load_config  # noqa: E402
from explorer.errors import (  # noqa: E402
    ConfigError,
    CrawlStalled,
    ExplorerError,
    MeiliError,
    MeiliTaskFailed,
    MessagesDisabled,
    QueryError,
    SafetyCheckFailed,
    WawpAuthError,
    WawpError,
    WawpNotFound,
    WawpProtocolError,
    WawpRequestError,
    WawpUnavailable,
)
from explorer.meili.message_query import MessageSearchResult, search_messages  # noqa: E402
from explorer.meili.query import Filters, SearchResult, search  # noqa: E402

if TYPE_CHECKING:
    from explorer.jobs.reindex import ReindexReport
    from explorer.jobs.sync import SyncReport

__all__ = [
    "Config",
    "ConfigError",
    "CrawlStalled",
    "ExplorerError",
    "Filters",
    "MeiliError",
    "MeiliTaskFailed",
    "MessageSearchResult",
    "MessagesDisabled",
    "QueryError",
    "ReindexReport",
    "SafetyCheckFailed",
    "SearchResult",
    "SyncReport",
    "WawpAuthError",
    "WawpError",
    "WawpNotFound",
    "WawpProtocolError",
    "WawpRequestError",
    "WawpUnavailable",
    "__version__",
    "load_config",
    "search",
    "search_messages",
]

_LAZY = {"ReindexReport": "explorer.jobs.reindex", "SyncReport": "explorer.jobs.sync"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'explorer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
