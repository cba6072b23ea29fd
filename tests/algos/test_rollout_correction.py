"""Rollout correction (truncated / masked importance sampling between the training forward and the
engine) and GSPO's sequence-level ratio: hand-computed tensors, the config keys, and the RL update
and loop with each option on a tiny model."""

import copy
import json
import math

import pytest
import torch

import thinkrl.train.rl as rl
from thinkrl import config as C
from thinkrl.algos import policy_loss
from thinkrl.algos.rollout_correction import rollout_is_weights, sequence_log_ratio
from thinkrl.engine import Completion
from thinkrl.errors import UserError
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.tasks.base import Problem
from thinkrl.train.forward import completion_logprobs
from recording import RecordingSGD

LN = math.log


# ---------------------------------------------------------------- truncated / masked IS, by hand


def test_tis_weights_are_the_ratio_capped_and_carry_no_gradient():
    # ratios exp(train - engine): 0.5, 1, 3 (capped to 2), and a tool token (mask 0) far off that never counts
    engine = torch.tensor([[0.0, -1.0, -2.0, 0.0]], requires_grad=True)
    train = (engine.detach() + torch.tensor([[LN(0.5), 0.0, LN(3.0), 50.0]])).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w, m = rollout_is_weights(train, engine, mask, "tis", cap=2.0)
    assert torch.allclose(w, torch.tensor([[0.5, 1.0, 2.0, 1.0]]))
    assert w.grad_fn is None and not w.requires_grad
    assert m["rollout_is/truncated_frac"] == pytest.approx(1 / 3)
    assert m["rollout_is/ratio_mean"] == pytest.approx((0.5 + 1 + 3) / 3)
    assert m["rollout_is/weight_mean"] == pytest.approx((0.5 + 1 + 2) / 3)


def test_tis_scales_each_tokens_policy_gradient_and_nothing_flows_into_the_weight():
    """On-policy (old = logp): ratio 1, so d loss / d logp_t = -A * w_t / N (token_mean, N = 3)."""
    logp = torch.tensor([[-1.0, -2.0, -0.5, -3.0]], requires_grad=True)
    train_old = logp.detach().clone()
    engine = (train_old - torch.tensor([[LN(0.5), 0.0, LN(3.0), 9.0]])).requires_grad_()  # rho 0.5, 1, 3
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, m = policy_loss(logp, train_old, torch.tensor([2.0]), mask, rollout_logp=engine, rollout_is="tis")
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-2 * 0.5 / 3, -2 * 1.0 / 3, -2 * 2.0 / 3, 0.0]]))
    assert engine.grad is None  # the engine's log-probs enter only through the constant weight
    assert loss.item() == pytest.approx(-2 * (0.5 + 1 + 2) / 3)
    assert m["rollout_is/truncated_frac"] == pytest.approx(1 / 3) and m["ratio_mean"] == pytest.approx(1.0)


def test_tis_weight_multiplies_the_clipped_term_not_the_kl():
    """A clipped token (A > 0, ratio 1.5 > 1.2) stays clipped (zero gradient) whatever its weight;
    the KL term is not importance-weighted."""
    logp = torch.tensor([[LN(1.5), 0.0]], requires_grad=True)
    old = torch.zeros(1, 2)
    engine = old - torch.tensor([[0.0, LN(4.0)]])  # weights 1 and 2 (rho 4, capped)
    ref = torch.full((1, 2), -0.1)
    mask = torch.ones(1, 2)
    loss, _ = policy_loss(logp, old, torch.tensor([1.0]), mask, rollout_logp=engine, rollout_is="tis",
                          ref_logp=ref, kl_coef=0.5, kl_estimator="k2")
    loss.backward()
    kl_grad = 0.5 * (logp.detach() - ref)  # d/dlogp of 0.5 * 0.5 * (ref - logp)^2
    expected = torch.tensor([[0.0, -1.0 * 2.0]]) + kl_grad  # token 0 clipped; token 1: -A * ratio(1) * w(2)
    assert torch.allclose(logp.grad, expected / 2)


