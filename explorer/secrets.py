"""Keeping tokens out of reprs, logs, errors and progress output.

Wawp authenticates with ``access_token`` in the query string, so any URL we hold is a
secret. Secrets live in :class:`Secret` (masked repr), and :func:`redact` is the one place
that scrubs text before it reaches a message or a log line: query-string credentials and
bearer tokens by pattern, and every secret the process has put on the wire
(:func:`remember`) by value, wherever it appears (a server that echoes the query string
in a 404 or a ``success: false`` body quotes the token with no ``access_token=`` before it).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final
from urllib.parse import quote, quote_plus

MASK: Final = "***"
MIN_LENGTH: Final = 4  # shorter values would mask ordinary words

_QUERY_SECRET = re.compile(r"((?:access_token|access-token|api_key|token)=)[^&\s\"'#]+", re.I)
# A credential after "Bearer" holds a digit or is at least 16 characters long (every key
# and token here is): "the bearer token must be …" is prose, and stays as written.
_BEARER = re.compile(
    r"(Bearer\s+)(?=[A-Za-z0-9._~+/=-]*[0-9]|[A-Za-z0-9._~+/=-]{16})[A-Za-z0-9._~+/=-]+", re.I
)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)  # a proxy URL's password

# Forms of every remembered secret, longest first (a token may contain a shorter one).
# Replaced as a whole under the lock, so readers iterate a tuple no one changes.
_known: tuple[str, ...] = ()
_known_lock = threading.Lock()


class Secret:
    """A string that never shows itself by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def _forms(value: str) -> set[str]:
    """The value as written, and as it travels in a URL (what an echo of the query holds)."""
    return {v for v in (value, quote(value, safe=""), quote_plus(value)) if len(v) >= MIN_LENGTH}


def remember(secret: Secret | str) -> None:
    """From now on, :func:`redact` masks ``secret`` in any text (log lines, errors, the
    CLI's last line), whoever formats it. The Wawp client calls it for its token."""
    global _known
    value = secret.reveal() if isinstance(secret, Secret) else secret
    forms = _forms(value)
    with _known_lock:
        if forms <= set(_known):
            return
        _known = tuple(sorted(set(_known) | forms, key=len, reverse=True))


def redact(text: str, *secrets: Secret | str | None) -> str:
    """Mask query-string credentials, bearer tokens, URL passwords, every remembered
    secret and any of ``secrets`` in ``text``."""
    text = _QUERY_SECRET.sub(rf"\g<1>{MASK}", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    extra: set[str] = set()
    for s in secrets:
        if s:
            extra |= _forms(s.reveal() if isinstance(s, Secret) else s)
    for value in sorted(extra, key=len, reverse=True) if extra else ():
        text = text.replace(value, MASK)
    for value in _known:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites records so formatted messages carry no credentials.

    A logger's filters see only the records it creates, not its children's: httpx logs
    every request URL at INFO on ``httpx``, httpcore the response headers at DEBUG on its
    own child loggers, so each is named in :data:`_LOGGERS`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()


_LOGGERS: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "explorer",
    "explorer.source.wawp",
    "explorer.source.crawl",
)


def install_log_redaction() -> None:
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
