"""PPO's critic path: the critic's values give per-token GAE advantages, and the critic is trained
on the returns with the clipped value loss (thinkrl.algos.ppo), over the same mini-batches as the
policy's update, with its own optimizer. The value model itself is thinkrl.train.critic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thinkrl.algos import explained_variance, gae, kl_penalty, masked_whiten, token_rewards, value_loss
from thinkrl.config import RLConfig
from thinkrl.model.lora import disabled
from thinkrl.dist import Group
from thinkrl.model.inputs import to_device
from thinkrl.train.batching import (micro_inputs, minibatches, pad_rows, rank_micro_batches, rows_of, sampled_mask,
                                    trained_flags)
from thinkrl.train.critic import completion_values
from thinkrl.train.device_metrics import TokenWeighted, read
from thinkrl.train.forward import completion_logprobs
from thinkrl.train.optim import SkipGuard, optimizer_step
from thinkrl.train.rollout import Rollout


@dataclass
class Critic:
    """PPO's value model (thinkrl.train.critic) with its own optimizer and learning-rate schedule."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def batched_no_grad(cfg: RLConfig, rollouts: list[Rollout], width: int, fn, group: Group = Group()) -> torch.Tensor:
    """fn(prompts, prompt_of_row, completions) -> [b, t] over micro-batches of rollouts, without
    gradient, stacked into [N, width] (zeros past each row's end).

    Data-parallel: each rank runs its contiguous share of the rows (`Group.share`), padded with
    discarded passes up to the largest share's count (a sharded model's forwards are collectives),
    and the shares are gathered in rank order, so every rank ends with all N rows."""
    size = cfg.algo.micro_batch_size
    mine = list(group.share(len(rollouts)))
    out = []
    with torch.no_grad():
        for start in range(0, group.passes(len(rollouts), size) * size, size):
            rows = mine[start : start + size]
            x = fn(*micro_inputs(rollouts, rows or [0]))
            if rows:  # else a pass only to keep the ranks' collectives in step
                out.append(torch.nn.functional.pad(x.float(), (0, width - x.shape[1])))
    dev = next(iter(out)).device if out else torch.device("cpu")
    mine_t = torch.cat(out) if out else torch.zeros(0, width)
    if not group.active:
        return mine_t
    return torch.cat([t.to(dev) for t in group.gather([mine_t.cpu()])]).to(dev)


def ppo_advantages(cfg: RLConfig, rollouts: list[Rollout], critic, ref_model, pad_id: int, group: Group = Group()):
    """(advantages [N, T], returns [N, T], old values [N, T], metrics) for one rollout batch.

    The critic's values V(s_t) of every completion token, computed once before the update; the
    rollout's rewards at each last token (minus kl_coef * KL to the reference per token with
    algo.kl_in_reward, the KL measured on the sampling log-probs); GAE(gamma, lam); advantages
    whitened over the batch's trained tokens (algo.whiten_advantages). T is the longest completion.
    Data-parallel, every rank computes its share of the values and ends with all of them.
    """
    a = cfg.algo
    dev = next(critic.parameters()).device
    width = max(len(r.completion.token_ids) for r in rollouts)
    mask = pad_rows([[1.0] * len(r.completion.token_ids) for r in rollouts], width, dev)
    trained = mask * sampled_mask(rollouts, list(range(len(rollouts))), width, dev)  # tool results carry no loss
    trained = trained * torch.tensor([float(k) for k in trained_flags(cfg, rollouts)], device=dev)[:, None]
    values = batched_no_grad(cfg, rollouts, width, lambda p, rows, c: completion_values(
        critic, p, rows, c, detach_prompt=a.detach_prompt, pad_id=pad_id)[0], group).to(dev) * mask
    metrics = {}
    kl = None
    if a.kl_in_reward and ref_model is not None:
        with disabled(ref_model):  # with LoRA the reference is the policy's base
            ref = batched_no_grad(cfg, rollouts, width, lambda p, rows, c: completion_logprobs(
                ref_model, p, rows, c, temperature=cfg.sampling.temperature, pad_id=pad_id,
                logprob_chunk=a.logprob_chunk)[0], group).to(dev)
        kl = kl_penalty(pad_rows([r.completion.logprobs for r in rollouts], width, dev), ref, a.kl_estimator) * mask
        metrics["kl"] = kl.sum() / mask.sum().clamp(min=1)
    rewards = token_rewards(torch.tensor([r.reward for r in rollouts], device=dev), mask, kl, a.kl_coef)
    advantages, returns = gae(rewards, values, mask, a.gamma, a.lam)
    n = trained.sum().clamp(min=1)
    metrics.update({
        "critic/explained_variance": explained_variance(values, returns, trained),
        "critic/values_mean": (values * trained).sum() / n,
        "critic/returns_mean": (returns * trained).sum() / n,
        "critic/advantages_mean": (advantages * trained).sum() / n,
    })
    metrics = read(metrics)  # one transfer
    if a.whiten_advantages:
        advantages = masked_whiten(advantages, trained)
    return advantages, returns, values, metrics


