"""knights_knaves: seeded Knights-and-Knaves puzzles (Logic-RL's task), each with one solution.

On an island every inhabitant is a knight (always tells the truth) or a knave (always lies). A
puzzle names `people` inhabitants (2 to 8); each says one thing about the others or themselves,
drawn from STATEMENT_KINDS (task.statement_kinds picks a subset):

    is      "Bob is a knave."                       both    "Bob and I are both knights."
    either  "Bob is a knave or Carol is a knave."   same    "Bob and I are the same kind."
    diff    "Bob and Carol are different kinds."    if      "If Bob is a knight, then Carol is a knave."

How a puzzle is drawn (`draw_puzzle`): the hidden roles first, uniformly over the 2^N assignments
(so no fixed answer beats chance, 1 / 2^N, on all-correct scoring), then each speaker's statement
until it is true of a knight and false of a knave, and the whole puzzle is kept only if the
brute-force solver (`solve`, all 2^N assignments) finds exactly one assignment consistent with it;
otherwise the statements are drawn again. The reference answer is "Alice: knight, Bob: knave".

Splits never leak: train and eval come from separate seed streams, and a train puzzle whose text
occurs in eval is dropped (as arithmetic does). With 2 people the space of puzzle shapes is small
(a few dozen once names are set aside), so held-out puzzles share shapes with train puzzles under
other names; the next N (`people` + 1) is the test of whether what was learned carries over.

The verifier (`judge`) reads every person's role from the final answer (thinkrl.verify's
extraction: the last <answer>, else \\boxed{}), tolerant of form: "Alice: knight, Bob: knave",
"Alice is a knight and Bob is a knave", "Alice and Carol are knights", "Knights: Alice; knaves:
Bob", "Bob is not a knight", liar/truth-teller, any case. A malformed answer (none, a person left
out or given both roles, over MAX_ANSWER_CHARS) is an error with its reason, never an exception out
of `score`: the task scores it 0 and counts it in `errors` (a Counter of reasons). `score` is
all-correct (1/0), what `thinkrl eval` reports; the share of people right is the reward option
`rewards.custom = ["thinkrl.tasks.knights_knaves:people_share"]`, which raises MalformedAnswer on a
malformed answer so that the run counts it (reward/people_share/errors) and scores it 0.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from dataclasses import dataclass

from thinkrl import verify
from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, check_split

STATEMENT_KINDS = ("is", "both", "either", "same", "diff", "if")
NAMES = ("Alice", "Bob", "Carol", "Dave", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate", "Leo",
         "Mia", "Nick", "Olivia", "Paul", "Quinn", "Rose", "Sam", "Tina", "Uma", "Victor", "Wendy", "Zoe")  # fmt: skip
MAX_PEOPLE = 8
DRAWS_PER_PROBLEM = 20  # puzzles tried per wanted problem before a split stops short
STATEMENT_DRAWS = 50  # statements (and statement sets) tried per hidden assignment before drawing another
NUM_EXAMPLES = 4
WORKED_STYLES = ("check", "derive")  # task.knights_worked: how the example turns think (KnightsKnaves.solution)
MAX_ANSWER_CHARS = 2000  # a longer final answer is malformed (and the parse stays bounded)
ROLE = {True: "knight", False: "knave"}
INTRO = ("A very special island is inhabited only by knights and knaves. Knights always tell the truth, "
         "and knaves always lie. You meet {n} inhabitants: {names}.")  # fmt: skip


class MalformedAnswer(ValueError):
    """An answer that does not give every person exactly one role; the message says why, `kind`
    names the reason in a word or two (what `KnightsKnaves.errors` counts)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# ----------------------------------------------------------------------------- puzzles and the solver


def holds(statement: tuple, roles: tuple[bool, ...]) -> bool:
    """Is `statement` true when roles[i] says whether person i is a knight?"""
    kind, a, b, ra, rb = statement
    if kind == "is":
        return roles[a] == ra
    if kind == "both":
        return roles[a] == ra and roles[b] == ra
    if kind == "either":
        return roles[a] == ra or roles[b] == ra
    if kind == "same":
        return roles[a] == roles[b]
    if kind == "diff":
        return roles[a] != roles[b]
    return roles[a] != ra or roles[b] == rb  # if: a is ra -> b is rb


def consistent(statements: list[tuple], roles: tuple[bool, ...]) -> bool:
    """Every speaker (person i says statements[i]) tells the truth exactly when a knight."""
    return all(holds(s, roles) == roles[i] for i, s in enumerate(statements))


