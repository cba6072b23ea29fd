"""The clipped policy-gradient loss of the GRPO family, with KL estimators and three aggregations.

Objective per token t of completion i (PPO, Schulman et al. 2017; GRPO, Shao et al. 2024):
    ratio = exp(logp - old_logp)
    pg    = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))
DAPO's clip-higher is clip_high > clip_low. Dual clip (Ye et al. 2020) bounds the loss of
negative-advantage tokens whose ratio has run far above 1: pg = min(pg, -A * dual_clip).
KL to a frozen reference is a loss term (as in GRPO, not folded into the reward), with Schulman's
estimators of KL(pi || ref) from samples of pi, writing d = ref_logp - logp:
    k1 = -d,   k2 = d^2 / 2,   k3 = exp(d) - d - 1   (k3: unbiased and always >= 0)
Aggregation over the [B, T] token losses:
    seq_mean_token_mean      mean over sequences of each sequence's token mean (GRPO paper)
    token_mean               sum over all tokens / number of tokens (DAPO; the default)
    seq_mean_token_sum_norm  sum over all tokens / (B * max_len), max_len a constant (Dr. GRPO)
With gradient accumulation, pass `normalizer` (the global token count for token_mean, the
global sequence count for the seq_mean variants) so micro-batches add up to the global loss.
Two off-policy switches (thinkrl.algos.rollout_correction): ratio_level="sequence" is GSPO's
per-sequence ratio, and rollout_is="tis"/"mis" weights pg by the training/engine ratio.
"""

from __future__ import annotations

import torch

from thinkrl.algos.rollout_correction import RATIO_LEVELS, rollout_is_weights, sequence_log_ratio

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled from pi. [B, T] -> [B, T]."""
    d = ref_logp - logp
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d.square()
    if estimator == "k3":
        return torch.expm1(d) - d  # exp(d) - 1 - d, accurate for small d
    raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [B, T] over the tokens where mask [B, T] is non-zero (0 when there are none): a metric,
    a 0-d fp32 tensor on x's device. The update loops accumulate such metrics on the device and read
    them once a step (`float()` of each would wait for the GPU at every micro-batch)."""
    m = mask.to(torch.bool)
    return (x.float() * m).sum() / m.sum().clamp(min=1).float()


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, aggregation: str, max_len: int | None = None,
              normalizer: float | None = None) -> torch.Tensor:
    """Reduce per-token losses [B, T] under mask [B, T] to a scalar (see module docstring)."""
    mask = mask.to(token_loss.dtype)
    if aggregation == "token_mean":
        return (token_loss * mask).sum() / (normalizer if normalizer is not None else mask.sum().clamp(min=1.0))
    if aggregation == "seq_mean_token_mean":
        per_seq = (token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_seq.sum() / (normalizer if normalizer is not None else token_loss.shape[0])
    if aggregation == "seq_mean_token_sum_norm":
        if max_len is None:
            raise ValueError("seq_mean_token_sum_norm needs max_len (the generation budget)")
        seqs = normalizer if normalizer is not None else token_loss.shape[0]
        return (token_loss * mask).sum() / (seqs * max_len)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    aggregation: str = "token_mean",
    max_len: int | None = None,
    normalizer: float | None = None,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    ratio_level: str = "token",
    rollout_logp: torch.Tensor | None = None,
    rollout_is: str = "off",
    rollout_is_cap: float = 2.0,
    rollout_is_low: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, metrics). logp/old_logp/ref_logp/mask/entropy [B, T]; advantages [B] (one per
    completion, the GRPO family) or [B, T] (one per token, PPO with a critic).

    Metrics are means over the masked tokens of this call: clip fractions (low: negative advantage
    with ratio below 1 - clip_low; high: positive advantage with ratio above 1 + clip_high; dual),
    approx_kl (k3 between old and current policy), kl to the reference, ratio, entropy; each a 0-d
    tensor on the device (`masked_mean`), none read back to the host here.

    ratio_level="sequence": GSPO's ratio, one per completion (clip fractions then count the tokens
    of clipped completions). rollout_is="tis"/"mis": old_logp must be the training forward's
    log-probs before the update and rollout_logp [B, T] the engine's; their ratio weights pg per
    token (rollout_is_weights), adding rollout_is/* metrics.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    adv = (advantages[:, None] if advantages.dim() == 1 else advantages).to(logp.dtype)  # [B, 1] broadcasts over tokens
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"ratio_level must be one of {RATIO_LEVELS}, got {ratio_level!r}")
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio if ratio_level == "token" else sequence_log_ratio(logp, old_logp, mask))
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high))  # [B, T]
    dual_hit = torch.zeros_like(pg, dtype=torch.bool)
    if dual_clip is not None:
        dual_hit = (adv < 0) & (pg > -adv * dual_clip)
        pg = torch.where(adv < 0, torch.minimum(pg, -adv * dual_clip), pg)
    is_metrics: dict[str, torch.Tensor] = {}
    if rollout_is != "off":
        if rollout_logp is None:
            raise ValueError(f"rollout_is={rollout_is!r} needs rollout_logp (the engine's log-probs)")
        weight, is_metrics = rollout_is_weights(old_logp, rollout_logp, mask, rollout_is, rollout_is_cap, rollout_is_low)
        pg = pg * weight  # [B, T]: a constant per token, no gradient through it
    token_loss = pg
    kl = None
    if ref_logp is not None and kl_coef != 0.0:
        kl = kl_penalty(logp, ref_logp, kl_estimator)
        token_loss = token_loss + kl_coef * kl
    if entropy is not None and entropy_coef != 0.0:
        token_loss = token_loss - entropy_coef * entropy  # a bonus: higher entropy lowers the loss
    loss = aggregate(token_loss, mask, aggregation, max_len, normalizer)

    with torch.no_grad():
        def mean(x):
            return masked_mean(x, mask)

        metrics = {
            "clip_frac_low": mean((adv < 0) & (ratio < 1.0 - clip_low)),
            "clip_frac_high": mean((adv > 0) & (ratio > 1.0 + clip_high)),
            "clip_frac_dual": mean(dual_hit),
            "approx_kl": mean(torch.expm1(-log_ratio) + log_ratio),
            "ratio_mean": mean(ratio),
            "pg_loss": aggregate(pg, mask, aggregation, max_len, normalizer),
            **is_metrics,
        }
        if kl is not None:
            metrics["kl"] = mean(kl)
        if entropy is not None:
            metrics["entropy"] = mean(entropy)
    return loss, metrics
