"""One request budget for a whole run, shared by every instance, that adapts to the API.

A business with fifty WhatsApp numbers is crawled in parallel, but the Wawp account
behind them has one rate limit. :class:`Pace` lets at most ``limit`` requests be in
flight across all instances (and at most ``per_instance`` for any one), and moves that
window the way TCP does (AIMD): a 429 sets it just under the rate the last second's good
replies show (or halves it when there were too few to tell), and replies suddenly much
slower than usual halve it (once per hold period, however many requests saw the same
congestion); then, after a second without trouble, good replies widen it by a tenth every
half second, up to ``limit``, but only to just under a rate limit it has measured until
``PROBE_EVERY`` calm seconds have passed (below one request in flight the window is a
pace between requests). A ``Retry-After`` holds
every new request of the run until then, not only the retry of the one that got it. An
account with a strict rate limit is then crawled at its limit instead of in a storm of
retries.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class PaceStats:
    throttled: int = 0  # 429 answers seen
    slow: int = 0  # replies that counted as congestion by their latency
    cuts: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)  # (seconds, window)


class Pace:
    SLOW_FACTOR = 3.0  # a reply this many times slower than the usual counts as congestion
    SLOW_MARGIN = 0.25  # ...and at least this many seconds slower (jitter is not congestion)
    HOLD = 1.0  # seconds without growth after a cut
    FLOOR = 1 / 16  # the smallest window: one request per 16 reply times
    GROW_EVERY = 0.5  # seconds between widenings (by a tenth): quotas count per second
    PROBE_EVERY = 10.0  # calm seconds before growing past a rate limit we measured

    def __init__(
        self,
        limit: int,
        per_instance: int | None = None,
        *,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or (per_instance is not None and per_instance < 1):
            raise ValueError("limits must be >= 1")
        self.limit = limit
        self.per_instance = per_instance
        self.adaptive = adaptive
        self._clock = clock
        self._started = clock()
        self._window = float(limit)
        self._in_flight = 0
        self._by_instance: dict[str, int] = {}
        self._cond = threading.Condition()
        self._usual: float | None = None  # a slow-moving floor of the reply time
        self._last_cut = -math.inf
        self._resume_at = -math.inf
        self._hold_until = -math.inf
        self._last_start = -math.inf
        self._last_growth = -math.inf
        self._ceiling: float | None = None  # the window a measured rate limit allows
        self._successes: deque[float] = deque()  # good replies of the last second
        self.stats = PaceStats(history=[(0.0, limit)])

    @property
    def window(self) -> int:
        return max(1, int(self._window))

    def _spacing(self) -> float:
        """Below one request in flight, the window becomes a pace: one request per
        ``usual reply time / window`` seconds (a fast API with a low rate limit)."""
        if self._window >= 1 or not self._usual:
            return 0.0
        return self._usual / self._window

    @contextlib.contextmanager
    def slot(self, instance_id: str) -> Iterator[None]:
        """Hold one of the run's request slots for the duration of one HTTP request."""
        with self._cond:
            while True:
                now = self._clock()
                pause = (
                    max(self._resume_at, self._last_start + self._spacing()) - now
                    if self.adaptive
                    else 0.0
                )
                if pause > 0:  # the API said when to come back: nobody asks before then
                    self._cond.wait(pause)
                    continue
                if self._in_flight < self.window and (
                    self.per_instance is None
                    or self._by_instance.get(instance_id, 0) < self.per_instance
                ):
                    break
                self._cond.wait()
            self._in_flight += 1
            self._by_instance[instance_id] = self._by_instance.get(instance_id, 0) + 1
            self._last_start = self._clock()
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._by_instance[instance_id] -= 1
                self._cond.notify_all()

    def observe(self, seconds: float, *, throttled: bool, retry_after: float | None = None) -> None:
        """What one request met: its reply time, whether it was told to slow down, and
        when the API said to come back (``Retry-After``), which then holds for everyone."""
        with self._cond:
            if throttled:
                self.stats.throttled += 1
                if retry_after:
                    self._resume_at = max(self._resume_at, self._clock() + retry_after)
            slow = not throttled and self._is_slow(seconds)
            if slow:
                self.stats.slow += 1
            elif not throttled:
                self._follow_usual(seconds)
            if not self.adaptive:
                return
            now = self._clock()
            self._count_successes(now, good=not throttled and not slow)
            if throttled or slow:
                self._cut(now, throttled=throttled, retry_after=retry_after)
            else:
                self._grow(now)

    def _is_slow(self, seconds: float) -> bool:
        """Whether a reply took so much longer than usual that it shows congestion."""
        usual = self._usual
        return (
            usual is not None
            and seconds > usual * self.SLOW_FACTOR
            and seconds > usual + self.SLOW_MARGIN
        )

    def _follow_usual(self, seconds: float) -> None:
        """Follow a good reply's time down at once, up slowly: a floor of normal."""
        usual = self._usual
        self._usual = seconds if usual is None else min(seconds, usual * 0.98 + seconds * 0.02)

    def _count_successes(self, now: float, *, good: bool) -> None:
        """Keep the good replies of the last second: their rate shows a rate limit."""
        if good:
            self._successes.append(now)
        while self._successes and now - self._successes[0] > 1.0:
            self._successes.popleft()

    def _cut(self, now: float, *, throttled: bool, retry_after: float | None) -> None:
        """Narrow the window after a 429 or a congested reply, once per hold period."""
        if now - self._last_cut >= self.HOLD:  # one cut per hold: the same storm
            # A rate limit shows as the replies of the last second: aim just under that
            # rate (when the pipe was busy enough to show it), else halve. Halving a
            # window already near the rate sawtoothed well below it.
            target = self._window / 2
            if throttled and len(self._successes) >= 5 and self._usual:
                self._ceiling = len(self._successes) * self._usual
                target = min(self._window * 0.9, self._ceiling * 0.9)
            self._window = max(self.FLOOR, target)
            self._last_cut = now
            self.stats.cuts += 1
            self._record(now)
        # Rate limits count per second or more, not per round trip: grow again only once
        # the API has had that long at the smaller window.
        self._hold_until = now + max(self.HOLD, retry_after or 0.0)

    def _grow(self, now: float) -> None:
        """Widen the window by a tenth, at most every GROW_EVERY seconds once the hold is
        over, up to ``limit``, and only to just under a measured rate limit until
        PROBE_EVERY calm seconds have passed."""
        if (
            self._window >= self.limit
            or now < self._hold_until
            or now - self._last_growth < self.GROW_EVERY
        ):
            return
        before = self._window
        grown = min(float(self.limit), before + max(0.1, before * 0.1))
        if self._ceiling is not None and grown > self._ceiling * 0.95:
            # Near a rate limit we have measured, every probe past it costs a Retry-After
            # for the whole run: go just under it and stay, probing again only after
            # PROBE_EVERY calm seconds (limits do change).
            if now - self._last_cut >= self.PROBE_EVERY:
                self._ceiling = None
            else:
                grown = max(before, self._ceiling * 0.95)
        self._last_growth = now
        if grown != before:
            self._window = grown
            self._record(now)
            self._cond.notify_all()

    def _record(self, now: float) -> None:
        self.stats.history.append((round(now - self._started, 3), round(self._window, 2)))
