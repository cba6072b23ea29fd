"""knights_knaves: puzzles with one solution, disjoint seeded splits, a tolerant verifier that never raises."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter

import pytest

from thinkrl.errors import UserError
from thinkrl.prompts import build_messages
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.base import Problem
from thinkrl.tasks.knights_knaves import (
    STATEMENT_KINDS, KnightsKnaves, MalformedAnswer, derivation, draw_puzzle, holds, judge, parse_roles, people_share, say, solve,
)  # fmt: skip

NAMES = ["Alice", "Bob", "Carol"]


def kk_problem(roles=(True, False), names=("Alice", "Bob")) -> Problem:
    names = list(names)
    answer = ", ".join(f"{n}: {'knight' if r else 'knave'}" for n, r in zip(names, roles))
    return Problem("p", "q", answer, {"names": names, "roles": list(roles), "statements": []})


def test_statement_truth_and_the_solver():
    # Alice: "Bob and I are both knaves." -> Alice is a knave (a knight could not say it), so it is false: Bob is a knight
    puzzle = [("both", 1, 0, False, False), ("is", 0, -1, False, False)]  # Bob: "Alice is a knave."
    assert solve(puzzle) == [(False, True)]
    assert holds(("either", 0, 1, False, False), (True, True)) is False  # "Alice or Bob is a knave"
    assert holds(("either", 0, 1, True, False), (False, True)) is True
    assert holds(("if", 0, 1, True, False), (False, True)) is True  # a false premise
    assert holds(("if", 0, 1, True, False), (True, True)) is False
    assert holds(("same", 0, 1, True, True), (False, False)) and holds(("diff", 0, 1, True, True), (True, False))
    assert solve([("is", 1, -1, True, True), ("is", 0, -1, True, True)]) == [(True, True), (False, False)]  # not unique


@pytest.mark.parametrize("people", [2, 3, 5, 8])
def test_every_puzzle_has_exactly_its_solution(people):
    task = KnightsKnaves(people=people, num_train=30, num_eval=30)
    for p in task.problems("eval") + task.problems("train"):
        statements = [tuple(s) for s in p.meta["statements"]]
        assert solve(statements) == [tuple(p.meta["roles"])]  # unique, and the reference
        assert len(p.meta["names"]) == len(set(p.meta["names"])) == people
        assert task.score(f"<answer>{p.answer}</answer>", p) == 1.0
        for i, s in enumerate(statements):  # the text says what the solver reads
            assert f'{p.meta["names"][i]} says: "{say(s, i, p.meta["names"])}."' in p.question


def test_roles_are_drawn_uniformly():
    """No fixed answer beats chance: each of the four 2-person assignments about a quarter of the time."""
    rng = random.Random(0)
    counts = Counter(draw_puzzle(rng, 2, STATEMENT_KINDS)[0] for _ in range(800))
    assert set(counts) == set(itertools.product((True, False), repeat=2))
    assert all(150 <= c <= 250 for c in counts.values())


def test_splits_are_seeded_and_disjoint():
    a, b = KnightsKnaves(seed=3, num_train=300, num_eval=100), KnightsKnaves(seed=3, num_train=300, num_eval=100)
    train, evals = a.problems("train"), a.problems("eval")
    assert [p.question for p in train] == [p.question for p in b.problems("train")]
    assert len(evals) == 100 and len(train) == 300
    assert not {p.question for p in train} & {p.question for p in evals}
    assert len({p.question for p in train}) == len(train)
    assert [p.question for p in KnightsKnaves(seed=4, num_eval=100).problems("eval")] != [p.question for p in evals]
    example_questions = {q for q, _ in a.examples()}
    assert example_questions and not example_questions & {p.question for p in evals}


@pytest.mark.parametrize("answer", [
    "Alice: knight, Bob: knave",
    "alice is a KNIGHT and bob is a knave.",
    "1. Alice - Knight\n2. Bob - Knave",
    "Alice is a knight; Bob is not a knight",
    "Knights: Alice. Knaves: Bob",
    "Alice is a truth-teller, Bob is a liar",
    "Alice (knight), Bob (knave)",
])  # fmt: skip
def test_tolerant_reading(answer):
    assert parse_roles(answer, ["Alice", "Bob"]) == {"Alice": True, "Bob": False}
    assert KnightsKnaves().score(f"<think>x</think> <answer>{answer}</answer>", kk_problem()) == 1.0


def test_groups_of_names_share_a_role():
    assert parse_roles("Alice and Carol are knights, Bob is a knave", NAMES) == {"Alice": True, "Carol": True, "Bob": False}
    assert parse_roles("Knights: Alice, Carol; knaves: Bob", NAMES) == {"Alice": True, "Carol": True, "Bob": False}
    assert parse_roles("Both Alice and Bob are knaves and Carol is a knight", NAMES) == {"Alice": False, "Bob": False, "Carol": True}


@pytest.mark.parametrize("answer, kind", [
    (None, "no answer"),
    ("  ", "no answer"),
    ("Alice: knight", "missing role"),
    ("knight, knave", "missing role"),
    ("Alice: knight, Bob: knave, Alice: knave", "two roles"),
    ("Alice: knight, Bob: knave " + "x" * 3000, "too long"),
])  # fmt: skip
def test_malformed_answers_are_errors_with_a_reason(answer, kind):
    with pytest.raises(MalformedAnswer) as e:
        parse_roles(answer, ["Alice", "Bob"])
    assert e.value.kind == kind
    assert judge(answer, kk_problem()).error == kind


def test_score_is_all_correct_and_counts_malformed_answers():
    task, p = KnightsKnaves(), kk_problem((True, False, True), NAMES)
    assert task.score("<answer>Alice: knight, Bob: knave, Carol: knight</answer>", p) == 1.0
    assert task.score("<answer>Alice: knight, Bob: knight, Carol: knight</answer>", p) == 0.0
    assert task.score("<answer>Alice: knight</answer>", p) == 0.0
    assert task.score("no tags at all", p) == 0.0
    assert task.errors == Counter({"missing role": 1, "no answer": 1})


def test_share_reward_and_its_counted_failure():
    p = kk_problem((True, False, True), NAMES)
    info = {"problem": p}
    assert people_share("<answer>Alice: knight, Bob: knight, Carol: knave</answer>", p.answer, info) == pytest.approx(1 / 3)
    assert people_share(f"<answer>{p.answer}</answer>", p.answer, info) == 1.0
    with pytest.raises(MalformedAnswer):  # the reward machinery scores it 0 and counts reward/people_share/errors
        people_share("<answer>Alice: knight</answer>", p.answer, info)


def test_vote_key_groups_equal_readings():
    task = KnightsKnaves()
    assert task.vote_key("Alice is a knight and Bob is a knave") == task.vote_key("alice: KNIGHT, bob: knave")
    assert task.vote_key("Alice is a knight") == "Alice: knight"  # the names it mentions
    assert task.vote_key("Alice and Bob") == "Alice and Bob"  # no roles: kept as written


def test_registered_with_its_knobs_and_prompt():
    task = get_task(TaskConfig(name="knights_knaves", people=3, num_train=5, num_eval=5, statement_kinds="is,same,diff"))
    p = task.problems("eval")[0]
    assert len(p.meta["names"]) == 3 and {s[0] for q in task.problems("train") for s in q.meta["statements"]} <= {"is", "same", "diff"}
    messages = build_messages(p, task, "r1_zero", shots=1)
    assert "<answer>" in messages[2]["content"] and messages[-1]["content"] == p.question


@pytest.mark.parametrize("key, value", [("people", 1), ("people", 9), ("statement_kinds", "is,maybe"), ("statement_kinds", ""),
                                        ("knights_worked", "guess")])
def test_bad_knobs_name_the_key(key, value):
    with pytest.raises(UserError, match=f"task.{key}"):
        TaskConfig(name="knights_knaves", **{key: value})


def test_kinds_that_never_pin_the_roles_down_are_a_user_error():
    with pytest.raises(UserError, match="statement_kinds"):
        KnightsKnaves(people=2, kinds="is", num_train=1, num_eval=1).problems("eval")


def test_derivation_pins_one_role_a_step_in_words():
    names = ["Olivia", "Mia"]
    statements = [("same", 1, 0, True, True), ("is", 0, -1, True, False)]  # Olivia: "Mia and I ...", Mia: "Olivia is a knight"
    assert solve(statements) == [(True, True)]
    assert derivation(names, statements) == [
        'Olivia says "Mia and I are the same kind": true from a knight or false from a knave, either way Mia is a knight.',
        'Mia is a knight, so "Olivia is a knight" is true: Olivia is a knight.',
    ]
    # a speaker pinned by what is known of the others: "Bob is a knave" said of a knight is a lie
    statements = [("is", 1, -1, False, False), ("is", 2, -1, True, False), ("same", 1, 2, True, True)]
    assert solve(statements) == [(False, True, True)]
    assert derivation(["Alice", "Bob", "Carol"], statements)[1:] == [
        'Bob is a knight, so "Bob is a knave" is false: Alice is a knave.',
        'Bob is a knight, so "Carol is a knight" is true: Carol is a knight.',
    ]


@pytest.mark.parametrize("people, kinds", [(2, "is,same,diff"), (3, ",".join(STATEMENT_KINDS)), (4, ",".join(STATEMENT_KINDS))])
def test_every_role_a_derivation_states_is_the_solution(people, kinds):
    """Outside the quoted words every 'X is a knight/knave' in a derivation is true, and each person is named."""
    task, derived = KnightsKnaves(people=people, kinds=kinds, num_train=1, num_eval=60), 0
    for p in task.problems("eval"):
        steps = derivation(p.meta["names"], [tuple(s) for s in p.meta["statements"]])
        if steps is None:
            continue
        derived += 1
        said = re.findall(r"(\w+) is a (knight|knave)", re.sub(r'"[^"]*"', "", " ".join(steps)))
        truth = dict(zip(p.meta["names"], p.meta["roles"]))
        assert all(truth[name] == (role == "knight") for name, role in said), steps
        assert {name for name, _ in said} == set(p.meta["names"])
    assert derived >= 30 if people > 2 else derived == 60  # two people, is/same/diff: always one statement at a time


def test_worked_derive_changes_the_example_turns_only():
    check, derive = (KnightsKnaves(people=2, kinds="is,same,diff", num_train=20, num_eval=20, worked=w) for w in ("check", "derive"))
    assert [p.question for p in check.problems("train")] == [p.question for p in derive.problems("train")]
    for (q1, a1), (q2, a2) in zip(check.examples(), derive.examples()):
        assert q1 == q2 and a1.split("<answer>")[1] == a2.split("<answer>")[1]
        assert "either way" in a2 and "either way" not in a1
    assert get_task(TaskConfig(name="knights_knaves", knights_worked="derive", num_train=5, num_eval=5)).worked == "derive"
