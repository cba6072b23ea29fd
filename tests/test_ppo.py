"""PPO with a critic: GAE, the clipped value loss and per-token rewards on hand-computed numbers; the
critic's values; a tiny run that trains it, resumes exactly, and a value loss that falls."""

import json
import math

import pytest
import torch

import thinkrl.train.rl as rl
from thinkrl import config as C
from thinkrl.algos import explained_variance, gae, masked_whiten, policy_loss, token_rewards, value_loss
from thinkrl.engine import Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.models import eos_token_ids, load_model, save_pretrained, tiny_model
from thinkrl.tasks.base import Problem
from thinkrl.train import ppo_update
from thinkrl.train.critic import WEIGHTS_FILE, completion_values, load_critic, value_head
from thinkrl.train.rollout import Rollout

# ---------------------------------------------------------------- GAE

# one 3-token episode: the score 1 arrives at the last token, the critic said 0.5, 0.6, 0.7
REWARDS = [0.0, 0.0, 1.0]
VALUES = [0.5, 0.6, 0.7]


def test_gae_gamma_1_lambda_1_is_reward_to_go_minus_value():
    adv, ret = gae(torch.tensor([REWARDS]), torch.tensor([VALUES]), torch.ones(1, 3), gamma=1.0, lam=1.0)
    # delta_2 = 1 + 0 (episode over) - 0.7 = 0.3           A_2 = 0.3
    # delta_1 = 0 + 0.7 - 0.6 = 0.1                        A_1 = 0.1 + 0.3 = 0.4
    # delta_0 = 0 + 0.6 - 0.5 = 0.1                        A_0 = 0.1 + 0.4 = 0.5
    # returns A + V = 1, 1, 1: the reward-to-go
    assert torch.allclose(adv, torch.tensor([[0.5, 0.4, 0.3]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0]]), atol=1e-6)


def test_gae_gamma_09_lambda_095_hand_computed():
    adv, ret = gae(torch.tensor([REWARDS]), torch.tensor([VALUES]), torch.ones(1, 3), gamma=0.9, lam=0.95)
    # gamma * lam = 0.855
    # delta_2 = 1 + 0.9 * 0 - 0.7 = 0.3                    A_2 = 0.3
    # delta_1 = 0 + 0.9 * 0.7 - 0.6 = 0.03                 A_1 = 0.03 + 0.855 * 0.3 = 0.2865
    # delta_0 = 0 + 0.9 * 0.6 - 0.5 = 0.04                 A_0 = 0.04 + 0.855 * 0.2865 = 0.2849575
    # returns: 0.2849575 + 0.5 = 0.7849575, 0.2865 + 0.6 = 0.8865, 0.3 + 0.7 = 1.0
    assert torch.allclose(adv, torch.tensor([[0.2849575, 0.2865, 0.3]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.7849575, 0.8865, 1.0]]), atol=1e-6)


def test_gae_rows_of_different_lengths_ignore_padding():
    # row 1 has one real token (reward 2, value 0.5); its padding holds junk that must not leak in
    rewards = torch.tensor([REWARDS, [2.0, 5.0, 5.0]])
    values = torch.tensor([VALUES, [0.5, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    # row 1: delta_0 = 2 + 0.9 * 0 (episode over, not the padding's 9) - 0.5 = 1.5; return 1.5 + 0.5 = 2
    assert torch.allclose(adv, torch.tensor([[0.2849575, 0.2865, 0.3], [1.5, 0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.7849575, 0.8865, 1.0], [2.0, 0.0, 0.0]]), atol=1e-6)


def test_gae_lambda_0_is_the_one_step_td_error():
    adv, _ = gae(torch.tensor([REWARDS]), torch.tensor([VALUES]), torch.ones(1, 3), gamma=1.0, lam=0.0)
    assert torch.allclose(adv, torch.tensor([[0.1, 0.1, 0.3]]), atol=1e-6)  # the deltas above


# ---------------------------------------------------------------- rewards per token


def test_token_rewards_score_at_last_token_minus_kl():
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 7.0, 7.0]])
    r = token_rewards(torch.tensor([1.0, 2.0]), mask, kl, kl_coef=0.5)
    # row 0: -0.5*0.1, -0.5*0.2, 1 - 0.5*0.3;   row 1: 2 - 0.5*0.4, padding 0
    assert torch.allclose(r, torch.tensor([[-0.05, -0.1, 0.85], [1.8, 0.0, 0.0]]), atol=1e-6)
    assert torch.equal(token_rewards(torch.tensor([1.0, 2.0]), mask), torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 0.0]]))
    # gamma = lam = 1 with a zero critic: the returns are the rewards-to-go 0.7, 0.75, 0.85 and 1.8
    _, ret = gae(r, torch.zeros(2, 3), mask, gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[0.7, 0.75, 0.85], [1.8, 0.0, 0.0]]), atol=1e-6)


