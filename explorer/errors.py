"""Every failure the library reports on purpose.

The CLI turns an :class:`ExplorerError` into one line and its ``exit_code``; anything
else is a bug and keeps its traceback.

    ExplorerError
    ├── ConfigError              bad or missing configuration (exit 2)
    │   └── MessagesDisabled     message search while messages.enabled is off
    ├── QueryError               a search argument out of range (exit 2)
    ├── MeiliBinaryError         cannot locate or fetch the Meilisearch binary
    ├── MeiliError               Meilisearch unreachable or refusing
    │   └── MeiliTaskFailed      a task failed, or an index is not what was built
    ├── SafetyCheckFailed        reindex refused to swap (exit 3)
    ├── BackfillFailed           reindex swapped the chats live, its messages backfill failed
    └── WawpError                anything on the Wawp side
        ├── WawpRequestError     400: the request itself is wrong; never retried
        ├── WawpAuthError        401/403: token or quota; never retried
        ├── WawpNotFound         404: unknown instance or session; never retried
        ├── WawpUnavailable      retries exhausted (5xx, 429, timeouts, session not ready)
        ├── WawpProtocolError    a body we cannot make sense of
        └── CrawlStalled         pagination stopped making progress
"""

from __future__ import annotations

from typing import Any


class ExplorerError(Exception):
    """An expected failure whose message is meant for the operator."""

    exit_code = 1


class ConfigError(ExplorerError):
    exit_code = 2


class QueryError(ExplorerError):
    """A search argument the index cannot answer; ``param`` names the argument."""

    exit_code = 2

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param} {problem}")
        self.param = param
        self.problem = problem


class MeiliBinaryError(ExplorerError):
    pass


class MeiliError(ExplorerError):
    pass


class MeiliTaskFailed(MeiliError):
    """Deterministic: retrying the same build would fail the same way. ``error_type`` is
    Meilisearch's (``invalid_request`` for a document it refuses; ``internal`` or
    ``system`` for its own trouble, a full disk say, which a retry may get past)."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type

    @property
    def refused(self) -> bool:
        """Whether Meilisearch refused what it was given (not its own failure)."""
        return self.error_type == "invalid_request"


class MeiliRefused(MeiliError):
    """Meilisearch answered and refused the request itself (a 4xx other than a key, an index
    missing or a rate limit): sending the same request again would fail the same way."""


class SafetyCheckFailed(ExplorerError):
    exit_code = 3


class BackfillFailed(ExplorerError):
    """A reindex whose chats went live but whose messages backfill failed: exit 1, as for
    any outage (the next reindex crawls anew and resumes the backfill from its ledger).
    ``report`` is the reindex's, with ``messages_failed`` saying why."""

    def __init__(self, message: str, report: Any) -> None:
        # Any, not ReindexReport: the shared basics import no layer (tests/test_architecture.py).
        super().__init__(message)
        self.report = report


class WawpError(ExplorerError):
    def __init__(self, message: str, *, instance_id: str | None = None, status: int | None = None):
        super().__init__(message)
        self.instance_id = instance_id
        self.status = status


class WawpRequestError(WawpError):
    pass


class WawpAuthError(WawpError):
    pass


class WawpNotFound(WawpError):
    pass


class WawpUnavailable(WawpError):
    pass


class WawpChatGone(WawpNotFound):
    """A chat's messages route answered 404: the chat was deleted since it was listed.
    The backfill skips it (and counts it); asking again would not help."""


class WawpProtocolError(WawpError):
    pass


class CrawlStalled(WawpError):
    pass


# One wording for Meilisearch trouble, whichever client met it (the search path uses httpx,
# reindex the official client): what happened, at which URL, and what to check.
AUTH_CODES = frozenset({"missing_authorization_header", "invalid_api_key"})


def meili_unreachable(url: str) -> str:
    return (
        f"Meilisearch at {url} is unreachable: check that it is running and that "
        "MEILI_URL (or --meili-url) points at it"
    )


def meili_refused(url: str, code: str | None, need: str = "an admin key for reindex") -> str:
    """Meilisearch's own words are left out: they quote the auth scheme, which redaction
    would garble, and say nothing about where the key comes from."""
    if code == "missing_authorization_header":
        return f"Meilisearch at {url} needs an API key: set MEILI_API_KEY ({need})"
    return (
        f"Meilisearch at {url} refused the API key [{code or 'forbidden'}]: check MEILI_API_KEY "
        f"({need}; it may be expired or revoked)"
    )


class MessagesDisabled(ConfigError):
    """Message search asked for while ``messages.enabled`` is off (exit 2: a setting)."""
