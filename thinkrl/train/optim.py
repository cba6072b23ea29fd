"""The optimizer, learning-rate schedule and optimizer step every training loop shares (rl, sft,
rm, dpo, the PPO critic)."""

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

    On CUDA the fused kernel (one launch for every parameter, same math); on CPU the default.
    A model in bf16 or fp16 (CUDA's default dtype) gets fp32 master weights (`MasterAdamW`)."""
    params = list(params)
    fused = bool(params) and all(p.is_cuda for p in params)
    kind = MasterAdamW if any(p.dtype != torch.float32 for p in params) else torch.optim.AdamW
    optimizer = kind(params, lr=o.lr if lr is None else lr, betas=(o.beta1, o.beta2),
                     weight_decay=o.weight_decay, fused=fused or None)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(o, total_steps))


class MasterAdamW(torch.optim.AdamW):
    """AdamW on fp32 master copies of a low-precision (bf16) model's weights.

    Why: at RL learning rates an update is far below a bf16 weight's resolution (lr 1e-6 against a
    spacing of 1.2e-4 at |w| = 0.02), so pure-bf16 AdamW rounds most updates away and the model
    does not move. Here the forward, backward and the engine's decode use the bf16 model; `step`
    reads its gradients into the fp32 masters, runs AdamW there and writes the rounded weights
    back. Memory per parameter: 2 (bf16 weight) + 4 (master) + 8 (AdamW moments) bytes, and a
    gradient's fp32 copy while stepping (its bf16 gradient is freed then). The masters are part of
    `state_dict`, so a checkpoint resumes the exact fp32 state, not the rounded weights."""

    def __init__(self, params, **kwargs):
        self.model_params = list(params)
        masters = [p.detach().float().clone().requires_grad_(True) for p in self.model_params]
        super().__init__(masters, **kwargs)

    def masters(self) -> list[torch.Tensor]:
        return [m for group in self.param_groups for m in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        for p, m in zip(self.model_params, self.masters()):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None
        loss = super().step(closure)
        for p, m in zip(self.model_params, self.masters()):
            p.copy_(m)
            m.grad = None
        return loss

    def zero_grad(self, set_to_none: bool = True):
        for p in self.model_params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()
        super().zero_grad(set_to_none)

    def state_dict(self):
        state = super().state_dict()
        state["fp32_masters"] = [m.detach().clone() for m in self.masters()]
        return state

    @torch.no_grad()
    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        masters = state_dict.pop("fp32_masters", None)
        super().load_state_dict(state_dict)
        if masters is not None:
            for p, m, saved in zip(self.model_params, self.masters(), masters):
                m.copy_(saved)
                p.copy_(m)


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

    def step(self, optimizer, grad_norm: float | torch.Tensor, loss: float = 0.0, where: str = "") -> bool:
        """optimizer.step() when `loss` (any non-finite one of the update's micro-batches, else
        any finite number) and `grad_norm` are finite; else count, warn, and raise at the limit.
        True if the optimizer stepped. The caller still zeroes the gradients either way."""
        from thinkrl.errors import UserError, warn

        grad_norm = float(grad_norm)  # one host read
        bad = f"loss ({loss})" if not math.isfinite(loss) else f"gradient norm ({grad_norm})"
        if math.isfinite(loss) and math.isfinite(grad_norm):
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


def optimizer_step(params, optimizer, scheduler, guard: SkipGuard, grad_clip: float, loss: float,
                   where: str) -> tuple[float, bool]:
    """The end of every update, after the backward passes: clip the gradient norm to grad_clip (0:
    measure it only), step the optimizer through `guard` (skipped when `loss` or the norm is not
    finite), advance the schedule, zero the gradients. Returns (gradient norm, stepped)."""
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip or float("inf")))  # the step's one read of it
    stepped = guard.step(optimizer, grad_norm, loss, where=where)
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, stepped
