"""thinkrl.rewards.rules: the built-in rule rewards on hand-made completions."""

import pytest

from reward_cases import GOOD, INFO, PROBLEM
from thinkrl import rewards as R


@pytest.mark.parametrize(
    "text, strict, soft, tags",
    [
        (GOOD, 1, 1, 1.0),
        ("  <think>a</think>\n<answer>5</answer>\n", 1, 1, 1.0),
        ("preamble <think>a</think><answer>5</answer>", 0, 1, 1.0),  # text before: not strict
        ("<think>a</think><answer>5</answer> trailing", 0, 1, 1.0),  # text after: not strict
        ("<think>a</think><think>b</think><answer>5</answer>", 0, 1, 0.5),  # two think blocks
        ("<answer>5</answer><think>a</think>", 0, 0, 1.0),  # wrong order
        ("<think>a</think> 5", 0, 0, 0.5),
        ("no tags at all", 0, 0, 0.0),
    ],
)
def test_format_rewards(text, strict, soft, tags):
    assert R.format_strict(text, "5", INFO) == strict
    assert R.format_soft(text, "5", INFO) == soft
    assert R.tag_count(text, "5", INFO) == tags


def test_accuracy_uses_the_task_verifier():
    assert R.accuracy(GOOD, PROBLEM.answer, INFO) == 1.0
    assert R.accuracy(GOOD.replace(PROBLEM.answer, str(int(PROBLEM.answer) + 1)), PROBLEM.answer, INFO) == 0.0


def test_overlong_penalty_hand_computed():
    assert R.overlong_penalty(40, 64, 16) == 0.0  # before the buffer
    assert R.overlong_penalty(48, 64, 16) == 0.0  # at its start
    assert R.overlong_penalty(56, 64, 16) == -0.5
    assert R.overlong_penalty(64, 64, 16) == -1.0
    assert R.overlong_penalty(70, 64, 16) == -1.0
    assert R.overlong_penalty(70, 64, 0) == 0.0
