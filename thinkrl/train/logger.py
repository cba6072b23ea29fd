"""What a run writes as it goes: metrics.jsonl, TensorBoard events, samples.jsonl.

One JSON object per line, each with its `step`. On resume from step S, lines after S (written
by the interrupted run past its last checkpoint) are dropped first, so the files hold each step
exactly once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


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
    tmp.write_text("".join(x + "\n" for x in keep), encoding="utf-8")
    os.replace(tmp, path)


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
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def samples(self, step: int, rows: list[dict]) -> None:
        with open(self.samples_path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
