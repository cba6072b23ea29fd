"""Group-relative advantages: GRPO, RLOO and Dr. GRPO as three switches of one function.

GRPO (DeepSeekMath): A_i = (r_i - mean(group)) / (std(group) + eps), one advantage per completion,
broadcast to its tokens. RLOO (Ahmadian et al. 2024) uses the leave-one-out mean of the other
G - 1 rewards as the baseline, which makes the estimate unbiased. Dr. GRPO (Liu et al. 2025)
drops the std division (scale="none"): dividing by a small group std up-weights nearly solved or
nearly hopeless prompts. scale="batch" divides by the std of all rewards in the batch instead
(the "batch" scaling TRL and the Dr. GRPO paper discuss as a middle ground).

The estimator and the scale are independent choices: rloo + group std is allowed.
"""

from __future__ import annotations

import torch

ESTIMATORS = ("grpo", "rloo")
SCALES = ("group", "batch", "none")
STD_EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, *, estimator: str = "grpo", scale: str = "group") -> torch.Tensor:
    """Advantages [N] for rewards [N] laid out group-major (group g holds rows g*G .. g*G+G-1).

    Standard deviations are Bessel-corrected (unbiased=True), as torch.std and TRL compute them;
    STD_EPS keeps the division finite for groups whose rewards are all equal (their centred
    advantages are 0 anyway).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be 1-D with a multiple of group_size={group_size} entries, got {tuple(rewards.shape)}")
    if group_size < 2 and (estimator == "rloo" or scale == "group"):
        raise ValueError(f"group_size must be >= 2 for estimator={estimator!r}, scale={scale!r}")
    r = rewards.float().view(-1, group_size)  # [groups, G]
    if estimator == "grpo":
        baseline = r.mean(dim=1, keepdim=True)
    else:  # leave-one-out: mean of the other G - 1 rewards
        baseline = (r.sum(dim=1, keepdim=True) - r) / (group_size - 1)
    adv = r - baseline  # [groups, G]
    if scale == "group":
        adv = adv / (r.std(dim=1, keepdim=True) + STD_EPS)
    elif scale == "batch":
        adv = adv / (rewards.float().std() + STD_EPS)
    return adv.reshape(-1)
