"""What a run writes as it goes: metrics.jsonl, TensorBoard events, samples.jsonl.

One JSON object per line, each with its `step`. On resume from step S, lines after S (written
by the interrupted run past its last checkpoint) are dropped first, so the files hold each step
exactly once. Crash safety: each write is fsynced (a checkpoint written after it never covers a
step whose line a power cut lost), the resume cut is a temp file renamed over the old one, and a
line torn by a kill mid-write is dropped by the cut and skipped by readers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from thinkrl.models import fsync_dir


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:  # a line cut by a kill mid-write
            continue
    tmp = path.with_suffix(path.suffix + ".tmp")
    _write(tmp, "".join(x + "\n" for x in keep), "w")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write(path: Path, text: str, mode: str = "a") -> None:
    """Write (append) text and fsync it: on disk before anything that depends on it, like a checkpoint."""
    with open(path, mode, encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class RunLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.samples_path = self.dir / "samples.jsonl"
        if resume_step is not None:
            _truncate_after(self.metrics_path, resume_step)
            _truncate_after(self.samples_path, resume_step)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: metrics.jsonl still has everything
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(str(self.dir / "tb"), purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}}
        _write(self.metrics_path, json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def samples(self, step: int, rows: list[dict]) -> None:
        _write(self.samples_path, "".join(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n" for row in rows))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl; a line torn by a kill mid-write (a run that was not resumed) is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class NullLogger:
    """A RunLogger that writes nothing: the logger of every rank but rank 0 (thinkrl.dist)."""

    def log(self, step: int, metrics: dict) -> None:
        pass

    def samples(self, step: int, rows: list[dict]) -> None:
        pass

    def close(self) -> None:
        pass
