"""Length rewards and the DPO loss against hand-computed numbers (issue 5's pure functions)."""

import math

import pytest
import torch

from thinkrl.algos.preference import dpo_loss
from thinkrl.rewards.length import cosine_length_reward, kimi_length_rewards, l1_exact_reward, l1_max_reward


def test_kimi_length_rewards_by_hand():
    # lengths 10, 20, 30: lambda = 0.5 - (len - 10) / 20 = 0.5, 0.0, -0.5
    assert kimi_length_rewards([10, 20, 30], [True, True, True]) == [0.5, 0.0, -0.5]
    # a wrong answer never gains from brevity: min(0, lambda)
    assert kimi_length_rewards([10, 20, 30], [False, False, False]) == [0.0, 0.0, -0.5]
    assert kimi_length_rewards([10, 40], [True, False]) == [0.5, -0.5]
    assert kimi_length_rewards([7, 7, 7], [True, False, True]) == [0.0, 0.0, 0.0]


def test_cosine_length_reward_by_hand():
    # correct: 2.0 at length 0, 1.0 at max_len; halfway: 1.0 + 1.0 * (1 + cos(pi/2)) / 2 = 1.5
    assert cosine_length_reward(0, 100, True) == pytest.approx(2.0)
    assert cosine_length_reward(50, 100, True) == pytest.approx(1.5)
    assert cosine_length_reward(100, 100, True) == pytest.approx(1.0)
    assert cosine_length_reward(250, 100, True) == pytest.approx(1.0)  # progress clamped at 1
    # wrong: -10 at 0, 0 at max; a quarter of the way: 0 + (-10) * (1 + cos(pi/4)) / 2 = -8.5355
    assert cosine_length_reward(25, 100, False) == pytest.approx(-10 * (1 + math.cos(math.pi / 4)) / 2)
    assert cosine_length_reward(25, 100, False) == pytest.approx(-8.5355, abs=1e-4)


def test_l1_rewards_by_hand():
    assert l1_exact_reward(True, 120, 100, 0.001) == pytest.approx(1 - 0.02)
    assert l1_exact_reward(False, 80, 100, 0.001) == pytest.approx(-0.02)
    # max mode: 1 * clip(0.01 * (100 - 80) + 0.5, 0, 1) = clip(0.7) = 0.7
    assert l1_max_reward(True, 80, 100, 0.01, 0.5) == pytest.approx(0.7)
    assert l1_max_reward(True, 200, 100, 0.01, 0.5) == 0.0  # clip(-0.5) = 0
    assert l1_max_reward(True, 10, 100, 0.01, 0.5) == 1.0  # clip(1.4) = 1
    assert l1_max_reward(False, 80, 100, 0.01, 0.5) == 0.0


def test_dpo_loss_by_hand():
    # implicit rewards: chosen 0.1 * (-10 - -12) = 0.2, rejected 0.1 * (-15 - -14) = -0.1; gap 0.3
    # loss = -log sigmoid(0.3) = log(1 + e^-0.3) = 0.5544
    pc, pr = torch.tensor([-10.0], requires_grad=True), torch.tensor([-15.0], requires_grad=True)
    loss, m = dpo_loss(pc, pr, torch.tensor([-12.0]), torch.tensor([-14.0]), beta=0.1)
    assert float(loss.detach()) == pytest.approx(math.log(1 + math.exp(-0.3)), abs=1e-6)
    assert float(loss.detach()) == pytest.approx(0.5544, abs=1e-4)
    assert m["accuracy"] == 1.0 and m["margin"] == pytest.approx(0.3) and m["logratio"] == pytest.approx(-5.0)
    loss.backward()
    # d loss / d pc = -beta * sigmoid(-0.3) = -0.1 * 0.42556: raising the chosen log-prob lowers the loss
    assert float(pc.grad) == pytest.approx(-0.1 * (1 / (1 + math.exp(0.3))), abs=1e-6)
    assert float(pr.grad) == pytest.approx(0.1 * (1 / (1 + math.exp(0.3))), abs=1e-6)


def test_length_rewards_from_a_recipe_score_groups_on_tokens():
    from thinkrl.rewards import RewardConfig, build, score_batch
    from thinkrl.tasks import TaskConfig, get_task

    task = get_task(TaskConfig(name="arithmetic", digits="1,1", ops="+", num_eval=10))
    p, q = task.problems("train")[:2]
    right, wrong = f"<answer>{p.answer}</answer>", "<answer>-1</answer>"
    texts = [right, right, wrong, right]
    problems = [p, p, p, q]
    tokens = [10, 30, 20, 5]
    infos = [{"task": task, "problem": pr, "tokens": n, "finish_reason": "eos", "max_new_tokens": 40}
             for pr, n in zip(problems, tokens)]
    rewards = build(RewardConfig(accuracy=0.0, length_kimi=1.0, length_cosine=1.0))
    parts = [x[0] for x in score_batch(rewards, texts, infos)]
    # group of p: lengths 10, 30, 20 -> lambda 0.5, -0.5, 0.0; the wrong one gets min(0, 0.0) = 0
    assert [x["length_kimi"] for x in parts] == [0.5, -0.5, 0.0, 0.0]  # q is a group of one
    # cosine over max_new_tokens = 40: correct at 10 tokens = 1 + (1 + cos(pi/4)) / 2
    assert parts[0]["length_cosine"] == pytest.approx(1 + (1 + math.cos(math.pi / 4)) / 2)
    assert parts[2]["length_cosine"] == pytest.approx(-10 * (1 + math.cos(math.pi / 2)) / 2)


