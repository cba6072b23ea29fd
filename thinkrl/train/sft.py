"""`thinkrl sft`: supervised fine-tuning on chat JSONL, loss on the assistant's tokens only.

R1 uses it twice: the cold start (a few thousand readable long chains of thought before reasoning
RL) and the SFT on rejection-sampled data after it; `thinkrl distill` uses it to train a student
on a teacher's correct traces, optionally with a token-level KL to the teacher.

Data: one `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` per line.
Each conversation goes through the tokenizer's chat template (thinkrl.data.chat); a token carries
loss when it lies in an assistant turn (its content and the end-of-turn token that teaches the model to stop).
Batches are length-bucketed (examples of similar length together, so little compute is spent on
padding) and the order is a function of (seed, epoch), so a resumed run sees the same batches.
The sum of token losses of a batch is divided by the batch's assistant-token count: every
assistant token weighs the same, whatever micro-batch it falls in.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import torch

from thinkrl import prompt_setup
from thinkrl.algos.sft import distill_kl, sft_loss
from thinkrl.config import SFTConfig
from thinkrl.data.chat import Example, read_chat_jsonl, tokenize
from thinkrl.dist import Group
from thinkrl.engine import Engine
from thinkrl.errors import UserError
from thinkrl.models import device_and_dtype, eos_token_ids, load_model, save_pretrained
from thinkrl.report import finish, plot_run
from thinkrl.tasks import get_task
from thinkrl.train.adapters import load_trained, summary, trainable, with_adapter
from thinkrl.train.assistant import assistant_logprobs
from thinkrl.train.checkpoint import checkpoint_to_resume, save_checkpoint, save_sharded_checkpoint
from thinkrl.train.forward import completion_logits
from thinkrl.train.heldout import evaluate_heldout
from thinkrl.train.optim import SkipGuard, adamw, optimizer_step
from thinkrl.train.resume import resume_run

BUCKET = 16  # batches per length bucket: sort within 16 batches' worth of examples


# ---------------------------------------------------------------- data order


def split_examples(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded share of the examples, at least one when fraction > 0."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    order = list(range(len(examples)))
    random.Random(f"{seed}-sft-split").shuffle(order)
    n_eval = max(1, int(len(examples) * fraction))
    held = set(order[:n_eval])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches of one epoch: shuffle, sort within buckets of BUCKET batches,
    cut into batches, shuffle the batches. A function of (seed, epoch) only."""
    rng = random.Random(f"{seed}-sft-epoch-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * BUCKET
    batches = []
    for start in range(0, len(order), span):
        bucket = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    rng.shuffle(batches)
    return batches


# ---------------------------------------------------------------- the loss of one micro-batch


def batch_loss(model, examples: list[Example], *, normalizer: float, detach_prompt: bool, pad_id: int,
               teacher=None, kl_coef: float = 0.0, kl_temperature: float = 1.0):
    """Cross-entropy on the assistant tokens (+ kl_coef x KL to the teacher); returns (loss, metrics)."""
    logp, mask, logits = assistant_logprobs(model, examples, detach_prompt, pad_id)
    loss, metrics = sft_loss(logp, mask, normalizer)
    if teacher is not None and kl_coef:
        with torch.no_grad():
            t_logits, _, _ = completion_logits(teacher, [e.prompt for e in examples], list(range(len(examples))),
                                               [e.completion for e in examples], detach_prompt=detach_prompt, pad_id=pad_id)
        kl, m_kl = distill_kl(logits, t_logits, mask, kl_temperature, normalizer)
        loss = loss + kl_coef * kl
        metrics.update(m_kl)
    return loss, metrics


@torch.no_grad()
def heldout_loss(model, examples: list[Example], micro: int, detach_prompt: bool, pad_id: int,
                 group: Group = Group()) -> float:
    """Mean NLL per assistant token on held-out examples (data-parallel: each rank its share)."""
    model.eval()
    total, tokens = 0.0, 0.0
    mine = group.rows(list(range(len(examples))))
    for i in range(0, group.passes(len(examples), micro) * micro, micro):  # as many forwards on every rank (FSDP2)
        part = mine[i : i + micro]
        _, m = batch_loss(model, [examples[j] for j in part or [0]], normalizer=1.0, detach_prompt=detach_prompt,
                          pad_id=pad_id)
        if part:
            total += m["nll"] * m["tokens"]
            tokens += m["tokens"]
    summed = group.sum({"total": total, "tokens": tokens})
    return summed["total"] / max(summed["tokens"], 1.0)


# ---------------------------------------------------------------- the loop


def train(cfg: SFTConfig, show_progress: bool = True) -> Path:
    from tqdm import tqdm

    if not cfg.data:
        raise UserError("no training data: set data = \"path/to/chat.jsonl\" (or --data)")
    if cfg.kl_coef and not cfg.teacher:
        raise UserError("kl_coef > 0 needs a teacher model: set teacher = \"path/to/model\"")
    from thinkrl import dist

    started = time.perf_counter()
    run_dir = Path(cfg.out_dir)
    device, dtype = device_and_dtype(cfg.model.device, cfg.model.dtype)
    group, device = dist.init(device)  # one process: Group.single(), and nothing below changes
    ckpt = checkpoint_to_resume(run_dir, cfg.resume)
    conversations = read_chat_jsonl(cfg.data)
    task = get_task(cfg.task) if cfg.eval.limit else None
    eval_problems = task.problems("eval")[: cfg.eval.limit] if task else []
    # beside every checkpoint: how the data asks (its first conversation), and the held-out task's sampling
    prompt = prompt_setup.from_conversation("sft", conversations[0], cfg.task if task else None,
                                            cfg.eval.sampling if task else None) if conversations else None

    model, tokenizer = load_trained(cfg.model, cfg.lora, ckpt, cfg.seed, device,  # [lora]: base + adapters
                                    torch.float32 if group.active else dtype)  # sharded: fp32 params (thinkrl.dist.fsdp)
    teacher = None
    if cfg.teacher and cfg.kl_coef:
        teacher = load_model(cfg.teacher, device=device, dtype=dtype)[0].requires_grad_(False)
        if teacher.get_output_embeddings().weight.shape[0] != model.get_output_embeddings().weight.shape[0]:
            raise UserError(f"teacher {cfg.teacher} and student {cfg.model.name} have different vocabularies: "
                            "token-level KL needs one tokenizer (set kl_coef = 0 to train on the traces alone)")
    examples = [tokenize(tokenizer, m) for m in conversations]
    context = getattr(model.config, "max_position_embeddings", None) or cfg.max_len
    max_len = min(cfg.max_len, context)  # nor may an example outgrow the model's context window
    too_long = sum(len(e) > max_len for e in examples)
    examples = [e for e in examples if len(e) <= max_len]
    if not examples:
        raise UserError(f"every example in {cfg.data} is longer than {max_len} tokens (max_len = {cfg.max_len}, "
                        f"the model's context {context}): shorten the conversations")
    train_set, held_out = split_examples(examples, cfg.eval_fraction, cfg.seed)
    lengths = [len(e) for e in train_set]
    per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    torch.manual_seed(cfg.seed)
    sampler = dist.engine_model(model, dtype, group)  # the engine's and the saved weights (data-parallel: a full copy)
    optimizer, scheduler = adamw(trainable(model), cfg.optim, total)
    guard = SkipGuard(cfg.optim.max_skipped_updates)  # non-finite updates are skipped; too many in a row stop the run
    saved, logger = resume_run(cfg, ckpt, optimizer, scheduler, group, model)
    step = saved["step"]

    def full_weights():
        """The model with its current full weights (data-parallel: the copy, refreshed; a collective)."""
        dist.refresh(sampler, model)
        return sampler

    if summary(model):
        print(summary(model), flush=True)
    group.main and print(f"sft: {len(train_set)} train / {len(held_out)} held-out examples ({too_long} longer than max_len left out), "
          f"{total} steps of {cfg.batch_size}", flush=True)
    engine = Engine(sampler, tokenizer, eos_token_ids(model, tokenizer), max_batch=cfg.eval.batch_size) if task else None

    def evaluate(at: int) -> None:
        out = {}
        if held_out:
            out["eval/loss"] = heldout_loss(model, held_out, cfg.micro_batch_size, cfg.detach_prompt, pad_id, group)
        if out:
            logger.log(at, out)
        if engine is not None and eval_problems:
            full_weights()
            out.update(evaluate_heldout(cfg, engine, task, eval_problems, at, logger, group=group))
        if out and group.main:
            print(f"step {at}: " + ", ".join(f"{k} {v:.4f}" for k, v in out.items()
                                             if k != "eval/seconds" and not k.endswith(("_stderr", "_ci_low", "_ci_high"))),
                  flush=True)

    if step == 0:
        evaluate(0)
    bar = tqdm(range(step, total), initial=step, total=total, desc="sft", disable=not (show_progress and group.main),
               dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        epoch, i = divmod(step, per_epoch)
        batch = [train_set[j] for j in epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)[i]]
        normalizer = float(max(sum(sum(e.mask) for e in batch), 1.0))
        model.train()
        sums: dict[str, float] = {}
        bad_loss = 0.0  # a non-finite micro-batch loss, if any
        mine = [batch[j] for j in group.rows(list(range(len(batch))))]  # data-parallel: this rank's share
        for start in range(0, group.passes(len(batch), cfg.micro_batch_size) * cfg.micro_batch_size,
                           cfg.micro_batch_size):
            # a rank with fewer examples still joins every pass (FSDP2's collectives), with zero loss
            part = mine[start : start + cfg.micro_batch_size]
            ghost = not part
            loss, m = batch_loss(model, part or batch[:1], normalizer=normalizer,
                                 detach_prompt=cfg.detach_prompt, pad_id=pad_id, teacher=teacher,
                                 kl_coef=cfg.kl_coef, kl_temperature=cfg.kl_temperature)
            (loss * 0 if ghost else loss).backward()
            loss_value = float(loss.detach())
            bad_loss = bad_loss if math.isfinite(loss_value) else loss_value
            for k, v in m.items():  # token-weighted means over the batch
                sums[k] = sums.get(k, 0.0) + (0.0 if ghost else v if k == "tokens" else v * m["tokens"])
        bad_loss = group.worst(bad_loss)  # every rank must skip, or step, together
        sums = group.sum(sums)  # the whole batch's metrics
        grad_norm, stepped = optimizer_step(model.parameters(), optimizer, scheduler, guard, cfg.optim.grad_clip,
                                            bad_loss, f"step {step + 1}")
        tokens = sums.pop("tokens")
        metrics = {f"train/{k}": v / max(tokens, 1.0) for k, v in sums.items()}
        metrics.update({"train/tokens": tokens, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0],
                        "skipped_updates": float(not stepped), "epoch": epoch + i / per_epoch,
                        "time/step": time.perf_counter() - t0})
        logger.log(step + 1, metrics)
        bar.set_postfix(loss=f"{metrics['train/nll']:.3f}")
        done = step + 1
        # the last evaluation too is logged before its step's checkpoint: a run killed after that
        # checkpoint resumes past it and does not log it twice
        if (cfg.eval.every and done % cfg.eval.every == 0) or done == total:
            evaluate(done)
        if ((cfg.save_every and done % cfg.save_every == 0) or done == total) and guard.may_checkpoint(f"step {done}"):
            trainer_state = {"scheduler": scheduler.state_dict(), "step": done, "world_size": group.world}
            if group.active:  # the full weights (the engine's copy), the optimizer state sharded
                save_sharded_checkpoint(run_dir, done, group, model, optimizer, full_weights(), tokenizer,
                                        trainer_state, cfg.keep_checkpoints, prompt=prompt)
            else:
                save_checkpoint(run_dir, done, model, tokenizer, {**trainer_state, "optimizer": optimizer.state_dict()},
                                keep=cfg.keep_checkpoints, prompt=prompt)
    bar.close()
    weights = full_weights()
    final = run_dir / "final"
    if group.main:
        final = save_pretrained(weights, tokenizer, final,  # merged (+ adapter/), and the prompt set-up
                                extra=with_adapter(weights, prompt_setup.writer(prompt)))
        logger.close()
        plot_run(run_dir)
        finish(run_dir, "sft", time.perf_counter() - started)  # the summary, and report.html
    group.barrier()
    dist.close(group)
    return final
