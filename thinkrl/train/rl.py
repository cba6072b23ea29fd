"""`thinkrl rl`: R1-Zero-style reinforcement learning from verifiable rewards, one readable loop.

Each step: take the next `prompts_per_step` train problems, sample `group_size` completions of
each with the engine (the same nn.Module being trained, so no weight sync), score them with the
recipe's rewards, turn rewards into group-relative advantages, and update the model with the
clipped policy loss over `epochs` x `mini_batches` optimizer steps. The engine's sampling
log-probs are the "old" log-probs: they equal a training forward of the same weights (the
`mismatch/*` metrics show by how much), so no extra forward pass is spent on them.

With algo.algorithm = "ppo" a critic (thinkrl.train.critic) replaces the group baseline: its values
of the rollout (computed once, before the update) give per-token GAE advantages
(thinkrl.algos.ppo), and it is trained on the returns with the clipped value loss, over the same
mini-batches, with its own optimizer.

Exact resume: data order, rollout seeds and mini-batch order are functions of (seed, step), and
a checkpoint holds the model, optimizer, scheduler and RNG states, so a resumed run continues
exactly where the uninterrupted one would be.
"""

from __future__ import annotations

import copy
import functools
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from thinkrl import rewards as rewards_mod
from thinkrl.algos import group_advantages, policy_loss
from thinkrl.algos import explained_variance, gae, kl_penalty, masked_whiten, token_rewards, value_loss
from thinkrl.config import RLConfig, save as save_config
from thinkrl.engine import Completion, Engine
from thinkrl.errors import UserError
from thinkrl.evaluate import encode_problems, run_eval
from thinkrl.models import device_and_dtype, eos_token_ids, load_model, save_pretrained
from thinkrl.report import plot_run
from thinkrl.tasks import get_task
from thinkrl.tasks.base import Problem, Task
from thinkrl.train.checkpoint import checkpoint_to_resume, restore, save_checkpoint
from thinkrl.train.critic import completion_values, load_critic, load_critic_weights, save_critic_weights
from thinkrl.train.forward import completion_logprobs
from thinkrl.train.logger import RunLogger
from thinkrl.train.optim import SkipGuard, adamw


@dataclass
class Rollout:
    """One sampled completion with everything the update and the logs need."""

    problem: Problem
    prompt: list[int]
    completion: Completion
    rewards: dict[str, float]
    reward: float


# ---------------------------------------------------------------- data order and seeds


@functools.lru_cache(maxsize=4)
def epoch_order(size: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(size))
    random.Random(f"{seed}-epoch-{epoch}").shuffle(order)
    return tuple(order)


def problem_at(problems: list[Problem], position: int, seed: int) -> Problem:
    """The problem at a position of the endless, per-epoch shuffled stream of train problems."""
    epoch, i = divmod(position, len(problems))
    return problems[epoch_order(len(problems), seed, epoch)[i]]


def rollout_seed(seed: int, step: int, draw: int, slot: int) -> int:
    return random.Random(f"{seed}-rollout-{step}-{draw}-{slot}").randrange(2**31 - 1)


# ---------------------------------------------------------------- rollouts and rewards


def score(task: Task, problems: list[Problem], completions: list[Completion], rewards,
          max_new_tokens: int, timeout: float = 0.0, stats: dict | None = None) -> list[tuple[dict[str, float], float]]:
    """(components, weighted total) per completion, completions[i] answering problems[i].

    One call per rollout batch, so a reward model scores the whole batch in a few forward passes.
    A component is present only where it applies to the problem (`problem.meta["rewards"]`).
    A reward that raises or passes `timeout` scores 0 there, counted into `stats` (thinkrl.rewards)."""
    infos = [{"task": task, "problem": p, "tokens": len(c.token_ids), "finish_reason": c.finish_reason,
              "max_new_tokens": max_new_tokens} for p, c in zip(problems, completions)]
    return rewards_mod.score_batch(rewards, [c.text for c in completions], infos, timeout=timeout, stats=stats)


