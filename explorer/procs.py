"""Child processes that never outlive us, and signals that stop us as cleanly as Ctrl-C.

A process manager, ``timeout`` or a stopped ``make`` sends SIGTERM (a closed terminal,
SIGHUP); Python only turns SIGINT into :class:`KeyboardInterrupt`. :func:`stop_signals`
makes the other two do the same, so the ``finally`` blocks that stop Meilisearch and the
sandbox run whatever ended us. For the cases no handler sees (SIGKILL, a crash), children
are started with :func:`die_with_parent`: the kernel sends them SIGTERM when we die.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def die_with_parent() -> None:
    """``preexec_fn`` for Popen: on Linux, SIGTERM this child when its parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_signals(stop: threading.Event | None = None) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C.

    With ``stop``, they set that event instead: a loop that checks it (``explorer
    schedule``) finishes the job in hand and returns rather than abandoning it. Blocks
    nest; leaving one restores the handlers it found.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    on_signal: Callable[[int, FrameType | None], None] = _interrupt
    if stop is not None:
        on_signal = lambda signum, frame: stop.set()  # noqa: E731
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