def test_mis_tokens_outside_the_band_get_no_loss():
    logp = torch.tensor([[-1.0, -1.0, -1.0, -1.0, -1.0]], requires_grad=True)
    train_old = logp.detach().clone()
    rho = torch.tensor([[0.4, 1.0, 2.5, 1.999, 0.501]])  # band [0.5, 2]: out, in, out, in, in
    engine = train_old - rho.log()
    mask = torch.ones(1, 5)
    loss, m = policy_loss(logp, train_old, torch.tensor([-1.0]), mask, rollout_logp=engine, rollout_is="mis",
                          rollout_is_cap=2.0, rollout_is_low=0.5)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 0.2, 0.0, 0.2, 0.2]]))  # -A * 1 / N in the band, else 0
    assert m["rollout_is/masked_frac"] == pytest.approx(2 / 5)
    assert m["rollout_is/weight_mean"] == pytest.approx(3 / 5)
    assert m["rollout_is/ratio_mean"] == pytest.approx(float(rho.mean()))


def test_rollout_is_needs_the_engine_logprobs_and_a_known_mode():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="rollout_logp"):
        policy_loss(x, x, torch.ones(1), torch.ones(1, 2), rollout_is="tis")
    with pytest.raises(ValueError, match="rollout_is mode"):
        rollout_is_weights(x, x, torch.ones(1, 2), "off")
    with pytest.raises(ValueError, match="ratio_level"):
        policy_loss(x, x, torch.ones(1), torch.ones(1, 2), ratio_level="seq")


# ---------------------------------------------------------------- GSPO, by hand


def test_sequence_ratio_is_the_geometric_mean_of_the_sampled_tokens_ratios():
    old = torch.tensor([[-1.0, -2.0, -0.5, -7.0], [-1.0, -1.0, -1.0, -1.0]])
    logp = old + torch.tensor([[0.1, -0.3, 0.5, 4.0], [0.2, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # row 0's 4th token: a tool token
    lr = sequence_log_ratio(logp, old, mask)
    geo = (math.exp(0.1) * math.exp(-0.3) * math.exp(0.5)) ** (1 / 3)
    assert torch.allclose(lr.exp()[0], torch.full((4,), geo))
    assert torch.allclose(lr.exp()[1], torch.full((4,), math.exp(0.2)))
    _, m = policy_loss(logp, old, torch.tensor([1.0, 1.0]), mask, ratio_level="sequence", clip_low=1.0, clip_high=1.0)
    assert m["ratio_mean"] == pytest.approx((3 * geo + math.exp(0.2)) / 4)  # token-weighted


def test_gspo_clips_per_sequence():
    """Row 0: s = exp(0.001) > 1 + 4e-4 with A > 0, clipped: no gradient on any of its tokens, even the
    one whose own ratio is below 1. Row 1: s = exp(0.0001) inside the band: every token gets -A * s / N."""
    old = torch.zeros(2, 3)
    logp = torch.tensor([[0.004, -0.002, 0.001], [0.0001, 0.0001, 0.0001]], requires_grad=True)
    mask = torch.ones(2, 3)
    loss, m = policy_loss(logp, old, torch.tensor([1.0, 1.0]), mask, ratio_level="sequence",
                          clip_low=3e-4, clip_high=4e-4)
    loss.backward()
    s1 = math.exp(0.0001)
    assert torch.equal(logp.grad[0], torch.zeros(3))
    assert torch.allclose(logp.grad[1], torch.full((3,), -s1 / 6))
    assert m["clip_frac_high"] == pytest.approx(0.5)  # the 3 tokens of the clipped completion, of 6
    token_level, _ = policy_loss(logp, old, torch.tensor([1.0, 1.0]), mask, clip_low=3e-4, clip_high=4e-4)
    assert not torch.allclose(token_level, loss)  # per token, row 0's middle token is not clipped


def _gspo_paper(logp, old, adv, mask, eps_low, eps_high):
    """GSPO as the paper writes it: mean over sequences of -min(s_i A_i, clip(s_i) A_i)."""
    s = torch.exp(((logp - old) * mask).sum(-1) / mask.sum(-1))
    return -torch.minimum(s * adv, s.clamp(1 - eps_low, 1 + eps_high) * adv).mean()


@pytest.mark.parametrize("aggregation", ["seq_mean_token_mean", "token_mean"])
def test_gspo_token_form_has_the_papers_gradient(aggregation):
    torch.manual_seed(0)
    old = -torch.rand(4, 6) * 3
    logp = (old + 0.05 * torch.randn(4, 6)).requires_grad_()
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1, 1, 0, 1, 1, 0], [1] + [0] * 5], dtype=torch.float)
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2])
    loss, _ = policy_loss(logp, old, adv, mask, ratio_level="sequence", clip_low=0.02, clip_high=0.03,
                          aggregation=aggregation)
    (g,) = torch.autograd.grad(loss, logp)
    paper = _gspo_paper(logp, old, adv, mask, 0.02, 0.03)
    (g_paper,) = torch.autograd.grad(paper, logp)
    if aggregation == "seq_mean_token_mean":  # the paper's objective exactly: value and gradient
        assert loss.item() == pytest.approx(paper.item(), abs=1e-6)
        assert torch.allclose(g, g_paper, atol=1e-7)
    else:  # token_mean weighs completion i by |y_i| / N instead of 1 / B: the same direction per completion
        lengths = mask.sum(-1, keepdim=True)
        assert torch.allclose(g, g_paper * lengths * 4 / mask.sum(), atol=1e-7)
    assert (g_paper.abs().sum(-1) > 0).sum() >= 2  # some completions unclipped: the test compares something


