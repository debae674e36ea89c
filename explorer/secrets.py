"""Keeping tokens out of reprs, logs, errors and progress output.

Wawp authenticates with ``access_token`` in the query string, so any URL we hold is a
secret. Secrets live in :class:`Secret` (masked repr), and :func:`redact` scrubs URLs and
free text before they reach a message or a log line.
"""

from __future__ import annotations

import logging
import re
from typing import Final

MASK: Final = "***"

_QUERY_SECRET = re.compile(r"((?:access_token|access-token|api_key|token)=)[^&\s\"'#]+", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)


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


def redact(text: str, *secrets: Secret | str | None) -> str:
    """Mask query-string credentials, bearer tokens and any of ``secrets`` in ``text``."""
    text = _QUERY_SECRET.sub(rf"\g<1>{MASK}", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites records so formatted messages carry no credentials.

    httpx logs every request URL at INFO; attaching this filter to the ``httpx`` and
    ``httpcore`` loggers is what keeps the Wawp token out of any handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    for name in ("httpx", "httpcore", "explorer"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