def solve(statements: list[tuple]) -> list[tuple[bool, ...]]:
    """Every assignment of roles consistent with the statements (brute force over 2^N)."""
    return [r for r in itertools.product((True, False), repeat=len(statements)) if consistent(statements, r)]


def _statement(rng: random.Random, speaker: int, n: int, kinds: tuple[str, ...]) -> tuple:
    """(kind, a, b, role a, role b): `is` names another person; two-person kinds two different ones."""
    kind = rng.choice(kinds)
    others = [i for i in range(n) if i != speaker]
    if kind == "is":
        a, b = rng.choice(others), -1
    else:
        a, b = rng.sample(range(n), 2)
        if a == speaker and kind != "if":  # "Bob and I", not "I and Bob"
            a, b = b, a
    return kind, a, b, rng.random() < 0.5, rng.random() < 0.5


def _true_statement(rng: random.Random, speaker: int, roles: tuple[bool, ...], kinds: tuple[str, ...]) -> tuple | None:
    """A statement that is true if the speaker is a knight and false if a knave, or None."""
    for _ in range(STATEMENT_DRAWS):
        s = _statement(rng, speaker, len(roles), kinds)
        if holds(s, roles) == roles[speaker]:
            return s
    return None


def draw_puzzle(rng: random.Random, n: int, kinds: tuple[str, ...]) -> tuple[tuple[bool, ...], list[tuple]] | None:
    """(roles, statements) with roles uniform over 2^n and exactly one consistent assignment; None
    if STATEMENT_DRAWS sets of statements for the drawn roles all leave it open (the caller draws
    again, and gives up after enough tries: some subsets of kinds never pin the roles down)."""
    roles = tuple(rng.random() < 0.5 for _ in range(n))
    for _ in range(STATEMENT_DRAWS):
        statements = [_true_statement(rng, speaker, roles, kinds) for speaker in range(n)]
        if None in statements:
            return None
        if solve(statements) == [roles]:
            return roles, statements
    return None


# ----------------------------------------------------------------------------- text


def _who(i: int, speaker: int, names: list[str]) -> str:
    return "I" if i == speaker else names[i]


def _clause(i: int, role: bool, speaker: int, names: list[str]) -> str:
    """'Bob is a knave' / 'I am a knight'."""
    return f"{_who(i, speaker, names)} {'am' if i == speaker else 'is'} a {ROLE[role]}"


def say(statement: tuple, speaker: int, names: list[str]) -> str:
    """The words of a statement as its speaker says them."""
    kind, a, b, ra, rb = statement
    if kind == "is":
        return _clause(a, ra, speaker, names)
    pair = f"{_who(a, speaker, names)} and {_who(b, speaker, names)}"
    if kind == "both":
        return f"{pair} are both {ROLE[ra]}s"
    if kind == "either":
        return f"{_clause(a, ra, speaker, names)} or {_clause(b, ra, speaker, names)}"
    if kind == "same":
        return f"{pair} are the same kind"
    if kind == "diff":
        return f"{pair} are different kinds"
    return f"If {_clause(a, ra, speaker, names)}, then {_clause(b, rb, speaker, names)}"


def make_question(names: list[str], statements: list[tuple]) -> str:
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    said = " ".join(f'{names[i]} says: "{say(s, i, names)}."' for i, s in enumerate(statements))
    return f"{INTRO.format(n=len(names), names=listed)} {said} Who is a knight and who is a knave?"


def format_roles(names: list[str], roles) -> str:
    """'Alice: knight, Bob: knave' (the reference answer's form)."""
    return ", ".join(f"{name}: {ROLE[bool(r)]}" for name, r in zip(names, roles))


def _named(people: dict[int, bool], names: list[str]) -> str:
    return " and ".join(f"{names[i]} is a {ROLE[r]}" for i, r in people.items())


