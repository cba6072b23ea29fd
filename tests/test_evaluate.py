import math

import pytest

from thinkrl.engine import Completion
from thinkrl.evaluate import Scored, majority_vote, pass_at_k, seed_spread, summarize
from thinkrl.tasks.base import Problem, Task


def test_pass_at_k_hand_computed():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 3) == 1.0
    assert math.isclose(pass_at_k(4, 1, 1), 0.25)
    assert math.isclose(pass_at_k(4, 1, 2), 1 - 3 / 6)  # C(3,2)/C(4,2)
    assert math.isclose(pass_at_k(5, 2, 2), 1 - 3 / 10)  # C(3,2)/C(5,2)
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than 3 wrong: any 3 include a correct one
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_majority_vote_ties_go_to_first_seen_and_none_is_ignored():
    assert majority_vote([None, "3", "4", "4", "3"]) == 1
    assert majority_vote(["5", None, "6", "6"]) == 2
    assert majority_vote([None, None]) is None


def _scored(answer, correct, tokens=10, formatted=True, finish="eos", pid="p"):
    c = Completion(0, 0, token_ids=[1] * tokens, finish_reason=finish)
    return Scored(Problem(pid, "q", "4"), c, answer, correct, formatted)


def test_summarize_two_problems_three_samples():
    task = Task()
    scored = [
        # problem 1: answers 4 (right), 5, 5 -> pass@1 1/3, maj@3 wrong (5 wins), maj@1 right
        _scored("4", True, 10), _scored("5", False, 20), _scored("5.0", False, 30, finish="length"),
        # problem 2: none right, one unformatted
        _scored(None, False, 40, formatted=False), _scored("7", False, 50), _scored("8", False, 60),
    ]
    r = summarize(scored, 3, task)
    assert r["n"] == 2 and r["completions"] == 6
    assert math.isclose(r["pass@1"], 1 / 6)
    assert math.isclose(r["pass@2"], (1 - 1 / 3 + 0) / 2)  # problem 1: 1 - C(2,2)/C(3,2)
    assert r["pass@3"] == 0.5
    assert r["maj@1"] == 0.5 and r["maj@3"] == 0.0  # "5" and "5.0" share one vote key
    assert math.isclose(r["format_rate"], 5 / 6)
    assert r["mean_response_tokens"] == 35
    assert math.isclose(r["truncated_rate"], 1 / 6)
    assert r["correct/count"] == 1 and r["correct/mean_response_tokens"] == 10
    assert r["incorrect/mean_response_tokens"] == 40 and r["incorrect/format_rate"] == 0.8


def test_every_rate_has_its_interval_over_problems():
    task = Task()
    # 4 problems, one sample each: 3 right -> Wilson interval of 3/4, binomial stderr
    r = summarize([_scored("4", True), _scored("4", True), _scored("4", True), _scored("5", False)], 1, task)
    assert r["pass@1"] == 0.75 and r["pass@1_stderr"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert r["pass@1_ci_low"] < 0.75 < r["pass@1_ci_high"] <= 1.0
    for key in ("maj@1", "format_rate"):
        assert {f"{key}_stderr", f"{key}_ci_low", f"{key}_ci_high"} <= set(r)
    # 2 problems x 2 samples: per-problem pass@1 0.5 and 1.0 -> mean 0.75, stderr = sd 0.3536 / sqrt 2 = 0.25
    r = summarize([_scored("4", True), _scored("5", False), _scored("4", True), _scored("4", True)], 2, task)
    assert r["pass@1"] == 0.75 and r["pass@1_stderr"] == pytest.approx(0.25) and r["pass@2_stderr"] == 0.0


def test_seeds_average_each_problem_before_the_interval():
    task = Task()
    # 2 problems, one sample, two seeds' runs one after another: problem 1 right in both, problem 2 in one
    r = summarize([_scored("4", True), _scored("4", True), _scored("4", True), _scored("5", False)], 1, task, seeds=2)
    assert r["n"] == 2 and r["completions"] == 4 and r["pass@1"] == 0.75
    assert r["pass@1_stderr"] == pytest.approx(0.25)  # over the problems' means 1.0 and 0.5, not 4 coin flips
    spread = seed_spread([(0, {"pass@1": 1.0, "pass@1_stderr": 0.0, "format_rate": 1.0, "n": 2}),
                          (1, {"pass@1": 0.5, "pass@1_stderr": 0.3, "format_rate": 1.0, "n": 2})])
    assert spread["pass@1_seed_std"] == pytest.approx(math.sqrt(0.125)) and spread["pass@1_seed_min"] == 0.5
    assert spread["per_seed"] == [{"seed": 0, "pass@1": 1.0, "format_rate": 1.0},
                                  {"seed": 1, "pass@1": 0.5, "format_rate": 1.0}]


def test_reflection_metrics_are_in_the_summary():
    c = Completion(0, 0, token_ids=[1], text="Wait, let me check. 4", finish_reason="eos")
    right = Scored(Problem("p", "q", "4"), c, "4", True, True)
    wrong = _scored("5", False)  # text ""
    r = summarize([right, wrong], 1, Task())
    assert r["reflection/rate"] == 0.5 and r["reflection/count_mean"] == 1.0
    assert r["reflection/correct_count_mean"] == 2.0 and r["reflection/incorrect_rate"] == 0.0
    assert not any(k.startswith("reflection/") for k in summarize([right], 1, Task(), phrases=[]))