def update_critic(cfg: RLConfig, step: int, critic: Critic, rollouts: list[Rollout], returns: torch.Tensor,
                  old_values: torch.Tensor, pad_id: int, guard: SkipGuard | None = None, group: Group = Group()) -> dict:
    """The clipped value loss on returns [N, T] around old_values [N, T], over the same epochs x
    mini-batches as the policy's update; returns averaged critic/* metrics. Non-finite steps are
    skipped and counted as in the policy's update (thinkrl.train.rl), with the critic's own `guard`.
    Data-parallel as the policy's update: each rank its rows of every mini-batch, ghost passes to
    keep FSDP2's collectives in step, gradients and metrics summed over ranks."""
    a = cfg.algo
    guard = guard or SkipGuard(cfg.optim.max_skipped_updates, "the critic")
    dev = next(critic.model.parameters()).device
    keep = trained_flags(cfg, rollouts)
    sums = TokenWeighted(dev)  # on the device until the end of the step, as in the policy's update
    grad_norms, skipped = 0.0, 0
    critic.model.train()
    # the policy update's mini-batches, each in row order: rollouts are prompt-major, so a
    # micro-batch holds few distinct prompts to encode
    for rows, normalizer in minibatches(cfg, step, rollouts, keep, in_row_order=True):
        loss_sum = torch.zeros((), device=dev)  # finite exactly when every micro-batch's loss is
        for micro, ghost in rank_micro_batches(rollouts, rows, a.micro_batch_size, a.bucket_by_length, group,
                                               a.micro_batch_tokens):
            prompts, prompt_of_row, completions = micro_inputs(rollouts, micro)
            values, mask = completion_values(critic.model, prompts, prompt_of_row, completions,
                                             detach_prompt=a.detach_prompt, pad_id=pad_id)
            mask = mask * sampled_mask(rollouts, micro, mask.shape[1], dev)
            mask = mask * to_device(torch.tensor([float(keep[i] and not ghost) for i in micro]), dev)[:, None]
            width = values.shape[1]
            loss, m = value_loss(values, rows_of(old_values, micro, width, dev), rows_of(returns, micro, width, dev), mask,
                                 clip=a.value_clip, aggregation=a.aggregation, max_len=cfg.sampling.max_new_tokens,
                                 normalizer=normalizer)
            loss.backward()
            loss_sum = loss_sum + loss.detach()
            sums.add({k: m[k] for k in ("value_loss", "clip_frac")}, mask.sum())
        grad_norm, stepped = optimizer_step(critic.model.parameters(), critic.optimizer, critic.scheduler, guard,
                                            cfg.optim.grad_clip, group.worst(float(loss_sum)), f"step {step + 1}")
        grad_norms += grad_norm if stepped else 0.0
        skipped += not stepped
    host = group.sum(read(sums.tensors()))  # one transfer for the step; data-parallel, summed over the ranks
    weight = host.pop("__weight")
    out = {f"critic/{k}": v / max(weight, 1.0) for k, v in host.items()}
    out["critic/grad_norm"] = grad_norms / (a.epochs * a.mini_batches)
    out["critic/lr"] = critic.scheduler.get_last_lr()[0]
    if skipped:
        out["critic/skipped_updates"] = skipped
    return out
