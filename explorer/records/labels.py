"""WhatsApp Business labels: a raw label object -> a typed :class:`Label`.

A label is ``{id, name, color, colorHex}`` in ``GET /v2/labels`` and in the
``label.upsert`` / ``label.deleted`` webhooks (docs/wawp.md). Ids are the account's own
small numbers (``"1"``, ``"6"``): two instances may both have a label ``"6"``, so an id
means something only with its instance. Names are whatever the business typed: quotes,
commas, emoji and long names are kept as they are (only control characters go), since a
filter must find a label by the very name an agent sees.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

MAX_LABEL_NAME: Final = 512  # characters; WhatsApp's own limit is far lower
MAX_LABEL_ID: Final = 64
_HEX: Final = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True, slots=True, order=True)
class Label:
    """One label of one instance. ``name`` is None while only its id is known (a
    ``label.chat.added`` for a label no event or crawl named yet)."""

    id: str
    name: str | None = None
    color: str | None = None  # "#rrggbb", for the page's chips

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": self.color}

    @classmethod
    def from_json(cls, data: Any) -> Label | None:
        if not isinstance(data, dict):
            return None
        label_id = label_id_of(data.get("id"))
        if label_id is None:
            return None
        return cls(label_id, label_name(data.get("name")), color_of(data.get("color")))


def label_id_of(value: Any) -> str | None:
    """A label id as text (engines send ``"6"`` or ``6``), else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_LABEL_ID or not text.isprintable():
        return None
    return text


def label_name(value: Any) -> str | None:
    """The name as typed, without control characters; None for no name."""
    if not isinstance(value, str):
        return None
    text = value
    if not text.isprintable():
        text = "".join(
            " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
            for ch in text
            if unicodedata.category(ch) != "Cs"
        )
    text = " ".join(text.split())[:MAX_LABEL_NAME]
    return text or None


def color_of(value: Any) -> str | None:
    """``#rrggbb`` (lower case), else None: the page writes it into a style."""
    if isinstance(value, str) and _HEX.fullmatch(value.strip()):
        return value.strip().lower()
    return None


def parse_label(raw: Any) -> Label | None:
    """A :class:`Label` from a Wawp/WAHA label object (``colorHex`` is the colour; WAHA's
    ``color`` is an index into WhatsApp's palette), else None."""
    if not isinstance(raw, dict):
        return None
    label_id = label_id_of(raw.get("id"))
    if label_id is None:
        return None
    return Label(label_id, label_name(raw.get("name")), color_of(raw.get("colorHex")))


def sort_labels(labels: Any) -> tuple[Label, ...]:
    """One order for a chat's labels everywhere (by name, then id), each id once."""
    by_id: dict[str, Label] = {}
    for label in labels:
        known = by_id.get(label.id)
        if known is None or (known.name is None and label.name is not None):
            by_id[label.id] = label
    return tuple(sorted(by_id.values(), key=lambda lb: ((lb.name or "").casefold(), lb.id)))


def label_fields(labels: tuple[Label, ...] | None) -> dict[str, Any]:
    """The document fields of a chat's labels (docs/schema.md): ``labels`` (names, for
    filters and facet counts), ``label_ids`` and ``label_details`` (what the page's
    chips show). A label whose name is not known yet is in the ids and details only."""
    if labels is None:
        return {}
    return {
        "labels": [lb.name for lb in labels if lb.name is not None],
        "label_ids": [lb.id for lb in labels],
        "label_details": [lb.to_json() for lb in labels],
    }


def labels_of_document(doc: dict[str, Any]) -> tuple[Label, ...] | None:
    """The labels a document carries (None: a document written before labels existed)."""
    details = doc.get("label_details")
    if not isinstance(details, list):
        return None
    return sort_labels(lb for lb in map(Label.from_json, details) if lb is not None)
