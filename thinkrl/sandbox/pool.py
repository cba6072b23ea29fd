"""A pool of sandbox slots: many executions at once for throughput (code rewards, tool calls).

Each worker thread only waits on its own sandboxed subprocess, so threads are enough: the work
happens in the children, and run_python is thread-safe (every execution takes its own uid slot).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from thinkrl.sandbox.limits import Limits
from thinkrl.sandbox.run import Result, run_python


class Pool:
    """`workers` executions in parallel. Use as a context manager, or call close()."""

    def __init__(self, workers: int, limits: Limits, **run_kwargs):
        if workers < 1:
            raise ValueError(f"Pool needs at least one worker, got {workers}")
        self.limits = limits
        self._run_kwargs = run_kwargs
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")

    def submit(self, code: str, stdin: str = ""):
        """A Future of the Result of one execution."""
        return self._executor.submit(run_python, code, self.limits, stdin=stdin, **self._run_kwargs)

    def map(self, codes: list[str], stdins: list[str] | None = None) -> list[Result]:
        """Results in the order of `codes`."""
        stdins = stdins if stdins is not None else [""] * len(codes)
        if len(stdins) != len(codes):
            raise ValueError(f"{len(codes)} codes but {len(stdins)} stdins")
        futures = [self.submit(code, stdin) for code, stdin in zip(codes, stdins)]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
