"""Algorithms as pure tensor functions: advantages and policy losses. No state, no model."""

from thinkrl.algos.advantages import group_advantages
from thinkrl.algos.losses import kl_penalty, policy_loss

__all__ = ["group_advantages", "kl_penalty", "policy_loss"]
