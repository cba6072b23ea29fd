"""Countdown: combine the given numbers with + - * / and parentheses to hit a target.

Instances are generated solvable: draw `numbers` numbers from 1..max_number, build a random
expression tree over all of them, and keep it when its exact value is an integer in
1..target_max; that expression is stored as `meta["solution"]`. Train, eval and worked examples
come from separate seed streams, and a train puzzle with the same numbers (as a multiset) and
target as an eval puzzle is dropped, so eval puzzles are never trained on.

The verifier is our own: the answer (left of any '=') is tokenised and parsed by a small
recursive-descent parser over integers, + - * /, and parentheses (also × and ÷); anything else,
unary signs included, is rejected. Arithmetic is exact (Fraction); division by zero is wrong.
The numbers used must be exactly the given multiset, and the value must equal the target.
Length, token and nesting limits bound the work on hostile text.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

from thinkrl import verify
from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, check_split

MAX_EQUATION_CHARS = 200
MAX_TOKENS = 100
MAX_DEPTH = 20  # nested parentheses
MAX_NUMBER_DIGITS = 12
DRAWS_PER_PROBLEM = 50
NUM_EXAMPLES = 4
_TOKEN = re.compile(r"\s*(?:(\d+)|([-+*/()]))")
_ALIASES = (("×", "*"), ("÷", "/"), ("\\times", "*"), ("\\div", "/"), ("\\cdot", "*"), ("−", "-"), ("$", ""))


class _Reject(Exception):
    """Not an equation this checker accepts."""


# ----------------------------------------------------------------------------- the checker


def tokenize(text: str) -> list[str]:
    """Integers, operators and parentheses; anything else rejects the whole text."""
    for alias, op in _ALIASES:
        text = text.replace(alias, op)
    text = text.strip()
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or len(tokens) >= MAX_TOKENS:
            raise _Reject(text)
        tok = m.group(1) or m.group(2)
        if m.group(1) and len(tok) > MAX_NUMBER_DIGITS:
            raise _Reject(tok)
        tokens.append(tok)
        pos = m.end()
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)*; term := atom (('*'|'/') atom)*; atom := INT | '(' expr ')'."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.used = tokens, 0, []

    def parse(self) -> Fraction:
        value = self.expr(0)
        if self.pos != len(self.tokens):
            raise _Reject("trailing tokens")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise _Reject("unexpected end")
        self.pos += 1
        return tok

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            value = value + self.term(depth) if self.take() == "+" else value - self.term(depth)
        return value

    def term(self, depth: int) -> Fraction:
        value = self.atom(depth)
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.atom(depth)
            if op == "/" and rhs == 0:
                raise _Reject("division by zero")
            value = value * rhs if op == "*" else value / rhs
        return value

    def atom(self, depth: int) -> Fraction:
        tok = self.take()
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise _Reject("too deep")
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise _Reject("unclosed parenthesis")
            return value
        if tok.isdigit():
            self.used.append(int(tok))
            return Fraction(int(tok))
        raise _Reject(f"unexpected {tok!r}")


def equation_side(answer: str) -> str:
    """The expression part of an answer: unboxed, and the left side of 'expr = value'."""
    if "\\boxed" in answer or "\\fbox" in answer:
        answer = verify.extract_answer(answer) or answer
    return answer.split("=", 1)[0] if "=" in answer else answer


def evaluate_equation(answer: str) -> tuple[Fraction, list[int]] | None:
    """(exact value, numbers used in order) of an answer's expression, or None if rejected."""
    text = equation_side(answer)
    if len(text) > MAX_EQUATION_CHARS:
        return None
    try:
        parser = _Parser(tokenize(text))
        return parser.parse(), parser.used
    except (_Reject, RecursionError, ZeroDivisionError):
        return None


def check(answer: str | None, numbers: list[int], target: int) -> bool:
    """True if `answer` uses exactly `numbers` (as a multiset) and evaluates to `target`."""
    if not isinstance(answer, str):
        return False
    result = evaluate_equation(answer)
    if result is None:
        return False
    value, used = result
    return value == target and Counter(used) == Counter(numbers)


# ----------------------------------------------------------------------------- generation


