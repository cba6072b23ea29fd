"""Properties of the loss and the advantages that a plausible one-token bug breaks.

Written for the mutation check (benchmarks/mutation_check.py): each test here kills a mutant
that tests/algos/test_algos.py let through (the entropy bonus's sign, the clip bounds swapped,
the leave-one-out baseline, the group axis).
"""

import math

import torch

from thinkrl.algos import group_advantages, policy_loss


def test_entropy_bonus_lowers_the_loss_and_pushes_entropy_up():
    """A bonus: with entropy_coef > 0, higher entropy means a lower loss, and the gradient of the
    loss with respect to the entropy is -coef / tokens (descending it raises the entropy)."""
    logp = torch.zeros(1, 4)
    mask = torch.ones(1, 4)
    entropy = torch.full((1, 4), 2.0, requires_grad=True)
    base, _ = policy_loss(logp, logp, torch.tensor([0.0]), mask)
    loss, metrics = policy_loss(logp, logp, torch.tensor([0.0]), mask, entropy=entropy, entropy_coef=0.1)
    assert math.isclose(loss.item() - base.item(), -0.1 * 2.0, rel_tol=1e-6)
    loss.backward()
    assert torch.allclose(entropy.grad, torch.full((1, 4), -0.1 / 4))
    assert math.isclose(metrics["entropy"], 2.0)


def test_clip_bounds_are_not_swapped():
    """clip_low bounds the ratio from below, clip_high from above: with 0.1 / 0.3, a ratio of 1.25
    on a positive advantage is inside (not clipped) and 0.85 on a negative one is clipped at 0.9."""
    for ratio, adv, expected in [(1.25, 1.0, -1.25), (1.35, 1.0, -1.3), (0.85, -1.0, 0.9), (0.95, -1.0, 0.95)]:
        logp = torch.tensor([[math.log(ratio)]])
        loss, _ = policy_loss(logp, torch.zeros(1, 1), torch.tensor([adv]), torch.ones(1, 1), clip_low=0.1, clip_high=0.3)
        assert math.isclose(loss.item(), expected, rel_tol=1e-6), (ratio, adv)


def test_advantages_are_per_group_zero_mean_unit_std():
    """Each group is centred on its own mean and scaled by its own (Bessel) std: groups of very
    different reward levels get the same advantages."""
    r = torch.tensor([0.0, 1.0, 1.0, 0.0, 10.0, 11.0, 11.0, 10.0, 5.0, 5.0, 5.0, 7.0])
    adv = group_advantages(r, 4).view(3, 4)
    assert torch.allclose(adv[0], adv[1], atol=1e-4)
    assert torch.allclose(adv.mean(dim=1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(adv[:2].std(dim=1), torch.ones(2), atol=1e-3)
    assert adv[2, 3] > 0 > adv[2, 0]


def test_rloo_baseline_leaves_the_sample_out():
    r = torch.tensor([3.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    adv = group_advantages(r, 3, estimator="rloo", scale="none")
    assert torch.allclose(adv, torch.tensor([3.0, -1.5, -1.5, 0.0, 0.0, 0.0]))


def test_batch_scale_uses_the_whole_batch_std():
    r = torch.tensor([0.0, 2.0, 0.0, 10.0])
    adv = group_advantages(r, 2, scale="batch")
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, -5.0, 5.0]) / (r.std() + 1e-4))
