"""Losses on preference pairs (chosen vs rejected) as pure tensor functions. No model, no state.

Bradley-Terry (Bradley & Terry 1952; the reward-model loss of Ouyang et al. 2022): a scalar
reward model r scores both answers to a prompt, and P(chosen beats rejected) = sigmoid(r_c - r_r).
Training maximises the log-likelihood of the human (or rule) preferences:
    loss = -log sigmoid(r_chosen - r_rejected - margin)       averaged over pairs
`margin` (per pair, optional; Llama 2) asks for a larger gap where a preference is stronger.
The loss depends only on score differences, so a reward model's scores have an arbitrary offset.

Direct preference optimisation (DPO) is the same loss on implicit rewards
beta * (log pi(y|x) - log ref(y|x)); it belongs beside `bradley_terry_loss` as `dpo_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """Accuracy (share of pairs with chosen scored strictly above rejected) and mean score gap."""
    diff = (chosen - rejected).detach().float()
    return {"accuracy": float((diff > 0).float().mean()), "margin": float(diff.mean())}


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Bradley-Terry loss of scalar scores. chosen, rejected, margin: [B] -> (scalar loss, metrics).

    The loss is the sum over the B pairs divided by `normalizer` (default B, i.e. the mean); with
    gradient accumulation pass the number of pairs in the whole optimizer batch, so the micro
    batches add up to the batch mean. `logsigmoid` keeps large gaps finite (no log(0)).
    Metrics: `accuracy` (chosen > rejected) and `margin` (mean r_chosen - r_rejected).
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(f"chosen and rejected must both be [B], got {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    diff = chosen.float() - rejected.float()
    if margin is not None:
        diff = diff - margin.float()
    loss = -F.logsigmoid(diff).sum() / (normalizer if normalizer is not None else chosen.shape[0])
    return loss, pairwise_metrics(chosen, rejected)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Direct preference optimisation (Rafailov et al. 2023). Inputs: [B] sequence log-probs
    (sums over the response tokens) of the chosen and rejected answers under the policy and the
    frozen reference. The implicit reward is beta * (log pi - log ref); the loss is Bradley-Terry
    on it: -log sigmoid(beta * ((pc - rc) - (pr - rr))), averaged over pairs.
    Metrics: accuracy and margin of the implicit rewards, and `logratio`, the mean
    (log pi(rejected) - log pi(chosen)) that training drives down."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen - rejected).mean()
    metrics = pairwise_metrics(chosen, rejected)
    metrics["logratio"] = float((policy_rejected - policy_chosen).detach().mean())
    return loss, metrics
