"""What every task is: problems with a reference answer, and one verifier used by eval and rewards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thinkrl import verify
from thinkrl.errors import UserError

SPLITS = ("train", "eval")


def check_split(split: str) -> str:
    """The split name, if it is one of SPLITS; a UserError otherwise (a typo must not mean 'no data')."""
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class Problem:
    """One question. `answer` is the reference the verifier compares against (a string)."""

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


class Task:
    """A source of problems plus the one verifier that judges completions for them.

    Subclasses implement `problems(split)` (split is "train" or "eval"; anything else is a
    UserError, see `check_split`); most keep the default answer extraction and math
    equivalence. `examples()` gives worked (question, response) pairs drawn from the train side,
    used for few-shot format priming; they never come from the eval split.
    """

    name: str = "task"

    def problems(self, split: str) -> list[Problem]:
        raise NotImplementedError

    def extract(self, completion: str) -> str | None:
        """The final answer in a completion, or None (no <answer> tag and no \\boxed{})."""
        return verify.extract_answer(completion)

    def score(self, completion: str, problem: Problem) -> float:
        """1.0 if the completion's final answer is correct, else 0.0. The verifier.

        The question goes with it: an answer that restates an expression of the question ("2^{10}"
        for "What is 2^{10}?") is not taken for the number it evaluates to (thinkrl.verify)."""
        pred = self.extract(completion)
        return float(pred is not None and verify.math_equal(pred, problem.answer, question=problem.question))

    def score_batch(self, completions: list[str], problems: list[Problem]) -> list[float]:
        """`score` of each completion on its problem. A task whose verifier is costly (code runs in
        the sandbox: thinkrl.tasks.code) judges them all at once, in parallel."""
        return [self.score(c, p) for c, p in zip(completions, problems)]

    def partial(self, completion: str, problem: Problem) -> float:
        """Partial credit in 0..1 where a task has it (the share of a code task's tests passed,
        `[rewards] code_mode = "share"`); the verifier's 1/0 otherwise."""
        return self.score(completion, problem)

    def outcomes(self, completions: list[str], problems: list[Problem]) -> list[str] | None:
        """Why each completion scored what it did, where the task says (a code task: pass, wrong,
        crash, syntax_error, timeout, no_code), counted in the metrics; None for most tasks."""
        return None

    def vote_key(self, answer: str) -> str:
        """Canonical form of an extracted answer, so equal answers get one vote (maj@k)."""
        return verify.canonical(answer)

    def examples(self) -> list[tuple[str, str]]:
        """Worked (question, assistant response) pairs for few-shot priming; none by default."""
        return []

    def solution(self, problem: Problem) -> tuple[str, str] | None:
        """A written worked solution of `problem`, (reasoning, final answer) without tags, or None.

        Where a task has one (GSM8K's human-written solutions, the computation of a procedural
        task), `thinkrl sample --set source=solutions` writes it as curated SFT data: R1's cold
        start from readable, human-style chains of thought instead of a model's samples."""
        return None

    def solutions(self, problem: Problem) -> list[tuple[str, str] | None]:
        """Every written solution of `problem` (one per problem unless a task writes several, as
        arithmetic's solution_style = "every" does); same count for every problem of a task."""
        return [self.solution(problem)]

    def environment(self, problem: Problem):
        """A fresh thinkrl.envs.Environment for one completion of `problem` where the task is a
        conversation (guess); None for a single-turn task (the default)."""
        return None


class Wrapped(Task):
    """A task that changes only the problems of `task`; everything else is `task`'s. A subclass
    overrides `problems`, and `inner` when its problems differ from the ones `task` knows."""

    def __init__(self, task: Task):
        self.task, self.name = task, task.name
        self._cache: dict[str, list[Problem]] = {}

    def inner(self, problem: Problem) -> Problem:
        """The problem as `task` made it (identity unless a subclass changed ids)."""
        return problem

    def extract(self, completion: str) -> str | None:
        return self.task.extract(completion)

    def score(self, completion: str, problem: Problem) -> float:
        return self.task.score(completion, self.inner(problem))

    def score_batch(self, completions: list[str], problems: list[Problem]) -> list[float]:
        return self.task.score_batch(completions, [self.inner(p) for p in problems])

    def partial(self, completion: str, problem: Problem) -> float:
        return self.task.partial(completion, self.inner(problem))

    def outcomes(self, completions: list[str], problems: list[Problem]) -> list[str] | None:
        return self.task.outcomes(completions, [self.inner(p) for p in problems])

    def vote_key(self, answer: str) -> str:
        return self.task.vote_key(answer)

    def examples(self) -> list[tuple[str, str]]:
        return self.task.examples()

    def solution(self, problem: Problem) -> tuple[str, str] | None:
        return self.task.solution(self.inner(problem))

    def solutions(self, problem: Problem) -> list[tuple[str, str] | None]:
        return self.task.solutions(self.inner(problem))

    def environment(self, problem: Problem):
        return self.task.environment(self.inner(problem))
