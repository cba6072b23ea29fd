"""AIME 2025: the 30 problems of AIME I and II (answers are integers 0..999). Eval only.

With 30 problems, one problem is 3.3 points: report pass@k / maj@k over several samples rather
than one greedy pass. There is no train split; asking for one is a UserError.
"""

from __future__ import annotations

from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, check_split
from thinkrl.tasks.data import read_rows

PARTS = ("I", "II")


class AIME2025(Task):
    """The 30 AIME 2025 problems, ids `aime2025-I-1` .. `aime2025-II-15`."""

    name = "aime2025"

    def problems(self, split: str) -> list[Problem]:
        if check_split(split) == "train":
            raise UserError("AIME 2025 is eval-only (30 problems): train on another task, e.g. task.name = \"gsm8k\"")
        return [
            Problem(id=f"aime2025-{part}-{i}", question=row["question"], answer=str(row["answer"]).strip())
            for part in PARTS
            for i, row in enumerate(read_rows("AIME2025", f"aime2025-{part}.jsonl"), start=1)
        ]
