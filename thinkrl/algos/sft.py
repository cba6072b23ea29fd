"""Supervised losses: next-token cross-entropy on chosen tokens, and token-level distillation.

Used by `thinkrl sft` (cold start and the SFT after rejection sampling in R1) and `thinkrl
distill` (a student trained on a teacher's correct traces, optionally matching the teacher's
whole next-token distribution when both share a tokenizer).
"""

from __future__ import annotations

import torch


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None):
    """Negative log-likelihood of the masked tokens.

    logp [B, T]: log-prob of each target token; mask [B, T]: 1 on tokens that carry loss (the
    assistant's). The sum is divided by `normalizer` (default: the masked tokens here), so
    micro-batches of one optimizer step can share the step's total token count: every token then
    weighs the same whatever micro-batch it fell in.
    Returns (loss, {"nll": mean NLL per masked token, "tokens": count}).
    """
    tokens = mask.sum()
    nll = -(logp * mask).sum()
    loss = nll / (normalizer if normalizer is not None else tokens.clamp(min=1))
    return loss, {"nll": float(nll.detach() / tokens.clamp(min=1)), "tokens": float(tokens)}


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
               temperature: float = 1.0, normalizer: float | None = None):
    """Forward KL(teacher || student) per token, on the temperature-softened distributions.

    student_logits, teacher_logits [B, T, V] (same vocabulary), mask [B, T]. Multiplied by
    temperature**2 so its gradient keeps the same scale as the cross-entropy's when the
    temperature changes (Hinton et al. 2015). Forward KL makes the student cover every token the
    teacher gives mass to, which is what copying a teacher's reasoning wants.
    Returns (loss, {"kl": mean KL per masked token}).
    """
    t = temperature
    log_s = torch.log_softmax(student_logits.float() / t, dim=-1)
    log_t = torch.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # [B, T]
    tokens = mask.sum()
    total = (kl * mask).sum() * t * t
    loss = total / (normalizer if normalizer is not None else tokens.clamp(min=1))
    return loss, {"kl": float((kl * mask).sum().detach() / tokens.clamp(min=1))}
