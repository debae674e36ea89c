"""The sandbox's options and their choices, without the server.

The CLI builds its `explorer sandbox` flags from these; keeping them apart means a plain
`explorer search` does not import ``http.server`` and the data generator at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

SHAPES: Final = ("webjs", "noweb", "gows")
ENVELOPES: Final = ("bare", "data", "indexed")
COLD_MODES: Final = ("202", "422", "empty")
SORT_KEYS: Final = ("id", "conversationTimestamp", "name")
DEFAULT_INSTANCE: Final = "SANDBOX00001"
DEFAULT_TOKEN: Final = "sandbox-token"


@dataclass
class SandboxOptions:
    chats: int = 1000
    seed: int = 1
    shape: str = "webjs"
    envelope: str = "bare"
    instances: dict[str, str] = field(default_factory=lambda: {DEFAULT_INSTANCE: DEFAULT_TOKEN})
    epoch: int | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    error_rate: float = 0.0
    burst_every: int = 0
    burst_length: int = 3
    retry_after: float = 1.0
    cold_start: float = 0.0
    cold_mode: str = "422"
    churn: int = 0
    max_limit: int = 0
    desc_quirk: bool = False
    fault_seed: int = 0
    rate_limit: float = 0.0  # chat-list requests per second the account may make (0: none)
    prerender: bool = False  # render every chat before serving (benchmarks)
    lid_share: float = 0.08  # chats listed under a LID (of all chats; at most 0.76)
    lid_known: float = 0.0  # of those, the share whose number Wawp knows (/v2/lids)
    lid_pairs: float = 0.5  # of the known ones, people with a second chat under their phone
    merges: bool = True  # NOWEB/GOWS merge a person's LID and phone chats (WEBJS never does)
    lids_404: bool = False  # /v2/lids* answer 404, as on a Wawp without the LID routes
    lids_fail: int = 0  # the first N /v2/lids page requests answer 500
    lids_fail_from: int | None = None  # /v2/lids pages from this offset on answer 500, always
    # NOWEB as builds before WAHA's merge list it: every LID chat that names its number
    # (pnJid) is listed again under that number, whose chat names no LID (no lidJid).
    pn_twins: bool = False
    # Webhooks for what mutations imply (explorer.dev.webhooks): where, signed how, faults.
    webhook_url: str | None = None
    webhook_hmac_key: str | None = None
    webhook_duplicates: float = 0.0  # share of events sent twice
    webhook_delay_ms: float = 0.0  # random delay before each, 0..N ms
    webhook_reorder: float = 0.0  # share held back and sent after the next one
    webhook_retry_seconds: float = 2.0  # constant delay between attempts, as WAHA's default

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
        if self.envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {', '.join(ENVELOPES)}")
        if self.cold_mode not in COLD_MODES:
            raise ValueError(f"cold mode must be one of {', '.join(COLD_MODES)}")
        if self.chats < 0:
            raise ValueError("chats must be >= 0")
        if not 0 <= self.lid_share <= 0.76:
            raise ValueError("lid_share must be between 0 and 0.76")
        if self.pn_twins and self.shape != "noweb":
            raise ValueError("pn_twins is NOWEB's: it needs shape noweb")
        if self.lids_fail_from is not None and self.lids_fail_from < 0:
            raise ValueError("lids_fail_from must be >= 0")
        for name in ("error_rate", "spike_rate", "lid_known", "lid_pairs"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
