"""`thinkrl sample`: draw k completions per prompt, keep the good ones, write SFT-ready chat JSONL.

R1's cold-start data and its rejection-sampling step are the same operation on different models:
sample the prompts of a task's train split, judge every completion (the task's verifier, the
template's format, language consistency of the reasoning), drop duplicates and write the
accepted ones as `{"messages": [...]}` lines that `thinkrl sft` reads. The written prompt is the
one `thinkrl rl` and `thinkrl eval` give a model (same template), with `data_shots` worked
examples (default none: the data teaches the format, so the trained model needs no priming).
A `<name>.stats.json` beside the data says how many were drawn, accepted, rejected and why, and
the lengths of what was kept.

`source = "solutions"` writes the task's own worked solutions instead (`Task.solution`: GSM8K's
human-written ones, the step-by-step computation of a procedural task), in the template's answer
format and through the same filters, with no model: R1's curated cold start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from pathlib import Path

from thinkrl.config import SampleConfig, save as save_config
from thinkrl.errors import UserError
from thinkrl.engine.engine import Completion
from thinkrl.evaluate import Scored, load_engine, run_eval, score_completions
from thinkrl.models import load_tokenizer
from thinkrl.report import finish_sample
from thinkrl.prompts import build_messages, write_response
from thinkrl.rewards.language import language_share, reasoning_part
from thinkrl.tasks import get_task
from thinkrl.tasks.budget import nearest_budget, parse_budgets, with_budget


def verdict(s: Scored, cfg: SampleConfig) -> str:
    """'accepted' or the first reason the completion is rejected."""
    if s.completion.finish_reason == "length":
        return "truncated"
    if cfg.require_format and not s.formatted:
        return "format"
    if cfg.require_correct and not s.correct:
        return "incorrect"
    if cfg.min_language and language_share(reasoning_part(s.completion.text), cfg.language_target) < cfg.min_language:
        return "language"
    return "accepted"


def _normal(text: str) -> str:
    return " ".join(text.split())


def select(group: list[Scored], cfg: SampleConfig) -> tuple[list[Scored], Counter]:
    """The completions of one prompt to keep, and a count of each verdict (duplicates included)."""
    reasons: Counter = Counter()
    accepted, seen = [], set()
    for s in group:
        v = verdict(s, cfg)
        if v == "accepted" and _normal(s.completion.text) in seen:
            v = "duplicate"
        reasons[v] += 1
        if v == "accepted":
            seen.add(_normal(s.completion.text))
            accepted.append(s)
    if cfg.prefer == "shortest":
        accepted.sort(key=lambda s: len(s.completion.token_ids))
    return (accepted[: cfg.keep] if cfg.keep else accepted), reasons


def _quantiles(xs: list[int]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)
    return {"mean": sum(xs) / len(xs), "min": xs[0], "p50": xs[len(xs) // 2], "p90": xs[int(len(xs) * 0.9)], "max": xs[-1]}


def written_solutions(task, problems, cfg: SampleConfig) -> tuple[dict, list[Scored], int]:
    """(metrics, k Scored per problem, k) for the task's own solutions, judged like samples.

    k is the most solutions a task writes for one problem (1, or 3 for arithmetic's "every"
    style). A problem with fewer, or without a solution, gets empty responses, which the format
    filter rejects."""
    t0 = time.perf_counter()
    written = [task.solutions(p) for p in problems]
    k = max((len(w) for w in written), default=1)
    completions = [Completion(prompt_index=i, sample_index=j, finish_reason="stop",
                              text=write_response(*w[j], cfg.task.template) if j < len(w) and w[j] is not None else "")
                   for i, w in enumerate(written) for j in range(k)]
    scored = score_completions(task, problems, completions, cfg.task.template)
    n = max(len(scored), 1)
    metrics = {"pass@1": sum(s.correct for s in scored) / n, "format_rate": sum(s.formatted for s in scored) / n,
               "mean_response_tokens": None, "seconds": time.perf_counter() - t0}
    return metrics, scored, k


def sample(cfg: SampleConfig, engine=None, on_batch=None) -> tuple[Path, dict]:
    """Run the sampling and write the data and its statistics; returns (data path, stats)."""
    started = time.perf_counter()
    if cfg.min_language:
        language_share("", cfg.language_target)  # an unknown language fails before any sampling
    task = get_task(cfg.task)
    problems = task.problems(cfg.split)[: cfg.limit or None]
    if not problems:
        raise UserError(f"task '{cfg.task.name}' split '{cfg.split}' has no problems")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if cfg.source == "solutions":
        metrics, scored, k = written_solutions(task, problems, cfg)
        cfg = dataclasses.replace(cfg, samples=k, keep=0 if k > 1 else cfg.keep)  # every distinct written one
    else:
        engine = engine or load_engine(cfg.model, cfg.batch_size)
        metrics, scored = run_eval(engine, task, problems, template=cfg.task.template, shots=cfg.task.shots,
                                   params=cfg.sampling, samples=cfg.samples, batch_size=cfg.batch_size, seed=cfg.seed,
                                   on_batch=on_batch)
    reasons: Counter = Counter()
    kept_per_prompt: Counter = Counter()
    lengths: list[int] = []
    kept = 0
    budgets = parse_budgets(cfg.relabel_budgets) if cfg.relabel_budgets else None
    relabeled: Counter = Counter()
    if budgets and cfg.source == "solutions":  # written solutions are measured with the model's tokenizer
        tokenizer = load_tokenizer(cfg.model.name)
        for s in scored:
            s.completion.token_ids = tokenizer(s.completion.text, add_special_tokens=False)["input_ids"]
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i, p in enumerate(problems):
            keep, why = select(scored[i * cfg.samples : (i + 1) * cfg.samples], cfg)
            reasons.update(why)
            kept_per_prompt[len(keep)] += 1
            for s in keep:
                q = p
                if budgets:  # hindsight: the prompt asks for the budget this sample met
                    q = with_budget(p, nearest_budget(len(s.completion.token_ids), budgets))
                    relabeled[q.meta["think_budget"]] += 1
                prompt = build_messages(q, task, cfg.task.template, cfg.data_shots)
                row = {"messages": prompt + [{"role": "assistant", "content": s.completion.text.strip()}],
                       "id": p.id, "reference": p.answer}
                if s.completion.token_ids:  # written solutions have none, unless relabel_budgets measured them
                    lengths.append(len(s.completion.token_ids))
                    row["tokens"] = len(s.completion.token_ids)
                kept += 1
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)  # the data appears whole or not at all
    stats = {
        "model": cfg.model.name if cfg.source == "model" else "(the task's written solutions)", "task": cfg.task.name, "split": cfg.split, "prompts": len(problems),
        "samples": len(scored), "kept": kept, "verdicts": dict(reasons),
        "prompts_by_kept": {str(k): v for k, v in sorted(kept_per_prompt.items())},
        "kept_tokens": _quantiles(lengths), "sampled": {k: metrics[k] for k in ("pass@1", "format_rate", "mean_response_tokens")},
        "seconds": metrics["seconds"],
    }
    if budgets:
        stats["relabeled"] = {str(b): relabeled[b] for b in budgets}
    out.with_name(out.stem + ".stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    save_config(cfg, out.with_name(out.stem + ".config.toml"))
    finish_sample(out, stats, time.perf_counter() - started)  # the summary, and <stem>.report.html
    return out, stats
