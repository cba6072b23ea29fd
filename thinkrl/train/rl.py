"""`thinkrl rl`: R1-Zero-style reinforcement learning from verifiable rewards, one readable loop.

Each step: take the next `prompts_per_step` train problems, sample `group_size` completions of
each with the engine (the same nn.Module being trained, so no weight sync) and score them with
the recipe's rewards (thinkrl.train.rollout), turn rewards into group-relative advantages, and
update the model with the clipped policy loss over `epochs` x `mini_batches` optimizer steps
(`update`, on the mini- and micro-batches of thinkrl.train.batching). The engine's sampling
log-probs are the "old" log-probs: they equal a training forward of the same weights (the
`mismatch/*` metrics show by how much), so no extra forward pass is spent on them; algo.rollout_is
corrects for that gap instead (thinkrl.algos.rollout_correction, the training forward's log-probs as "old").

With algo.algorithm = "ppo" a critic (thinkrl.train.critic) replaces the group baseline: its values
of the rollout (computed once, before the update) give per-token GAE advantages
(thinkrl.algos.ppo), and it is trained on the returns with the clipped value loss, over the same
mini-batches, with its own optimizer (thinkrl.train.ppo_update).

Exact resume: data order, rollout seeds (thinkrl.train.order) and mini-batch order are
functions of (seed, step), and a checkpoint holds the model, optimizer, scheduler and RNG states,
so a resumed run continues exactly where the uninterrupted one would be.

With `[lora] r > 0` (thinkrl.train.adapters) the policy and the critic train LoRA adapters; the
engine samples the adapted model itself, and the KL reference is the same model with its adapters
switched off (the base, exactly; no second copy of the weights).
"""

from __future__ import annotations

import copy
import functools
import random
import time
from pathlib import Path

import torch

from thinkrl import prompt_setup, rewards as rewards_mod
from thinkrl.algos import group_advantages, policy_loss
from thinkrl.config import RLConfig
from thinkrl.dist import Group
from thinkrl.engine import Engine
from thinkrl.errors import UserError
from thinkrl.evaluate import encode_problems
from thinkrl.model.inputs import to_device
from thinkrl.model.lora import disabled
from thinkrl.models import device_and_dtype, eos_token_ids, load_model, save_pretrained
from thinkrl.report import finish, plot_run
from thinkrl.tasks import get_task
from thinkrl.tasks.base import Problem
from thinkrl.train.adapters import add_adapters, load_trained, summary, trainable, with_adapter
from thinkrl.train.batching import (micro_inputs, minibatches, pad_rows, rank_micro_batches, rows_of, sampled_mask,
                                    trained_flags)
from thinkrl.train.checkpoint import (checkpoint_to_resume, load_sharded_state, save_checkpoint,
                                     save_sharded_checkpoint)
from thinkrl.train.critic import load_critic, load_critic_weights, save_critic_weights, value_head
from thinkrl.train.device_metrics import TokenWeighted, read
from thinkrl.train.forward import completion_logprobs
from thinkrl.train.heldout import evaluate_heldout, heldout_line, results_file
from thinkrl.train.learning_warnings import Watch
from thinkrl.train.logger import read_metrics
from thinkrl.train.optim import SkipGuard, adamw, optimizer_step
from thinkrl.train.ppo_update import Critic, batched_no_grad, ppo_advantages, update_critic
from thinkrl.train.resume import resume_run
from thinkrl.tools import build_toolbox
from thinkrl.train.rollout import Rollout, collect, rollout_metrics


