import math

import pytest

from thinkrl.engine import Completion
from thinkrl.evaluate import Scored, majority_vote, pass_at_k, summarize
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
