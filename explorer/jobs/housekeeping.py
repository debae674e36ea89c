"""The Wawp guide's two housekeeping practices: the bot self-audit and zombie chats.

**Audit**: the groups (and channels) an instance's account is in that its allow-list does
not admit, so a bot is not left "orphaned" in groups; optionally also allowed groups that
have been silent for N days. **Zombies**: chats with no activity for N days, counted per
instance and type with how many are already archived.

Both read either the live index (fast, as fresh as the last sync) or a live crawl of Wawp.
Neither acts: Wawp's write endpoints (leave a group, archive a chat) are not documented in
what this project knows, and a guess could act on a customer's account. The ``--ids``
output is the hand-off to whatever script does that.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from explorer.config import AuditSettings, Config, Instance
from explorer.errors import ConfigError, MeiliError, QueryError, WawpError
from explorer.records.chats import MalformedChat, normalize_jid
from explorer.records.filters import DAY, Filters, chat_type_in, instance_id_is

AUDITED_TYPES = ("group", "channel")  # communities are groups (their parent @g.us)


# -- the allow-list --------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    jids: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()

    def admits(self, jid: str, name: str | None) -> bool:
        if jid in self.jids:
            return True
        folded = (name or "").casefold()
        return any(fnmatch.fnmatchcase(folded, p.casefold()) for p in self.patterns)

    @property
    def empty(self) -> bool:
        return not self.jids and not self.patterns

    @property
    def description(self) -> str:
        """What the report says of the list, whoever audits with it (CLI or MCP)."""
        if self.empty:
            return "empty: every group is flagged"
        return f"{len(self.jids)} JIDs, {len(self.patterns)} name patterns"


def _group_jid(text: str, where: str) -> str:
    try:
        jid, kind = normalize_jid(text)
    except MalformedChat:
        raise ConfigError(f"{where}: not a group JID: {text!r}") from None
    if kind not in AUDITED_TYPES:
        raise ConfigError(f"{where}: {text!r} is a {kind} JID, not a group (…@g.us) or channel")
    return jid


def load_allow_list(settings: AuditSettings) -> AllowList:
    """Entries with ``@`` are JIDs, the rest name patterns; the file holds JIDs only."""
    jids: set[str] = set()
    patterns: list[str] = []
    for n, entry in enumerate(settings.allowed_groups):
        if "@" in entry:
            jids.add(_group_jid(entry, f"{settings.source}: allowed_groups[{n}]"))
        else:
            patterns.append(entry)
    if settings.allowed_groups_file:
        path = Path(settings.allowed_groups_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: allow-list file not found (set by {settings.source})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the allow-list file: {exc}") from None
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if text:
                jids.add(_group_jid(text, f"{path}:{number}"))
    return AllowList(frozenset(jids), tuple(patterns))


# -- what both read ------------------------------------------------------------------------------


@dataclass
class Finding:
    instance_id: str
    instance_label: str | None
    jid: str
    name: str | None
    chat_type: str
    last_activity: int | None
    archived: bool | None
    reasons: list[str] = field(default_factory=list)


def _silent(last_activity: int | None, days: int, now: float) -> str | None:
    if last_activity is None:
        return "no activity recorded"
    idle = int((now - last_activity) // DAY)
    return f"silent {idle} days" if idle >= days else None


FIELDS = ["instance_id", "instance_label", "jid", "name", "chat_type", "last_activity", "archived"]


def _from_index(cfg: Config, filter_: str) -> Iterator[dict[str, Any]]:
    from explorer.meili.client import IndexStore

    store = IndexStore(cfg.meilisearch)
    if not store.count(cfg.meilisearch.index):
        raise MeiliError(
            f"index {cfg.meilisearch.index!r} is empty or missing: run `explorer reindex` first "
            "(or read Wawp directly with --live)"
        )
    yield from store.fetch(cfg.meilisearch.index, filter_, FIELDS)


def _from_crawl(cfg: Config, inst: Instance) -> Iterator[dict[str, Any]]:
    from explorer.source.crawl import Crawler, open_client, options_from

    with open_client(cfg, inst) as client:
        crawler = Crawler(client, options_from(cfg.wawp))
        for page in crawler.pages():
            for chat in page.chats:
                yield {
                    "instance_id": inst.id, "instance_label": inst.label, "jid": chat.jid,
                    "name": chat.name, "chat_type": chat.chat_type,
                    "last_activity": chat.last_activity, "archived": chat.archived,
                }  # fmt: skip
    if crawler.stats.chats == 0:
        raise WawpError(
            f"Wawp instance {inst.id}: the crawl returned no chats; nothing to judge "
            "(is the session connected?)",
            instance_id=inst.id,
        )


def _table(findings: list[Finding], limit: int, colour: bool, what: str = "NAME") -> list[str]:
    """The findings as a terminal table, cut at ``limit`` rows with a note saying so."""
    from explorer.records.output import relative, table

    headers = ["INSTANCE", what, "JID", "TYPE", "LAST ACTIVITY", "ARCHIVED", "WHY"]
    rows = [
        [
            f.instance_label or f.instance_id, f.name or "(no name)", f.jid, f.chat_type,
            relative(f.last_activity), "yes" if f.archived else "", "; ".join(f.reasons),
        ]
        for f in findings[:limit]
    ]  # fmt: skip
    lines = table(headers, rows, colour)
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more (--json or --ids list all)")
    return lines


def _finding(row: dict[str, Any]) -> Finding:
    return Finding(
        row["instance_id"], row.get("instance_label"), row["jid"], row.get("name"),
        row["chat_type"], row.get("last_activity"), row.get("archived"),
    )  # fmt: skip


def describe_source(cfg: Config, live: bool) -> str:
    if live:
        return f"a live crawl of Wawp ({cfg.wawp.base_url})"
    from explorer.jobs.reindex import last_report
    from explorer.jobs.sync import load_state

    last = last_report(cfg)
    syncs = [i.get("at") or 0 for i in load_state(cfg).get("instances", {}).values()]
    stamps = [s for s in [(last or {}).get("finished_at") or 0, *syncs] if s]
    fresh = (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(stamps))) if stamps else "unknown here"
    )
    return f"the index {cfg.meilisearch.index!r} (as fresh as its last reindex or sync: {fresh})"


# -- audit -------------------------------------------------------------------------------------


@dataclass
class InstanceAudit:
    instance_id: str
    instance_label: str | None
    groups: int = 0
    allowed: int = 0
    allow_list: str = ""
    flagged: list[Finding] = field(default_factory=list)


@dataclass
class AuditReport:
    source: str  # "index" or "live"
    source_detail: str
    inactive_days: int | None
    generated_at: int
    instances: list[InstanceAudit] = field(default_factory=list)

    @property
    def flagged(self) -> list[Finding]:
        return [f for i in self.instances for f in i.flagged]

    def summary(self, limit: int = 200, colour: bool = False) -> str:
        """Per-instance counts, then a table of at most ``limit`` flagged groups."""
        out = [f"Audit of groups and channels, read from {self.source_detail}"]
        for i in self.instances:
            name = i.instance_id + (f" ({i.instance_label})" if i.instance_label else "")
            out.append(f"  {name}: {i.groups} groups and channels, {i.allowed} allowed, "
                       f"{len(i.flagged)} flagged (allow-list: {i.allow_list})")  # fmt: skip
        if not self.flagged:
            return "\n".join([*out, "Nothing flagged."])
        out += ["", *_table(self.flagged, limit, colour, "GROUP")]
        out.append(
            "Wawp may list a group you were removed from for a short while: check a flag "
            "again after the next sync before acting."
        )
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        """The stable document of `explorer audit --json` (docs/housekeeping.md)."""
        return {
            "report": "audit",
            "version": 1,
            "source": self.source,
            "source_detail": self.source_detail,
            "generated_at": self.generated_at,
            "inactive_days": self.inactive_days,
            "flagged_total": len(self.flagged),
            "instances": [asdict(i) for i in self.instances],
        }


def audit(
    cfg: Config, *, live: bool = False, inactive_days: int | None = None,
    instance: str | None = None, now: float | None = None,
) -> AuditReport:  # fmt: skip
    """Each configured instance's groups and channels that its allow-list does not admit."""
    now = time.time() if now is None else now
    if inactive_days is not None and inactive_days < 0:
        raise QueryError("inactive_days", f"must be >= 0, got {inactive_days}")
    instances = _pick(cfg, instance)
    lists = {i.id: load_allow_list(cfg.audit_for(i)) for i in instances}  # bad lists fail first
    report = AuditReport(
        "live" if live else "index", describe_source(cfg, live), inactive_days, int(now)
    )
    for inst in instances:
        allow = lists[inst.id]
        result = InstanceAudit(inst.id, inst.label, allow_list=allow.description)
        report.instances.append(result)
        rows = (
            _from_crawl(cfg, inst)
            if live
            else _from_index(cfg, f"{instance_id_is(inst.id)} AND {chat_type_in(AUDITED_TYPES)}")
        )
        judge_groups(result, allow, rows, inactive_days, now)
    return report