def use_gradient_checkpointing(model, a) -> None:
    """algo.gradient_checkpointing: HF's, non-reentrant. It acts only in training mode, so the
    engine's no-grad decode of the same model is unaffected."""
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def update(cfg: RLConfig, step: int, model, ref_model, optimizer, scheduler, rollouts: list[Rollout],
           advantages: torch.Tensor, pad_id: int, guard: SkipGuard | None = None, group: Group = Group()) -> dict:
    """epochs x mini_batches optimizer steps on one rollout batch; returns averaged metrics.

    advantages: [N] one per rollout (the GRPO family) or [N, T] per token (PPO), T >= the longest completion.
    An optimizer step whose loss or gradient is not finite is skipped (`skipped_updates`); `guard`,
    kept for the whole run, stops it after optim.max_skipped_updates in a row.
    Data-parallel (`group`, thinkrl.dist): every rank holds every rollout and runs its share of each
    mini-batch's rows against the whole mini-batch's normaliser; the gradients are summed over ranks.
    """
    a = cfg.algo
    guard = guard or SkipGuard(cfg.optim.max_skipped_updates, "the policy")
    dev = next(model.parameters()).device
    keep = trained_flags(cfg, rollouts)
    sums = TokenWeighted(dev)  # the metrics stay on the device until the end of the step (device_metrics)
    mismatch = torch.zeros(3, dtype=torch.float64, device=dev)  # max, sum, tokens over the first mini-batch
    grad_norms, skipped = 0.0, 0
    model.train()
    before = None  # algo.rollout_is over several optimizer steps: the training log-probs before the first
    if a.rollout_is != "off" and a.epochs * a.mini_batches > 1:
        before = batched_no_grad(cfg, rollouts, max(len(r.completion.token_ids) for r in rollouts), lambda p, rows, c:
                                 completion_logprobs(model, p, rows, c, temperature=cfg.sampling.temperature, pad_id=pad_id,
                                                     logprob_chunk=a.logprob_chunk, pack=a.pack)[0], group).to(dev)
    for index, (rows, normalizer) in enumerate(minibatches(cfg, step, rollouts, keep)):
        loss_sum = torch.zeros((), device=dev)  # finite exactly when every micro-batch's loss is
        for micro, ghost in rank_micro_batches(rollouts, rows, a.micro_batch_size, a.bucket_by_length, group,
                                               a.micro_batch_tokens):
            prompts, prompt_of_row, completions = micro_inputs(rollouts, micro)
            logp, entropy, mask = completion_logprobs(
                model, prompts, prompt_of_row, completions, temperature=cfg.sampling.temperature,
                detach_prompt=a.detach_prompt, with_entropy=True, pad_id=pad_id, logprob_chunk=a.logprob_chunk,
                pack=a.pack,
            )
            old = pad_rows([rollouts[i].completion.logprobs for i in micro], logp.shape[1], dev)
            mask = mask * sampled_mask(rollouts, micro, mask.shape[1], dev)
            mask = mask * to_device(torch.tensor([float(keep[i] and not ghost) for i in micro]), dev)[:, None]
            ref = None
            if ref_model is not None:
                with torch.no_grad(), disabled(ref_model):  # with LoRA the reference is the policy's base
                    ref, _, _ = completion_logprobs(ref_model, prompts, prompt_of_row, completions,
                                                    temperature=cfg.sampling.temperature, pad_id=pad_id,
                                                    logprob_chunk=a.logprob_chunk, pack=a.pack)
            train_old = old  # the ratio's denominator: the engine's log-probs, or with rollout_is the training
            if a.rollout_is != "off":  # forward's before the update (this one's while no optimizer step came before)
                train_old = logp.detach() if before is None else rows_of(before, micro, logp.shape[1], dev)
            loss, m = policy_loss(
                logp, train_old, rows_of(advantages, micro, logp.shape[1], dev), mask, clip_low=a.clip_low, clip_high=a.clip_high,
                dual_clip=a.dual_clip or None, aggregation=a.aggregation, max_len=cfg.sampling.max_new_tokens,
                normalizer=normalizer, ref_logp=ref, kl_coef=a.kl_coef, kl_estimator=a.kl_estimator,
                entropy=entropy if a.entropy_coef else entropy.detach(), entropy_coef=a.entropy_coef,
                ratio_level=a.ratio_level, rollout_logp=old, rollout_is=a.rollout_is, rollout_is_cap=a.rollout_is_cap,
                rollout_is_low=a.rollout_is_low,
            )
            loss.backward()
            loss_sum = loss_sum + loss.detach()
            w = mask.sum()
            if index == 0:  # the whole first mini-batch, before any update: training forward vs sampling log-probs
                diff = (logp.detach() - old).abs() * mask
                mismatch = torch.stack([torch.maximum(mismatch[0], diff.max()), mismatch[1] + diff.sum(), mismatch[2] + w])
            sums.add({k: v for k, v in m.items() if k != "pg_loss"}, w)
        # the one host read of the micro-batches: every rank must skip, or step, together
        bad_loss = group.worst(float(loss_sum))
        grad_norm, stepped = optimizer_step(model.parameters(), optimizer, scheduler, guard, cfg.optim.grad_clip,
                                            bad_loss, f"step {step + 1}")
        grad_norms += grad_norm if stepped else 0.0
        skipped += not stepped
    host = read({**sums.tensors(), "__mismatch_max": mismatch[0], "__mismatch_sum": mismatch[1],
                 "__mismatch_tokens": mismatch[2]})  # one transfer for the whole step
    mismatch_max = group.max(host.pop("__mismatch_max"))
    host = group.sum(host)  # data-parallel: over the ranks (their token weights too)
    weight, mm_sum, mm_tokens = (host.pop(k) for k in ("__weight", "__mismatch_sum", "__mismatch_tokens"))
    out = {k: v / max(weight, 1.0) for k, v in host.items()}
    out.update({"mismatch/max": mismatch_max, "mismatch/mean": mm_sum / max(mm_tokens, 1.0),
                "grad_norm": grad_norms / (a.epochs * a.mini_batches), "lr": scheduler.get_last_lr()[0]})
    if skipped:
        out["skipped_updates"] = float(skipped)
    return out


