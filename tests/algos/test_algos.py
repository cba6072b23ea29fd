"""Hand-computed cases for every advantage and loss variant, and TRL's formulas on random inputs."""

import math

import pytest
import torch

from thinkrl.algos import group_advantages, kl_penalty, policy_loss

# ---------------------------------------------------------------- advantages


def test_grpo_group_std_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(r, 4)
    std = math.sqrt(4 * 0.25 / 3)  # Bessel: sum of squared deviations 1.0 over n - 1 = 3
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4), 0, 0, 0, 0]
    assert torch.allclose(adv, torch.tensor(expected), atol=1e-6)


def test_rloo_leave_one_out_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    adv = group_advantages(r, 4, estimator="rloo", scale="none")
    assert torch.allclose(adv, torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3]))
    # RLOO advantages equal GRPO's times G / (G - 1)
    grpo = group_advantages(r, 4, scale="none")
    assert torch.allclose(adv, grpo * 4 / 3)


def test_dr_grpo_no_scaling_and_batch_scaling():
    r = torch.tensor([3.0, 1.0, 0.0, 0.0])
    assert torch.allclose(group_advantages(r, 2, scale="none"), torch.tensor([1.0, -1.0, 0.0, 0.0]))
    batch_std = r.std().item()  # Bessel over all 4: mean 1, squares 4+0+1+1 = 6, / 3 -> sqrt 2
    assert math.isclose(batch_std, math.sqrt(2), rel_tol=1e-6)
    assert torch.allclose(group_advantages(r, 2, scale="batch"), torch.tensor([1.0, -1.0, 0.0, 0.0]) / (math.sqrt(2) + 1e-4))


def test_advantage_argument_errors():
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(4), 2, estimator="ppo")
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(4), 1, scale="group")


# ---------------------------------------------------------------- clipping, both sides and dual


def one_token(ratio, adv, **kw):
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, metrics = policy_loss(logp, torch.zeros(1, 1), torch.tensor([adv]), torch.ones(1, 1), **kw)
    loss.backward()
    return loss.item(), logp.grad.item(), metrics


@pytest.mark.parametrize(
    "ratio, adv, loss, grad_nonzero, low, high",
    [
        (1.1, 1.0, -1.1, True, 0, 0),  # inside the clip range: -A * ratio, gradient flows
        (1.5, 1.0, -1.2, False, 0, 1),  # positive advantage above 1 + 0.2: clipped, no gradient
        (0.5, 1.0, -0.5, True, 0, 0),  # positive advantage below the range: not clipped (pessimistic min)
        (0.5, -1.0, 0.8, False, 1, 0),  # negative advantage below 1 - 0.2: clipped at 0.8
        (1.5, -1.0, 1.5, True, 0, 0),  # negative advantage above the range: unclipped, loss grows
    ],
)
def test_clip_cases(ratio, adv, loss, grad_nonzero, low, high):
    got, grad, m = one_token(ratio, adv)
    assert math.isclose(got, loss, rel_tol=1e-6)
    assert (abs(grad) > 0) == grad_nonzero
    assert m["clip_frac_low"] == low and m["clip_frac_high"] == high


def test_clip_higher_is_asymmetric():
    got, grad, m = one_token(1.25, 1.0, clip_low=0.2, clip_high=0.28)  # within 1.28: not clipped
    assert math.isclose(got, -1.25, rel_tol=1e-6) and grad != 0 and m["clip_frac_high"] == 0
    got, grad, m = one_token(0.75, -1.0, clip_low=0.2, clip_high=0.28)  # below 0.8: clipped
    assert math.isclose(got, 0.8, rel_tol=1e-6) and grad == 0 and m["clip_frac_low"] == 1


def test_dual_clip_bounds_negative_advantage_loss():
    got, grad, m = one_token(5.0, -1.0, dual_clip=3.0)
    assert math.isclose(got, 3.0, rel_tol=1e-6) and grad == 0 and m["clip_frac_dual"] == 1
    got, _, m = one_token(2.0, -1.0, dual_clip=3.0)  # below the dual bound: ordinary loss
    assert math.isclose(got, 2.0, rel_tol=1e-6) and m["clip_frac_dual"] == 0
    got, _, _ = one_token(5.0, 1.0, dual_clip=3.0)  # positive advantages are untouched
    assert math.isclose(got, -1.2, rel_tol=1e-6)


# ---------------------------------------------------------------- KL estimators


def test_kl_estimators_hand_computed():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-1.5]])
    d = -0.5  # ref - logp
    assert math.isclose(kl_penalty(logp, ref, "k1").item(), 0.5, rel_tol=1e-6)
    assert math.isclose(kl_penalty(logp, ref, "k2").item(), 0.125, rel_tol=1e-6)
    assert math.isclose(kl_penalty(logp, ref, "k3").item(), math.exp(d) - d - 1, rel_tol=1e-6)
    assert kl_penalty(ref, ref, "k3").item() == 0.0


