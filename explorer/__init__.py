"""WhatsApp Explorer: crawl Wawp chats into a Meilisearch index."""

from __future__ import annotations

__version__ = "0.1.0"

from explorer.secrets import install_log_redaction

install_log_redaction()

__all__ = ["__version__", "search"]

# The function shadows the submodule of the same name on purpose: `explorer.search(...)`.
from explorer.search import search  # noqa: E402
