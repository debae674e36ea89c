"""Meilisearch filter expressions: the one place they are written.

``explorer search``, the Python API, ``audit`` and ``zombies``, sync's newest-activity
probe and tenant tokens all filter through these functions. The agent page builds the same
clauses in JavaScript (``explorer/web/query.js``); both are held to one table of cases,
``tests/data/filter_cases.json``, so the page and the CLI cannot disagree on what a filter
means.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Final

from explorer.errors import QueryError
from explorer.records.chats import CHAT_TYPES

DAY: Final = 86_400
FLAGS: Final = ("archived", "pinned", "muted", "phone_hidden")
TYPE_FLAGS: Final = {"groups": "group", "individuals": "individual"}  # shorthands for a type


def quote(value: str) -> str:
    """A filter string literal: double-quoted, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def chat_type_is(chat_type: str) -> str:
    if chat_type not in CHAT_TYPES:
        raise QueryError("chat_type", f"must be one of {', '.join(CHAT_TYPES)}, got {chat_type!r}")
    return f"chat_type = {quote(chat_type)}"


def chat_type_in(chat_types: tuple[str, ...]) -> str:
    for chat_type in chat_types:
        chat_type_is(chat_type)  # the same check, one message
    return f"chat_type IN [{', '.join(quote(t) for t in chat_types)}]"


def instance_id_is(instance_id: str) -> str:
    """Exactly this instance id (tenant tokens, per-instance reads)."""
    return f"instance_id = {quote(instance_id)}"


def instance_is(name: str) -> str:
    """An instance named by a person: its id or its label."""
    value = quote(name)
    return f"(instance_id = {value} OR instance_label = {value})"


def labels_any(names: tuple[str, ...] | list[str]) -> str:
    """Chats carrying any of these labels (by name: the same name in two instances is one
    label to an agent; ``--instance`` narrows). Meilisearch compares names without case."""
    if not names:
        raise QueryError("label", "needs at least one label name")
    for name in names:
        if not name.strip():
            raise QueryError("label", "a label name cannot be empty")
    return f"labels IN [{', '.join(quote(n) for n in names)}]"


def flag_is(name: str, value: bool) -> str:
    """``!= true`` rather than ``= false``: a document without the field counts as false."""
    if name not in FLAGS:
        raise QueryError(name, f"is not one of {', '.join(FLAGS)}")
    return f"{name} = true" if value else f"{name} != true"


def inactive_for(days: int, now: float) -> str:
    """No activity for ``days`` days, or none recorded at all (the zombie list)."""
    if days < 0:
        raise QueryError("inactive_days", f"must be >= 0, got {days}")
    return f"(last_activity < {int(now - days * DAY)} OR last_activity IS NULL)"


def active_since(value: str) -> str:
    return f"last_activity >= {parse_date(value)}"


def parse_date(value: str) -> int:
    """A date or ISO datetime as a Unix time; a date without a zone is UTC."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            "active_since", f"must be a date like 2026-01-31 or 2026-01-31T08:00, got {value!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


@dataclass(frozen=True)
class Filters:
    """What `explorer search` filters on; :meth:`expressions` is ANDed by Meilisearch."""

    chat_type: str | None = None
    instance: str | None = None
    archived: bool | None = None
    pinned: bool | None = None
    muted: bool | None = None
    inactive_days: int | None = None
    active_since: str | None = None  # YYYY-MM-DD or an ISO datetime
    number_hidden: bool | None = None  # people behind a LID nobody resolved (or the others)

    @staticmethod
    def chat_type_from(
        chat_type: str | None = None, *, groups: bool = False, individuals: bool = False
    ) -> str | None:
        """The one kind of chat that ``--type``, ``--groups`` and ``--individuals`` ask for
        together (None: any). They may repeat each other; two different kinds would match
        nothing, which is a mistake to point out rather than an empty answer to give.
        Raises QueryError naming the options that disagree."""
        asked = {f"--type {chat_type}": chat_type} if chat_type is not None else {}
        shorthands = {"groups": groups, "individuals": individuals}
        asked |= {f"--{name}": TYPE_FLAGS[name] for name, given in shorthands.items() if given}
        if len(set(asked.values())) > 1:
            sentence = f"{' and '.join(asked)} contradict each other: pick one type"
            param = sentence.split()[0].removeprefix("--")
            raise QueryError(param, sentence.removeprefix(f"--{param} "))
        return next(iter(asked.values()), None)

    def expressions(self, now: float | None = None) -> list[str]:
        """Meilisearch filter clauses (ANDed); raises QueryError on a bad value."""
        now = time.time() if now is None else now
        out = []
        if self.chat_type is not None:
            out.append(chat_type_is(self.chat_type))
        if self.instance is not None:
            out.append(instance_is(self.instance))
        flags = (self.archived, self.pinned, self.muted, self.number_hidden)
        for name, value in zip(FLAGS, flags, strict=True):
            if value is not None:
                out.append(flag_is(name, value))
        if self.inactive_days is not None:
            out.append(inactive_for(self.inactive_days, now))
        if self.active_since is not None:
            out.append(active_since(self.active_since))
        return out
