"""`explorer stats`: what the live index holds, and when it was last rebuilt and synced."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from explorer.config import Config, MeiliSettings
from explorer.meili.client import Meili, search_body
from explorer.meili.query import FACETS


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp or 0))


@dataclass
class StatsReport:
    index: str
    documents: int
    chat_type: dict[str, int] = field(default_factory=dict)
    instance_id: dict[str, int] = field(default_factory=dict)
    last_reindex: dict[str, Any] | None = None
    last_sync: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, Any] | None = None  # explorer listen's queue, when it ran here

    def summary(self) -> str:
        lines = [f"{self.index}: {self.documents} chats"]
        for facet in FACETS:
            counts: dict[str, int] = getattr(self, facet)
            parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(f"  by {facet.replace('_id', '')}: {parts or '-'}")
        last = self.last_reindex
        if last:
            old = last.get("old_count")
            lines.append(
                f"  last reindex: {_when(last.get('finished_at'))}, "
                f"{last.get('seconds', 0):.1f}s, {last.get('chats')} chats, "
                f"{old if old is not None else 'none'} -> {last.get('new_count')}"
            )
        else:
            lines.append("  last reindex: none recorded here")
        for inst, info in sorted(self.last_sync.items()):
            lines.append(f"  last sync of {inst}: {_when(info.get('at'))}")
        if self.webhooks:
            event = self.webhooks["last_event"]
            applied = (
                f"{event['event']} from {event['session']} at {_when(event.get('applied_at'))}"
                if event
                else "none"
            )
            dead = self.webhooks.get("dead_letters") or 0
            aside = f", {dead} dead letters (explorer dead-letters)" if dead else ""
            lines.append(
                f"  webhooks: {self.webhooks['queue_depth']} queued{aside}; last applied: {applied}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "documents": self.documents,
            "chat_type": self.chat_type,
            "instance_id": self.instance_id,
            "last_reindex": self.last_reindex,
            "last_sync": self.last_sync,
            "webhooks": self.webhooks,
        }


def index_counts(settings: MeiliSettings) -> dict[str, dict[str, int]]:
    """Documents per value of each facet.

    Facet counts cover every document, where ``estimatedTotalHits`` stops at maxTotalHits.
    """
    reply = Meili(settings).search(settings.index, search_body(limit=0, facets=FACETS))
    facets = reply.get("facetDistribution") or {}
    return {facet: dict(facets.get(facet) or {}) for facet in FACETS}


def stats(cfg: Config) -> StatsReport:
    from explorer.jobs.journal import journal_status
    from explorer.jobs.reindex import last_report
    from explorer.jobs.sync import load_state

    counts = index_counts(cfg.meilisearch)
    return StatsReport(
        index=cfg.meilisearch.index,
        documents=sum(counts["chat_type"].values()),
        chat_type=counts["chat_type"],
        instance_id=counts["instance_id"],
        last_reindex=last_report(cfg),
        last_sync=load_state(cfg).get("instances", {}),
        webhooks=journal_status(cfg),
    )
