"""Symbolic answer comparison in helper processes, so that a deadline always holds.

A SIGALRM timer only works in the main thread and cannot interrupt one long C call, so
`verify.math_equal` sends every symbolic comparison, from any thread, to `symbolic_equal` here:
a helper process (a fresh `python -c`, never a fork of a training process holding CUDA state or
locks) runs it in its own main thread under a SIGALRM timer. The caller waits on a pipe at most
`timeout + GRACE_S`; a helper that has not answered by then is killed (so a runaway computation
never outlives its deadline) and replaced in the background.

Protocol: one JSON line `[pred, gold, timeout]` in, one line `1` or `0` out; the helper first
writes `ready` once math_verify is imported. Helpers are pooled (at most MAX_PROCESSES, one per
concurrent caller); the first call waits for its helper to start (about a second), bounded by
STARTUP_TIMEOUT_S. A helper exits when its stdin closes (its parent exited or died).
Every failure here (no helper, broken pipe, late answer) is the answer False, never an exception.

The helper side (`serve`, `timed_symbolic_equal`) is here too, so this module needs nothing of
thinkrl.verify: verify imports it, never the other way round.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time

GRACE_S = 0.25  # past the comparison's own timeout: the helper's timer fired, its answer is on the way
STARTUP_TIMEOUT_S = 30.0  # importing sympy and math_verify in a new helper
MAX_PROCESSES = 4  # concurrent comparisons; more callers wait (within their timeout) for a free one
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Helper:
    """One helper process and the bytes read from it that do not yet form a line."""

    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        code = f"from thinkrl.verify_process import serve; serve({os.getpid()})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, close_fds=True,
        )  # fmt: skip
        self.buffer = b""
        self.ready = False

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line, or None if none arrives by `deadline` (time.monotonic) or the helper died."""
        fd = self.proc.stdout.fileno()
        poller = select.poll()  # not select.select: it fails on descriptors above 1023
        poller.register(fd, select.POLLIN)
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.strip()

    def compare(self, pred: str, gold: str, timeout: float) -> bool | None:
        """The helper's answer; None when it failed to give one in time (it must then be killed)."""
        if not self.ready:
            if self._read_line(time.monotonic() + STARTUP_TIMEOUT_S) != b"ready":
                return None
            self.ready = True
        self.proc.stdin.write(json.dumps([pred, gold, timeout]).encode() + b"\n")
        self.proc.stdin.flush()
        line = self._read_line(time.monotonic() + timeout + GRACE_S)
        return None if line not in (b"0", b"1") else line == b"1"

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class _Pool:
    """Idle helpers and a count of all live ones, shared by every thread of this process."""

    def __init__(self):
        self.cond = threading.Condition()
        self.idle: list[_Helper] = []
        self.count = 0
        self.replaced = 0  # helpers killed for not answering in time (benchmarks report it)

    def acquire(self, deadline: float) -> _Helper | None:
        with self.cond:
            while not self.idle and self.count >= MAX_PROCESSES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            if self.idle:
                return self.idle.pop()
            self.count += 1
        return self._spawn()

    def _spawn(self) -> _Helper | None:
        """A new helper (the caller already counted it); None, uncounted, if it cannot start."""
        try:
            return _Helper()
        except OSError:
            with self.cond:
                self.count -= 1
                self.cond.notify()
            return None

    def release(self, helper: _Helper, healthy: bool) -> None:
        """Back to the idle list; a broken helper is killed and replaced at once, so the next
        caller does not wait for a start-up."""
        if not healthy:
            helper.kill()
            self.replaced += 1
            helper = self._spawn()  # still counted; None (uncounted) if it cannot start
            if helper is None:
                return
        with self.cond:
            self.idle.append(helper)
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
        for helper in idle:
            helper.kill()


_pool = _Pool()


def _new_pool_in_child() -> None:
    """A forked child must not share its parent's helpers (or a lock another thread held)."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_new_pool_in_child)
atexit.register(lambda: _pool.close())


def symbolic_equal(pred: str, gold: str, timeout: float) -> bool:
    """math_verify's comparison of two normalised answers in a helper; False past the deadline.

    Returns within about `timeout + GRACE_S` seconds once a helper is running (the first call in
    a process also waits for one to start). Never raises.
    """
    pool = _pool
    helper = pool.acquire(time.monotonic() + timeout)
    if helper is None:
        return False
    answer = None
    try:
        answer = helper.compare(pred, gold, timeout)
    except Exception:  # noqa: BLE001 - a broken pipe is a dead helper: replace it, answer False
        answer = None
    finally:  # also on KeyboardInterrupt: a half-finished exchange leaves the helper unusable
        pool.release(helper, healthy=answer is not None)
    return bool(answer)


# ----------------------------------------------------------------------------- the helper side


class _Timeout(BaseException):
    """Raised by our SIGALRM handler. A BaseException so sympy's `except Exception` cannot eat it."""


def _raise_timeout(signum, frame):
    raise _Timeout()


def _symbolic_equal(pred: str, gold: str) -> bool:
    """math_verify's comparison of the two normalised answers (untimed; callers bound it)."""
    from math_verify import parse, verify  # noqa: PLC0415 - heavy import, only when needed

    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    pred_parsed = parse(f"${pred}$", parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def timed_symbolic_equal(pred: str, gold: str, timeout: float) -> bool:
    """`_symbolic_equal` under a SIGALRM timer; False on timeout. Main thread of a helper only."""
    import math_verify  # noqa: F401, PLC0415 - import before the timer starts, never inside it

    _quiet_math_verify()
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            return _symbolic_equal(pred, gold)
        finally:
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
            finally:
                signal.signal(signal.SIGALRM, previous)
    except _Timeout:  # also when the alarm fires in the clean-up, just after the comparison
        return False


def _quiet_math_verify() -> None:
    """math_verify warns once that we passed timeout=None; we run our own timer, so silence it."""
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.ERROR)


def serve(parent_pid: int) -> None:
    """The helper's loop: answer comparisons from stdin until it closes.

    No PR_SET_PDEATHSIG: Linux sends it when the parent *thread* that started the helper exits,
    which would kill pooled helpers whenever a short-lived caller thread ends. When the parent
    dies its end of the pipe closes, and the helper exits after its current comparison (at most
    its timeout, its own timer stops it). `parent_pid` names the parent in `ps` output only.
    """
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # a stray print must not corrupt the protocol
    timed_symbolic_equal("1", "1", STARTUP_TIMEOUT_S)  # imports math_verify, warms sympy
    out.write(b"ready\n")
    for line in sys.stdin.buffer:
        try:
            pred, gold, timeout = json.loads(line)
            answer = timed_symbolic_equal(str(pred), str(gold), float(timeout))
        except Exception:  # noqa: BLE001 - a bad request is a False answer, not a dead helper
            answer = False
        out.write(b"1\n" if answer else b"0\n")
