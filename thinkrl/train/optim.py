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
    """(AdamW, LambdaLR) from an OptimConfig; `lr` overrides o.lr (the PPO critic has its own).

    On CUDA the fused kernel (one launch for every parameter, same math); on CPU the default."""
    params = list(params)
    fused = bool(params) and all(p.is_cuda for p in params)
    optimizer = torch.optim.AdamW(params, lr=o.lr if lr is None else lr, betas=(o.beta1, o.beta2),
                                  weight_decay=o.weight_decay, fused=fused or None)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(o, total_steps))


class SkipGuard:
    """Skips an optimizer step whose loss or gradient is not finite; stops the run after `limit` in a row.

    A skipped step leaves the weights and the optimizer state as they were, so no NaN reaches them.
    While updates are being skipped no checkpoint is written (`may_checkpoint`), and the stop is a
    UserError raised before the step's checkpoint: the newest checkpoint stays the state after the
    last finite update (with lr so high that finite updates diverge, those can be bad too: nothing
    short of the NaN tells). `limit` is optim.max_skipped_updates (0 = never stop). Every loop keeps
    one per optimizer (the PPO critic its own) for the whole run."""

    def __init__(self, limit: int, what: str = "the model"):
        self.limit, self.what = limit, what
        self.in_a_row = 0
        self.skipped = 0  # over the whole run

    def step(self, optimizer, grad_norm: torch.Tensor, loss: float = 0.0, where: str = "") -> bool:
        """optimizer.step() when `loss` (any non-finite one of the update's micro-batches, else
        any finite number) and `grad_norm` are finite; else count, warn, and raise at the limit.
        True if the optimizer stepped. The caller still zeroes the gradients either way."""
        from thinkrl.errors import UserError, warn

        bad = f"loss ({loss})" if not math.isfinite(loss) else f"gradient norm ({float(grad_norm)})"
        if math.isfinite(loss) and bool(torch.isfinite(grad_norm)):
            optimizer.step()
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.skipped += 1
        stop = f"; the run stops at {self.limit}" if self.limit else ""
        warn(f"{where + ': ' if where else ''}non-finite {bad} in the update of {self.what}: skipped, "
             f"{self.in_a_row} in a row{stop}")
        if self.limit and self.in_a_row >= self.limit:
            raise UserError(
                f"{self.in_a_row} updates of {self.what} in a row had a non-finite loss or gradient "
                f"(the last {where or 'just now'}, {bad}), so the run stopped; its last checkpoint is intact. "
                "Lower optim.lr, check the rewards (reward/errors in metrics.jsonl) and the data, "
                "or set optim.max_skipped_updates = 0 to never stop")
        return False

    def may_checkpoint(self, where: str = "") -> bool:
        """False, with a warning, while updates are being skipped: the state may be on its way to
        the stop, and rotating out older checkpoints for it would lose the last good one."""
        if self.in_a_row:
            from thinkrl.errors import warn

            warn(f"{where + ': ' if where else ''}no checkpoint written: the last {self.in_a_row} updates of "
                 f"{self.what} were skipped")
            return False
        return True
