"""PPO with a learned critic (Schulman et al. 2017; the RLHF setting of Ouyang et al. 2022): per-token
rewards, generalised advantage estimation and the clipped value loss, as pure tensor functions.

The GRPO family gives every token of a completion the same advantage, measured against the other
completions of its prompt. PPO instead learns a value function V(s_t) of the state s_t = prompt +
completion[:t] and credits each token t with how much better things went than V predicted:

    r_t     = -kl_coef * kl_t            for every completion token t   (KL in the reward)
              + score                     added at the last real token   (the sequence reward)
    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t),     V(s_T) = 0 after the last token (the episode ends)
    A_t     = delta_t + gamma * lam * A_{t+1}        (GAE, Schulman et al. 2016)
    R_t     = A_t + V(s_t)                           (the value target: lambda-return)

The critic is trained on R_t with the clipped value loss
    L_V = 0.5 * max((V - R)^2, (old_V + clip(V - old_V, -c, c) - R)^2)
which, like the policy's ratio clip, keeps one rollout batch from moving the values far from those
that computed the advantages.

Every [B, T] tensor holds B completions right-padded to T tokens; mask [B, T] is 1 on real tokens.
Positions past a row's last real token are padding and come out as 0.
"""

from __future__ import annotations

import torch

from thinkrl.algos.losses import aggregate, masked_mean

WHITEN_EPS = 1e-8


def token_rewards(scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None,
                  kl_coef: float = 0.0) -> torch.Tensor:
    """Per-token rewards [B, T]: scores [B] at each row's last real token, minus kl_coef * kl [B, T] per token.

    The KL penalty in the reward (InstructGPT, OpenRLHF) makes drifting from the reference a cost
    the critic learns to predict, instead of a separate loss term. A row with no real token gets no reward.
    """
    mask = mask.to(torch.float32)
    lengths = mask.sum(-1).long()  # [B]
    rewards = torch.zeros_like(mask)
    rows = torch.nonzero(lengths > 0).squeeze(-1)
    rewards[rows, lengths[rows] - 1] = scores.to(rewards.dtype)[rows]
    if kl is not None and kl_coef != 0.0:
        rewards = rewards - kl_coef * kl.to(rewards.dtype)
    return rewards * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages [B, T], returns [B, T]) by generalised advantage estimation over right-padded rows.

    rewards/values/mask [B, T]; values[b, t] = V(s_t), the critic's estimate before token t is chosen.
    The value after a row's last real token is 0 (the completion is the whole episode), so rows of
    different lengths need no special care: padding has value 0, reward 0 and advantage 0.
    gamma = lam = 1 gives A_t = (reward-to-go) - V(s_t); lam = 0 gives the one-step TD error.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    b, t_max = values.shape
    advantages = torch.zeros_like(values)
    running = torch.zeros(b, dtype=values.dtype, device=values.device)  # A_{t+1}
    next_value = torch.zeros_like(running)  # V(s_{t+1}), 0 past the end
    for t in reversed(range(t_max)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
        next_value = values[:, t]
    returns = (advantages + values) * mask
    return advantages, returns


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """x [B, T] scaled to unit variance over the masked entries (and centred, with shift_mean); padding -> 0.

    Whitening the advantages of a batch keeps the policy step size independent of the reward scale
    and of how well the critic has learned it. The variance is Bessel-corrected like torch.var.
    """
    mask = mask.to(x.dtype)
    n = mask.sum()
    mean = (x * mask).sum() / n.clamp(min=1.0)
    var = ((x - mean).square() * mask).sum() / (n - 1).clamp(min=1.0)
    out = (x - mean) if shift_mean else x
    return out * torch.rsqrt(var + WHITEN_EPS) * mask


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Var(R - V) / Var(R) over the masked tokens: 1 is a perfect critic, 0 predicts only the mean,
    below 0 is worse than the mean. NaN when the returns do not vary. A 0-d tensor, computed without
    reading anything back to the host (masked sums, no boolean indexing)."""
    m = mask.to(torch.bool).float()
    r, d = returns.float(), (returns - values).float()
    n = m.sum()

    def var(x):  # the ratio of two variances: Bessel's correction cancels
        mean = (x * m).sum() / n.clamp(min=1)
        return ((x - mean).square() * m).sum()

    var_r = var(r)
    nan = torch.full_like(var_r, float("nan"))
    return torch.where((n >= 2) & (var_r > 0), 1.0 - var(d) / torch.where(var_r > 0, var_r, 1.0), nan)


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float = 0.2,
    aggregation: str = "token_mean",
    max_len: int | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, metrics) of the clipped value loss; values/old_values/returns/mask [B, T].

    Per token: 0.5 * max((V - R)^2, (V_clip - R)^2) with V_clip = old_V + clip(V - old_V, -clip, clip);
    clip = 0 turns clipping off. Aggregated like the policy loss (`aggregation`, `max_len`,
    `normalizer`: see thinkrl.algos.losses). Metrics are means over the masked tokens of this call:
    the loss (clipped and unclipped), the fraction of tokens where the clipped term is the larger (its gradient is 0),
    explained variance, and the means of the values and returns; 0-d tensors on the device.
    """
    returns = returns.to(values.dtype)
    unclipped = (values - returns).square()
    if clip > 0:
        clipped_values = old_values + (values - old_values).clamp(-clip, clip)
        clipped = (clipped_values - returns).square()
        token_loss = 0.5 * torch.maximum(unclipped, clipped)
    else:
        clipped = unclipped
        token_loss = 0.5 * unclipped
    loss = aggregate(token_loss, mask, aggregation, max_len, normalizer)
    with torch.no_grad():
        def mean(x):
            return masked_mean(x, mask)

        metrics = {
            "value_loss": mean(token_loss),
            "value_loss_unclipped": mean(0.5 * unclipped),
            "clip_frac": mean(clipped > unclipped),
            "explained_variance": explained_variance(values.detach(), returns, mask),
            "values_mean": mean(values),
            "returns_mean": mean(returns),
        }
    return loss, metrics