def test_gspo_equals_token_level_grpo_when_every_tokens_ratio_is_equal():
    """log-ratio c_i at every token of row i: the sequence ratio is exp(c_i) = every token's ratio,
    so loss and gradient are GRPO's (on the first, on-policy step c_i = 0)."""
    old = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -4.0]])
    for c in (torch.tensor([[0.1], [-0.15]]), torch.zeros(2, 1)):
        logp = (old + c).requires_grad_()
        mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
        out = []
        for level in ("token", "sequence"):
            loss, m = policy_loss(logp, old, torch.tensor([0.8, -1.1]), mask, ratio_level=level)
            out.append((loss.item(), torch.autograd.grad(loss, logp)[0], m["clip_frac_low"]))
        assert out[0][0] == pytest.approx(out[1][0], rel=1e-6)
        assert torch.allclose(out[0][1], out[1][1], atol=1e-7) and out[0][2] == out[1][2]


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("key, value", [("algo.rollout_is", "trunc"), ("algo.ratio_level", "seq"),
                                        ("algo.rollout_is_cap", "0.5"), ("algo.rollout_is_low", "1.5"),
                                        ("algo.rollout_is_low", "-0.1")])
def test_bad_rollout_correction_keys_are_one_line_errors_naming_the_key(key, value):
    with pytest.raises(UserError, match=key.replace(".", r"\.")) as e:
        C.load(C.RLConfig, None, [f"{key}={value}"])
    assert "\n" not in str(e.value)


def test_rollout_correction_keys_default_off():
    a = C.load(C.RLConfig, None, []).algo
    assert (a.rollout_is, a.ratio_level, a.rollout_is_cap, a.rollout_is_low) == ("off", "token", 2.0, 0.5)
    a = C.load(C.RLConfig, None, ["algo.rollout_is=mis", "algo.rollout_is_cap=3", "algo.ratio_level=sequence"]).algo
    assert (a.rollout_is, a.ratio_level, a.rollout_is_cap) == ("mis", "sequence", 3.0)


# ---------------------------------------------------------------- the RL update and loop


