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

Data: one JSON object per line, either
    {"prompt": "question" or [messages], "chosen": "response", "rejected": "response"}
or whole conversations ending in the assistant turn being compared:
    {"chosen": [messages], "rejected": [messages]}
Pairs are split into train and held-out by prompt (seeded), so a held-out prompt is never trained on.

Exact resume: the batch order is a function of (seed, epoch) and a checkpoint holds the model,
optimizer, scheduler and RNG states.

Building an honest preference set from `thinkrl eval` completions (`make_pairs`, and from the
shell `python -m thinkrl.train.rm pairs COMPLETIONS.jsonl ... --out pairs.jsonl`): for each prompt,
completions that are correct and in format are paired with completions of the same prompt that
are wrong or out of format (criterion `correct`), or, for open prompts without a reference answer,
completions that finished with ones cut off at the token budget (criterion `concise`: concise
versus rambling).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from thinkrl.algos.preference import bradley_terry_loss
from thinkrl.config import RMConfig, save as save_config
from thinkrl.errors import UserError
from thinkrl.models import device_and_dtype, save_pretrained
from thinkrl.rewards.model import answer_part, conversation, encode_conversation, load_reward_model, sequence_scores
from thinkrl.train.checkpoint import checkpoint_to_resume, restore, save_checkpoint
from thinkrl.train.logger import RunLogger
from thinkrl.train.optim import SkipGuard, adamw
from thinkrl.train.rl import epoch_order

ROLES = ("system", "user", "assistant")


@dataclass
class Pair:
    """Two conversations that differ in their last (assistant) turn; `where` is file:line."""

    chosen: list[dict]
    rejected: list[dict]
    where: str

    @property
    def prompt_key(self) -> str:
        return json.dumps(self.chosen[:-1], sort_keys=True)


# ---------------------------------------------------------------- data