def judge_groups(
    result: InstanceAudit, allow: AllowList, rows: Iterable[dict[str, Any]],
    inactive_days: int | None, now: float,
) -> None:  # fmt: skip
    """Count one instance's groups and channels into ``result`` and flag what the allow-list
    does not admit (or, with ``inactive_days``, what has been silent that long), wherever the
    rows come from: the index, a crawl, or the searches of :mod:`explorer.doors.mcp_server`."""
    for row in rows:
        if row["chat_type"] not in AUDITED_TYPES:
            continue
        result.groups += 1
        finding = _finding(row)
        if allow.admits(row["jid"], row.get("name")):
            result.allowed += 1
        else:
            finding.reasons.append("not on the allow-list")
        if inactive_days is not None:
            silent = _silent(row.get("last_activity"), inactive_days, now)
            if silent:
                finding.reasons.append(silent)
        if finding.reasons:
            result.flagged.append(finding)
    result.flagged.sort(key=lambda f: ((f.name or "").casefold(), f.jid))


def _pick(cfg: Config, instance: str | None) -> tuple[Instance, ...]:
    instances = cfg.require_instances()
    if instance is None:
        return instances
    chosen = tuple(i for i in instances if instance in (i.id, i.label))
    if not chosen:
        known = ", ".join(f"{i.id} ({i.label})" if i.label else i.id for i in instances)
        raise QueryError("instance", f"{instance!r} is not a configured instance; known: {known}")
    return chosen


