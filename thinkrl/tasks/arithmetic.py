"""Arithmetic: seeded procedural questions like "What is 54 * 8?", for quick RL sanity runs.

Each question has `operands` numbers of `min_digits`..`max_digits` digits joined by operators from
`ops` (a subset of "+-*"), evaluated with the usual precedence by our own code (never `eval`).

Splits never leak: train and eval come from separate seed streams ("{seed}-train", "{seed}-eval"),
and any train question whose text also occurs in eval is dropped (duplicates within a split are
dropped too). When the question space is small, a split may hold fewer than asked for: drawing
stops after DRAWS_PER_PROBLEM attempts per wanted problem. Worked examples come from a third
stream ("{seed}-examples") and never repeat an eval question.
"""

from __future__ import annotations

import random

from thinkrl.tasks.base import Problem, Task, check_split

DRAWS_PER_PROBLEM = 20
NUM_EXAMPLES = 4


def _number(rng: random.Random, min_digits: int, max_digits: int) -> int:
    """A number with a uniformly drawn digit count; 1-digit numbers include 0."""
    digits = rng.randint(min_digits, max_digits)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def evaluate(nums: list[int], ops: list[str]) -> int:
    """nums[0] ops[0] nums[1] ... with * before + and -, left to right. len(ops) == len(nums) - 1."""
    terms, signs = [nums[0]], [1]
    for op, n in zip(ops, nums[1:]):
        if op == "*":
            terms[-1] *= n
        else:
            terms.append(n)
            signs.append(1 if op == "+" else -1)
    return sum(s * t for s, t in zip(signs, terms))


def expression(nums: list[int], ops: list[str]) -> str:
    """'54 * 8 + 3' for nums [54, 8, 3] and ops ['*', '+']."""
    parts = [str(nums[0])]
    for op, n in zip(ops, nums[1:]):
        parts += [op, str(n)]
    return " ".join(parts)


def _product_steps(a: int, b: int) -> str:
    """'54 * 8 = 50 * 8 + 4 * 8 = 400 + 32 = 432': split the longer factor by place value."""
    big, small, swapped = (a, b, False) if len(str(a)) >= len(str(b)) else (b, a, True)
    digits = str(big)
    pieces = [int(d) * 10 ** (len(digits) - i - 1) for i, d in enumerate(digits) if d != "0"]
    if len(pieces) < 2 or small < 2:
        return f"{a} * {b} = {a * b}"

    def mul(x: int) -> str:
        return f"{small} * {x}" if swapped else f"{x} * {small}"

    split = " + ".join(mul(p) for p in pieces)
    partials = " + ".join(str(p * small) for p in pieces)
    return f"{a} * {b} = {split} = {partials} = {a * b}"


def worked_steps(nums: list[int], ops: list[str]) -> str:
    """The computation as a short chain of real steps: products first, then left-to-right sums."""
    steps, terms, term_ops = [], [nums[0]], []
    for op, n in zip(ops, nums[1:]):
        if op == "*":
            steps.append(_product_steps(terms[-1], n))
            terms[-1] *= n
        else:
            terms.append(n)
            term_ops.append(op)
    total = terms[0]
    for op, t in zip(term_ops, terms[1:]):
        new = total + t if op == "+" else total - t
        steps.append(f"{total} {op} {t} = {new}")
        total = new
    return ". ".join(steps) if steps else str(total)


WRITTEN = ("worked", "short", "checked")  # the lengths "mixed" and "every" cycle through
SOLUTION_STYLES = (*WRITTEN, "python", "mixed", "every")


def style_cycle(spec: str) -> list[str] | None:
    """The styles written solutions take in turn: "checked" -> [checked]; "mixed" -> worked, short,
    checked; "checked:6,worked:3,short:1" -> six checked, three worked, one short. None if invalid.
    "every" cycles like "mixed" in `solution`; `solutions` then writes all three per problem."""
    if spec in ("mixed", "every"):
        spec = "worked:1,short:1,checked:1"
    cycle = []
    for part in spec.split(","):
        style, _, weight = part.strip().partition(":")
        if style not in (*WRITTEN, "python") or not (weight or "1").isdigit():
            return None
        cycle += [style] * int(weight or "1")
    return cycle or None


def written_steps(nums: list[int], ops: list[str], style: str = "worked") -> str:
    """A written solution in one of the styles (`style`, one of SOLUTION_STYLES but mixed and every):

    short    "54 * 8 = 432"                                  the result alone, as R1-Zero writes it
    worked   "54 * 8 = 50 * 8 + 4 * 8 = 400 + 32 = 432"      the computation step by step
    checked  the worked steps, then "Check: " and the same computation again with the operands in
             reverse order (sums and products keep their value reversed; with "-" the check
             restates the result)
    python   "<python>print(54 * 8)</python><result>432</result> 54 * 8 = 432": a call of the
             Python tool (thinkrl.tools) with the result the engine would insert, then the result
    """
    result = f"{expression(nums, ops)} = {evaluate(nums, ops)}"
    if style == "short":
        return result
    if style == "python":
        return f"<python>print({expression(nums, ops)})</python><result>{evaluate(nums, ops)}</result> {result}"
    worked = worked_steps(nums, ops)
    if style == "worked":
        return worked
    again = worked_steps(nums[::-1], ops[::-1]) if set(ops) <= {"+", "*"} else result
    return f"{worked}. Check: {again}"


