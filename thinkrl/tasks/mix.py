"""Tasks made of tasks: `mix:A+B` batches, and a default list of the rewards that apply.

`mix:arithmetic+jsonl:recipes/data/general_prompts.jsonl` draws train prompts from both parts, so
one RL batch holds reasoning prompts (rule rewards: accuracy, format) and general prompts (a
reward model), each problem carrying which rewards apply in `meta["rewards"]` (see
thinkrl.rewards). The parts share the other `[task]` knobs (arithmetic reads `digits`, jsonl reads
`prompt_field`, ...).

- train: with `task.mix_weights` ("3,1"), part i is a share w_i / sum(w) of the train stream;
  smaller parts repeat (each repetition is shuffled with the rest by the RL loop's per-epoch
  shuffle). Without weights, the parts are simply put together (shares follow their sizes).
- eval: the parts' held-out problems that have a verifiable answer (the accuracy reward applies
  to them), so held-out accuracy during RL measures the reasoning part; open prompts judged by a
  reward model are left out.
- the verifier of a problem is its own part's; worked examples (`task.shots`) are the parts'
  examples, in part order.
Problem ids must not repeat across parts (two jsonl files of the same name would: rename one).
"""

from __future__ import annotations

import dataclasses
import math

from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, Wrapped, check_split


def _accuracy_applies(p: Problem) -> bool:
    names = p.meta.get("rewards")
    return (names is None or "accuracy" in names) and bool(p.answer.strip())


def weighted_stream(parts: list[list[Problem]], weights: list[float]) -> list[Problem]:
    """One list in which part i makes up weights[i] / sum(weights) of the entries (rounded).

    Its length is the smallest at which every weighted part appears at least once in full, so
    nothing is dropped; smaller parts cycle through their problems in order."""
    total = sum(weights)
    shares = [w / total for w in weights]
    length = max(math.ceil(len(ps) / s) for ps, s in zip(parts, shares) if s > 0)
    out: list[Problem] = []
    for ps, s in zip(parts, shares):
        n = round(s * length) if s > 0 else 0
        out += [ps[k % len(ps)] for k in range(n)]
    return out


class WithRewards(Wrapped):
    """A task whose problems, where they list no rewards of their own, get `names` (task.rewards)."""

    def __init__(self, task: Task, names: list[str]):
        super().__init__(task)
        self.names = list(names)

    def problems(self, split: str) -> list[Problem]:
        if split not in self._cache:
            self._cache[split] = [p if "rewards" in p.meta else dataclasses.replace(p, meta={**p.meta, "rewards": self.names})
                                  for p in self.task.problems(split)]
        return list(self._cache[split])


class Mix(Task):
    """Several tasks as one (see the module docstring)."""

    def __init__(self, parts: list[Task], weights: list[float] | None = None):
        if weights is not None and len(weights) != len(parts):
            raise UserError(f"task.mix_weights has {len(weights)} weights for {len(parts)} parts of the mix: give one each")
        self.parts, self.weights = parts, weights
        self.name = "mix:" + "+".join(t.name for t in parts)
        self._owner: dict[str, Task] = {}
        for t in parts:
            for split in ("train", "eval"):
                for p in t.problems(split):
                    other = self._owner.setdefault(p.id, t)
                    if other is not t:
                        raise UserError(f"task.name = '{self.name}': problem id '{p.id}' occurs in both '{other.name}' and "
                                        f"'{t.name}'; ids must be unique across the parts of a mix (rename one file)")

    def problems(self, split: str) -> list[Problem]:
        if check_split(split) == "eval":
            return [p for t in self.parts for p in t.problems("eval") if _accuracy_applies(p)]
        lists = [t.problems("train") for t in self.parts]
        if self.weights is None:
            return [p for ps in lists for p in ps]
        for t, ps, w in zip(self.parts, lists, self.weights):
            if w > 0 and not ps:
                raise UserError(f"task.mix_weights gives part '{t.name}' a share of training, but it has no train problems")
        return weighted_stream(lists, self.weights)

    def score(self, completion: str, problem: Problem) -> float:
        owner = self._owner.get(problem.id)
        if owner is None:
            raise KeyError(f"problem '{problem.id}' is not one of the mix {self.name}")
        return owner.score(completion, problem)

    def partial(self, completion: str, problem: Problem) -> float:
        owner = self._owner.get(problem.id)
        return owner.partial(completion, problem) if owner is not None else self.score(completion, problem)

    def examples(self) -> list[tuple[str, str]]:
        return [e for t in self.parts for e in t.examples()]

    def environment(self, problem: Problem):
        owner = self._owner.get(problem.id)
        return owner.environment(problem) if owner is not None else None

    def solution(self, problem: Problem) -> tuple[str, str] | None:
        owner = self._owner.get(problem.id)
        return owner.solution(problem) if owner is not None else None
