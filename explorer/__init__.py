"""WhatsApp Explorer: crawl Wawp chats into a Meilisearch index."""

from __future__ import annotations

__version__ = "0.1.0"

from explorer.secrets import install_log_redaction

install_log_redaction()
