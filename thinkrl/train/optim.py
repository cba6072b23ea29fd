"""The optimizer and learning-rate schedule every training loop shares (rl, sft, rm, the PPO critic)."""

from __future__ import annotations

import math

import torch


def lr_lambda(o, total_steps: int):
    """Multiplier of the base learning rate after `s` optimizer steps: warm-up, then the schedule.

    `o` is an OptimConfig: warmup_steps of linear warm-up, then constant, linear or cosine decay to
    min_lr_ratio at `total_steps`."""

    def f(s: int) -> float:
        if s < o.warmup_steps:
            return (s + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        progress = min(1.0, (s - o.warmup_steps) / max(1, total_steps - o.warmup_steps))
        if o.schedule == "linear":
            return 1.0 - (1.0 - o.min_lr_ratio) * progress
        return o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def adamw(params, o, total_steps: int, lr: float | None = None):
    """(AdamW, LambdaLR) from an OptimConfig; `lr` overrides o.lr (the PPO critic has its own)."""
    optimizer = torch.optim.AdamW(params, lr=o.lr if lr is None else lr, betas=(o.beta1, o.beta2),
                                  weight_decay=o.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(o, total_steps))
