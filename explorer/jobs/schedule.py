"""A tiny in-process scheduler for containers that have no cron.

Runs ``reindex`` once a day at a set time and, optionally, ``sync`` every N seconds in
between. Failures are logged with their exit-code meaning and never stop the loop: a
refused swap (exit 3) is a warning for a person to look at, the next night tries again.

The daily time is wall-clock time in a named time zone (:mod:`zoneinfo`), recomputed for
each run: 03:15 stays 03:15 across a daylight-saving change. (A fixed UTC offset, taken
when the next run is computed, runs an hour early or late the night the clocks change.)
A time the clocks skip that night (02:30 when they go from 02:00 to 03:00) runs as late
as the skip (03:30); a time that happens twice (clocks going back) runs once, the first
time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from explorer.config import Config
from explorer.errors import ConfigError, ExplorerError
from explorer.jobs.state import IndexBusy
from explorer.procs import stop_signals

if TYPE_CHECKING:
    from explorer.doors.server import HttpServer

log = logging.getLogger("explorer.jobs.schedule")


def parse_at(value: str) -> dt.time:
    try:
        hour, minute = (int(p) for p in value.split(":"))
        return dt.time(hour, minute)
    except ValueError:
        raise ValueError(f"must be HH:MM (00:00 to 23:59), got {value!r}") from None


def zone_named(name: str | None = None) -> ZoneInfo:
    """The zone ``name`` (``Europe/Berlin``), else ``$TZ``, else the system's own
    (``/etc/localtime``), else UTC; raises :class:`ConfigError` for an unknown name."""
    name = name or os.environ.get("TZ", "").lstrip(":") or _system_zone()
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)"
        ) from None


def _system_zone() -> str | None:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        return target.split("zoneinfo/", 1)[1]
    try:
        return Path("/etc/timezone").read_text().strip() or None
    except OSError:
        return None


def next_run(now: dt.datetime, at: dt.time, zone: dt.tzinfo | None = None) -> dt.datetime:
    """The first moment strictly after ``now`` (aware) when ``zone``'s clocks (default:
    ``now``'s) show ``at``, in ``zone``. Compared in UTC: datetimes sharing a tzinfo
    compare by wall time."""
    zone = zone or now.tzinfo or dt.UTC
    after = now.astimezone(dt.UTC)
    day = now.astimezone(zone).date() - dt.timedelta(days=1)
    while True:
        # Through UTC and back: a wall time inside a skipped hour moves past the skip.
        candidate = dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)
        if candidate > after:
            return candidate.astimezone(zone)
        day += dt.timedelta(days=1)


def _run_job(name: str, job: Callable[[], object], cfg: Config | None = None) -> int:
    code = _outcome(name, job)
    if cfg is not None:
        from explorer.doors.metrics import record_outcome

        try:
            record_outcome(cfg, name, code)  # for /metrics here, on listen and on serve
        except OSError as exc:
            log.warning("cannot record the %s outcome: %s", name, exc)
    return code


def _outcome(name: str, job: Callable[[], object]) -> int:
    try:
        report = job()
    except ExplorerError as exc:
        # A refused swap (3) or a busy lock waits for a person or the next round.
        benign = exc.exit_code == 3 or isinstance(exc, IndexBusy)
        level = logging.WARNING if benign else logging.ERROR
        log.log(level, "%s: %s", name, exc, extra={"event": name, "exit_code": exc.exit_code})
        return exc.exit_code
    except Exception:
        log.exception("%s crashed", name, extra={"event": name, "exit_code": 1})
        return 1
    summary = getattr(report, "summary", None)
    log.info("%s", summary() if callable(summary) else name, extra={"event": name, "exit_code": 0})
    return 0


def run(
    cfg: Config,
    *,
    at: dt.time,
    sync_every: float | None = None,
    run_now: bool = False,
    timezone: str | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    max_runs: int | None = None,
    jobs: dict[str, Callable[[], object]] | None = None,
) -> int:
    """`explorer schedule`: reindex every day at ``at`` in ``timezone`` (default: $TZ, else
    the system's), sync every ``sync_every`` seconds in between, and serve ``/metrics`` on
    ``metrics_port`` if given, until SIGTERM or SIGHUP (the job in hand finishes first) or
    ``max_runs`` jobs; returns the last job's exit code.

    What it is asked is checked before any job runs (ConfigError: no instance, an unknown
    zone); Ctrl-C stops it at once (KeyboardInterrupt). ``jobs`` replaces reindex and sync
    (tests)."""
    cfg.require_instances()
    zone = zone_named(timezone)
    metrics = ScheduleMetrics(cfg)
    server = metrics.serve(metrics_host, metrics_port) if metrics_port is not None else None
    stop = threading.Event()
    try:
        with stop_signals(stop):
            return run_schedule(
                cfg, at=at, sync_every=sync_every, zone=zone, run_now=run_now,
                max_runs=max_runs, stop=stop, jobs=jobs, on_next=metrics.on_next,
                on_run=metrics.on_run,
            )  # fmt: skip
    finally:
        if server is not None:
            server.stop()


def run_schedule(
    cfg: Config,
    *,
    at: dt.time,
    sync_every: float | None,
    zone: ZoneInfo | None = None,
    run_now: bool = False,
    max_runs: int | None = None,
    stop: threading.Event | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    jobs: dict[str, Callable[[], object]] | None = None,
    on_next: Callable[[dt.datetime], None] | None = None,
    on_run: Callable[[str, int], None] | None = None,
) -> int:
    """Loop until ``stop`` is set (or ``max_runs`` jobs ran); returns the last exit code.

    ``jobs`` replaces the reindex and sync calls and ``now`` the clock (tests);
    ``on_next`` hears each newly computed reindex time and ``on_run`` each job's exit
    code (metrics)."""
    from explorer.jobs.reindex import reindex
    from explorer.jobs.sync import sync

    zone = zone or zone_named()
    todo = jobs or {"reindex": lambda: reindex(cfg), "sync": lambda: sync(cfg, wait=60)}
    stop = stop or threading.Event()
    runs = 0
    code = 0

    def utc_now() -> dt.datetime:
        return now().astimezone(dt.UTC)  # compared as instants, whatever zone ``now`` uses

    def plan(moment: dt.datetime) -> dt.datetime:
        due = next_run(moment, at, zone)
        log.info("next reindex at %s", due.isoformat(timespec="minutes"))
        if on_next is not None:
            on_next(due)
        return due.astimezone(dt.UTC)

    def run(name: str) -> int:
        result = _run_job(name, todo[name], cfg if jobs is None else None)
        if on_run is not None:
            on_run(name, result)
        return result

    due_reindex = utc_now() if run_now else plan(utc_now())
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        current = utc_now()
        if current >= due_reindex:
            code = run("reindex")
            due_reindex = plan(max(utc_now(), current))
            runs += 1
            continue
        wait = (due_reindex - current).total_seconds()
        if sync_every:
            wait = min(wait, sync_every)
        if stop.wait(max(0.0, wait)):
            break
        if sync_every and utc_now() < due_reindex:
            code = run("sync")
            runs += 1
    return code


class ScheduleMetrics:
    """``GET /metrics`` and ``/healthz`` for `explorer schedule --metrics-port`."""

    def __init__(self, cfg: Config) -> None:
        from prometheus_client import Counter, Gauge

        from explorer.doors.metrics import new_registry

        self.registry = new_registry(cfg)
        self.next_reindex = Gauge(
            "explorer_schedule_next_reindex_timestamp_seconds",
            "When the next scheduled reindex is due (Unix time).",
            registry=self.registry,
        )
        self.runs = Counter(
            "explorer_schedule_runs", "Scheduled jobs run, by job and exit code.",
            ["job", "exit_code"], registry=self.registry,
        )  # fmt: skip

    def on_next(self, due: dt.datetime) -> None:
        self.next_reindex.set(due.timestamp())

    def on_run(self, job: str, code: int) -> None:
        self.runs.labels(job, str(code)).inc()

    def serve(self, host: str, port: int) -> HttpServer:
        """Serve in a thread on the shared server; returns it (``stop()`` ends it)."""
        from starlette.applications import Starlette

        from explorer.doors.metrics import routes
        from explorer.doors.server import HttpServer

        return HttpServer(Starlette(routes=routes(self.registry)), host, port).start()
