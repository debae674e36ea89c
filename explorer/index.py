"""The Meilisearch side: connecting, checking permissions, and translating its errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import meilisearch
from meilisearch.errors import (
    MeilisearchApiError,
    MeilisearchCommunicationError,
    MeilisearchError,
    MeilisearchTimeoutError,
)

from explorer.config import MeiliSettings
from explorer.errors import MeiliError
from explorer.secrets import redact

T = TypeVar("T")


def connect(settings: MeiliSettings, *, timeout: float = 30.0) -> meilisearch.Client:
    key = settings.api_key.reveal() if settings.api_key else None
    return meilisearch.Client(settings.url, key, timeout=int(timeout))


def describe(exc: MeilisearchError, url: str) -> str:
    """One line for any client error: what Meilisearch said, or why we could not ask."""
    if isinstance(exc, MeilisearchCommunicationError):
        return f"Meilisearch at {url} is unreachable (is it running?)"
    if isinstance(exc, MeilisearchTimeoutError):
        return f"Meilisearch at {url} timed out: {exc.message}"
    if isinstance(exc, MeilisearchApiError):
        code = f" [{exc.code}]" if exc.code else ""
        if exc.status_code in (401, 403) or exc.code in (
            "invalid_api_key",
            "missing_authorization_header",
        ):
            return (
                f"Meilisearch at {url} refused the API key{code}: {exc.message} "
                "(check MEILI_API_KEY; reindex needs an admin key)"
            )
        return f"Meilisearch at {url}: {exc.message}{code}"
    return f"Meilisearch at {url}: {exc.message}"


@contextmanager
def meili_errors(url: str) -> Iterator[None]:
    """Turn client exceptions into one-line :class:`MeiliError` without their URLs' keys."""
    try:
        yield
    except MeilisearchError as exc:
        raise MeiliError(redact(describe(exc, url))) from None


def call(url: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with meili_errors(url):
        return fn(*args, **kwargs)


ADMIN_PROBES: tuple[tuple[str, str], ...] = (
    ("version", "version"),
    ("indexes.get", "indexes?limit=1"),
    ("tasks.get", "tasks?limit=1"),
    ("stats.get", "stats"),
)


def check_server(settings: MeiliSettings) -> str:
    """Reachability, version and the read permissions reindex needs; raises MeiliError."""
    client = connect(settings, timeout=10)
    url = settings.url
    with meili_errors(url):
        client.health()
    missing = []
    version = "?"
    for action, path in ADMIN_PROBES:
        try:
            reply = client.http.get(path)
            if action == "version":
                version = reply.get("pkgVersion", "?")
        except MeilisearchApiError as exc:
            if exc.status_code in (401, 403):
                missing.append(action)
            else:
                raise MeiliError(describe(exc, url)) from None
        except MeilisearchError as exc:
            raise MeiliError(describe(exc, url)) from None
    if missing:
        raise MeiliError(
            f"Meilisearch at {url}: the API key lacks permission {', '.join(missing)} "
            "(reindex needs an admin key: set MEILI_API_KEY)"
        )
    return f"Meilisearch {version}, key can manage indexes"
