"""The generative judge reward: the soft yes of a local model, batched, with a checked template."""

import pytest
import torch

from thinkrl import rewards
from thinkrl.errors import UserError
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.rewards import judge as J
from thinkrl.tasks.base import Problem


def test_the_soft_yes_is_p_yes_against_p_no_over_their_spellings():
    logits = torch.full((3, 10), -5.0)
    logits[0, 1] = 5.0  # yes far above no
    logits[1, [1, 2]] = 2.0
    logits[1, 3] = 2.0  # two spellings of yes, one of no, equally likely: 2/3
    logits[2, 3] = 2.0  # no far more likely than either yes
    p = J.yes_probability(logits, yes=[1, 2], no=[3])
    assert p[0] > 0.999 and float(p[1]) == pytest.approx(2 / 3, abs=1e-6) and p[2] < 0.01
    assert float(J.yes_probability(torch.zeros(1, 5), yes=[0], no=[1])) == pytest.approx(0.5)


@pytest.mark.parametrize("template, says", [("{question} {answer} {secret}", "KeyError"),
                                            ("{question} agrees with {reference}?", "must contain {answer}"),
                                            ("{answer} {", "ValueError")])
def test_a_bad_template_is_one_clear_error(template, says):
    with pytest.raises(UserError, match=says):
        J.check_template(template)
    J.check_template("Q: {question}\nRef: {reference}\nA: {answer} {{literal}}")


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    return save_pretrained(*tiny_model("llama", seed=3), tmp_path_factory.mktemp("judge") / "tiny")


def test_the_judge_scores_in_batches_as_one_by_one_and_as_the_training_forward(judge_dir):
    from thinkrl.train.forward import completion_logprobs

    problem = Problem(id="p", question="What is 6 * 7?", answer="42")
    completions = ["<think>6*7</think><answer>42</answer>", "<answer>41</answer>", "it is 42", "no idea at all, sorry"]
    infos = [{"problem": problem}] * len(completions)
    batched = J.JudgeReward(str(judge_dir), batch_size=16)
    single = J.JudgeReward(str(judge_dir), batch_size=1)
    a, b = batched(completions, ["42"] * 4, infos), single(completions, ["42"] * 4, infos)
    assert all(0.0 < x < 1.0 for x in a) and a == pytest.approx(b, abs=1e-5)
    rows = [batched.prompt(c, "42", problem.question) for c in completions]
    assert batched.tokenizer.decode(rows[0]).count("Response's final answer: 42\n") == 1  # the answer part only
    # p(yes) from the judge's logits = the training forward's log-prob of the same token
    logits = J.next_token_logits(batched.model, rows, batched.pad_id)
    yes = batched.yes[0]
    lp, _, _ = completion_logprobs(batched.model, rows, list(range(4)), [[yes]] * 4, temperature=1.0,
                                   pad_id=batched.pad_id)
    assert torch.log_softmax(logits.float(), -1)[:, yes] == pytest.approx(lp[:, 0], abs=1e-4)


def test_the_judge_is_a_reward_beside_the_rules_and_per_problem(judge_dir):
    cfg = rewards.RewardConfig(accuracy=1.0, judge=str(judge_dir), judge_weight=0.5)
    built = rewards.build(cfg)
    assert [(n, w) for n, w, _ in built] == [("accuracy", 1.0), ("judge", 0.5)]
    judged_only = Problem(id="free", question="Name a prime.", answer="7", meta={"rewards": ["judge"]})
    out = rewards.score_batch(built, ["<answer>7</answer>"], [{"problem": judged_only, "tokens": 4}])
    assert list(out[0][0]) == ["judge"] and out[0][1] == pytest.approx(0.5 * out[0][0]["judge"])
    with pytest.raises(UserError, match="judge_input"):
        J.JudgeReward(str(judge_dir), input="everything")
    with pytest.raises(UserError, match="judge_batch_size"):
        rewards.RewardConfig(judge="x", judge_batch_size=0)
