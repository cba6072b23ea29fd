import pytest

from thinkrl import rewards as R
from thinkrl.errors import UserError
from thinkrl.tasks import TaskConfig, get_task

TASK = get_task(TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=10, num_train=10))
PROBLEM = TASK.problems("eval")[0]
INFO = {"task": TASK, "problem": PROBLEM, "tokens": 10, "finish_reason": "eos", "max_new_tokens": 64}
GOOD = f"<think>I multiply.</think> <answer>{PROBLEM.answer}</answer>"


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


def test_build_weights_and_errors():
    built = R.build(R.RewardConfig(accuracy=1.0, format=0.1, overlong=0.5))
    assert [(n, w) for n, w, _ in built] == [("accuracy", 1.0), ("format", 0.1), ("overlong", 0.5)]
    overlong = built[2][2]
    assert overlong("x", "5", {**INFO, "tokens": 56}) == -0.5
    with pytest.raises(UserError, match="every reward weight is 0"):
        R.build(R.RewardConfig(accuracy=0.0))
    with pytest.raises(UserError, match="one weight each"):
        R.RewardConfig(custom=["a:b"])
    with pytest.raises(UserError, match="cannot import module"):
        R.build(R.RewardConfig(custom=["no_such_module_xyz:f"], custom_weights=[1.0]))
    with pytest.raises(UserError, match="module.path:function"):
        R.build(R.RewardConfig(custom=["justamodule"], custom_weights=[1.0]))
