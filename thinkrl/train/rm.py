"""`thinkrl rm`: a scalar reward model trained on preference pairs with the Bradley-Terry loss.

The model is an HF causal LM with its LM head replaced by a one-output score head
(`AutoModelForSequenceClassification`, num_labels = 1; thinkrl.rewards.model). It reads a whole
conversation through the chat template, the assistant turn included, and its score is read at the
last token. Training pushes score(chosen) above score(rejected) for pairs answering the same
prompt (thinkrl.algos.preference); held-out pairwise accuracy (the share of held-out pairs scored
the right way round; chance is 0.5) is measured at the start, every `eval_every` steps and at the
end, and written to <out_dir>/results.json. <out_dir>/final is a plain HF folder that
`AutoModelForSequenceClassification.from_pretrained` loads, and that an RL recipe names as
`rewards.reward_model`.

Data: preference pairs in the JSONL format of thinkrl.data.pairs, split into train and held-out
by prompt (seeded), so a held-out prompt is never trained on.

Exact resume: the batch order is a function of (seed, epoch) and a checkpoint holds the model,
optimizer, scheduler and RNG states.

The second command line here, `python -m thinkrl.train.rm pairs COMPLETIONS.jsonl ... --out
pairs.jsonl`, builds such pairs from `thinkrl eval` completions (thinkrl.data.pairs.make_pairs):
correct-and-formatted versus wrong completions of the same prompt, or finished versus cut off.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from thinkrl import prompt_setup
from thinkrl.algos.preference import bradley_terry_loss
from thinkrl.config import RMConfig
from thinkrl.data.chat import encode_conversation
from thinkrl.data.pairs import Pair, load_pairs, pairs_from_eval, split_pairs
from thinkrl.errors import UserError
from thinkrl.models import device_and_dtype, save_pretrained
from thinkrl.report import finish
from thinkrl.rewards.model import load_reward_model, sequence_scores
from thinkrl.train.adapters import add_adapters, summary, trainable, with_adapter
from thinkrl.train.checkpoint import checkpoint_to_resume, save_checkpoint
from thinkrl.train.critic import value_head
from thinkrl.train.optim import SkipGuard, adamw, optimizer_step
from thinkrl.train.order import epoch_order
from thinkrl.train.resume import resume_run

# ---------------------------------------------------------------- scoring pairs


def pair_scores(model, rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen scores [B], rejected scores [B]) of B tokenized pairs, in one forward pass."""
    scores = sequence_scores(model, [c for c, _ in rows] + [r for _, r in rows], pad_id)
    return scores[: len(rows)], scores[len(rows) :]


@torch.no_grad()
def evaluate_pairs(model, rows: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> dict[str, float]:
    """Held-out pairwise accuracy, Bradley-Terry loss and mean score gap."""
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(rows), batch_size):
        c, r = pair_scores(model, rows[start : start + batch_size], pad_id)
        chosen.append(c)
        rejected.append(r)
    loss, m = bradley_terry_loss(torch.cat(chosen), torch.cat(rejected))
    return {"eval/accuracy": m["accuracy"], "eval/loss": float(loss), "eval/margin": m["margin"]}


# ---------------------------------------------------------------- the loop


