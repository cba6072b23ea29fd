"""`thinkrl dpo`: direct preference optimisation (Rafailov et al. 2023) on chosen/rejected pairs.

One of Kimi k1.5's long2short routes: the shortest correct answer as chosen, longer or wrong ones
as rejected. Pairs are read in `thinkrl rm`'s format and split by prompt like it (thinkrl.data.pairs). The reference is
the starting model: its sequence log-probs of every pair are computed once, before training, so
no second model is kept in memory. Each step: the policy's summed log-probs of the chosen and the
rejected response (assistant tokens only, as `thinkrl sft` masks them), `dpo_loss`, one AdamW step.
Held-out pairs are scored at the start and the end: the DPO loss, the implicit-reward accuracy and
`logratio`, the mean log pi(rejected) - log pi(chosen), which DPO should drive down.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from thinkrl import prompt_setup
from thinkrl.algos.preference import dpo_loss
from thinkrl.config import DPOConfig
from thinkrl.data.chat import Example, tokenize
from thinkrl.data.pairs import load_pairs, split_pairs
from thinkrl.errors import UserError
from thinkrl.models import device_and_dtype, load_model, save_pretrained
from thinkrl.report import finish
from thinkrl.train.adapters import add_adapters, summary, trainable, with_adapter
from thinkrl.train.assistant import assistant_logprobs
from thinkrl.train.optim import SkipGuard, adamw, optimizer_step
from thinkrl.train.resume import resume_run


def sequence_logprobs(model, examples: list[Example], detach_prompt: bool, pad_id: int) -> torch.Tensor:
    """Sum of the log-probs of each example's assistant tokens: [B]."""
    logp, mask, _ = assistant_logprobs(model, examples, detach_prompt, pad_id)
    return (logp * mask).sum(-1)


@torch.no_grad()
def all_logprobs(model, rows: list[tuple[Example, Example]], micro: int, detach_prompt: bool, pad_id: int):
    """(chosen [N], rejected [N]) sequence log-probs of every pair, without gradient."""
    model.eval()
    ch, rj = [], []
    for i in range(0, len(rows), micro):
        part = rows[i : i + micro]
        ch.append(sequence_logprobs(model, [c for c, _ in part], detach_prompt, pad_id))
        rj.append(sequence_logprobs(model, [r for _, r in part], detach_prompt, pad_id))
    return torch.cat(ch), torch.cat(rj)


def train(cfg: DPOConfig, show_progress: bool = True) -> Path:
    from tqdm import tqdm

    if not cfg.data:
        raise UserError("no preference data: set data = \"pairs.jsonl\" (or --data)")
    started = time.perf_counter()
    run_dir = Path(cfg.out_dir)
    if (run_dir / "metrics.jsonl").exists():
        raise UserError(f"out_dir {run_dir} already holds a run: set out_dir elsewhere")
    train_pairs, held_pairs = split_pairs(load_pairs(cfg.data), cfg.eval_fraction, cfg.seed)
    prompt = prompt_setup.from_conversation("dpo", train_pairs[0].chosen) if train_pairs else None  # kept in final/
    device, dtype = device_and_dtype(cfg.model.device, cfg.model.dtype)
    model, tokenizer = load_model(cfg.model.name, device=device, dtype=dtype)
    model = add_adapters(model, cfg.lora, cfg.model.name, cfg.seed)  # [lora]: B = 0, so still the reference
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(pairs):
        rows = [(tokenize(tokenizer, p.chosen), tokenize(tokenizer, p.rejected)) for p in pairs]
        return [r for r in rows if max(len(r[0]), len(r[1])) <= cfg.max_len]

    train_rows, held_rows = encode(train_pairs), encode(held_pairs)
    if not train_rows:
        raise UserError(f"no training pair of {cfg.data} fits max_len = {cfg.max_len}")
    micro, det = cfg.micro_batch_size, cfg.detach_prompt
    ref_train = all_logprobs(model, train_rows, micro, det, pad_id)  # the reference: the starting model
    ref_held = all_logprobs(model, held_rows, micro, det, pad_id) if held_rows else None
    per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    torch.manual_seed(cfg.seed)
    optimizer, scheduler = adamw(trainable(model), cfg.optim, total)
    if summary(model):
        print(summary(model), flush=True)
    guard = SkipGuard(cfg.optim.max_skipped_updates)  # non-finite updates are skipped; too many in a row stop the run
    _, logger = resume_run(cfg, None, optimizer, scheduler)  # dpo does not resume: a fresh log
    print(f"dpo: {len(train_rows)} train / {len(held_rows)} held-out pairs, {total} steps of {cfg.batch_size}", flush=True)

    def evaluate(at: int) -> dict:
        if not held_rows:
            return {}
        ch, rj = all_logprobs(model, held_rows, micro, det, pad_id)
        loss, m = dpo_loss(ch, rj, ref_held[0], ref_held[1], cfg.beta)
        out = {"eval/loss": float(loss), "eval/accuracy": m["accuracy"], "eval/logratio": m["logratio"]}
        logger.log(at, out)
        print(f"step {at} held-out: loss {out['eval/loss']:.4f}, accuracy {out['eval/accuracy']:.3f}, "
              f"log pi(rejected) - log pi(chosen) {out['eval/logratio']:.3f}", flush=True)
        return out

    results = {"start": evaluate(0)}
    bar = tqdm(range(total), desc="dpo", disable=not show_progress, dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        epoch, i = divmod(step, per_epoch)
        order = list(range(len(train_rows)))
        random.Random(f"{cfg.seed}-dpo-epoch-{epoch}").shuffle(order)
        batch = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        model.train()
        sums = {"loss": 0.0, "accuracy": 0.0, "logratio": 0.0}
        for start in range(0, len(batch), micro):
            rows = batch[start : start + micro]
            ch = sequence_logprobs(model, [train_rows[j][0] for j in rows], det, pad_id)
            rj = sequence_logprobs(model, [train_rows[j][1] for j in rows], det, pad_id)
            loss, m = dpo_loss(ch, rj, ref_train[0][rows], ref_train[1][rows], cfg.beta)
            (loss * len(rows) / len(batch)).backward()  # the batch mean over its micro-batches
            for k in sums:
                sums[k] += (float(loss.detach()) if k == "loss" else m[k]) * len(rows) / len(batch)
        grad_norm, stepped = optimizer_step(model.parameters(), optimizer, scheduler, guard, cfg.optim.grad_clip,
                                            sums["loss"], f"step {step + 1}")
        logger.log(step + 1, {**{f"train/{k}": v for k, v in sums.items()}, "grad_norm": grad_norm,
                              "lr": scheduler.get_last_lr()[0], "skipped_updates": float(not stepped),
                              "time/step": time.perf_counter() - t0})
        bar.set_postfix(loss=f"{sums['loss']:.3f}")
    bar.close()
    results["end"] = evaluate(total)
    final = save_pretrained(model, tokenizer, run_dir / "final",  # merged (+ adapter/), and the prompt set-up
                            extra=with_adapter(model, prompt_setup.writer(prompt)))
    (run_dir / "results.json").write_text(json.dumps({**results, "train_pairs": len(train_rows),
                                                      "eval_pairs": len(held_rows), "final": str(final)}, indent=2) + "\n")
    logger.close()
    finish(run_dir, "dpo", time.perf_counter() - started)  # the summary, and report.html
    return final
