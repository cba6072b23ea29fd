"""Evaluation: sample K completions per problem, score each with the task's verifier, summarise.

Metrics (all in the results JSON):
- pass@k for k = 1..K with the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021),
  averaged over problems; pass@1 is the mean accuracy over all samples.
- maj@k: self-consistency; the most common extracted answer among the first k samples (equal
  answers grouped by the task's `vote_key`; ties go to the answer seen first) is judged.
- format_rate, mean_response_tokens, truncated_rate, and the same split by correct/incorrect.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from thinkrl.engine import Completion, Engine, SamplingParams
from thinkrl.prompts import build_messages, follows_format
from thinkrl.tasks.base import Problem, Task


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(keys: list[str | None]) -> int | None:
    """Index of a sample holding the most common non-empty answer key (first seen wins ties), or None."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(i for i, k in enumerate(keys) if k is not None and counts[k] == best)


@dataclass
class Scored:
    """One completion with its judgement."""

    problem: Problem
    completion: Completion
    answer: str | None
    correct: bool
    formatted: bool


def load_engine(mc, max_batch: int, name: str | None = None) -> Engine:
    """An Engine over the model a ModelConfig names (or `name`, on mc's device and dtype)."""
    from thinkrl.models import device_and_dtype, eos_token_ids, load_model

    device, dtype = device_and_dtype(mc.device, mc.dtype)
    model, tokenizer = load_model(name or mc.name, device=device, dtype=dtype)
    return Engine(model, tokenizer, eos_token_ids(model, tokenizer), max_batch=max_batch)


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Apply the tokenizer's chat template with the assistant turn opened; returns token ids."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def score_completions(task: Task, problems: list[Problem], completions: list[Completion], template: str) -> list[Scored]:
    out = []
    for c in completions:
        p = problems[c.prompt_index]
        answer = task.extract(c.text)
        out.append(Scored(p, c, answer, task.score(c.text, p) > 0, follows_format(c.text, template)))
    return out


def summarize(scored: list[Scored], samples: int, task: Task) -> dict:
    """The metrics of the module docstring from scored completions, grouped by problem (prompt-major)."""
    n = len(scored) // samples
    groups = [scored[i * samples : (i + 1) * samples] for i in range(n)]
    result: dict = {"n": n, "samples": samples, "completions": len(scored)}
    result["pass@1"] = _mean([s.correct for s in scored])
    for k in range(1, samples + 1):
        result[f"pass@{k}"] = _mean([pass_at_k(samples, sum(s.correct for s in g), k) for g in groups])
        maj = []
        for g in groups:
            keys = [task.vote_key(s.answer) if s.answer is not None else None for s in g[:k]]
            winner = majority_vote(keys)
            maj.append(winner is not None and g[winner].correct)
        result[f"maj@{k}"] = _mean(maj)
    result["format_rate"] = _mean([s.formatted for s in scored])
    result["mean_response_tokens"] = _mean([len(s.completion.token_ids) for s in scored])
    result["truncated_rate"] = _mean([s.completion.finish_reason == "length" for s in scored])
    for name, part in (("correct", [s for s in scored if s.correct]), ("incorrect", [s for s in scored if not s.correct])):
        result[f"{name}/count"] = len(part)
        result[f"{name}/format_rate"] = _mean([s.formatted for s in part])
        result[f"{name}/mean_response_tokens"] = _mean([len(s.completion.token_ids) for s in part])
        result[f"{name}/truncated_rate"] = _mean([s.completion.finish_reason == "length" for s in part])
    return result


def _mean(xs) -> float:
    xs = list(xs)
    return float(sum(xs) / len(xs)) if xs else 0.0


def run_eval(
    engine: Engine,
    task: Task,
    problems: list[Problem],
    *,
    template: str,
    shots: int,
    params: SamplingParams,
    samples: int,
    batch_size: int,
    seed: int,
    on_batch: Callable[[list[Scored]], None] | None = None,
) -> tuple[dict, list[Scored]]:
    """Evaluate `problems`: returns (metrics, scored completions in problem-major order)."""
    tokenizer = engine.tokenizer
    prompts = [encode_prompt(tokenizer, build_messages(p, task, template, shots)) for p in problems]
    # seed per problem from its position, so --limit N gives the first N problems the same completions
    seeds = [seed * 1_000_003 + i for i in range(len(problems))]
    per_call = max(1, batch_size // samples)
    scored: list[Scored] = []
    t0 = time.perf_counter()
    for start in range(0, len(problems), per_call):
        idx = range(start, min(start + per_call, len(problems)))
        outs = engine.generate([prompts[i] for i in idx], params, n=samples, seeds=[seeds[i] for i in idx])
        for c in outs:
            c.prompt_index += start
        batch = score_completions(task, problems, outs, template)
        scored += batch
        if on_batch is not None:
            on_batch(batch)
    seconds = time.perf_counter() - t0
    metrics = summarize(scored, samples, task)
    metrics["seconds"] = round(seconds, 2)
    metrics["tokens_per_second"] = round(sum(len(s.completion.token_ids) for s in scored) / max(seconds, 1e-9), 1)
    return metrics, scored
