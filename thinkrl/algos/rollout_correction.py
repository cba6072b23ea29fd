"""Off-policy corrections of the policy-gradient ratio: rollout importance sampling and GSPO.

Rollout importance sampling (algo.rollout_is; the "rollout correction" of veRL and TRL's
vllm_importance_sampling_correction). The engine samples from mu (its kernels), the trainer's
forward computes pi_old of the same weights; bf16 kernels make them differ. Per sampled token

    rho = exp(logp_train_old - logp_engine)        no gradient: the weight is a constant

multiplies the policy-gradient term of the token (not its KL or entropy term, as in TRL):
    tis:  w = min(rho, cap)                          truncated IS (Yao et al. 2025, "TIS")
    mis:  w = 1 if low <= rho <= cap else 0          masked IS: a token outside the band gets no
                                                     policy-gradient loss (its weight is 0, not rho:
                                                     veRL's mask mode; TRL's token_mask keeps rho inside)
The loss normaliser is unchanged (a masked token still counts in token_mean's denominator), so the
gradient-accumulation and data-parallel sums stay exact.

GSPO (Zheng et al. 2025, Group Sequence Policy Optimization; algo.ratio_level = "sequence"). The ratio
of completion i is the geometric mean of its token ratios over its sampled tokens,
    s_i = exp(mean_t (logp_t - old_logp_t)),
clipped per sequence with algo.clip_low / clip_high (the paper uses 3e-4 / 4e-4). This is the
paper's GSPO-token form, s_it = sg[s_i] * pi_t / sg[pi_t]: the value of every token's ratio is s_i
(so the clip decision is the sequence's), and its gradient is s_i * grad log pi_t. With one
advantage per completion (the GRPO family) it has GSPO's objective, clipping and gradient
exactly; it also takes PPO's per-token advantages.
"""

from __future__ import annotations

import torch

ROLLOUT_IS = ("off", "tis", "mis")
RATIO_LEVELS = ("token", "sequence")


def rollout_is_weights(train_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor, mode: str,
                       cap: float = 2.0, low: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """(weights [B, T] without gradient, metrics) from the training forward's log-probs before the
    update and the engine's, both [B, T]; mask [B, T] marks the trained (sampled) tokens.

    Metrics are means over the masked tokens: rollout_is/ratio_mean (rho before truncation),
    rollout_is/weight_mean, rollout_is/truncated_frac (tis: rho > cap) or rollout_is/masked_frac
    (mis: rho outside [low, cap]). Tokens outside the mask get weight 1 (they carry no loss anyway)."""
    if mode not in ROLLOUT_IS[1:]:
        raise ValueError(f"rollout_is mode must be one of {ROLLOUT_IS[1:]}, got {mode!r}")
    m = mask.to(torch.bool)
    with torch.no_grad():
        log_rho = torch.where(m, train_logp.detach().float() - rollout_logp.detach().float(), 0.0)
        rho = torch.exp(log_rho)  # [B, T]; 1 off the mask, so no inf or nan reaches a padded token
        if mode == "tis":
            out = rho > cap
            weight = rho.clamp(max=cap)
        else:
            out = (rho < low) | (rho > cap)
            weight = (~out).float()
        n = m.sum().clamp(min=1).float()
        metrics = {"rollout_is/ratio_mean": (rho * m).sum() / n, "rollout_is/weight_mean": (weight * m).sum() / n,
                   f"rollout_is/{'truncated' if mode == 'tis' else 'masked'}_frac": (out & m).sum() / n}
    return weight.to(train_logp.dtype), metrics


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO-token's log-ratio [B, T]: its value at every token is log s_i, the mean of the sequence's
    log-ratios over mask [B, T], and its gradient is that of logp_t alone. A row with no masked
    token gets log-ratio 0."""
    m = mask.to(logp.dtype)
    seq = ((logp - old_logp) * m).sum(-1) / m.sum(-1).clamp(min=1.0)  # [B]: log s_i
    return logp - logp.detach() + seq.detach()[:, None]