class Arithmetic(Task):
    """Procedural arithmetic with exact integer answers."""

    name = "arithmetic"

    def __init__(self, seed: int = 0, num_train: int = 10_000, num_eval: int = 500, operands: int = 2,
                 min_digits: int = 1, max_digits: int = 3, ops: str = "+-*", digits: str = "",
                 solution_style: str = "worked"):  # fmt: skip
        self.seed, self.num_train, self.num_eval = seed, num_train, num_eval
        self.solution_cycle = style_cycle(solution_style)  # what solution() writes, problem by problem
        self.every_style = solution_style == "every"  # solutions(): all three lengths of each problem
        if self.solution_cycle is None:
            raise ValueError(f"unknown solution style {solution_style!r}")
        self.operands, self.min_digits, self.max_digits, self.ops = operands, min_digits, max_digits, ops
        # "2,1": operand i has exactly that many digits (54 * 8); empty: min_digits..max_digits for each
        self.digits = [int(d) for d in digits.split(",")] if digits else []
        self._cache: dict[str, list[Problem]] = {}

    def _draw(self, rng: random.Random) -> tuple[list[int], list[str]]:
        if self.digits:
            nums = [_number(rng, d, d) for d in self.digits]
        else:
            nums = [_number(rng, self.min_digits, self.max_digits) for _ in range(self.operands)]
        return nums, [rng.choice(self.ops) for _ in range(len(nums) - 1)]

    def _generate(self, stream: str, count: int, exclude: set[str]) -> list[Problem]:
        """Up to `count` distinct problems from one seed stream, skipping questions in `exclude`."""
        rng, seen, out = random.Random(f"{self.seed}-{stream}"), set(exclude), []
        for _ in range(count * DRAWS_PER_PROBLEM):
            if len(out) == count:
                break
            nums, ops = self._draw(rng)
            question = f"What is {expression(nums, ops)}?"
            if question in seen:
                continue
            seen.add(question)
            out.append(Problem(id=f"arithmetic-{stream}-{len(out)}", question=question,
                               answer=str(evaluate(nums, ops)), meta={"numbers": nums, "ops": ops}))  # fmt: skip
        return out

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if "eval" not in self._cache:
            self._cache["eval"] = self._generate("eval", self.num_eval, set())
        if split == "train" and "train" not in self._cache:
            eval_questions = {p.question for p in self._cache["eval"]}
            self._cache["train"] = self._generate("train", self.num_train, eval_questions)
        return list(self._cache[split])

    def solution(self, problem: Problem) -> tuple[str, str]:
        """The computation step by step: "54 * 8 = 50 * 8 + 4 * 8 = 400 + 32 = 432" (see written_steps
        for the other styles; a mix takes them in turn by the problem's number, see style_cycle)."""
        style = self.solution_cycle[int(problem.id.rsplit("-", 1)[-1]) % len(self.solution_cycle)]
        return written_steps(problem.meta["numbers"], problem.meta["ops"], style), problem.answer

    def solutions(self, problem: Problem) -> list[tuple[str, str]]:
        """solution_style = "every": the problem at all three lengths (short, worked, checked), so in
        data relabeled with budgets a question comes with each budget and the budget alone says
        which length is wanted; otherwise [solution(problem)]."""
        if not self.every_style:
            return [self.solution(problem)]
        nums, ops = problem.meta["numbers"], problem.meta["ops"]
        return [(written_steps(nums, ops, style), problem.answer) for style in ("short", "worked", "checked")]

    def examples(self) -> list[tuple[str, str]]:
        """Worked examples from their own stream, never an eval question."""
        eval_questions = {p.question for p in self.problems("eval")}
        worked = []
        for p in self._generate("examples", NUM_EXAMPLES * 5, eval_questions):
            steps, _ = self.solution(p)
            shown = worked_steps(p.meta["numbers"], p.meta["ops"]).count("=")
            worked.append((p.question, f"<think>{steps}</think> <answer>{p.answer}</answer>", shown))
        # examples whose computation takes steps ("54 * 8 = 50 * 8 + 4 * 8 = ..."), not "62 * 1 = 62",
        # judged on the worked form so that a check ("54 * 0 = 0. Check: 0 * 54 = 0") does not count
        worked.sort(key=lambda w: -min(w[2], 2))
        return [(q, a) for q, a, _ in worked[:NUM_EXAMPLES]]