def collect(cfg: RLConfig, step: int, position: int, engine: Engine, task: Task, problems: list[Problem], encode,
            rewards) -> tuple[list[Rollout], int, dict, list[Rollout]]:
    """Rollouts for one step, prompt-major in groups of G. With dynamic sampling, groups whose
    rewards are all equal are dropped and further prompts drawn, up to algo.max_draws batches.
    Returns (rollouts to train on, new data position, metrics, every rollout drawn)."""
    g, want = cfg.group_size, cfg.prompts_per_step
    kept: list[list[Rollout]] = []
    drawn_groups, draws, all_rollouts = 0, 0, []
    failures: dict[str, float] = {}  # reward/errors, reward/timeouts, ... over every draw
    while len(kept) < want and draws < (cfg.algo.max_draws if cfg.algo.dynamic_sampling else 1):
        batch = [problem_at(problems, position + i, cfg.seed) for i in range(want)]
        position += want
        prompts = [encode(p) for p in batch]
        seeds = [rollout_seed(cfg.seed, step, draws, i) for i in range(want)]
        outs = engine.generate(prompts, cfg.sampling, n=g, seeds=seeds)
        scored = score(task, [batch[j // g] for j in range(len(outs))], outs, rewards, cfg.sampling.max_new_tokens,
                       cfg.rewards.timeout, failures)
        for i, p in enumerate(batch):
            group = [Rollout(p, prompts[i], c, parts, total)
                     for c, (parts, total) in zip(outs[i * g : (i + 1) * g], scored[i * g : (i + 1) * g])]
            all_rollouts += group
            if not cfg.algo.dynamic_sampling or len({r.reward for r in group}) > 1:
                kept.append(group)
        drawn_groups += want
        draws += 1
    if not kept:  # dynamic sampling found no informative group: train on the last batch (advantages 0)
        kept = [all_rollouts[i : i + g] for i in range(len(all_rollouts) - want * g, len(all_rollouts), g)]
    kept = kept[:want]
    metrics = {"dynamic/draws": draws, "dynamic/groups_drawn": drawn_groups, "dynamic/groups_kept": len(kept), **failures}
    return [r for group in kept for r in group], position, metrics, all_rollouts


# ---------------------------------------------------------------- the update


def _pad(rows: list[list[float]], width: int, device) -> torch.Tensor:
    out = torch.zeros(len(rows), width, device=device)
    for r, xs in enumerate(rows):
        out[r, : len(xs)] = torch.tensor(xs, device=device)
    return out


def _micro_inputs(rollouts: list[Rollout], micro: list[int]) -> tuple[list[list[int]], list[int], list[list[int]]]:
    """(distinct prompts, prompt index of each row, completions) of some rows: a group's rows share one prompt."""
    prompts: list[list[int]] = []
    index: dict[int, int] = {}
    prompt_of_row = []
    for i in micro:
        key = id(rollouts[i].prompt)
        if key not in index:
            index[key] = len(prompts)
            prompts.append(rollouts[i].prompt)
        prompt_of_row.append(index[key])
    return prompts, prompt_of_row, [rollouts[i].completion.token_ids for i in micro]


def _rows(x: torch.Tensor, micro: list[int], width: int, device) -> torch.Tensor:
    """Rows `micro` of a per-completion [N] or per-token [N, T] tensor, per-token ones cut to `width` tokens."""
    return (x[micro] if x.dim() == 1 else x[micro][:, :width]).to(device)


def _keep(cfg: RLConfig, rollouts: list[Rollout]) -> list[bool]:
    return [not (cfg.algo.mask_truncated and r.completion.finish_reason == "length") for r in rollouts]


def minibatches(cfg: RLConfig, step: int, rollouts: list[Rollout], keep: list[bool], in_row_order: bool = False):
    """The optimizer steps of one update: (rows, loss normalizer) for each of epochs x mini_batches.

    Rows are a fresh seeded permutation per epoch, a function of (seed, step), so the policy and
    the critic see the same mini-batches and a resumed run the same as an uninterrupted one. The
    normalizer is the mini-batch's trained-token count (token_mean) or its row count."""
    a = cfg.algo
    n = len(rollouts)
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
    for _ in range(a.epochs):
        order = torch.randperm(n, generator=gen).tolist()
        for mb in range(a.mini_batches):
            rows = order[mb * n // a.mini_batches : (mb + 1) * n // a.mini_batches]
            if not rows:
                continue
            tokens = sum(len(rollouts[i].completion.token_ids) for i in rows if keep[i])
            normalizer = float(max(tokens, 1)) if a.aggregation == "token_mean" else float(len(rows))
            yield (sorted(rows) if in_row_order else rows), normalizer


def micro_batches(rollouts: list[Rollout], rows: list[int], size: int, bucket_by_length: bool = False) -> list[list[int]]:
    """A mini-batch's rows cut into forward/backward micro-batches of `size` rows.

    bucket_by_length: rows sorted by (completion length, prompt length) first, so each micro-batch
    holds rows of similar length and pads little (a 512-token row no longer pads 20 short ones to
    512). The loss is unchanged: every micro-batch divides by the whole mini-batch's normalizer
    (`minibatches`), so the micro-batches' losses and gradients add up to the same total in any
    grouping. The sort is stable: rows of equal length keep their order (a group stays together)."""
    if bucket_by_length:
        rows = sorted(rows, key=lambda i: (len(rollouts[i].completion.token_ids), len(rollouts[i].prompt)))
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def padding_tokens(rollouts: list[Rollout], micros: list[list[int]]) -> tuple[int, int]:
    """(padding, real) completion tokens of micro-batches right-padded to their longest row: the
    compute that length bucketing saves."""
    lengths = [[len(rollouts[i].completion.token_ids) for i in m] for m in micros]
    real = sum(sum(x) for x in lengths)
    return sum(len(x) * max(x) for x in lengths if x) - real, real


def use_gradient_checkpointing(model, a) -> None:
    """algo.gradient_checkpointing: HF's, non-reentrant. It acts only in training mode, so the
    engine's no-grad decode of the same model is unaffected."""
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def update(cfg: RLConfig, step: int, model, ref_model, optimizer, scheduler, rollouts: list[Rollout],
           advantages: torch.Tensor, pad_id: int, guard: SkipGuard | None = None) -> dict:
    """epochs x mini_batches optimizer steps on one rollout batch; returns averaged metrics.

    advantages: [N] one per rollout (the GRPO family) or [N, T] per token (PPO), T >= the longest completion.
    An optimizer step whose loss or gradient is not finite is skipped (`skipped_updates`); `guard`,
    kept for the whole run, stops it after optim.max_skipped_updates in a row.
    """
    a = cfg.algo
    guard = guard or SkipGuard(cfg.optim.max_skipped_updates, "the policy")
    dev = next(model.parameters()).device
    keep = _keep(cfg, rollouts)
    sums: dict[str, float] = {}
    weight = 0.0
    first, seen = True, {"max": 0.0, "sum": 0.0, "tokens": 0.0}  # log-prob mismatch over the first mini-batch
    model.train()
    for rows, normalizer in minibatches(cfg, step, rollouts, keep):
        bad_loss = 0.0  # a non-finite micro-batch loss of this mini-batch, if any
        for micro in micro_batches(rollouts, rows, a.micro_batch_size, a.bucket_by_length):
            prompts, prompt_of_row, completions = _micro_inputs(rollouts, micro)
            logp, entropy, mask = completion_logprobs(
                model, prompts, prompt_of_row, completions, temperature=cfg.sampling.temperature,
                detach_prompt=a.detach_prompt, with_entropy=True, pad_id=pad_id, logprob_chunk=a.logprob_chunk,
                pack=a.pack,
            )
            old = _pad([rollouts[i].completion.logprobs for i in micro], logp.shape[1], dev)
            mask = mask * torch.tensor([float(keep[i]) for i in micro], device=dev)[:, None]
            ref = None
            if ref_model is not None:
                with torch.no_grad():
                    ref, _, _ = completion_logprobs(ref_model, prompts, prompt_of_row, completions,
                                                    temperature=cfg.sampling.temperature, pad_id=pad_id,
                                                    logprob_chunk=a.logprob_chunk, pack=a.pack)
            loss, m = policy_loss(
                logp, old, _rows(advantages, micro, logp.shape[1], dev), mask, clip_low=a.clip_low, clip_high=a.clip_high,
                dual_clip=a.dual_clip or None, aggregation=a.aggregation, max_len=cfg.sampling.max_new_tokens,
                normalizer=normalizer, ref_logp=ref, kl_coef=a.kl_coef, kl_estimator=a.kl_estimator,
                entropy=entropy if a.entropy_coef else entropy.detach(), entropy_coef=a.entropy_coef,
            )
            loss.backward()
            loss_value = float(loss.detach())
            bad_loss = bad_loss if math.isfinite(loss_value) else loss_value
            w = float(mask.sum())
            if first:  # the whole first mini-batch, before any update: training forward vs sampling log-probs
                diff = ((logp.detach() - old).abs() * mask)
                seen["max"] = max(seen["max"], float(diff.max()))
                seen["sum"] += float(diff.sum())
                seen["tokens"] += w
            for k, v in m.items():
                if k == "pg_loss":
                    continue
                sums[k] = sums.get(k, 0.0) + v * w
            weight += w
        if first:
            sums["mismatch/max"], sums["mismatch/mean"] = seen["max"], seen["sum"] / max(seen["tokens"], 1.0)
            first = False
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
        if guard.step(optimizer, grad_norm, bad_loss, where=f"step {step + 1}"):
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
        else:
            sums["skipped_updates"] = sums.get("skipped_updates", 0.0) + 1
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    updates = a.epochs * a.mini_batches
    out = {k: (v if k.startswith("mismatch") or k == "skipped_updates" else v / max(weight, 1.0)) for k, v in sums.items()}
    out["grad_norm"] = sums.get("grad_norm", 0.0) / updates
    out["lr"] = scheduler.get_last_lr()[0]
    return out


# ---------------------------------------------------------------- PPO: the critic


@dataclass
class Critic:
    """PPO's value model (thinkrl.train.critic) with its own optimizer and learning-rate schedule."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def _batched_no_grad(cfg: RLConfig, rollouts: list[Rollout], width: int, fn) -> torch.Tensor:
    """fn(prompts, prompt_of_row, completions) -> [b, t] over micro-batches of rollouts, without
    gradient, stacked into [N, width] (zeros past each row's end)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(rollouts), cfg.algo.micro_batch_size):
            x = fn(*_micro_inputs(rollouts, list(range(start, min(start + cfg.algo.micro_batch_size, len(rollouts))))))
            out.append(torch.nn.functional.pad(x.float(), (0, width - x.shape[1])))
    return torch.cat(out)


def ppo_advantages(cfg: RLConfig, rollouts: list[Rollout], critic, ref_model, pad_id: int):
    """(advantages [N, T], returns [N, T], old values [N, T], metrics) for one rollout batch.

    The critic's values V(s_t) of every completion token, computed once before the update; the
    rollout's rewards at each last token (minus kl_coef * KL to the reference per token with
    algo.kl_in_reward, the KL measured on the sampling log-probs); GAE(gamma, lam); advantages
    whitened over the batch's trained tokens (algo.whiten_advantages). T is the longest completion.
    """
    a = cfg.algo
    dev = next(critic.parameters()).device
    width = max(len(r.completion.token_ids) for r in rollouts)
    mask = _pad([[1.0] * len(r.completion.token_ids) for r in rollouts], width, dev)
    trained = mask * torch.tensor([float(k) for k in _keep(cfg, rollouts)], device=dev)[:, None]
    values = _batched_no_grad(cfg, rollouts, width, lambda p, rows, c: completion_values(
        critic, p, rows, c, detach_prompt=a.detach_prompt, pad_id=pad_id)[0]) * mask
    metrics = {}
    kl = None
    if a.kl_in_reward and ref_model is not None:
        ref = _batched_no_grad(cfg, rollouts, width, lambda p, rows, c: completion_logprobs(
            ref_model, p, rows, c, temperature=cfg.sampling.temperature, pad_id=pad_id, logprob_chunk=a.logprob_chunk)[0])
        kl = kl_penalty(_pad([r.completion.logprobs for r in rollouts], width, dev), ref, a.kl_estimator) * mask
        metrics["kl"] = float(kl.sum() / mask.sum().clamp(min=1))
    rewards = token_rewards(torch.tensor([r.reward for r in rollouts], device=dev), mask, kl, a.kl_coef)
    advantages, returns = gae(rewards, values, mask, a.gamma, a.lam)
    n = trained.sum().clamp(min=1)
    metrics.update({
        "critic/explained_variance": explained_variance(values, returns, trained),
        "critic/values_mean": float((values * trained).sum() / n),
        "critic/returns_mean": float((returns * trained).sum() / n),
        "critic/advantages_mean": float((advantages * trained).sum() / n),
    })
    if a.whiten_advantages:
        advantages = masked_whiten(advantages, trained)
    return advantages, returns, values, metrics


def update_critic(cfg: RLConfig, step: int, critic: Critic, rollouts: list[Rollout], returns: torch.Tensor,
                  old_values: torch.Tensor, pad_id: int, guard: SkipGuard | None = None) -> dict:
    """The clipped value loss on returns [N, T] around old_values [N, T], over the same epochs x
    mini-batches as the policy's update; returns averaged critic/* metrics. Non-finite steps are
    skipped and counted as in `update`, with the critic's own `guard`."""
    a = cfg.algo
    guard = guard or SkipGuard(cfg.optim.max_skipped_updates, "the critic")
    dev = next(critic.model.parameters()).device
    keep = _keep(cfg, rollouts)
    sums: dict[str, float] = {}
    weight, grad_norms, skipped = 0.0, 0.0, 0
    critic.model.train()
    # the policy update's mini-batches, each in row order: rollouts are prompt-major, so a
    # micro-batch holds few distinct prompts to encode
    for rows, normalizer in minibatches(cfg, step, rollouts, keep, in_row_order=True):
        bad_loss = 0.0
        for micro in micro_batches(rollouts, rows, a.micro_batch_size, a.bucket_by_length):
            prompts, prompt_of_row, completions = _micro_inputs(rollouts, micro)
            values, mask = completion_values(critic.model, prompts, prompt_of_row, completions,
                                             detach_prompt=a.detach_prompt, pad_id=pad_id)
            mask = mask * torch.tensor([float(keep[i]) for i in micro], device=dev)[:, None]
            width = values.shape[1]
            loss, m = value_loss(values, _rows(old_values, micro, width, dev), _rows(returns, micro, width, dev), mask,
                                 clip=a.value_clip, aggregation=a.aggregation, max_len=cfg.sampling.max_new_tokens,
                                 normalizer=normalizer)
            loss.backward()
            loss_value = float(loss.detach())
            bad_loss = bad_loss if math.isfinite(loss_value) else loss_value
            w = float(mask.sum())
            for k in ("value_loss", "clip_frac"):
                sums[k] = sums.get(k, 0.0) + m[k] * w
            weight += w
        grad_norm = torch.nn.utils.clip_grad_norm_(critic.model.parameters(), cfg.optim.grad_clip or float("inf"))
        if guard.step(critic.optimizer, grad_norm, bad_loss, where=f"step {step + 1}"):
            grad_norms += float(grad_norm)
        else:
            skipped += 1
        critic.scheduler.step()
        critic.optimizer.zero_grad(set_to_none=True)
    out = {f"critic/{k}": v / max(weight, 1.0) for k, v in sums.items()}
    out["critic/grad_norm"] = grad_norms / (a.epochs * a.mini_batches)
    out["critic/lr"] = critic.scheduler.get_last_lr()[0]
    if skipped:
        out["critic/skipped_updates"] = skipped
    return out


# ---------------------------------------------------------------- the loop


def evaluate_heldout(cfg: RLConfig, engine: Engine, task: Task, problems: list[Problem], step: int, logger: RunLogger) -> dict:
    metrics, scored = run_eval(
        engine, task, problems, template=cfg.task.template, shots=cfg.task.shots, params=cfg.eval.sampling,
        samples=cfg.eval.samples, batch_size=cfg.eval.batch_size, seed=cfg.seed,
    )
    keys = ("pass@1", f"maj@{cfg.eval.samples}", "format_rate", "mean_response_tokens", "truncated_rate", "seconds")
    out = {f"eval/{k}": metrics[k] for k in keys + tuple(k for k in metrics if k.startswith("budget/"))}
    logger.log(step, out)
    logger.samples(step, [{"eval": True, "id": s.problem.id, "text": s.completion.text, "correct": s.correct}
                          for s in scored[:4]])
    return out


def train(cfg: RLConfig, show_progress: bool = True) -> Path:
    from tqdm import tqdm

    run_dir = Path(cfg.out_dir)
    ckpt = checkpoint_to_resume(run_dir, cfg.resume)
    task = get_task(cfg.task)
    train_problems = task.problems("train")
    eval_problems = task.problems("eval")[: cfg.eval.limit] if cfg.eval.limit else []
    if not train_problems:
        raise UserError(f"task '{cfg.task.name}' has no train problems")
    rewards = rewards_mod.build(cfg.rewards, *device_and_dtype(cfg.model.device, cfg.model.dtype))  # a reward model sits beside the policy

    device, dtype = device_and_dtype(cfg.model.device, cfg.model.dtype)
    model, tokenizer = load_model(ckpt if ckpt else cfg.model.name, device=device, dtype=dtype)
    ppo = cfg.algo.algorithm == "ppo"
    critic = None
    if ppo:  # from the initial weights; a resumed run loads the checkpoint's critic weights below
        critic_model = load_critic(cfg.model.name, device=device, dtype=dtype)
        critic_updates = cfg.steps * cfg.algo.epochs * cfg.algo.mini_batches
        critic = Critic(critic_model, *adamw(critic_model.parameters(), cfg.optim, critic_updates, lr=cfg.optim.critic_lr))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    engine = Engine(model, tokenizer, eos_token_ids(model, tokenizer), max_batch=cfg.rollout_batch)
    ref_model = None
    if cfg.algo.kl_coef:
        ref_model = load_model(cfg.model.name, device=device, dtype=dtype)[0] if ckpt else copy.deepcopy(model)
        ref_model.eval().requires_grad_(False)
    total_updates = (cfg.steps - (cfg.algo.critic_warmup_steps if ppo else 0)) * cfg.algo.epochs * cfg.algo.mini_batches
    use_gradient_checkpointing(model, cfg.algo)
    optimizer, scheduler = adamw(model.parameters(), cfg.optim, total_updates)
    guards = {"policy": SkipGuard(cfg.optim.max_skipped_updates, "the policy"),  # non-finite updates in a row
              "critic": SkipGuard(cfg.optim.max_skipped_updates, "the critic")}
    state = {"step": 0, "position": 0}
    if ckpt:
        saved = restore(ckpt, optimizer, scheduler)
        state = {"step": saved["step"], "position": saved["position"]}
        if critic is not None:
            load_critic_weights(critic.model, ckpt)
            critic.optimizer.load_state_dict(saved["critic_optimizer"])
            critic.scheduler.load_state_dict(saved["critic_scheduler"])
        print(f"resuming from {ckpt} (step {state['step']})", flush=True)
    logger = RunLogger(run_dir, resume_step=state["step"] if ckpt else None)
    save_config(cfg, run_dir / "config.toml")

    cache: dict[str, list[int]] = {}

    def encode(p: Problem) -> list[int]:
        if p.id not in cache:  # a prompt too long for the model is an error naming its problem (file:line)
            cache[p.id] = encode_problems(tokenizer, task, [p], cfg.task.template, cfg.task.shots,
                                          cfg.sampling.max_new_tokens, engine.context)[0]
        return cache[p.id]

    def checkpoint(step: int) -> None:
        trainer_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "step": step, "position": state["position"]}
        if critic is None:
            save_checkpoint(run_dir, step, model, tokenizer, trainer_state, keep=cfg.keep_checkpoints)
            return
        trainer_state.update(critic_optimizer=critic.optimizer.state_dict(), critic_scheduler=critic.scheduler.state_dict())
        save_checkpoint(run_dir, step, model, tokenizer, trainer_state, keep=cfg.keep_checkpoints,
                        extra=functools.partial(save_critic_weights, critic.model))

    if state["step"] == 0 and eval_problems:
        ev = evaluate_heldout(cfg, engine, task, eval_problems, 0, logger)
        print(f"step 0 held-out: accuracy {ev['eval/pass@1']:.3f}, format {ev['eval/format_rate']:.3f}", flush=True)
    final_ev = None  # the evaluation after the last step
    bar = tqdm(range(state["step"], cfg.steps), initial=state["step"], total=cfg.steps, desc="rl", disable=not show_progress,
               dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        rollouts, state["position"], m_draw, drawn = collect(
            cfg, step, state["position"], engine, task, train_problems, encode, rewards_mod.active(rewards, cfg.rewards, step))
        t_gen = time.perf_counter() - t0
        m_critic: dict[str, float] = {}
        if ppo:
            t1 = time.perf_counter()
            advantages, returns, old_values, m_critic = ppo_advantages(cfg, rollouts, critic.model, ref_model, engine.pad_id)
            m_critic.update(update_critic(cfg, step, critic, rollouts, returns, old_values, engine.pad_id,
                                          guards["critic"]))
            m_critic["time/critic"] = time.perf_counter() - t1
        else:
            reward = torch.tensor([r.reward for r in rollouts])
            advantages = group_advantages(reward, cfg.group_size, estimator=cfg.algo.estimator, scale=cfg.algo.scale)
        t1 = time.perf_counter()
        m_update = {}
        if not ppo or step >= cfg.algo.critic_warmup_steps:  # critic warm-up: the policy waits
            m_update = update(cfg, step, model, None if cfg.algo.kl_in_reward else ref_model, optimizer, scheduler,
                              rollouts, advantages, engine.pad_id, guards["policy"])
        t_update = time.perf_counter() - t1
        state["step"] = step + 1

        metrics = {**rollout_metrics(drawn, rollouts, cfg.group_size), **m_draw, **m_update, **m_critic}
        gen_tokens = sum(len(r.completion.token_ids) for r in drawn)
        metrics.update({"time/generate": t_gen, "time/update": t_update, "time/step": time.perf_counter() - t0,
                        "tokens_per_second/generate": gen_tokens / max(t_gen, 1e-9),
                        "tokens_per_second/update": sum(len(r.completion.token_ids) for r in rollouts) * cfg.algo.epochs / max(t_update, 1e-9)})
        logger.log(state["step"], metrics)
        if cfg.sample_every and state["step"] % cfg.sample_every == 0:
            logger.samples(state["step"], [{"id": r.problem.id, "reference": r.problem.answer, "text": r.completion.text,
                                            "reward": r.reward, **{f"reward/{k}": v for k, v in r.rewards.items()}}
                                           for r in rollouts[: cfg.group_size]])
        acc = {"acc": f"{metrics['reward/accuracy/mean']:.3f}"} if "reward/accuracy/mean" in metrics else {}  # off in L1
        bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", **acc, len=f"{metrics['response/len_mean']:.0f}")
        last = state["step"] == cfg.steps
        # the final evaluation too is logged before the checkpoint of its step: a run killed after
        # that checkpoint resumes past it and does not log it twice
        if eval_problems and ((cfg.eval.every and state["step"] % cfg.eval.every == 0) or last):
            ev = evaluate_heldout(cfg, engine, task, eval_problems, state["step"], logger)
            final_ev = ev if last else None
        if ((cfg.save_every and state["step"] % cfg.save_every == 0) or last) and all(
                g.may_checkpoint(f"step {state['step']}") for g in guards.values()):
            checkpoint(state["step"])
    bar.close()
    if final_ev is not None:  # a run resumed after the last checkpoint does not show it again
        print(f"step {cfg.steps} held-out: accuracy {final_ev['eval/pass@1']:.3f}, format {final_ev['eval/format_rate']:.3f}",
              flush=True)
    final = save_pretrained(model, tokenizer, run_dir / "final")
    if critic is not None:  # an HF token-classification folder: AutoModelForTokenClassification reads it
        save_pretrained(critic.model, tokenizer, run_dir / "critic")
    logger.close()
    plot_run(run_dir)
    return final


def rollout_metrics(drawn: list[Rollout], rollouts: list[Rollout], g: int) -> dict:
    """Reward and length statistics of the trained batch (and of everything drawn, for dynamic sampling)."""
    out: dict[str, float] = {}
    rew = torch.tensor([r.reward for r in rollouts])
    out["reward/mean"], out["reward/std"] = float(rew.mean()), float(rew.std()) if len(rew) > 1 else 0.0
    for name in dict.fromkeys(k for r in rollouts for k in r.rewards):  # each over the rollouts it applies to
        x = torch.tensor([r.rewards[name] for r in rollouts if name in r.rewards])
        out[f"reward/{name}/mean"], out[f"reward/{name}/std"] = float(x.mean()), float(x.std()) if len(x) > 1 else 0.0
    groups = [torch.tensor([r.reward for r in drawn[i : i + g]]) for i in range(0, len(drawn), g)]
    out["groups/zero_std_frac"] = sum(float(len(x) > 1 and bool(x.std() == 0)) for x in groups) / len(groups)
    lens = torch.tensor([len(r.completion.token_ids) for r in rollouts], dtype=torch.float)
    out["response/len_mean"], out["response/len_max"] = float(lens.mean()), float(lens.max())
    out["response/truncated_frac"] = sum(r.completion.finish_reason == "length" for r in rollouts) / len(rollouts)
    return out
