"""Rollouts: the metrics of a rollout batch."""

from thinkrl.engine import Completion
from thinkrl.tasks import Problem
from thinkrl.train.rollout import Rollout, rollout_metrics


def test_rollout_metrics_average_each_reward_over_the_prompts_it_applies_to():
    def r(parts, total):
        c = Completion(prompt_index=0, sample_index=0, token_ids=[1, 2], logprobs=[0.0, 0.0], text="x", finish_reason="eos")
        return Rollout(Problem("p", "q", "1"), [0], c, parts, total)

    rollouts = [r({"accuracy": 1.0}, 1.0), r({"accuracy": 0.0}, 0.0), r({"rm": 2.0}, 2.0), r({"rm": 4.0}, 4.0)]
    m = rollout_metrics(rollouts, rollouts, 2)
    assert m["reward/accuracy/mean"] == 0.5 and m["reward/rm/mean"] == 3.0 and m["reward/mean"] == 1.75


def test_rollout_metrics_count_reflection_split_by_accuracy():
    def r(text, acc):
        c = Completion(prompt_index=0, sample_index=0, token_ids=[1], logprobs=[0.0], text=text, finish_reason="eos")
        return Rollout(Problem("p", "q", "1"), [0], c, {"accuracy": acc, "format": 1.0}, acc)

    rollouts = [r("wait, hmm: 1", 1.0), r("1", 1.0), r("2", 0.0), r("let me verify. 3", 0.0)]
    m = rollout_metrics(rollouts, rollouts, 2, ["wait", "hmm", "let me verify"])
    assert m["reflection/rate"] == 0.5 and m["reflection/count_mean"] == 0.75
    assert m["reflection/correct_count_mean"] == 1.0 and m["reflection/incorrect_rate"] == 0.5
    assert not any(k.startswith("reflection/") for k in rollout_metrics(rollouts, rollouts, 2))  # no phrases: off
    no_accuracy = [Rollout(x.problem, x.prompt, x.completion, {"rm": 1.0}, 1.0) for x in rollouts]
    assert "reflection/correct_rate" not in rollout_metrics(no_accuracy, no_accuracy, 2, ["wait"])