def derivation(names: list[str], statements: list[tuple]) -> list[str] | None:
    """The roles pinned one statement at a time, in words: each step takes one speaker's statement
    and the roles found so far, and names whoever every consistent reading agrees on (a knight's
    words true, a knave's false). None when a puzzle needs two statements at once (then the
    worked example checks each statement against the solution instead)."""
    n, known, steps = len(names), {}, []
    while len(known) < n:
        for i, st in enumerate(statements):
            free = sorted({i, st[1], st[2]} - {-1} - set(known))
            fits = []
            for combo in itertools.product((True, False), repeat=len(free)):
                roles = {**known, **dict(zip(free, combo))}
                full = tuple(roles.get(k, True) for k in range(n))
                if holds(st, full) == full[i]:
                    fits.append(dict(zip(free, combo)))
            fixed = {k: fits[0][k] for k in free if fits and all(f[k] == fits[0][k] for f in fits)}
            if fixed:
                break
        else:
            return None
        words = f'"{say(st, i, names)}"'
        if i in known:  # the speaker's role says whether the words are true
            steps.append(f"{names[i]} is a {ROLE[known[i]]}, so {words} is {'true' if known[i] else 'false'}: {_named(fixed, names)}.")
        elif set(fixed) == {i} and free == [i]:  # the others' roles say whether the words are true, so who said them
            others = {k: known[k] for k in sorted({st[1], st[2]} - {-1, i})}
            steps.append(f"{_named(others, names)}, so {words} is {'true' if fixed[i] else 'false'}: {_named(fixed, names)}.")
        else:  # true from a knight or false from a knave, it says the same about someone
            steps.append(f"{names[i]} says {words}: true from a knight or false from a knave, either way {_named(fixed, names)}.")
        known.update(fixed)
    return steps


# ----------------------------------------------------------------------------- the verifier

_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
_KNIGHT = {"knight", "knights", "truth-teller", "truth-tellers", "truthteller", "truthtellers", "honest"}
_KNAVE = {"knave", "knaves", "liar", "liars"}
_NOT = {"not", "isn't", "aren't", "never"}


def parse_roles(answer: str | None, names: list[str]) -> dict[str, bool]:
    """Every named person's role in an answer, {name: is a knight}; MalformedAnswer otherwise.

    Read as words: a role word gives its role to the names since the previous role word ("Alice is
    a knight", "Alice and Bob are knaves"), negated by a "not" between ("Bob is not a knight").
    An answer that opens with a role word lists names after each role ("Knights: Alice, Carol;
    knaves: Bob"). Every person must get exactly one role; other words are ignored.
    """
    if answer is None or not answer.strip():
        raise MalformedAnswer("no answer")
    if len(answer) > MAX_ANSWER_CHARS:
        raise MalformedAnswer("too long", f"over {MAX_ANSWER_CHARS} characters")
    lower = {n.lower(): n for n in names}
    words = _WORD.findall(answer.lower())
    roles_first = next((w in _KNIGHT or w in _KNAVE for w in words if w in _KNIGHT or w in _KNAVE or w in lower), False)
    found: dict[str, bool] = {}
    pending: list[str] = []
    negated, current = False, None

    def give(name: str, role: bool) -> None:
        if found.get(name, role) != role:
            raise MalformedAnswer("two roles", name)
        found[name] = role

    for w in words:
        if w in lower:
            if roles_first and current is not None:
                give(lower[w], current)
            else:
                pending.append(lower[w])
                negated = False
        elif w in _NOT:
            negated = True
        elif w in _KNIGHT or w in _KNAVE:
            role = (w in _KNIGHT) != negated
            if roles_first:
                current = role
            for name in pending:
                give(name, role)
            pending, negated = [], False
    missing = [n for n in names if n not in found]
    if missing:
        raise MalformedAnswer("missing role", ", ".join(missing))
    return found


@dataclass(frozen=True)
class Verdict:
    """How an answer fares: people right of `total`, or the reason it is malformed."""

    right: int
    total: int
    error: str = ""  # MalformedAnswer.kind, "" for a well-formed answer


def judge(answer: str | None, problem: Problem) -> Verdict:
    names, roles = problem.meta["names"], problem.meta["roles"]
    try:
        given = parse_roles(answer, names)
    except MalformedAnswer as e:
        return Verdict(0, len(names), e.kind)
    return Verdict(sum(given[n] == bool(r) for n, r in zip(names, roles)), len(names))


def people_share(completion: str, reference: str, info: dict) -> float:
    """A reward (rewards.custom): the share of people whose role the answer gets right; a malformed
    answer raises MalformedAnswer, which the reward machinery scores 0 and counts."""
    verdict = judge(verify.extract_answer(completion), info["problem"])
    if verdict.error:
        raise MalformedAnswer(verdict.error)
    return verdict.right / verdict.total


# ----------------------------------------------------------------------------- the task


