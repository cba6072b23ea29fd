"""Calling a function that may fail or hang, with a deadline per call, in any thread.

`call_with_deadline(fn, calls, timeout)` runs fn(*args) for each args of `calls` in a daemon worker
thread that the caller waits on with a deadline of `timeout` seconds per call; each result is
("ok", value), ("error", exception), TIMEOUT or SKIPPED. A call past its deadline is abandoned (a
Python loop in it is interrupted, a thread blocked in `sleep` or C code is left to sleep: a
daemon never holds up the caller or the interpreter's exit) and a fresh worker goes on with the
next; after TIMEOUTS_PER_BATCH timeouts the remaining calls are not made. A UserError (bad input,
not a bug) is raised in the caller, as always. `call(fn, args)` is the same without a worker or
deadline. thinkrl.rewards runs user rewards and the reward model this way.
"""

from __future__ import annotations

import ctypes
import threading
import time

from thinkrl.errors import UserError

TIMEOUTS_PER_BATCH = 2  # after this many timeouts in one batch, a function is not called again in that batch

TIMEOUT, SKIPPED = ("timeout", None), ("skipped", None)  # a call past its deadline; one not made after too many


class _Abandoned(BaseException):
    """Raised in a worker whose call passed its deadline (a BaseException: a reward's `except Exception` cannot eat it)."""


def call(fn, args: tuple) -> tuple[str, object]:
    """("ok", value) or ("error", exception) of fn(*args) in this thread; a UserError propagates."""
    try:
        return "ok", fn(*args)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a reward's bug scores 0, it does not end the run
        return "error", e


class _Worker(threading.Thread):
    """fn(*calls[i]) for i = first, first + 1, ... in a daemon thread, each result into results[i].

    The caller (`wait`) watches the call in progress: one running past the deadline is abandoned,
    its result (if it ever comes) dropped. A lock orders the worker's moves against the caller's
    decision, so a result is either stored or its call declared timed out, never both."""

    def __init__(self, fn, calls: list[tuple], first: int, results: list):
        super().__init__(daemon=True, name="thinkrl-reward")
        self.fn, self.calls, self.results = fn, calls, results
        self.lock = threading.Lock()
        self.index, self.since, self.abandoned = first, time.monotonic(), False

    def run(self) -> None:
        try:
            for i in range(self.index, len(self.calls)):
                with self.lock:
                    if self.abandoned:
                        return
                    self.index, self.since = i, time.monotonic()
                try:
                    result = ("ok", self.fn(*self.calls[i]))
                except _Abandoned:
                    return
                except BaseException as e:  # noqa: BLE001 - even SystemExit from a reward only scores 0
                    result = ("error", e)
                with self.lock:
                    if self.abandoned:
                        return
                    self.results[i] = result
                if isinstance(result[1], UserError):
                    return
        except _Abandoned:  # delivered just after the call returned
            pass

    def wait(self, timeout: float) -> int | None:
        """Start; return None once every call has returned, or the index of the call that ran past
        `timeout` seconds (the worker is then abandoned)."""
        self.start()
        while True:
            with self.lock:
                i, since = self.index, self.since
            self.join(max(0.0, since + timeout - time.monotonic()))
            if not self.is_alive():
                return None
            with self.lock:
                if self.index == i and self.results[i] is None and time.monotonic() - since >= timeout:
                    self.abandoned = True
                    # best effort: stop a Python loop in the reward (sleep and C code are not interrupted)
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), ctypes.py_object(_Abandoned))
                    return i


def call_with_deadline(fn, calls: list[tuple], timeout: float) -> list[tuple[str, object]]:
    """`call` of each, in worker threads, each call at most `timeout` seconds: past it the call is
    TIMEOUT and a fresh worker goes on with the next; after TIMEOUTS_PER_BATCH timeouts the
    remaining calls are SKIPPED."""
    results: list = [None] * len(calls)
    first, timeouts = 0, 0
    while first < len(calls):
        stuck = _Worker(fn, calls, first, results).wait(timeout)
        if stuck is None:
            break
        results[stuck] = TIMEOUT
        timeouts, first = timeouts + 1, stuck + 1
        if timeouts >= TIMEOUTS_PER_BATCH:
            results[first:] = [SKIPPED] * (len(calls) - first)
            break
    for r in results:
        if r is not None and isinstance(r[1], UserError):
            raise r[1]
    return [r if r is not None else ("error", RuntimeError("the reward's worker thread ended early")) for r in results]
