"""Human output for the terminal: aligned tables, relative dates, highlighted matches."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from typing import Any, Final

import click

from explorer.records.phones import pretty_phone

# What Meilisearch puts around a match (the searches here ask for these): control
# characters no name holds, turned into colour or dropped when shown.
HL_PRE: Final = "\x01"
HL_POST: Final = "\x02"


def width(text: str) -> int:
    """Columns the text takes on a terminal (wide CJK characters count twice)."""
    return sum(
        0
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Cf")
        else 2
        if unicodedata.east_asian_width(ch) in ("W", "F")
        else 1
        for ch in text
    )


def fit(text: str, columns: int) -> str:
    """Cut to ``columns`` (with an ellipsis) and pad to exactly that width."""
    plain = text.replace(HL_PRE, "").replace(HL_POST, "")
    if width(plain) > columns:
        out, used = [], 0
        for ch in text:
            if ch in (HL_PRE, HL_POST):
                out.append(ch)
                continue
            w = width(ch)
            if used + w > columns - 1:
                break
            out.append(ch)
            used += w
        text = "".join(out) + "…"
        if text.count(HL_PRE) > text.count(HL_POST):
            text += HL_POST
        plain = text.replace(HL_PRE, "").replace(HL_POST, "")
    return text + " " * (columns - width(plain))


def highlight(text: str, colour: bool) -> str:
    if not colour:
        return text.replace(HL_PRE, "").replace(HL_POST, "")
    return text.replace(HL_PRE, "\x1b[1;33m").replace(HL_POST, "\x1b[0m")


def relative(ts: Any, now: float | None = None) -> str:
    if not isinstance(ts, int):
        return "-"
    delta = (time.time() if now is None else now) - ts
    if delta < 0:
        return "in the future"
    for unit, seconds in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400),
                          ("hour", 3600), ("minute", 60)):  # fmt: skip
        if delta >= seconds:
            n = int(delta // seconds)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def table(headers: Sequence[str], rows: list[list[str]], colour: bool) -> list[str]:
    plain = [[c.replace(HL_PRE, "").replace(HL_POST, "") for c in row] for row in rows]
    widths = [max([width(h)] + [width(r[i]) for r in plain]) for i, h in enumerate(headers)]
    widths[0] = min(widths[0], 40)
    lines = ["  ".join(fit(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    if colour:
        lines[0] = click.style(lines[0], bold=True)
    for row in rows:
        cells = [highlight(fit(c, w), colour) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def hits_table(hits: list[dict[str, Any]], *, colour: bool) -> list[str]:
    """The search result table: name (matches highlighted), phone, type, activity, instance."""
    if not hits:
        return []
    rows = [
        [
            str((hit.get("_formatted") or {}).get("display_name") or hit.get("display_name") or ""),
            "hidden number" if hit.get("phone_hidden") else pretty_phone(hit.get("phone")),
            str(hit.get("chat_type", "")),
            relative(hit.get("last_activity")),
            str(hit.get("instance_label") or hit.get("instance_id") or ""),
        ]
        for hit in hits
    ]
    return table(["NAME", "PHONE", "TYPE", "LAST ACTIVITY", "INSTANCE"], rows, colour)


# -- messages: text from strangers, shown on a terminal ------------------------------------

# Kept: joiners that emoji and some scripts need. Every other format character (direction
# overrides and isolates among them) and every control character is replaced.
_JOINERS: Final = frozenset("\u200c\u200d")
REPLACEMENT: Final = "\ufffd"
MARK_PLAIN: Final = ("**", "**")  # a match, when the output is no terminal


def terminal_safe(text: str) -> str:
    """One line a terminal shows as text: line breaks and tabs become spaces, and any
    other control or format character (ESC, CSI, bells, direction overrides, the
    highlight markers) becomes U+FFFD, so a message cannot clear the screen, move the
    cursor, retitle the window or reorder what the agent reads."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\r\t":
            out.append(" ")
        elif ch.isprintable() or ch in _JOINERS or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            out.append(REPLACEMENT)
    return "".join(out)


def marked(formatted: str, colour: bool) -> str:
    """A highlighted field as one safe line: split on the markers first, then each piece
    made :func:`terminal_safe`, then the matches styled (bold and underlined on a
    terminal, ``**between**`` otherwise). The body cannot forge a style: only the pieces
    the markers delimit are styled, and nothing from the body reaches the terminal raw."""
    pre, post = MARK_PLAIN
    out = []
    for n, part in enumerate(formatted.split(HL_PRE)):
        inside, _, rest = part.partition(HL_POST) if n else ("", "", part)
        if inside:
            safe = terminal_safe(inside)
            out.append(
                click.style(safe, bold=True, underline=True) if colour else pre + safe + post
            )
        out.append(terminal_safe(rest.replace(HL_POST, "")))
    return "".join(out)


def message_lines(
    hits: list[dict[str, Any]], *, colour: bool, now: float | None = None
) -> list[str]:
    """Two lines per message: whose chat, who wrote it (``sent`` by the business, the member
    in a group, ``received`` in a one-to-one chat), when; then the snippet, matches marked."""
    lines = []
    for hit in hits:
        shown = hit.get("_formatted") or {}
        chat = marked(str(shown.get("chat_name") or hit.get("chat_name") or hit.get("jid") or ""),
                      colour)  # fmt: skip
        if hit.get("from_me"):
            sender = "sent"  # by the business; as the page says "You sent"
        else:
            sender = marked(str(shown.get("sender_name") or hit.get("sender_name") or ""), colour)
            if not sender and hit.get("sender"):
                sender = terminal_safe(pretty_phone("+" + str(hit["sender"]).partition("@")[0])
                                       if str(hit["sender"]).endswith("@c.us")
                                       else str(hit["sender"]))  # fmt: skip
            sender = sender or "received"
        stamp = hit.get("timestamp")
        when = (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp)) + f" ({relative(stamp, now)})"
            if isinstance(stamp, int)
            else "-"
        )
        head = f"{chat}  ·  {sender}  ·  {when}"
        lines.append(head)
        body = str(shown.get("body") or hit.get("body") or "")
        lines.append("    " + marked(body, colour))
    return lines