def test_think_budgets_one_per_train_problem_every_one_per_eval_problem():
    from thinkrl.prompts import build_messages
    from thinkrl.tasks import TaskConfig, get_task
    from thinkrl.tasks.budget import draw_budget

    cfg = TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=4, num_train=300, think_budgets="16,32,64")
    task = get_task(cfg)
    train = task.problems("train")
    assert [p.meta["think_budget"] for p in train] == [draw_budget(p.id, [16, 32, 64]) for p in train]
    assert {p.meta["think_budget"] for p in train} == {16, 32, 64}  # every budget is drawn
    assert [p.meta["think_budget"] for p in get_task(cfg).problems("train")] == [p.meta["think_budget"] for p in train]
    evals = task.problems("eval")
    assert len(evals) == 12 and [p.meta["think_budget"] for p in evals[:3]] == [16, 32, 64]
    assert len({p.id for p in evals}) == 12 and evals[0].question == evals[2].question
    assert build_messages(evals[2], task, "r1_zero")[-1]["content"] == f"{evals[2].question}\nThink for 64 tokens."
    assert task.score(f"<answer>{evals[0].answer}</answer>", evals[0]) == 1.0
    from thinkrl.errors import UserError

    with pytest.raises(UserError, match="task.think_budgets"):
        TaskConfig(think_budgets="16,x")


def test_l1_reward_reads_the_budget_and_the_token_count():
    from thinkrl.errors import UserError
    from thinkrl.rewards import RewardConfig, build, score_batch
    from thinkrl.tasks import TaskConfig, get_task

    task = get_task(TaskConfig(name="arithmetic", digits="1,1", ops="+", num_eval=4, think_budgets="20"))
    p = task.problems("train")[0]
    right, wrong = f"<answer>{p.answer}</answer>", "<answer>-1</answer>"
    infos = [{"task": task, "problem": p, "tokens": n, "finish_reason": "eos", "max_new_tokens": 64} for n in (10, 30, 20)]
    exact = build(RewardConfig(accuracy=0.0, length_l1=1.0, l1_alpha=0.01))
    got = [x[1] for x in score_batch(exact, [right, right, wrong], infos)]
    assert got == pytest.approx([1 - 0.1, 1 - 0.1, 0.0])  # |20 - 10| * 0.01, |20 - 30| * 0.01, wrong at the budget
    most = build(RewardConfig(accuracy=0.0, length_l1=1.0, l1_mode="max", l1_alpha=0.02, l1_delta=0.5))
    got = [x[1] for x in score_batch(most, [right, right, wrong], infos)]
    assert got == pytest.approx([0.7, 0.3, 0.0])  # clip(0.02 * (20 - n) + 0.5, 0, 1)
    plain = get_task(TaskConfig(name="arithmetic", digits="1,1", ops="+", num_eval=4))
    info = {**infos[0], "task": plain, "problem": plain.problems("train")[0]}
    with pytest.raises(UserError, match="think_budgets"):
        score_batch(exact, [right], [info])


def test_evaluation_reports_accuracy_and_length_per_budget():
    from thinkrl.engine import Completion
    from thinkrl.evaluate import score_completions, summarize
    from thinkrl.tasks import TaskConfig, get_task

    task = get_task(TaskConfig(name="arithmetic", digits="1,1", ops="+", num_eval=2, think_budgets="10,40"))
    problems = task.problems("eval")  # p0@10, p0@40, p1@10, p1@40
    texts = [f"<think>x</think> <answer>{p.answer}</answer>" for p in problems]
    texts[2] = "<think>x</think> <answer>-1</answer>"
    lengths = [8, 36, 12, 44]
    completions = [Completion(i, 0, list(range(n)), [0.0] * n, [1] * n, "eos", t)
                   for i, (n, t) in enumerate(zip(lengths, texts))]
    m = summarize(score_completions(task, problems, completions, "r1_zero"), 1, task)
    assert m["budget/10/pass@1"] == 0.5 and m["budget/40/pass@1"] == 1.0
    assert m["budget/10/mean_response_tokens"] == 10.0 and m["budget/40/mean_response_tokens"] == 40.0
    assert m["budget/40/length_ratio"] == 1.0


def test_length_histogram_of_two_eval_files(tmp_path):
    import json

    from bench_modules import load_benchmark

    hist = load_benchmark("length_histogram")
    rows = {"a": [(25, True), (47, True), (83, False)], "b": [(25, True), (30, False)]}
    for name, rs in rows.items():
        (tmp_path / f"{name}.completions.jsonl").write_text(
            "".join(json.dumps({"tokens": t, "correct": c}) + "\n" for t, c in rs))
    assert hist.histogram([25, 30, 47, 83], 8) == {24: 2, 40: 1, 80: 1}
    text = hist.table([str(tmp_path / "a.completions.jsonl"), str(tmp_path / "b.completions.jsonl")], 8)
    assert "| 24-31 | 1 | 2 |" in text and "| 80-87 | 1 | 0 |" in text
    assert "| mean tokens | 51.7 | 27.5 |" in text and "| accuracy | 0.667 | 0.500 |" in text