def _messages(where: str, key: str, value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: key '{key}' must be a string or a non-empty list of {{role, content}} messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise UserError(f"{where}: key '{key}', message {i}: needs 'role' in {', '.join(ROLES)} and a string 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def parse_pair(where: str, line: str) -> Pair:
    """One JSONL line as a Pair, or a one-line UserError naming `where` (file:line) and the key."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object like {{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}}")
    for key in ("chosen", "rejected"):
        if key not in row:
            raise UserError(f"{where}: missing key '{key}' (this line has {', '.join(map(repr, row)) or 'no keys'})")
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, list) or isinstance(rejected, list):  # whole conversations
        if "prompt" in row:
            raise UserError(f"{where}: key 'prompt' goes with string 'chosen'/'rejected'; conversations hold their own prompt")
        pair = Pair(_messages(where, "chosen", chosen), _messages(where, "rejected", rejected), where)
        for key, conv in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            if conv[-1]["role"] != "assistant":
                raise UserError(f"{where}: key '{key}': the last message must be the assistant's (the turn compared)")
    else:
        if "prompt" not in row:
            raise UserError(f"{where}: missing key 'prompt' (string 'chosen'/'rejected' answer a prompt)")
        prompt = row["prompt"]
        if isinstance(prompt, str):
            if not prompt.strip():
                raise UserError(f"{where}: key 'prompt' is empty")
        else:
            prompt = _messages(where, "prompt", prompt)
        for key, value in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{where}: key '{key}' must be a non-empty string (or a list of messages)")
        pair = Pair(conversation(prompt, chosen), conversation(prompt, rejected), where)
    if pair.chosen == pair.rejected:
        raise UserError(f"{where}: 'chosen' and 'rejected' are the same, so the pair prefers nothing")
    return pair


def load_pairs(path: str | Path) -> list[Pair]:
    """Every pair of a preference JSONL file in file order; blank lines are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"data = '{path}': no such file (a preference JSONL; `python -m thinkrl.train.rm pairs` builds one)")
    from thinkrl.tasks.jsonl import lines, read_utf8

    pairs = [parse_pair(f"{path}:{n}", line) for n, line in enumerate(lines(read_utf8(path)), 1) if line.strip()]
    if not pairs:
        raise UserError(f"{path}: no preference pairs (the file is empty)")
    return pairs


def split_pairs(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out) by prompt: a seeded `fraction` of the distinct prompts (at least one when
    fraction > 0 and there are two or more) and all their pairs are held out."""
    prompts = list(dict.fromkeys(p.prompt_key for p in pairs))
    if fraction <= 0 or len(prompts) < 2:
        return pairs, []
    random.Random(f"{seed}-rm-split").shuffle(prompts)
    held = set(prompts[: min(len(prompts) - 1, max(1, round(len(prompts) * fraction)))])
    return [p for p in pairs if p.prompt_key not in held], [p for p in pairs if p.prompt_key in held]


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
    run_dir = Path(cfg.out_dir)
    ckpt = checkpoint_to_resume(run_dir, cfg.resume)
    train_pairs, held_out = split_pairs(load_pairs(cfg.data), cfg.eval_fraction, cfg.seed)

    device, dtype = device_and_dtype(cfg.model.device, cfg.model.dtype)
    model, tokenizer, pad_id = load_reward_model(str(ckpt) if ckpt else cfg.model.name, device, dtype, new_head=not ckpt)

    def encode(pairs: list[Pair]) -> list[tuple[list[int], list[int]]]:
        return [(encode_conversation(tokenizer, p.chosen, cfg.max_len), encode_conversation(tokenizer, p.rejected, cfg.max_len))
                for p in pairs]

    train_rows, eval_rows = encode(train_pairs), encode(held_out)
    per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    torch.manual_seed(cfg.seed)
    optimizer, scheduler = adamw(model.parameters(), cfg.optim, total)
    guard = SkipGuard(cfg.optim.max_skipped_updates)  # non-finite updates are skipped; too many in a row stop the run
    step = 0
    if ckpt:
        step = restore(ckpt, optimizer, scheduler)["step"]
        print(f"resuming from {ckpt} (step {step})", flush=True)
    logger = RunLogger(run_dir, resume_step=step if ckpt else None)
    save_config(cfg, run_dir / "config.toml")
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
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
        skipped = not guard.step(optimizer, grad_norm, sums["loss"], where=f"step {step + 1}")
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        metrics = {f"train/{k}": v for k, v in sums.items()}
        metrics.update({"grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0], "skipped_updates": float(skipped),
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
                            keep=cfg.keep_checkpoints)
    bar.close()
    if "end" not in results:  # no steps to run (or a results file from an older run): evaluate here
        results["end"] = evaluate(total)
    final = save_pretrained(model, tokenizer, run_dir / "final")
    results.update({"model": cfg.model.name, "data": cfg.data, "train_pairs": len(train_rows), "eval_pairs": len(eval_rows),
                    "steps": total, "final": str(final),
                    "eval_accuracy": results["end"].get("eval/accuracy"),
                    "eval_accuracy_start": results.get("start", {}).get("eval/accuracy")})
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    logger.close()
    return final


# ---------------------------------------------------------------- preference pairs from `thinkrl eval` completions

CRITERIA = ("correct", "concise")


def _good(row: dict, criterion: str) -> bool:
    """May this completion row be chosen (True) or rejected (False)?"""
    if criterion == "correct":
        return bool(row["correct"] and row["formatted"])
    return row.get("finish_reason") != "length"


def make_pairs(rows: list[dict], questions: dict[str, str], criterion: str = "correct", part: str = "response",
               per_prompt: int = 4) -> list[dict]:
    """Preference pairs {"prompt", "chosen", "rejected", "id"} from completion rows of `thinkrl eval`
    (fields id, text, correct, formatted, finish_reason), `questions` giving each id's question.

    Per prompt, good completions (criterion `correct`: correct and formatted; `concise`: finished
    before the token budget, the others were cut off by it) are paired one to one, in sample order, with bad ones of the same
    prompt, up to `per_prompt` pairs; prompts with no good or no bad completion give none. Each
    completion is used once, and pairs whose two texts are equal are skipped. part = "answer"
    keeps only the final answer of each text (what a reward model with reward_model_input =
    "answer" reads)."""
    if criterion not in CRITERIA:
        raise UserError(f"criterion must be one of {', '.join(CRITERIA)}, got '{criterion}'")
    by_id: dict[str, tuple[list[str], list[str]]] = {}
    for row in rows:
        text = answer_part(row["text"]) if part == "answer" else row["text"]
        good, bad = by_id.setdefault(str(row["id"]), ([], []))
        (good if _good(row, criterion) else bad).append(text)
    out = []
    for pid, (good, bad) in by_id.items():
        if pid not in questions:
            raise UserError(f"completion id '{pid}' is not a problem of the task: pass the task the completions came from")
        pairs = [(g, b) for g, b in zip(good, bad) if g.strip() and b.strip() and g != b][:per_prompt]
        out += [{"id": pid, "prompt": questions[pid], "chosen": g, "rejected": b} for g, b in pairs]
    return out


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            missing = [k for k in ("id", "text", "correct", "formatted") if k not in row]
            if missing:
                raise UserError(f"{path}:{n}: missing key '{missing[0]}' (expected a `thinkrl eval` completions file)")
            rows.append(row)
    return rows


def pairs_from_eval(completions: str | Path, criterion: str = "correct", part: str = "response",
                    per_prompt: int = 4) -> list[dict]:
    """make_pairs on a `thinkrl eval` X.completions.jsonl, recovering each question from the task of
    the run's resolved config X.config.toml (written beside it), on the split it evaluated."""
    from thinkrl.config import EvalConfig, load
    from thinkrl.tasks import get_task

    path = Path(completions)
    if not path.is_file():
        raise UserError(f"{path}: no such file (the X.completions.jsonl that `thinkrl eval --out X.json` writes)")
    config = path.with_name(path.name.replace(".completions.jsonl", ".config.toml"))
    if not config.is_file():
        raise UserError(f"{config} not found: it is written by `thinkrl eval` beside {path.name} and names the task")
    cfg = load(EvalConfig, config, [])
    questions = {p.id: p.question for p in get_task(cfg.task).problems(cfg.split)}
    return make_pairs(_read_jsonl(path), questions, criterion, part, per_prompt)


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
