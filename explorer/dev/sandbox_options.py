"""The sandbox's options and their choices, without the server.

Each option is written once, here: its type, default, help text and bounds. The CLI
builds `explorer sandbox`'s flags from these fields (``explorer.cli``), and
:meth:`SandboxOptions.__post_init__` checks the same bounds for the Python API. Keeping
them apart from the server means a plain `explorer search` does not import
``http.server`` and the data generator at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

SHAPES: Final = ("webjs", "noweb", "gows")
ENVELOPES: Final = ("bare", "data", "indexed")
COLD_MODES: Final = ("202", "422", "empty")
SORT_KEYS: Final = ("id", "conversationTimestamp", "name")
DEFAULT_INSTANCE: Final = "SANDBOX00001"
DEFAULT_TOKEN: Final = "sandbox-token"

T = TypeVar("T")


def option(
    default: T,
    help: str,  # noqa: A002 - the word click uses
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
    envvar: str | None = None,
) -> T:
    """A field with what `explorer sandbox` needs to offer it: ``help``, the bounds
    (``low``/``high``, inclusive) or ``choices`` a value must keep to, and the ``flag`` when
    it is not ``--<field-name>`` (``--merge/--no-merge`` for a flag on by default)."""
    spec = {"help": help, "low": low, "high": high, "choices": choices, "flag": flag,
            "envvar": envvar}  # fmt: skip
    return field(default=default, metadata={k: v for k, v in spec.items() if v is not None})


@dataclass
class SandboxOptions:
    chats: int = option(1000, "Chats per instance.", low=0)
    seed: int = option(1, "Seed of the synthetic data.")
    shape: str = option("webjs", "Chat objects as this WAHA engine returns them.", choices=SHAPES)
    envelope: str = option(
        "bare", 'bare: a JSON array; data: {"data": [...]}; indexed: {"0": {...}, ...}.',
        choices=ENVELOPES,
    )  # fmt: skip
    instances: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_INSTANCE: DEFAULT_TOKEN},
        metadata={
            "help": "An instance and its token; repeatable "
            f"[default {DEFAULT_INSTANCE}:{DEFAULT_TOKEN}].",
            "flag": "--instance",
            "metavar": "ID:TOKEN",
            "multiple": True,
        },
    )
    epoch: int | None = option(
        None, "Unix time the activity timestamps count back from [default: now]."
    )
    latency_ms: float = option(0.0, "Fixed delay per request.")
    jitter_ms: float = option(0.0, "Extra random delay, 0..N ms.")
    spike_rate: float = option(0.0, "Share of requests delayed by --spike-ms more.", low=0, high=1)
    spike_ms: float = option(0.0, "Size of a latency spike.")
    error_rate: float = option(
        0.0, "Share of chat-list requests answered 500 or 502.", low=0, high=1
    )
    burst_every: int = option(0, "Every N chat-list requests, a 429 burst (0: never).", low=0)
    burst_length: int = option(3, "429 answers per burst.", low=1)
    retry_after: float = option(1.0, "Retry-After seconds sent with 429.")
    cold_start: float = option(0.0, "Seconds after start during which the session is not ready.")
    cold_mode: str = option(
        "422", "What a cold session answers: 202, 422 or an empty list.", choices=COLD_MODES
    )
    churn: int = option(0, "Chats deleted and created per chat-list request.", low=0)
    max_limit: int = option(0, "Cap on page size; larger limits are silently cut (0: none).", low=0)
    desc_quirk: bool = option(
        False, "Uppercase sortOrder=DESC sorts ascending, as upstream GOWS/WEBJS do."
    )
    fault_seed: int = option(0, "Seed of the fault randomness.")
    rate_limit: float = option(
        0.0, "Chat-list requests per second before 429 (0: no limit).", low=0
    )
    prerender: bool = option(
        False, "Render every chat before serving, so serving costs little CPU (benchmarks)."
    )
    lid_share: float = option(
        0.08, "Share of chats listed under a LID (a hidden number).", low=0, high=0.76
    )
    lid_known: float = option(
        0.0, "Share of LIDs whose number /v2/lids knows (the rest: pn null, not listed).",
        low=0, high=1,
    )  # fmt: skip
    lid_pairs: float = option(
        0.5, "Share of known LID people who also have a chat under their phone JID.",
        low=0, high=1,
    )  # fmt: skip
    merges: bool = option(
        True, "Whether NOWEB/GOWS list such a person once (WAHA merge); WEBJS never does.",
        flag="--merge/--no-merge",
    )  # fmt: skip
    lids_404: bool = option(False, "/v2/lids answers 404 (no LID routes).")
    lids_fail: int = option(0, "The first N /v2/lids page requests answer 500.", low=0)
    lids_fail_from: int | None = option(
        None, "Every /v2/lids page from this offset on answers 500, however often asked.",
        low=0,
    )  # fmt: skip
    pn_twins: bool = option(
        False, "NOWEB before merge: each LID chat naming its number (pnJid) is listed again "
        "under that number, which names no LID. Needs --shape noweb.",
    )  # fmt: skip
    labels: int = option(
        8, "WhatsApp Business labels per instance (/v2/labels), 0: none.", low=0, high=8
    )
    labels_404: bool = option(False, "/v2/labels answers 404 (no label routes).")
    labels_fail: int = option(
        0, "The first N requests to /v2/labels and /v2/labels/chats answer 500.", low=0
    )
    # Messages (GET /v2/chats/messages): generated per chat on demand (explorer.dev.synthetic).
    messages_per_chat: int = option(
        20, "Messages generated per chat with activity (newest at its last activity).", low=0
    )
    message_error_rate: float = option(
        0.0, "Share of message-page requests answered 500.", low=0, high=1
    )
    message_burst_every: int = option(
        0, "Every N message-page requests, one 429 with Retry-After (0: never).", low=0
    )
    messages_gone: float = option(
        0.0, "Share of chats whose messages route answers 404 (deleted meanwhile).", low=0, high=1
    )
    messages_broken: float = option(
        0.0, "Share of chats whose messages route always fails: 500, 422 or a body that is "
        "not a list, in turn.", low=0, high=1,
    )  # fmt: skip
    # Webhooks for what mutations imply (explorer.dev.webhooks): where, signed how, faults.
    webhook_url: str | None = option(
        None, "POST the events mutations imply here (explorer listen)."
    )
    webhook_hmac_key: str | None = option(
        None, "Sign them as WAHA does [env EXPLORER_WEBHOOK_HMAC_KEY].",
        envvar="EXPLORER_WEBHOOK_HMAC_KEY",
    )  # fmt: skip
    webhook_duplicates: float = option(0.0, "Share of events sent twice.", low=0, high=1)
    webhook_delay_ms: float = option(0.0, "Random delay before each event, 0..N ms.", low=0)
    webhook_reorder: float = option(0.0, "Share of events sent after the next one.", low=0, high=1)
    webhook_retry_seconds: float = option(
        2.0, "Constant delay between a webhook's attempts, as WAHA's default.", low=0
    )
    webhook_messages: float = option(
        0.0, "Message events a second sent on their own (new both ways, groups, media, LID "
        "senders, edits, revocations; needs --webhook-url).", low=0,
    )  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f.name, getattr(self, f.name), f.metadata)
        if self.pn_twins and self.shape != "noweb":
            raise ValueError("pn_twins is NOWEB's: it needs shape noweb")


def _check(name: str, value: Any, spec: Any) -> None:
    """The bounds a field's ``option`` gives, for callers that did not come through click."""
    if value is None:
        return
    choices, low, high = spec.get("choices"), spec.get("low"), spec.get("high")
    if choices is not None and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}")
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low:g}")