# ---------------------------------------------------------------- the loop


def train(cfg: RLConfig, show_progress: bool = True) -> Path:
    from tqdm import tqdm

    from thinkrl import dist

    started = time.perf_counter()
    run_dir = Path(cfg.out_dir)
    device, dtype = device_and_dtype(cfg.model.device, cfg.model.dtype)
    group, device = dist.init(device)  # one process: Group.single(), and nothing below changes
    ckpt = checkpoint_to_resume(run_dir, cfg.resume)
    task = get_task(cfg.task)
    train_problems = task.problems("train")
    eval_problems = task.problems("eval")[: cfg.eval.limit] if cfg.eval.limit else []
    if not train_problems:
        raise UserError(f"task '{cfg.task.name}' has no train problems")
    prompt = prompt_setup.from_task("rl", cfg.task, task, cfg.eval.sampling, cfg.sampling, cfg.tools)  # in checkpoints
    rewards = rewards_mod.build(cfg.rewards, device, dtype)  # a reward model sits beside the policy
    tools = build_toolbox(cfg.tools, task)  # None without a [tools] section: single-turn rollouts

    ppo = cfg.algo.algorithm == "ppo"
    model, tokenizer = load_trained(cfg.model, cfg.lora, ckpt, cfg.seed, device,
                                    torch.float32 if group.active else dtype)  # sharded: fp32 params (thinkrl.dist.fsdp)
    critic, critic_host = None, None  # critic_host: data-parallel, the critic's unsharded copy for saving
    if ppo:  # from the initial weights, or a resumed run's checkpoint
        critic_model = load_critic(cfg.model.name, device=device, dtype=torch.float32 if group.active else dtype)
        critic_model = add_adapters(critic_model, cfg.lora, cfg.model.name, cfg.seed + 1, heads=(value_head(critic_model),))
        if ckpt:
            load_critic_weights(critic_model, ckpt)
        critic_host = dist.shard_with_host_copy(critic_model, dtype, group)
        critic_updates = cfg.steps * cfg.algo.epochs * cfg.algo.mini_batches
        critic = Critic(critic_model, *adamw(trainable(critic_model), cfg.optim, critic_updates, lr=cfg.optim.critic_lr))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    ref_model = None
    if cfg.algo.kl_coef and cfg.lora.r:  # the base model: the policy with its adapters off (lora.disabled)
        ref_model = model
    elif cfg.algo.kl_coef:
        ref_model = load_model(cfg.model.name, device=device, dtype=dtype)[0] if ckpt else copy.deepcopy(model).to(dtype)
        ref_model.eval().requires_grad_(False)
    sampler = dist.engine_model(model, dtype, group)  # the model, or (data-parallel) a full copy of the sharded one
    engine = Engine(sampler, tokenizer, eos_token_ids(model, tokenizer), max_batch=cfg.rollout_batch)
    total_updates = (cfg.steps - (cfg.algo.critic_warmup_steps if ppo else 0)) * cfg.algo.epochs * cfg.algo.mini_batches
    use_gradient_checkpointing(model, cfg.algo)
    optimizer, scheduler = adamw(trainable(model), cfg.optim, total_updates)  # with LoRA the adapters only
    if summary(model):
        print(summary(model), flush=True)
    guards = {"policy": SkipGuard(cfg.optim.max_skipped_updates, "the policy"),  # non-finite updates in a row
              "critic": SkipGuard(cfg.optim.max_skipped_updates, "the critic")}
    saved, logger = resume_run(cfg, ckpt, optimizer, scheduler, group, model)
    if ckpt:  # data-parallel: the engine's copy from the exact fp32 weights the ranks just read
        dist.refresh(sampler, model)
    state = {"step": saved["step"], "position": saved.get("position", 0)}
    watch = Watch({"group_size": cfg.group_size, "max_new_tokens": cfg.sampling.max_new_tokens,  # "nothing learns"
                   "temperature": cfg.sampling.temperature}, read_metrics(run_dir) if ckpt and group.main else [])
    if ckpt and critic is not None:
        if group.active:
            load_sharded_state(critic.model, critic.optimizer, ckpt, saved["critic_optimizer"], "critic_optimizer")
        else:
            critic.optimizer.load_state_dict(saved["critic_optimizer"])
        critic.scheduler.load_state_dict(saved["critic_scheduler"])

    cache: dict[str, list[int]] = {}
    schemas = tools.prompt_tools(tokenizer) if tools is not None else None  # the template format's tools=

    def encode(p: Problem) -> list[int]:
        if p.id not in cache:  # a prompt too long for the model is an error naming its problem (file:line)
            cache[p.id] = encode_problems(tokenizer, task, [p], cfg.task.template, cfg.task.shots,
                                          cfg.sampling.max_new_tokens, engine.context, schemas)[0]
        return cache[p.id]

    def checkpoint(step: int) -> None:
        trainer_state = {"scheduler": scheduler.state_dict(), "step": step, "position": state["position"],
                         "world_size": group.world}
        if critic is not None:
            trainer_state["critic_scheduler"] = critic.scheduler.state_dict()
        if group.active:  # the full weights (the engine's copy, the critic's host copy), the optimizers sharded
            more, extra = {}, None
            if critic is not None:
                dist.refresh(critic_host, critic.model)
                more = {"critic_optimizer": (critic.model, critic.optimizer)}
                extra = functools.partial(save_critic_weights, critic_host)
            save_sharded_checkpoint(run_dir, step, group, model, optimizer, sampler, tokenizer, trainer_state,
                                    cfg.keep_checkpoints, more, extra, prompt=prompt)
            return
        trainer_state["optimizer"] = optimizer.state_dict()
        if critic is None:
            save_checkpoint(run_dir, step, model, tokenizer, trainer_state, keep=cfg.keep_checkpoints, prompt=prompt)
            return
        trainer_state["critic_optimizer"] = critic.optimizer.state_dict()
        save_checkpoint(run_dir, step, model, tokenizer, trainer_state, keep=cfg.keep_checkpoints,
                        extra=functools.partial(save_critic_weights, critic.model), prompt=prompt)

    if state["step"] == 0 and eval_problems:
        ev = evaluate_heldout(cfg, engine, task, eval_problems, 0, logger, tools, group)
        group.main and print(f"step 0 held-out: {heldout_line(ev)}", flush=True)
    final_ev = None  # the evaluation after the last step
    bar = tqdm(range(state["step"], cfg.steps), initial=state["step"], total=cfg.steps, desc="rl",
               disable=not (show_progress and group.main), dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        rollouts, state["position"], m_draw, drawn = collect(
            cfg, step, state["position"], engine, task, train_problems, encode, rewards_mod.active(rewards, cfg.rewards, step),
            tools, group)
        t_gen = time.perf_counter() - t0
        m_critic: dict[str, float] = {}
        if ppo:
            t1 = time.perf_counter()
            advantages, returns, old_values, m_critic = ppo_advantages(cfg, rollouts, critic.model, ref_model, engine.pad_id, group)
            m_critic.update(update_critic(cfg, step, critic, rollouts, returns, old_values, engine.pad_id,
                                          guards["critic"], group))
            m_critic["time/critic"] = time.perf_counter() - t1
        else:
            reward = torch.tensor([r.reward for r in rollouts])
            advantages = group_advantages(reward, cfg.group_size, estimator=cfg.algo.estimator, scale=cfg.algo.scale)
        t1 = time.perf_counter()
        m_update = {}
        if not ppo or step >= cfg.algo.critic_warmup_steps:  # critic warm-up: the policy waits
            m_update = update(cfg, step, model, None if cfg.algo.kl_in_reward else ref_model, optimizer, scheduler,
                              rollouts, advantages, engine.pad_id, guards["policy"], group)
            dist.refresh(sampler, model)  # the engine samples the updated weights next
        t_update = time.perf_counter() - t1
        state["step"] = step + 1

        metrics = {**rollout_metrics(drawn, rollouts, cfg.group_size, cfg.eval.reflection_phrases), **m_draw, **m_update, **m_critic}
        gen_tokens = sum(len(r.completion.token_ids) for r in drawn)
        metrics.update({"time/generate": t_gen, "time/update": t_update, "time/step": time.perf_counter() - t0,
                        "tokens_per_second/generate": gen_tokens / max(t_gen, 1e-9),
                        "tokens_per_second/update": sum(len(r.completion.token_ids) for r in rollouts) * cfg.algo.epochs / max(t_update, 1e-9)})
        logger.log(state["step"], metrics)
        for name, text in watch.see(metrics):  # once each, with its likely cause and knob; report.html shows it too
            logger.log(state["step"], {f"warning/{name}": text})
            group.main and bar.write(f"warning: {text}")
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
            ev = evaluate_heldout(cfg, engine, task, eval_problems, state["step"], logger, tools, group)
            final_ev = ev if last else None
        if ((cfg.save_every and state["step"] % cfg.save_every == 0) or last) and all(
                g.may_checkpoint(f"step {state['step']}") for g in guards.values()):
            checkpoint(state["step"])
    bar.close()
    final = run_dir / "final"
    if critic_host is not None:  # data-parallel: the critic's full weights, gathered on every rank
        dist.refresh(critic_host, critic.model)
    if group.main:  # data-parallel: rank 0 writes, the others wait for it below
        if final_ev is not None:  # a run resumed after the last checkpoint does not show it again
            start = results_file(run_dir, 0)
            hint = f"\nthe gain with its interval: thinkrl compare {start} {results_file(run_dir, cfg.steps)}" if start.is_file() else ""
            print(f"step {cfg.steps} held-out: {heldout_line(final_ev)}{hint}", flush=True)
        final = save_pretrained(sampler, tokenizer, final,  # merged (+ adapter/), and the prompt set-up
                                extra=with_adapter(sampler, prompt_setup.writer(prompt)))
        if critic is not None:  # an HF token-classification folder: AutoModelForTokenClassification reads it
            saved_critic = critic.model if critic_host is None else critic_host
            save_pretrained(saved_critic, tokenizer, run_dir / "critic", extra=with_adapter(saved_critic))
        logger.close()
        plot_run(run_dir)
        finish(run_dir, "rl", time.perf_counter() - started)  # the summary, and report.html
    group.barrier()
    dist.close(group)
    return final