# -- zombies -----------------------------------------------------------------------------------


@dataclass
class ZombieReport:
    source: str
    source_detail: str
    days: int
    chat_type: str | None
    generated_at: int
    chats: list[Finding] = field(default_factory=list)

    def summary(self, limit: int = 50, colour: bool = False) -> str:
        """Counts per instance and type, then a table of at most ``limit`` chats."""
        kind = f"{self.chat_type} " if self.chat_type else ""
        out = [f"Zombie {kind}chats (no activity for {self.days}+ days), read from "
               f"{self.source_detail}"]  # fmt: skip
        for inst, by_type in sorted(self.counts().items()):
            parts = ", ".join(
                f"{t} {c['zombies']} ({c['archived']} archived)" for t, c in sorted(by_type.items())
            )
            out.append(f"  {inst}: {parts}")
        if not self.chats:
            return "\n".join([*out, "None found."])
        return "\n".join([*out, "", *_table(self.chats, limit, colour)])

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """instance -> type -> {"zombies": n, "archived": m}."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for f in self.chats:
            cell = out.setdefault(f.instance_id, {}).setdefault(
                f.chat_type, {"zombies": 0, "archived": 0}
            )
            cell["zombies"] += 1
            cell["archived"] += bool(f.archived)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "zombies",
            "version": 1,
            "source": self.source,
            "source_detail": self.source_detail,
            "generated_at": self.generated_at,
            "days": self.days,
            "chat_type": self.chat_type,
            "total": len(self.chats),
            "archived": sum(1 for f in self.chats if f.archived),
            "counts": self.counts(),
            "chats": [asdict(f) for f in self.chats],
        }


def zombies(
    cfg: Config, *, days: int = 90, chat_type: str | None = None, instance: str | None = None,
    live: bool = False, now: float | None = None, labels: tuple[str, ...] = (),
) -> ZombieReport:  # fmt: skip
    """Chats with no activity for ``days`` days (or none recorded), oldest first; with
    ``labels``, only chats carrying any of them (read from the index: a crawl of
    ``/v2/chats`` knows no labels)."""
    now = time.time() if now is None else now
    if days < 0:
        raise QueryError("days", f"must be >= 0, got {days}")
    if labels and live:
        raise QueryError("label", "cannot be used with --live: labels are read from the index")
    # the same filter as `explorer search --inactive-days`; it also checks chat_type
    clauses = Filters(chat_type, instance, inactive_days=days, labels=labels).expressions(now)
    report = ZombieReport(
        "live" if live else "index", describe_source(cfg, live), days, chat_type, int(now)
    )
    if live:
        rows: Iterator[dict[str, Any]] = (
            row for inst in _pick(cfg, instance) for row in _from_crawl(cfg, inst)
        )
    else:
        rows = _from_index(cfg, " AND ".join(clauses))
    for row in rows:
        if chat_type and row["chat_type"] != chat_type:
            continue
        reason = _silent(row.get("last_activity"), days, now)
        if reason:
            finding = _finding(row)
            finding.reasons.append(reason)
            report.chats.append(finding)
    if instance and not live and not report.chats:
        from explorer.meili.query import Searcher

        with Searcher(cfg.meilisearch) as searcher:
            searcher.check_instance(instance)  # an unknown name is not "no zombies"
    report.chats.sort(key=lambda f: (f.last_activity or 0, f.instance_id, f.jid))
    return report
