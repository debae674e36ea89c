"""Signals stop us as cleanly as Ctrl-C, or ask a loop to finish its job first."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from explorer.procs import stop_signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_interrupts_like_ctrl_c(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt, match=sig.name), stop_signals():
        os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) == before  # the handler found is restored


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_with_an_event_a_stop_signal_sets_it_instead(sig: signal.Signals) -> None:
    stop = threading.Event()
    with stop_signals():  # the CLI's outer block
        with stop_signals(stop):  # a loop that finishes the job in hand
            os.kill(os.getpid(), sig)
            assert stop.wait(5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)  # the outer block's rule is back
            threading.Event().wait(5)
