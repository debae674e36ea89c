"""`explorer settings`: the live index's settings against the ones in code.

:data:`explorer.records.documents.INDEX_SETTINGS` is what every build gets. A live index can drift
from it (an older version built it, or someone changed a setting by hand); this reports
the difference and, asked to, applies only the settings that differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from explorer.config import MeiliSettings
from explorer.meili.client import IndexStore, missing_index
from explorer.records.documents import INDEX_SETTINGS, settings_drift
from explorer.records.messages import MESSAGE_INDEX_SETTINGS, messages_index


@dataclass
class SettingsReport:
    index: str
    drift: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (live, code)
    applied: bool = False

    @property
    def ok(self) -> bool:
        """True when the live index now matches the code."""
        return not self.drift or self.applied

    def summary(self) -> str:
        if not self.drift:
            return f"{self.index}: settings match the code"
        lines = [
            f"{key}: live {json.dumps(have)} != code {json.dumps(want)}"
            for key, (have, want) in self.drift.items()
        ]
        if self.applied:
            lines.append(f"{self.index}: applied {len(self.drift)} setting(s)")
        else:
            lines.append(f"{self.index}: {len(self.drift)} setting(s) differ from the code")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "drift": {k: {"live": have, "code": want} for k, (have, want) in self.drift.items()},
            "applied": self.applied,
        }


def index_settings(settings: MeiliSettings, *, apply: bool = False) -> SettingsReport:
    """Compare the live index's settings with the code's; with ``apply``, fix the drift."""
    store = IndexStore(settings)
    live = settings.index
    if not store.exists(live):
        raise missing_index(live)
    report = SettingsReport(live, settings_drift(store.live_settings(live)))
    if apply and report.drift:
        store.apply_settings(live, {k: INDEX_SETTINGS[k] for k in report.drift})
        report.applied = True
    return report


def messages_settings(settings: MeiliSettings, *, apply: bool = False) -> SettingsReport:
    """The same for the messages index (``messages.enabled``). A missing one differs in
    every setting; ``apply`` creates it, as the next reindex would."""
    store = IndexStore(settings)
    uid = messages_index(settings.index)
    live = store.live_settings(uid) if store.exists(uid) else {}
    report = SettingsReport(uid, settings_drift(live, MESSAGE_INDEX_SETTINGS))
    if apply and report.drift:
        if not store.ensure(uid, MESSAGE_INDEX_SETTINGS):
            store.apply_settings(uid, {k: MESSAGE_INDEX_SETTINGS[k] for k in report.drift})
        report.applied = True
    return report
