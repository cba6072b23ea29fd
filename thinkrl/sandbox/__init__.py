"""The sandbox for model-written code: one isolated process per execution (see run.py, docs/sandbox.md)."""

from thinkrl.sandbox.limits import Limits
from thinkrl.sandbox.pool import Pool
from thinkrl.sandbox.run import STATUSES, Result, run_python

__all__ = ["Limits", "Pool", "Result", "STATUSES", "run_python"]