def test_k_estimators_are_unbiased_or_not_as_schulman_says():
    # pi = N-ish categorical, ref another; E_pi[k1] = E_pi[k3] = KL(pi||ref); k2 is biased
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.5, 0.3])
    kl = (p * (p / q).log()).sum().item()
    lp, lq = p.log()[None], q.log()[None]
    for est in ("k1", "k3"):
        assert math.isclose((p * kl_penalty(lp, lq, est)[0]).sum().item(), kl, rel_tol=1e-5)
    assert not math.isclose((p * kl_penalty(lp, lq, "k2")[0]).sum().item(), kl, rel_tol=1e-2)


def test_kl_term_added_with_its_coefficient():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -2.0]])
    mask = torch.ones(1, 2)
    base, _ = policy_loss(logp, logp, torch.tensor([0.0]), mask)
    with_kl, m = policy_loss(logp, logp, torch.tensor([0.0]), mask, ref_logp=ref, kl_coef=0.1, kl_estimator="k1")
    assert math.isclose(with_kl.item() - base.item(), 0.1 * 0.5 / 2, rel_tol=1e-6)
    assert math.isclose(m["kl"], 0.25, rel_tol=1e-6)


# ---------------------------------------------------------------- aggregation


def test_aggregations_hand_computed():
    # ratio 1 everywhere, so token loss = -A; two sequences with 1 and 3 valid tokens
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 0, 0], [1, 1, 1]])
    adv = torch.tensor([2.0, 1.0])
    tm, _ = policy_loss(logp, logp, adv, mask, aggregation="token_mean")
    assert math.isclose(tm.item(), -(2 + 3) / 4)
    sm, _ = policy_loss(logp, logp, adv, mask, aggregation="seq_mean_token_mean")
    assert math.isclose(sm.item(), -(2 + 1) / 2)
    dr, _ = policy_loss(logp, logp, adv, mask, aggregation="seq_mean_token_sum_norm", max_len=10)
    assert math.isclose(dr.item(), -(2 + 3) / (2 * 10))
    half, _ = policy_loss(logp, logp, adv, mask, aggregation="token_mean", normalizer=8.0)
    assert math.isclose(half.item(), -(2 + 3) / 8)
    with pytest.raises(ValueError):
        policy_loss(logp, logp, adv, mask, aggregation="seq_mean_token_sum_norm")


def test_micro_batches_with_global_normalizer_sum_to_the_full_batch_loss():
    torch.manual_seed(0)
    logp, old = torch.randn(6, 5) * 0.1, torch.randn(6, 5) * 0.1
    mask = (torch.rand(6, 5) > 0.3).float()
    adv = torch.randn(6)
    for agg, norm in [("token_mean", mask.sum().item()), ("seq_mean_token_mean", 6), ("seq_mean_token_sum_norm", 6)]:
        full, _ = policy_loss(logp, old, adv, mask, aggregation=agg, max_len=5)
        parts = sum(policy_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], aggregation=agg, max_len=5,
                                normalizer=norm)[0] for i in (0, 2, 4))
        assert torch.allclose(full, parts, atol=1e-6), agg


# ---------------------------------------------------------------- TRL's published formulas


def trl_loss(loss_type, logp, old, ref, adv, mask, eps_low, eps_high, beta, max_completion_length):
    """TRL GRPOTrainer._compute_loss as TRL (v0.19 - v1.x) documents and writes it, re-implemented here
    because TRL itself is not installed in CI (it pulls datasets/pyarrow): token-level clipped
    surrogate -min(r A, clip(r) A) plus beta * k3, then its loss_type normalisation."""
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss = -torch.min(coef_1 * adv[:, None], coef_2 * adv[:, None])
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * (torch.exp(ref - logp) - (ref - logp) - 1)
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    if loss_type == "dapo":  # normalised by the active tokens of the whole (global) batch
        return (per_token_loss * mask).sum() / mask.sum()
    raise ValueError(loss_type)


@pytest.mark.parametrize("loss_type, aggregation", [("grpo", "seq_mean_token_mean"), ("bnpo", "token_mean"),
                                                    ("dr_grpo", "seq_mean_token_sum_norm"), ("dapo", "token_mean")])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_matches_trl_loss_types(loss_type, aggregation, beta):
    torch.manual_seed(1)
    b, t = 8, 12
    logp = -torch.rand(b, t) * 3
    old = logp + torch.randn(b, t) * 0.3  # ratios well outside the clip range on some tokens
    ref = logp + torch.randn(b, t) * 0.2
    mask = (torch.arange(t)[None] < torch.randint(1, t + 1, (b, 1))).float()
    adv = torch.randn(b)
    ours, _ = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, aggregation=aggregation, max_len=t,
                          ref_logp=ref, kl_coef=beta, kl_estimator="k3")
    theirs = trl_loss(loss_type, logp, old, ref, adv, mask, 0.2, 0.28, beta, t)
    assert torch.allclose(ours, theirs, atol=1e-6)
