"""Algorithms as pure tensor functions: advantages and policy losses. No state, no model."""

from thinkrl.algos.advantages import group_advantages
from thinkrl.algos.losses import kl_penalty, policy_loss
from thinkrl.algos.preference import bradley_terry_loss, pairwise_metrics
from thinkrl.algos.ppo import explained_variance, gae, masked_whiten, token_rewards, value_loss

__all__ = ["group_advantages", "kl_penalty", "policy_loss"]
__all__ += ["explained_variance", "gae", "masked_whiten", "token_rewards", "value_loss"]
__all__ += ["bradley_terry_loss", "pairwise_metrics"]
