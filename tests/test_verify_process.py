"""thinkrl.verify_process: the helper processes that run symbolic comparisons under a deadline."""

from __future__ import annotations

import os
import signal
import threading
import time

from thinkrl import verify_process
from thinkrl.verify import math_equal

SLACK = 1.0  # seconds on top of the timeout: a loaded 2-core CI box


def in_thread(fn, *args, **kwargs):
    """fn(*args) in a fresh thread: (result, seconds)."""
    out: list = []

    def run():
        start = time.perf_counter()
        out.append((fn(*args, **kwargs), time.perf_counter() - start))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return out[0]


def test_an_unresponsive_helper_is_killed_and_replaced():
    """A helper that never answers costs one call timeout + grace, then a fresh one takes over."""
    in_thread(math_equal, "x+1", "1+x")
    helpers = list(verify_process._pool.idle)
    assert helpers
    for helper in helpers:  # a frozen helper: alive, reads nothing, answers nothing
        os.kill(helper.proc.pid, signal.SIGSTOP)
    result, elapsed = in_thread(math_equal, "x+2", "2+x", timeout=0.5)
    assert result is False and elapsed < 0.5 + verify_process.GRACE_S + SLACK
    assert any(h.proc.poll() is not None for h in helpers)  # the one used was killed
    for helper in helpers:
        if helper.proc.poll() is None:
            os.kill(helper.proc.pid, signal.SIGCONT)
    assert in_thread(math_equal, "x+2", "2+x")[0]  # the replacement works


def test_the_helper_side_compares_under_its_own_timer_and_restores_it():
    """timed_symbolic_equal (what a helper runs in its main thread): the answer, no alarm left, the old handler back."""
    before = signal.getsignal(signal.SIGALRM)
    assert verify_process.timed_symbolic_equal("x+1", "1+x", 5.0)
    assert not verify_process.timed_symbolic_equal("x+2", "1+x", 5.0)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) is before