def _rollouts(model):
    """2 prompts x 4 completions; the engine's log-probs are the model's own plus noise (so some ratios
    leave [0.5, 2]); completion 2's 3rd token is a tool token (mask 0, engine log-prob 0)."""
    prompts = [[5, 9, 13, 21, 8], [7, 3, 11]]
    gen = torch.Generator().manual_seed(3)
    out, train = [], []
    for i, n in enumerate([9, 1, 6, 2, 3, 8, 1, 7]):
        tokens = torch.randint(4, 100, (n,), generator=gen).tolist()
        with torch.no_grad():
            lp = completion_logprobs(model, [prompts[i // 4]], [0], [tokens], temperature=1.0)[0][0]
        engine = (lp + 0.6 * torch.randn(n, generator=gen)).tolist()
        mask = [1] * n
        if i == 2:
            mask[2], engine[2] = 0, 0.0
        c = Completion(0, 0, tokens, engine, mask, "eos", "")
        out.append(rl.Rollout(Problem("p", "q", "a"), prompts[i // 4], c, {}, 0.0))
        train.append((lp, torch.tensor(engine), torch.tensor(mask, dtype=torch.bool)))
    return out, train


def _update(model, rollouts, record=True, **algo):
    cfg = C.RLConfig(algo=C.AlgoConfig(micro_batch_size=3, **algo), optim=C.OptimConfig(lr=1e-2, grad_clip=0.0),
                     sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))
    m = copy.deepcopy(model)
    opt = RecordingSGD(m.parameters()) if record else torch.optim.SGD(m.parameters(), lr=1e-2)
    adv = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    metrics = rl.update(cfg, 0, m, None, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts, adv, 0)
    return metrics, getattr(opt, "grads", None)


@pytest.mark.parametrize("mode", ["tis", "mis"])
def test_update_logs_the_share_over_the_whole_batch(tiny_llama, mode):
    model, _ = tiny_llama
    rollouts, train = _rollouts(model)
    rho = torch.cat([torch.exp(lp - e)[m] for lp, e, m in train])  # the sampled tokens only
    out = rho > 2.0 if mode == "tis" else (rho > 2.0) | (rho < 0.5)
    assert 0 < out.float().mean() < 1
    for epochs, mini in ((1, 1), (2, 2)):  # one optimizer step (this forward's log-probs), or a pre-pass
        metrics, _ = _update(model, rollouts, record=False, rollout_is=mode, epochs=epochs, mini_batches=mini)
        key = "rollout_is/truncated_frac" if mode == "tis" else "rollout_is/masked_frac"
        assert metrics[key] == pytest.approx(float(out.float().mean()), abs=1e-6)
        assert metrics["rollout_is/ratio_mean"] == pytest.approx(float(rho.mean()), rel=1e-5)
        assert metrics["mismatch/max"] > 0.5  # the mismatch the correction sees, already logged


def test_prepass_gives_the_same_update_as_the_training_forward_itself(tiny_llama):
    """epochs = 2 needs the training log-probs before the update from a no-grad pre-pass; its first
    optimizer step equals one with epochs = 1, where the forward's own detached log-probs serve."""
    model, _ = tiny_llama
    rollouts, _ = _rollouts(model)
    _, one = _update(model, rollouts, rollout_is="tis")
    _, two = _update(model, rollouts, rollout_is="tis", epochs=2)
    assert len(two) == 2 and sum(g is not None for g in one[0]) > 5
    for a, b in zip(one[0], two[0]):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-6, rtol=1e-4))


def test_options_off_give_the_same_update_as_before(tiny_llama):
    """rollout_is = off and ratio_level = token are the defaults, bit for bit, and add no metrics."""
    model, _ = tiny_llama
    rollouts, _ = _rollouts(model)
    m_default, g_default = _update(model, rollouts, epochs=2)
    m_explicit, g_explicit = _update(model, rollouts, epochs=2, rollout_is="off", ratio_level="token")
    for a, b in zip(g_default[1], g_explicit[1]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert m_default == m_explicit
    assert not any(k.startswith("rollout_is/") for k in m_default)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


@pytest.mark.parametrize("over", [
    {"algo.rollout_is": "tis"},
    {"algo.rollout_is": "mis", "algo.epochs": 2, "algo.mini_batches": 2},
    {"algo.ratio_level": "sequence", "algo.clip_low": 3e-4, "algo.clip_high": 4e-4, "algo.epochs": 2},
], ids=["tis", "mis-prepass", "gspo"])
def test_rl_runs_with_each_option(model_dir, tmp_path, over):
    base = {"model.name": str(model_dir), "out_dir": str(tmp_path / "run"), "task.name": "arithmetic",
            "task.template": "raw", "task.digits": "1,1", "task.ops": "+", "task.num_eval": 4, "task.shots": 1,
            "steps": 2, "prompts_per_step": 2, "group_size": 4, "sampling.max_new_tokens": 8, "eval.limit": 0,
            "optim.lr": 1e-3, "algo.micro_batch_size": 4, "rewards.custom": "tiny_rewards:odd_first_char",
            "rewards.custom_weights": "1.0", **over}
    cfg = C.load(C.RLConfig, None, [f"{k}={v}" for k, v in base.items()])
    rl.train(cfg, show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/mean" in r]
    assert len(steps) == 2 and all(math.isfinite(r["grad_norm"]) for r in steps)
    if over.get("algo.rollout_is") == "tis":
        assert steps[0]["rollout_is/truncated_frac"] == 0.0  # fp32 on CPU: engine and training agree
        assert steps[0]["rollout_is/ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    elif "algo.rollout_is" in over:
        assert steps[0]["rollout_is/masked_frac"] == 0.0
    else:
        assert "rollout_is/ratio_mean" not in steps[0] and steps[1]["ratio_mean"] > 0