def _combine(a: Fraction, op: str, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    return a * b if op == "*" else a / b


def _random_solution(rng: random.Random, nums: list[int]) -> tuple[Fraction, str, list[str]] | None:
    """A random expression tree over all of `nums`: (value, text, evaluation steps).

    Items are (value, text, kind) with kind atom/sum/product; parentheses are added only where
    precedence needs them. None when the tree divides by zero.
    """
    items = [(Fraction(n), str(n), "atom") for n in nums]
    rng.shuffle(items)
    steps = []
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        (a, ta, ka), (b, tb, kb) = items[i], items[i + 1]
        op = rng.choice("+-*/")
        if op == "/" and b == 0:
            return None
        value, low = _combine(a, op, b), op in "*/"
        ta = f"({ta})" if low and ka == "sum" else ta
        tb = f"({tb})" if (low and kb != "atom") or (op == "-" and kb == "sum") else tb
        steps.append(f"{_operand(a)} {op} {_operand(b)} = {_fmt(value)}")
        items[i : i + 2] = [(value, f"{ta} {op} {tb}", "product" if low else "sum")]
    return items[0][0], items[0][1], steps


def make_question(nums: list[int], target: int) -> str:
    return (
        f"Using the numbers [{', '.join(map(str, nums))}], create an equation that equals {target}. "
        "Each number must be used exactly once; you may use + - * / and parentheses."
    )


class Countdown(Task):
    """Countdown puzzles; the reference answer is the target, the verifier checks the equation."""

    name = "countdown"

    def __init__(self, seed: int = 0, num_train: int = 10_000, num_eval: int = 500, numbers: int = 3,
                 max_number: int = 100, target_max: int = 1000):  # fmt: skip
        self.seed, self.num_train, self.num_eval = seed, num_train, num_eval
        self.numbers, self.max_number, self.target_max = numbers, max_number, target_max
        self._cache: dict[str, list[Problem]] = {}

    def _draw(self, rng: random.Random) -> Problem | None:
        nums = [rng.randint(1, self.max_number) for _ in range(self.numbers)]
        solved = _random_solution(rng, nums)
        if solved is None or solved[0].denominator != 1 or not 1 <= solved[0] <= self.target_max:
            return None
        target = int(solved[0])
        meta = {"numbers": nums, "target": target, "solution": solved[1], "steps": solved[2]}
        return Problem(id="", question=make_question(nums, target), answer=str(target), meta=meta)

    def _generate(self, stream: str, count: int, exclude: set[tuple]) -> list[Problem]:
        """Up to `count` distinct puzzles from one stream; a puzzle is (sorted numbers, target)."""
        rng, seen, out = random.Random(f"{self.seed}-{stream}"), set(exclude), []
        for _ in range(max(count, 1) * DRAWS_PER_PROBLEM):
            if len(out) == count:
                break
            p = self._draw(rng)
            if p is None or _key(p) in seen:
                continue
            seen.add(_key(p))
            out.append(Problem(f"countdown-{stream}-{len(out)}", p.question, p.answer, p.meta))
        if count and not out:
            raise UserError(
                f"no countdown puzzles for the {stream} split: task.numbers / task.max_number / task.target_max "
                "allow too few distinct puzzles; raise task.max_number or task.target_max"
            )
        return out

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if "eval" not in self._cache:
            self._cache["eval"] = self._generate("eval", self.num_eval, set())
        if split == "train" and "train" not in self._cache:
            self._cache["train"] = self._generate("train", self.num_train, {_key(p) for p in self._cache["eval"]})
        return list(self._cache[split])

    def score(self, completion: str, problem: Problem) -> float:
        return float(check(self.extract(completion), problem.meta["numbers"], problem.meta["target"]))

    def vote_key(self, answer: str) -> str:
        """The equation's value (so equal results vote together), else the raw answer."""
        result = evaluate_equation(answer)
        return str(result[0]) if result is not None else answer

    def examples(self) -> list[tuple[str, str]]:
        """Worked puzzles from their own stream (never an eval puzzle): the solution computed step by step."""
        eval_keys = {_key(p) for p in self.problems("eval")}
        out = []
        for p in self._generate("examples", NUM_EXAMPLES, eval_keys):
            think, equation = self.solution(p)
            out.append((p.question, f"<think>{think}</think> <answer>{equation}</answer>"))
        return out

    def solution(self, problem: Problem) -> tuple[str, str]:
        """The generating equation, computed step by step; the answer is the equation."""
        nums, target, equation = problem.meta["numbers"], problem.meta["target"], problem.meta["solution"]
        steps = ", ".join(problem.meta["steps"])
        return f"I need {target} from {', '.join(map(str, nums))}. Try {equation}: {steps}. That works.", equation


def _key(p: Problem) -> tuple:
    return (tuple(sorted(p.meta["numbers"])), p.meta["target"])


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _operand(x: Fraction) -> str:
    """An intermediate value as an operand in a step: '(-12)', '(7/2)', '5'."""
    return f"({_fmt(x)})" if x < 0 or x.denominator != 1 else _fmt(x)
