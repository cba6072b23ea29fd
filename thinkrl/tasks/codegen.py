"""A generated family of small function-writing problems with hidden tests (task name `code`).

"Write a Python function `f(x)` that returns x * 3 + 1." Each problem comes from one of TEMPLATES
with random constants, so problems vary; its hidden tests are `assert f(...) == ...` on inputs
drawn for that problem, with the expected values computed here by the template's own reference
function (our code, not the model's). The model's code runs in the sandbox (thinkrl.tasks.code).

Splits never leak: eval and train come from separate seed streams ("{seed}-eval", "{seed}-train")
and a train problem whose question also occurs in eval is dropped (duplicates are dropped too).
The problem space is finite (about 570 questions), so a split may hold fewer than asked.
Worked examples (`task.shots`) come from a third stream and never repeat an eval question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from thinkrl.tasks.base import Problem, check_split
from thinkrl.tasks.code import CodeTask

DRAWS_PER_PROBLEM = 20
TESTS = 5
NUM_EXAMPLES = 4
INSTRUCTION = "Write the function in a ```python code block."
LETTERS = "abcdeilnorstu"


def _ints(r: random.Random) -> list[int]:
    return [r.randint(-9, 99) for _ in range(r.randint(1, 6))]


def _word(r: random.Random) -> str:
    return "".join(r.choice(LETTERS) for _ in range(r.randint(3, 25)))


@dataclass(frozen=True)
class Template:
    """One kind of problem: its argument list, what f returns ({k}, {m}, {c}: the constants), the
    reference body, how to draw test arguments, and the reference function."""

    args: str
    says: str
    body: str
    draw: Callable[[random.Random], tuple]
    ref: Callable[..., object]


def _xs(r):
    return (_ints(r),)


def _s(r):
    return (_word(r),)


def _ab(r):
    return (r.randint(-20, 50), r.randint(-20, 50))


def _n(r):
    return (r.randint(0, 12),)


# Sized for the embedded SmolLM2-135M-Instruct (greedy, zero-shot): templates it always solved
# (x * k + m, x * x + m, max(x, m), s * k, a list scaled by k, divisibility) are left out, so the
# held-out pass@1 starts low but not at zero (see benchmarks/RESULTS.md).
TEMPLATES: dict[str, Template] = {
    "two": Template("a, b", "returns a * {k} + b", "return a * {k} + b", _ab, lambda a, b, k, m, c: a * k + b),
    "max_two": Template("a, b", "returns the larger of a and b, plus {m}", "return max(a, b) + {m}", _ab,
                        lambda a, b, k, m, c: max(a, b) + m),
    "shift": Template("xs", "returns a new list with {m} added to every number of the list xs",
                      "return [x + {m} for x in xs]", _xs, lambda xs, k, m, c: [x + m for x in xs]),
    "sum_plus": Template("xs", "returns the sum of the numbers in the list xs plus {m}", "return sum(xs) + {m}", _xs,
                         lambda xs, k, m, c: sum(xs) + m),
    "count_above": Template("xs", "returns how many numbers in the list xs are greater than {m}",
                            "return sum(1 for x in xs if x > {m})", _xs, lambda xs, k, m, c: sum(x > m for x in xs)),
    "below": Template("xs", "returns the list of the numbers in xs that are less than {m}, in order",
                      "return [x for x in xs if x < {m}]", _xs, lambda xs, k, m, c: [x for x in xs if x < m]),
    "prefix": Template("s", "returns the first {k} characters of the string s", "return s[:{k}]", _s,
                       lambda s, k, m, c: s[:k]),
    "count_char": Template("s", "returns the number of times the letter '{c}' occurs in the string s",
                           "return s.count('{c}')", _s, lambda s, k, m, c: s.count(c)),
    "multiples": Template("n", "returns the list of the first n multiples of {k}: [{k}, {k2}, ...]",
                          "return [{k} * i for i in range(1, n + 1)]", _n, lambda n, k, m, c: [k * i for i in range(1, n + 1)]),
}


class CodeGen(CodeTask):
    """Generated function-writing problems, ids `code-{split}-{i}`, TESTS hidden tests each."""

    name = "code"

    def __init__(self, seed: int = 0, num_train: int = 10_000, num_eval: int = 500, timeout_s: float = 5.0, workers: int = 4):
        super().__init__(timeout_s=timeout_s, workers=workers)
        self.seed, self.num_train, self.num_eval = seed, num_train, num_eval
        self._cache: dict[str, list[Problem]] = {}

    @staticmethod
    def make(kind: str, k: int, m: int, c: str, rng: random.Random, pid: str) -> Problem:
        """One problem of template `kind` with constants k, m, c; its test inputs drawn from `rng`."""
        t = TEMPLATES[kind]
        consts = {"k": k, "m": m, "c": c, "k2": 2 * k}
        question = f"Write a Python function `f({t.args})` that {t.says.format(**consts)}.\n{INSTRUCTION}"
        solution = f"def f({t.args}):\n    {t.body.format(**consts)}"
        tests, seen = [], set()
        for _ in range(TESTS * 10):
            args = t.draw(rng)
            call = f"f({', '.join(repr(a) for a in args)})"
            if call not in seen:
                seen.add(call)
                tests.append(f"assert {call} == {t.ref(*args, k, m, c)!r}")
            if len(tests) == TESTS:
                break
        return Problem(id=pid, question=question, answer=solution, meta={"tests": tests, "template": kind})

    def _generate(self, stream: str, count: int, exclude: set[str]) -> list[Problem]:
        rng, seen, out = random.Random(f"{self.seed}-{stream}"), set(exclude), []
        kinds = sorted(TEMPLATES)
        for _ in range(count * DRAWS_PER_PROBLEM):
            if len(out) == count:
                break
            kind, k, m, c = rng.choice(kinds), rng.randint(2, 20), rng.randint(0, 99), rng.choice(LETTERS)
            p = self.make(kind, k, m, c, rng, f"code-{stream}-{len(out)}")
            if p.question not in seen:
                seen.add(p.question)
                out.append(p)
        return out

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if "eval" not in self._cache:
            self._cache["eval"] = self._generate("eval", self.num_eval, set())
        if split == "train" and "train" not in self._cache:
            self._cache["train"] = self._generate("train", self.num_train, {p.question for p in self._cache["eval"]})
        return list(self._cache[split])

    def solution(self, problem: Problem) -> tuple[str, str]:
        """The reference function, fenced: what a correct answer looks like."""
        return "", f"```python\n{problem.answer}\n```"

    def examples(self) -> list[tuple[str, str]]:
        """(question, fenced reference) pairs from their own stream, never an eval question."""
        eval_questions = {p.question for p in self.problems("eval")}
        return [(p.question, f"```python\n{p.answer}\n```") for p in self._generate("examples", NUM_EXAMPLES, eval_questions)]
