"""Thinking budgets (L1 / LCPO): the prompt asks for a length, the reward holds the model to it.

With `task.think_budgets = "16,32,64"` every problem carries a budget in `meta["think_budget"]`
and its question ends with "Think for N tokens." (the L1 paper's instruction; `prompts.py`
appends it). The train side gives each problem one budget, drawn from the list by a hash of its
id (stable across processes and resumes, so a resumed run sees the same prompts); the eval side
holds every problem once per budget, so an evaluation reports accuracy and length per budget
(`budget/<N>/...` in the metrics). The L1 rewards (`rewards.length_l1`, see rewards/length.py)
read the budget and the completion's token count.
"""

from __future__ import annotations

import dataclasses
import hashlib

from thinkrl.tasks.base import Problem, Task, Wrapped, check_split


def parse_budgets(text: str) -> list[int] | None:
    """'16, 32,64' -> [16, 32, 64]; None unless comma-separated positive integers."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        return None
    return [int(p) for p in parts]


def draw_budget(problem_id: str, budgets: list[int], seed: int = 0) -> int:
    """One of `budgets` for a problem, from a hash of its id: the same in every process."""
    digest = hashlib.sha256(f"{seed}:{problem_id}".encode()).digest()
    return budgets[int.from_bytes(digest[:8], "big") % len(budgets)]


def nearest_budget(tokens: int, budgets: list[int]) -> int:
    """The budget closest to a response of `tokens` tokens (the smaller one on a tie): hindsight
    relabeling, where a sample becomes the answer to the budget it happened to meet."""
    return min(budgets, key=lambda b: (abs(b - tokens), b))


def with_budget(problem: Problem, budget: int, new_id: str | None = None) -> Problem:
    meta = {**problem.meta, "think_budget": budget, "base_id": problem.id}
    return dataclasses.replace(problem, id=new_id or problem.id, meta=meta)


class Budgeted(Wrapped):
    """`task` with a thinking budget on every problem (see the module docstring)."""

    def __init__(self, task: Task, budgets: list[int], seed: int = 0):
        super().__init__(task)
        self.budgets, self.seed = list(budgets), seed

    def problems(self, split: str) -> list[Problem]:
        if check_split(split) not in self._cache:
            inner = self.task.problems(split)
            if split == "train":
                out = [with_budget(p, draw_budget(p.id, self.budgets, self.seed)) for p in inner]
            else:  # problem-major, so `--limit N` keeps every budget (N / len(budgets) problems each)
                out = [with_budget(p, b, f"{p.id}@{b}" if len(self.budgets) > 1 else None) for p in inner for b in self.budgets]
            self._cache[split] = out
        return list(self._cache[split])

    def inner(self, problem: Problem) -> Problem:
        return dataclasses.replace(problem, id=problem.meta.get("base_id", problem.id))