def test_token_rewards_row_without_tokens_gets_nothing():
    r = token_rewards(torch.tensor([1.0, 3.0]), torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(r, torch.tensor([[0.0, 1.0], [0.0, 0.0]]))


# ---------------------------------------------------------------- value loss


def one_value(v, old, ret, clip=0.2):
    values = torch.tensor([[v]], requires_grad=True)
    loss, m = value_loss(values, torch.tensor([[old]]), torch.tensor([[ret]]), torch.ones(1, 1), clip=clip)
    loss.backward()
    return loss.item(), values.grad.item(), m


@pytest.mark.parametrize(
    "v, ret, loss, grad, clipped",
    [
        # old value 0, clip 0.2: V_clip = clip(V, -0.2, 0.2)
        (0.1, 1.0, 0.5 * 0.81, -0.9, 0),  # inside the range: both terms (0.1 - 1)^2 = 0.81, grad V - R
        (0.5, 1.0, 0.5 * 0.64, 0.0, 1),  # moved past 0.2 towards R: (0.2 - 1)^2 = 0.64 > 0.25, no gradient
        (0.5, 0.3, 0.5 * 0.04, 0.2, 0),  # overshot R: unclipped 0.04 > clipped (0.2 - 0.3)^2 = 0.01
        (-0.5, 1.0, 0.5 * 2.25, -1.5, 0),  # moved away from R: unclipped 2.25 > clipped 1.44, grad flows
    ],
)
def test_value_clip_cases(v, ret, loss, grad, clipped):
    got, g, m = one_value(v, 0.0, ret)
    assert math.isclose(got, loss, rel_tol=1e-6)
    assert math.isclose(g, grad, rel_tol=1e-6, abs_tol=1e-7)
    assert m["clip_frac"] == clipped


def test_value_clip_off():
    got, g, m = one_value(0.5, 0.0, 1.0, clip=0.0)  # 0.5 * (0.5 - 1)^2 = 0.125, grad 0.5 - 1
    assert math.isclose(got, 0.125, rel_tol=1e-6) and math.isclose(g, -0.5, rel_tol=1e-6) and m["clip_frac"] == 0


def test_value_loss_aggregations_and_mask():
    values = torch.tensor([[0.1, 0.5, 7.0]])
    old, ret, mask = torch.zeros(1, 3), torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    # token losses 0.405 and 0.32 (cases above); the padded third token does not count
    loss, m = value_loss(values, old, ret, mask)
    assert math.isclose(loss.item(), (0.405 + 0.32) / 2, rel_tol=1e-6)
    assert m["clip_frac"] == 0.5 and math.isclose(m["values_mean"], 0.3, rel_tol=1e-6)
    loss, _ = value_loss(values, old, ret, mask, aggregation="seq_mean_token_sum_norm", max_len=4)
    assert math.isclose(loss.item(), 0.725 / 4, rel_tol=1e-6)  # sum / (1 sequence * max_len 4)
    loss, _ = value_loss(values, old, ret, mask, normalizer=5.0)  # micro-batch share of a 5-token mini-batch
    assert math.isclose(loss.item(), 0.725 / 5, rel_tol=1e-6)


def test_explained_variance_and_whitening_hand_computed():
    # R = 1, 2, 3 (Bessel var 1); R - V = 0, 0, 1 (mean 1/3, var (1/9 + 1/9 + 4/9) / 2 = 1/3): EV = 2/3
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    ev = explained_variance(torch.tensor([[1.0, 2.0, 2.0, 5.0]]), torch.tensor([[1.0, 2.0, 3.0, 0.0]]), mask)
    assert math.isclose(ev, 2 / 3, rel_tol=1e-6)
    # entries 1, 2, 3, 4: mean 2.5, Bessel var (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    w = masked_whiten(x, torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
    s = math.sqrt(5 / 3)
    assert torch.allclose(w, torch.tensor([[-1.5 / s, -0.5 / s, 0.5 / s], [1.5 / s, 0.0, 0.0]]), atol=1e-5)


def test_policy_loss_takes_per_token_advantages():
    logp = torch.zeros(2, 3)  # ratio 1 everywhere: the loss is minus the mean advantage over real tokens
    adv = torch.tensor([[1.0, -2.0, 0.5], [3.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, _ = policy_loss(logp, logp, adv, mask)
    assert math.isclose(loss.item(), -(1 - 2 + 0.5 + 3) / 4, rel_tol=1e-6)
    # [B] advantages are the same as [B, T] ones repeated over the tokens
    lp = torch.randn(2, 3)
    a1, _ = policy_loss(lp, lp.detach() + 0.1, torch.tensor([1.0, -1.0]), mask)
    a2, _ = policy_loss(lp, lp.detach() + 0.1, torch.tensor([[1.0] * 3, [-1.0] * 3]), mask)
    assert torch.equal(a1, a2)


# ---------------------------------------------------------------- the critic


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def test_critic_starts_at_zero_and_detached_prompt_values_match(model_dir):
    critic = load_critic(model_dir)
    policy, tok = load_model(model_dir)
    assert torch.equal(critic.model.embed_tokens.weight, policy.model.embed_tokens.weight)
    prompts = [tok.encode("abc"), tok.encode("a longer prompt"), tok.encode("x")]
    comps = [[70, 71, 72], [80, 81], [90], [91, 92, 93, 94]]
    rows = [0, 1, 1, 2]
    values, mask = completion_values(critic, prompts, rows, comps)
    assert values.shape == (4, 4) and torch.equal(values, torch.zeros(4, 4))  # zeroed head
    torch.nn.init.normal_(value_head(critic).weight, std=0.3)
    full, m1 = completion_values(critic, prompts, rows, comps)
    det, m2 = completion_values(critic, prompts, rows, comps, detach_prompt=True)
    assert torch.equal(m1, m2) and torch.equal(m1, mask)
    assert torch.allclose(full * m1, det * m2, atol=1e-5)
    alone, _ = completion_values(critic, [prompts[2]], [0], [comps[3]])  # no padding: the same values
    assert torch.allclose(alone[0], full[3], atol=1e-5)
    (det * m2).sum().backward()
    assert critic.model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0


def _rollouts(model_dir, scores):
    """A fixed batch: 2 prompts x 4 sampled completions, each scored by its prompt."""
    model, tok = load_model(model_dir)
    prompts = [tok.encode("What is 1 + 1?"), tok.encode("Say hi")]
    outs = Engine(model, tok, eos_token_ids(model, tok)).generate(prompts, SamplingParams(max_new_tokens=8), n=4, seeds=[1, 2])
    return [Rollout(problem=Problem(str(c.prompt_index), "", ""), prompt=prompts[c.prompt_index], completion=c,
                    rewards={}, reward=scores[c.prompt_index]) for c in outs]


def test_value_loss_falls_on_a_fixed_batch(model_dir):
    cfg = _cfg(model_dir, "unused", **{"algo.gamma": 1.0, "algo.lam": 1.0, "algo.epochs": 1, "algo.mini_batches": 1,
                                       "algo.micro_batch_size": 8, "algo.kl_coef": 0.0, "algo.kl_in_reward": "false"})
    rollouts = _rollouts(model_dir, scores=[1.0, -1.0])
    model = load_critic(model_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    critic = ppo_update.Critic(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0))
    losses, evs = [], []
    for step in range(12):  # each step: the critic's values, the returns, one clipped value-loss update
        _, returns, old, m = ppo_update.ppo_advantages(cfg, rollouts, model, None, pad_id=0)
        assert torch.allclose(returns[0, : len(rollouts[0].completion.token_ids)], torch.tensor(1.0))  # gamma = lam = 1
        losses.append(ppo_update.update_critic(cfg, step, critic, rollouts, returns, old, pad_id=0)["critic/value_loss"])
        evs.append(m["critic/explained_variance"])
    assert math.isclose(losses[0], 0.5, rel_tol=1e-5)  # zero values, returns +-1: 0.5 * 1^2
    assert losses[-1] < 0.1 * losses[0], losses
    assert evs[0] == 0.0 and evs[-1] > 0.8, evs


# ---------------------------------------------------------------- the loop


def _cfg(model_dir, out_dir, **over):
    base = {
        "model.name": str(model_dir), "out_dir": str(out_dir), "task.name": "arithmetic", "task.template": "raw",
        "task.digits": "1,1", "task.ops": "+", "task.num_eval": 20, "task.shots": 1, "steps": 2, "prompts_per_step": 4,
        "group_size": 2, "sampling.max_new_tokens": 8, "eval.limit": 0, "save_every": 1, "optim.lr": 1e-3,
        "optim.critic_lr": 1e-3, "algo.micro_batch_size": 4, "algo.mini_batches": 2, "algo.epochs": 1,
        "rewards.format_soft": 0.5, "rewards.custom": "tiny_rewards:odd_first_char", "rewards.custom_weights": "1.0",
        "algo.algorithm": "ppo", "algo.gamma": 0.99, "algo.kl_coef": 0.05, "algo.kl_in_reward": "true",
        "algo.detach_prompt": "true",
    }
    base.update(over)
    return C.load(C.RLConfig, None, [f"{k}={v}" for k, v in base.items()])


def _rows_of(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_ppo_run_trains_the_critic_and_resumes_exactly(model_dir, tmp_path, monkeypatch):
    straight = rl.train(_cfg(model_dir, tmp_path / "a"), show_progress=False)
    rows = _rows_of(tmp_path / "a")
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("critic/value_loss", "critic/explained_variance", "critic/values_mean", "critic/returns_mean",
                "critic/clip_frac", "critic/grad_norm", "critic/lr", "kl", "clip_frac_high", "grad_norm", "time/critic"):
        assert key in rows[0], key
    assert rows[0]["critic/values_mean"] == 0.0 and rows[-1]["critic/values_mean"] != 0.0  # the critic learned
    assert (tmp_path / "a" / "checkpoints" / "step-000002" / WEIGHTS_FILE).is_file()
    from transformers import AutoModelForTokenClassification
    saved_critic = AutoModelForTokenClassification.from_pretrained(tmp_path / "a" / "critic")
    assert saved_critic.score.weight.abs().sum() > 0

    original = rl.save_checkpoint

    def crash_after_step_1(run_dir, step, *args, **kwargs):
        path = original(run_dir, step, *args, **kwargs)
        if step == 1:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(rl, "save_checkpoint", crash_after_step_1)
    with pytest.raises(KeyboardInterrupt):
        rl.train(_cfg(model_dir, tmp_path / "b"), show_progress=False)
    monkeypatch.setattr(rl, "save_checkpoint", original)
    resumed = rl.train(_cfg(model_dir, tmp_path / "b", resume="true"), show_progress=False)
    a, _ = load_model(straight)
    b, _ = load_model(resumed)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    ca = AutoModelForTokenClassification.from_pretrained(tmp_path / "b" / "critic")
    for (name, pa), (_, pb) in zip(saved_critic.named_parameters(), ca.named_parameters()):
        assert torch.equal(pa, pb), name

    def strip(rs):
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "tokens_per_second/"))} for r in rs]

    assert strip(rows) == strip(_rows_of(tmp_path / "b"))


def test_critic_warmup_and_group_size_one(model_dir, tmp_path):
    run = tmp_path / "w"
    rl.train(_cfg(model_dir, run, steps=2, group_size=1, prompts_per_step=6, save_every=0,
                  **{"algo.critic_warmup_steps": 1, "algo.kl_coef": 0.0, "algo.kl_in_reward": "false",
                     "algo.detach_prompt": "false", "algo.whiten_advantages": "false"}), show_progress=False)
    first, second = _rows_of(run)
    assert "critic/value_loss" in first and "clip_frac_high" not in first  # warm-up: only the critic trains
    assert "clip_frac_high" in second and "critic/value_loss" in second


@pytest.mark.parametrize(
    "over, match",
    [
        ({"algo.algorithm": "a2c"}, "algo.algorithm"),
        ({"algo.kl_coef": 0.0}, "kl_in_reward"),
        ({"algo.algorithm": "grpo"}, "need a critic"),
        ({"algo.kl_in_reward": "false", "algo.critic_warmup_steps": 3}, "critic_warmup_steps"),
        ({"algo.dynamic_sampling": "true"}, "dynamic_sampling"),
        ({"algo.lam": 1.5}, "algo.lam"),
        ({"algo.value_clip": -0.1}, "value_clip"),
        ({"optim.critic_lr": 0}, "critic_lr"),
    ],
)
def test_config_errors(model_dir, over, match):
    with pytest.raises(UserError, match=match):
        _cfg(model_dir, "unused", **over)


def test_group_size_one_is_fine_for_ppo_only(model_dir):
    assert _cfg(model_dir, "unused", group_size=1).group_size == 1
    with pytest.raises(UserError, match="group_size"):
        _cfg(model_dir, "unused", group_size=1, **{"algo.algorithm": "grpo", "algo.kl_in_reward": "false"})