class KnightsKnaves(Task):
    """Knights-and-Knaves puzzles with `people` inhabitants; all-correct scoring."""

    name = "knights_knaves"

    def __init__(self, seed: int = 0, num_train: int = 10_000, num_eval: int = 500, people: int = 2,
                 kinds: str = ",".join(STATEMENT_KINDS), worked: str = "check"):  # fmt: skip
        self.seed, self.num_train, self.num_eval, self.people = seed, num_train, num_eval, people
        if worked not in WORKED_STYLES:
            raise ValueError(f"knights_knaves: worked {worked!r} (of {WORKED_STYLES})")
        self.worked = worked
        self.kinds = tuple(k.strip() for k in kinds.split(","))
        if not 2 <= people <= MAX_PEOPLE or not self.kinds or not set(self.kinds) <= set(STATEMENT_KINDS):
            raise ValueError(f"knights_knaves: people {people} (2..{MAX_PEOPLE}), kinds {kinds!r} (of {STATEMENT_KINDS})")
        self.errors: Counter = Counter()  # malformed answers scored, by reason
        self._cache: dict[str, list[Problem]] = {}

    def _generate(self, stream: str, count: int, exclude: set[str]) -> list[Problem]:
        rng, seen, out = random.Random(f"{self.seed}-{stream}-{self.people}"), set(exclude), []
        for _ in range(count * DRAWS_PER_PROBLEM):
            if len(out) == count:
                break
            names, drawn = rng.sample(NAMES, self.people), draw_puzzle(rng, self.people, self.kinds)
            if drawn is None:
                continue
            roles, statements = drawn
            question = make_question(names, statements)
            if question in seen:
                continue
            seen.add(question)
            meta = {"names": names, "roles": list(roles), "statements": [list(s) for s in statements]}
            out.append(Problem(f"knights_knaves-{stream}-{len(out)}", question, format_roles(names, roles), meta))
        if count and not out:
            raise UserError(f"no knights_knaves puzzle with one solution for the {stream} split from task.statement_kinds = "
                            f"{','.join(self.kinds)!r} and task.people = {self.people}: allow more kinds "
                            f"(all of them: {','.join(STATEMENT_KINDS)})")
        return out

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if "eval" not in self._cache:
            self._cache["eval"] = self._generate("eval", self.num_eval, set())
        if split == "train" and "train" not in self._cache:
            self._cache["train"] = self._generate("train", self.num_train, {p.question for p in self._cache["eval"]})
        return list(self._cache[split])

    def score(self, completion: str, problem: Problem) -> float:
        verdict = judge(self.extract(completion), problem)
        if verdict.error:
            self.errors[verdict.error] += 1
        return float(not verdict.error and verdict.right == verdict.total)

    def vote_key(self, answer: str) -> str:
        """The roles read from the answer in one form, so equal readings vote together."""
        names = _names_in(answer)
        try:
            return format_roles(names, [parse_roles(answer, names)[n] for n in names])
        except MalformedAnswer:
            return answer

    def solution(self, problem: Problem) -> tuple[str, str]:
        """The worked thinking and the answer: with worked = "derive" the roles pinned one statement
        at a time (`derivation`), where the puzzle allows; else each statement checked against the
        solution (a knight's true, a knave's false)."""
        names, roles = problem.meta["names"], problem.meta["roles"]
        steps = derivation(names, [tuple(s) for s in problem.meta["statements"]]) if self.worked == "derive" else None
        if steps:
            return " ".join(steps), problem.answer
        checks = [f"{names[i]} is a {ROLE[roles[i]]}, so \"{say(tuple(s), i, names)}\" is {'true' if roles[i] else 'false'}."
                  for i, s in enumerate(problem.meta["statements"])]  # fmt: skip
        return " ".join(checks), problem.answer

    def examples(self) -> list[tuple[str, str]]:
        """Worked puzzles from their own stream (never an eval puzzle)."""
        eval_questions = {p.question for p in self.problems("eval")}
        out = []
        for p in self._generate("examples", NUM_EXAMPLES, eval_questions):
            think, answer = self.solution(p)
            out.append((p.question, f"<think>{think}</think> <answer>{answer}</answer>"))
        return out


def _names_in(answer: str) -> list[str]:
    """The known names an answer mentions, in order of first mention (for vote keys)."""
    words = [w.capitalize() for w in _WORD.findall(answer[:MAX_ANSWER_CHARS].lower())]
    return list(dict.fromkeys(w for w in words if w in NAMES))
