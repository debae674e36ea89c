"""Building Meilisearch filter expressions safely."""

from __future__ import annotations


def quote(value: str) -> str:
    """A filter string literal: double-quoted, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