def train(cfg: RMConfig, show_progress: bool = True) -> Path:
    """Train a reward model on cfg.data; returns the final folder. Writes metrics.jsonl, tb/,
    checkpoints/, final/ and results.json under cfg.out_dir."""
    from tqdm import tqdm

    if not cfg.data:
        raise UserError("no preference data: set data = \"path/to/pairs.jsonl\" (or --data)")
    started = time.perf_counter()
    run_dir = Path(cfg.out_dir)
    ckpt = checkpoint_to_resume(run_dir, cfg.resume)
    train_pairs, held_out = split_pairs(load_pairs(cfg.data), cfg.eval_fraction, cfg.seed)
    prompt = prompt_setup.from_conversation("rm", train_pairs[0].chosen) if train_pairs else None  # how pairs are asked

    device, dtype = device_and_dtype(cfg.model.device, cfg.model.dtype)
    torch.manual_seed(cfg.seed)  # the new score head's random init: a function of the seed, as every other draw
    if cfg.lora.r:  # the base with a new head, adapters on it (the head trained whole); resumed: the checkpoint's
        model, tokenizer, pad_id = load_reward_model(cfg.model.name, device, dtype, new_head=True)
        model = add_adapters(model, cfg.lora, cfg.model.name, cfg.seed, ckpt, heads=(value_head(model),))
    else:
        model, tokenizer, pad_id = load_reward_model(str(ckpt) if ckpt else cfg.model.name, device, dtype, new_head=not ckpt)

    def encode(pairs: list[Pair]) -> list[tuple[list[int], list[int]]]:
        return [(encode_conversation(tokenizer, p.chosen, cfg.max_len), encode_conversation(tokenizer, p.rejected, cfg.max_len))
                for p in pairs]

    train_rows, eval_rows = encode(train_pairs), encode(held_out)
    per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    torch.manual_seed(cfg.seed)
    optimizer, scheduler = adamw(trainable(model), cfg.optim, total)
    if summary(model):
        print(summary(model), flush=True)
    guard = SkipGuard(cfg.optim.max_skipped_updates)  # non-finite updates are skipped; too many in a row stop the run
    saved, logger = resume_run(cfg, ckpt, optimizer, scheduler)
    step = saved["step"]
    print(f"rm: {len(train_rows)} train / {len(eval_rows)} held-out pairs, {total} steps of {cfg.batch_size} pairs", flush=True)

    def evaluate(at: int) -> dict:
        if not eval_rows:
            return {}
        out = evaluate_pairs(model, eval_rows, pad_id, cfg.micro_batch_size)
        logger.log(at, out)
        print(f"step {at} held-out: pairwise accuracy {out['eval/accuracy']:.3f}, loss {out['eval/loss']:.3f}", flush=True)
        return out

    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if ckpt and results_path.is_file() else {}
    if step == 0:
        results["start"] = evaluate(0)
        results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    bar = tqdm(range(step, total), initial=step, total=total, desc="rm", disable=not show_progress, dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        epoch, i = divmod(step, per_epoch)
        order = epoch_order(len(train_rows), cfg.seed, epoch)
        batch = [train_rows[j] for j in order[i * cfg.batch_size : (i + 1) * cfg.batch_size]]
        model.train()
        sums = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
        for start in range(0, len(batch), cfg.micro_batch_size):
            micro = batch[start : start + cfg.micro_batch_size]
            chosen, rejected = pair_scores(model, micro, pad_id)
            loss, m = bradley_terry_loss(chosen, rejected, normalizer=len(batch))
            loss.backward()
            sums["loss"] += float(loss.detach())
            sums["accuracy"] += m["accuracy"] * len(micro) / len(batch)
            sums["margin"] += m["margin"] * len(micro) / len(batch)
        grad_norm, stepped = optimizer_step(model.parameters(), optimizer, scheduler, guard, cfg.optim.grad_clip,
                                            sums["loss"], f"step {step + 1}")
        metrics = {f"train/{k}": v for k, v in sums.items()}
        metrics.update({"grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "skipped_updates": float(not stepped),
                        "epoch": epoch + i / per_epoch, "time/step": time.perf_counter() - t0})
        done = step + 1
        logger.log(done, metrics)
        bar.set_postfix(loss=f"{sums['loss']:.3f}", acc=f"{sums['accuracy']:.2f}")
        if cfg.eval_every and done % cfg.eval_every == 0 and done != total:
            evaluate(done)
        if done == total:  # logged and kept before the last checkpoint, so a resume past it does not repeat it
            results["end"] = evaluate(done)
            results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        if ((cfg.save_every and done % cfg.save_every == 0) or done == total) and guard.may_checkpoint(f"step {done}"):
            save_checkpoint(run_dir, done, model, tokenizer, {"optimizer": optimizer.state_dict(),
                                                              "scheduler": scheduler.state_dict(), "step": done},
                            keep=cfg.keep_checkpoints, prompt=prompt)
    bar.close()
    if "end" not in results:  # no steps to run (or a results file from an older run): evaluate here
        results["end"] = evaluate(total)
    final = save_pretrained(model, tokenizer, run_dir / "final",  # merged (+ adapter/), and the prompt set-up
                            extra=with_adapter(model, prompt_setup.writer(prompt)))
    results.update({"model": cfg.model.name, "data": cfg.data, "train_pairs": len(train_rows), "eval_pairs": len(eval_rows),
                    "steps": total, "final": str(final),
                    "eval_accuracy": results["end"].get("eval/accuracy"),
                    "eval_accuracy_start": results.get("start", {}).get("eval/accuracy")})
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    logger.close()
    finish(run_dir, "rm", time.perf_counter() - started)  # the summary, and report.html
    return final


# ---------------------------------------------------------------- the second command line: pairs from `thinkrl eval` completions


def _per_file(value: str, flag: str, files: list[str]) -> list[str]:
    values = [v.strip() for v in value.split(",")]
    if len(values) == 1:
        values *= len(files)
    if len(values) != len(files):
        raise UserError(f"{flag} gives {len(values)} values for {len(files)} files: one, or one per file")
    return values


def main(argv: list[str] | None = None) -> int:
    """python -m thinkrl.train.rm pairs COMPLETIONS.jsonl [...] --out pairs.jsonl [--criterion ...]"""
    parser = argparse.ArgumentParser(prog="python -m thinkrl.train.rm",
                                     description="build preference pairs for `thinkrl rm` from `thinkrl eval` completions")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="pair good and bad completions of the same prompt")
    p.add_argument("completions", nargs="+", help="X.completions.jsonl files written by `thinkrl eval --out X.json`")
    p.add_argument("--out", required=True, help="preference JSONL to write")
    p.add_argument("--criterion", default="correct", help="correct (correct and formatted vs not) | concise "
                   "(finished vs cut off at the token budget); one for all files or one per file, comma-separated")
    p.add_argument("--part", default="response", help="response (the whole completion) | answer (its final answer "
                   "only, what reward_model_input = 'answer' reads); one for all files or one per file, comma-separated")
    p.add_argument("--per-prompt", type=int, default=4, help="most pairs per prompt")
    p.add_argument("--seed", type=int, default=0, help="the output is shuffled with this seed")
    args = parser.parse_args(argv)
    try:
        criteria, parts = _per_file(args.criterion, "--criterion", args.completions), _per_file(args.part, "--part", args.completions)
        pairs = []
        for path, criterion, part in zip(args.completions, criteria, parts):
            if part not in ("response", "answer"):
                raise UserError(f"--part must be response or answer, got '{part}'")
            found = pairs_from_eval(path, criterion, part, args.per_prompt)
            print(f"{path}: {len(found)} pairs (criterion {criterion}, part {part})")
            pairs += found
        if not pairs:
            raise UserError("no pairs: no prompt had both a good and a bad completion (sample more per prompt: --samples 8)")
        random.Random(args.seed).shuffle(pairs)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs), encoding="utf-8")
        print(f"wrote {len(pairs)} pairs to {out}")
        return 0
    except UserError as e:
        print(f"thinkrl rm pairs: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
