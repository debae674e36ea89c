"""`explorer schedule` keeps its daily time in a named zone across daylight-saving changes.

Fixed clocks only: the scheduler's loop runs with a fake ``now`` that its own waits move
forward, so a week of nights passes in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from zoneinfo import ZoneInfo

import httpx
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import Config, load_config
from explorer.dev.meili_server import free_port
from explorer.errors import ConfigError
from explorer.jobs import schedule
from explorer.jobs.schedule import next_run, run_schedule, zone_named

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AT = dt.time(3, 15)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def test_a_daily_time_stays_on_the_wall_clock_when_summer_time_starts() -> None:
    # Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST.
    before = dt.datetime(2026, 3, 28, 3, 16, tzinfo=BERLIN)
    due = next_run(before, AT, BERLIN)
    assert (due.date(), due.time()) == (dt.date(2026, 3, 29), AT)
    assert due.astimezone(dt.UTC) == utc(2026, 3, 29, 1, 15)  # not 02:15 UTC (04:15 local)


def test_a_daily_time_stays_on_the_wall_clock_when_summer_time_ends() -> None:
    # Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET.
    before = dt.datetime(2026, 10, 24, 3, 16, tzinfo=BERLIN)
    due = next_run(before, AT, BERLIN)
    assert (due.date(), due.time()) == (dt.date(2026, 10, 25), AT)
    assert due.astimezone(dt.UTC) == utc(2026, 10, 25, 2, 15)  # not 01:15 UTC (02:15 local)


def test_a_skipped_time_runs_as_late_as_the_skip_and_a_repeated_one_once() -> None:
    skipped = next_run(dt.datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN), dt.time(2, 30), BERLIN)
    assert skipped.astimezone(dt.UTC) == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    first = next_run(dt.datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN), dt.time(2, 30), BERLIN)
    assert first.astimezone(dt.UTC) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first
    again = next_run(first, dt.time(2, 30), BERLIN)
    assert again.astimezone(dt.UTC) == utc(2026, 10, 26, 1, 30)  # not the second 02:30


def test_next_run_from_a_utc_clock_in_another_zone() -> None:
    # New York, 8 March 2026: 02:00 EST becomes 03:00 EDT.
    due = next_run(utc(2026, 3, 8, 12, 0), AT, NEW_YORK)
    assert due.astimezone(dt.UTC) == utc(2026, 3, 9, 7, 15)  # 03:15 EDT (UTC-4)
    assert next_run(utc(2026, 3, 7, 12, 0), AT, NEW_YORK).astimezone(dt.UTC) == utc(
        2026, 3, 8, 7, 15
    )  # 03:15 EDT already on the night of the change


class FakeClock:
    """``now`` for the scheduler; its stop event's waits move the clock instead of sleeping."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start
        clock = self

        class Stop(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                clock.now += dt.timedelta(seconds=timeout or 0)
                return self.is_set()

        self.stop = Stop()


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (utc(2026, 3, 26, 12, 0), [utc(2026, 3, 27, 2, 15), utc(2026, 3, 28, 2, 15),
                                   utc(2026, 3, 29, 1, 15), utc(2026, 3, 30, 1, 15)]),
        (utc(2026, 10, 23, 12, 0), [utc(2026, 10, 24, 1, 15), utc(2026, 10, 25, 2, 15),
                                    utc(2026, 10, 26, 2, 15)]),
    ],
    ids=["spring", "autumn"],
)  # fmt: skip
def test_the_loop_reindexes_at_local_time_through_a_change(
    start: dt.datetime, expected: list[dt.datetime]
) -> None:
    clock = FakeClock(start)
    ran: list[dt.datetime] = []
    planned: list[dt.datetime] = []
    run_schedule(
        Config(), at=AT, sync_every=None, zone=BERLIN, max_runs=len(expected),
        stop=clock.stop, now=lambda: clock.now,
        jobs={"reindex": lambda: ran.append(clock.now), "sync": lambda: None},
        on_next=planned.append,
    )  # fmt: skip
    assert ran == expected
    assert all(p.time() == AT and p.tzinfo is BERLIN for p in planned)


def test_syncs_run_between_reindexes_and_never_over_one() -> None:
    clock = FakeClock(utc(2026, 3, 29, 0, 0))
    ran: list[tuple[str, dt.datetime]] = []
    run_schedule(
        Config(), at=AT, sync_every=1800, zone=BERLIN, max_runs=5, stop=clock.stop,
        now=lambda: clock.now,
        jobs={"reindex": lambda: ran.append(("reindex", clock.now)),
              "sync": lambda: ran.append(("sync", clock.now))},
    )  # fmt: skip
    assert [job for job, _ in ran] == ["sync", "sync", "reindex", "sync", "sync"]
    assert ran[2][1] == utc(2026, 3, 29, 1, 15)


def test_zone_from_the_option_the_environment_or_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert zone_named("America/New_York") is NEW_YORK
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert zone_named() is BERLIN
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        zone_named("Mars/Olympus")


def test_an_unknown_zone_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAWP_INSTANCE_ID", "ABC")
    monkeypatch.setenv("WAWP_ACCESS_TOKEN", "t")
    result = CliRunner().invoke(cli, ["schedule", "--timezone", "Mars/Olympus"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: unknown time zone 'Mars/Olympus' (an IANA name such as Europe/Berlin or UTC)"
    ]


# -- schedule.run: the service the command runs ---------------------------------------------

ONE_INSTANCE = {"WAWP_INSTANCE_ID": "ABC", "WAWP_ACCESS_TOKEN": "t"}


def test_run_serves_metrics_while_it_runs_and_stops_serving_when_it_returns() -> None:
    port = free_port()
    seen: list[str] = []

    def reindex() -> None:
        seen.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)

    code = schedule.run(
        load_config(env=ONE_INSTANCE), at=AT, run_now=True, timezone="Europe/Berlin",
        metrics_port=port, max_runs=1, jobs={"reindex": reindex},
    )  # fmt: skip
    assert code == 0 and len(seen) == 1
    assert "explorer_schedule_next_reindex_timestamp_seconds" in seen[0]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)


def test_run_checks_what_it_is_asked_before_any_job() -> None:
    ran: list[str] = []
    jobs = {"reindex": lambda: ran.append("reindex")}
    with pytest.raises(ConfigError, match="no Wawp instance"):
        schedule.run(Config(), at=AT, run_now=True, max_runs=1, jobs=jobs)
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        schedule.run(load_config(env=ONE_INSTANCE), at=AT, run_now=True, max_runs=1,
                     timezone="Mars/Olympus", jobs=jobs)  # fmt: skip
    assert ran == []


@pytest.fixture
def sigterm_fails_the_test() -> Iterator[None]:
    """A SIGTERM that nothing inside catches fails the test instead of ending pytest."""

    def outside(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("SIGTERM reached past schedule.run")

    previous = signal.signal(signal.SIGTERM, outside)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("sigterm_fails_the_test")
def test_sigterm_lets_the_job_in_hand_finish_and_starts_no_other() -> None:
    steps: list[str] = []

    def reindex() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # as a container stop during a reindex
        steps.append("reindex finished")

    code = schedule.run(
        load_config(env=ONE_INSTANCE), at=AT, run_now=True, sync_every=0.01, max_runs=2,
        jobs={"reindex": reindex, "sync": lambda: steps.append("sync")},
    )  # fmt: skip
    assert steps == ["reindex finished"] and code == 0
