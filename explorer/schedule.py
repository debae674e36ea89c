"""A tiny in-process scheduler for containers that have no cron.

Runs ``reindex`` once a day at a set time and, optionally, ``sync`` every N seconds in
between. Failures are logged with their exit-code meaning and never stop the loop: a
refused swap (exit 3) is a warning for a person to look at, the next night tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from explorer.config import Config
from explorer.errors import ExplorerError
from explorer.state import IndexBusy

log = logging.getLogger("explorer.schedule")


def parse_at(value: str) -> dt.time:
    try:
        hour, minute = (int(p) for p in value.split(":"))
        return dt.time(hour, minute)
    except ValueError:
        raise ValueError(f"must be HH:MM (00:00 to 23:59), got {value!r}") from None


def next_run(now: dt.datetime, at: dt.time) -> dt.datetime:
    """The next moment at ``at`` strictly after ``now`` (same timezone as ``now``)."""
    candidate = now.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + dt.timedelta(days=1)


def _run(name: str, job: Callable[[], object]) -> int:
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


def run_schedule(
    cfg: Config,
    *,
    at: dt.time,
    sync_every: float | None,
    run_now: bool = False,
    max_runs: int | None = None,
    stop: threading.Event | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
) -> int:
    """Loop until ``stop`` is set (or ``max_runs`` jobs ran); returns the last exit code."""
    from explorer.reindex import reindex
    from explorer.sync import sync

    stop = stop or threading.Event()
    runs = 0
    code = 0
    due_reindex = now() if run_now else next_run(now(), at)
    log.info("next reindex at %s", due_reindex.isoformat(timespec="minutes"))
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        current = now()
        if current >= due_reindex:
            code = _run("reindex", lambda: reindex(cfg))
            due_reindex = next_run(now(), at)
            log.info("next reindex at %s", due_reindex.isoformat(timespec="minutes"))
            runs += 1
            continue
        wait = (due_reindex - current).total_seconds()
        if sync_every:
            wait = min(wait, sync_every)
        if stop.wait(max(0.0, wait)):
            break
        if sync_every and now() < due_reindex:
            code = _run("sync", lambda: sync(cfg, wait=60))
            runs += 1
    return code
