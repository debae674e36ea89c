"""`explorer check`: can this configuration crawl and index right now?

Each configured Wawp instance must answer ``/v2/session/info`` with a WORKING session, and
Meilisearch must be reachable with a key that can manage indexes. Every target gets a
verdict and the exact problem; one failing target does not hide the others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from explorer.config import Config, Instance
from explorer.errors import MeiliError, WawpError
from explorer.secrets import redact

# A check answers in seconds: a few quick retries, not a reindex's patience.
CHECK_TIMEOUT = 10.0
CHECK_RETRY_SECONDS = 3.0


@dataclass
class Verdict:
    kind: str  # "wawp" or "meilisearch"
    target: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def lines(self, colour: bool = False) -> list[str]:
        import click

        width = max((len(v.target) for v in self.verdicts), default=0)
        out = []
        for v in self.verdicts:
            word = f"{'OK' if v.ok else 'FAIL':<4}"
            if colour:
                word = click.style(word, fg="green" if v.ok else "red")
            out.append(f"{v.kind:<12} {v.target:<{width}}  {word}  {v.detail}")
        return out

    def summary(self) -> str:
        return "\n".join(self.lines())

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(v) for v in self.verdicts]}


def check_instance(cfg: Config, inst: Instance) -> Verdict:
    from explorer.source.crawl import open_client
    from explorer.source.wawp import RetryPolicy

    name = inst.id + (f" ({inst.label})" if inst.label else "")
    retry = RetryPolicy(budget_seconds=CHECK_RETRY_SECONDS, max_delay=1.0)
    timeout = min(cfg.wawp.timeout, CHECK_TIMEOUT)
    try:
        with open_client(cfg, inst, timeout=timeout, retry=retry) as client:
            info = client.session_info()
    except WawpError as exc:
        return Verdict("wawp", name, False, redact(str(exc)))
    status = str(info.get("status", "unknown"))
    me = info.get("me") if isinstance(info.get("me"), dict) else None
    who = f", account {me.get('id')}" if me and me.get("id") else ""
    if status == "WORKING":
        return Verdict("wawp", name, True, f"session WORKING{who}")
    return Verdict("wawp", name, False, f"session is {status}, not WORKING{who}")


def check_meilisearch(cfg: Config) -> Verdict:
    from explorer.meili.client import check_server

    url = cfg.meilisearch.url
    try:
        return Verdict("meilisearch", url, True, check_server(cfg.meilisearch))
    except MeiliError as exc:
        return Verdict("meilisearch", url, False, redact(str(exc)))


def check(cfg: Config) -> CheckReport:
    """Every configured instance, then Meilisearch; raises only for a configuration error."""
    instances = cfg.require_instances()
    report = CheckReport([check_instance(cfg, inst) for inst in instances])
    report.verdicts.append(check_meilisearch(cfg))
    return report
