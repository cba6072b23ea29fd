"""Evaluation: sample K completions per problem, score each with the task's verifier, summarise.

Metrics (all in the results JSON):
- pass@k for k = 1..K with the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021),
  averaged over problems; pass@1 is the mean accuracy over all samples.
- maj@k: self-consistency; the most common extracted answer among the first k samples (equal
  answers grouped by the task's `vote_key`; ties go to the answer seen first) is judged.
- format_rate, mean_response_tokens, truncated_rate, and the same split by correct/incorrect.
- with thinking budgets (task.think_budgets): `budget/<N>/pass@1`, `.../mean_response_tokens`,
  `.../length_ratio` (mean tokens / N) and `.../format_rate` per requested budget.
- beside each rate (pass@k, maj@k, format_rate) its uncertainty over problems: `<rate>_stderr`,
  `<rate>_ci_low`, `<rate>_ci_high` (95%; thinkrl.stats.rate_interval says which interval).
- reflection/*: the share of completions with self-verification phrases and their count per
  completion, over all, the correct and the incorrect ones (thinkrl.reflection).
- over several sampling seeds (`seeds` runs over the same problems): rates are means over seeds,
  their intervals over problems (each problem's mean across seeds); `seed_spread` adds
  `<rate>_seed_std`, `_seed_min`, `_seed_max` and the per-seed values.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from thinkrl import envs as envs_mod
from thinkrl.data.chat import encode_chat
from thinkrl.engine import Completion, Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.prompts import build_messages, follows_format
from thinkrl.reflection import REFLECTION_PHRASES, reflection_metrics
from thinkrl.stats import rate_interval, spread
from thinkrl.tasks.base import Problem, Task
from thinkrl.tools import Toolbox, call_metrics


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


def encode_prompt(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """Apply the tokenizer's chat template with the assistant turn opened (describing `tools`, the
    template format's function schemas); returns token ids."""
    return encode_chat(tokenizer, messages, open_turn=True, tools=tools)


def encode_problems(tokenizer, task: Task, problems: list[Problem], template: str, shots: int,
                    max_new_tokens: int = 0, context: int = 0, tools: list[dict] | None = None) -> list[list[int]]:
    """Prompt ids of each problem (`tools`: Toolbox.prompt_tools). With `context` (the model's), a
    prompt that leaves no room for max_new_tokens is a UserError naming its problem (PATH:LINE for
    a jsonl task), raised before anything is sampled or written."""
    prompts = [encode_prompt(tokenizer, build_messages(p, task, template, shots), tools) for p in problems]
    for p, ids in zip(problems, prompts):
        if context and len(ids) + max_new_tokens > context:
            raise UserError(
                f"{p.meta.get('source') or f'problem {p.id}'}: the prompt has {len(ids)} tokens, which with "
                f"sampling.max_new_tokens = {max_new_tokens} exceeds the model's context of {context} tokens: "
                "shorten the prompt (task.shots, the template) or lower sampling.max_new_tokens"
            )
    return prompts


def score_completions(task: Task, problems: list[Problem], completions: list[Completion], template: str) -> list[Scored]:
    """Each completion judged by the task's verifier, all at once (`score_batch`: a code task runs them in parallel)."""
    asked = [problems[c.prompt_index] for c in completions]
    scores = task.score_batch([c.text for c in completions], asked)
    return [Scored(p, c, task.extract(c.text), s > 0, follows_format(c.text, template))
            for p, c, s in zip(asked, completions, scores)]


def problem_values(scored: list[Scored], samples: int, task: Task) -> dict[str, list[float]]:
    """Each rate's value per group of `samples` completions (one problem): pass@k (the unbiased
    estimator; pass@1 = the share correct), maj@k (1 if the vote's winner is correct) and format_rate."""
    groups = [scored[i : i + samples] for i in range(0, len(scored), samples)]
    values: dict[str, list[float]] = {"pass@1": [sum(s.correct for s in g) / samples for g in groups]}
    for k in range(1, samples + 1):
        if k > 1:
            values[f"pass@{k}"] = [pass_at_k(samples, sum(s.correct for s in g), k) for g in groups]
        maj = []
        for g in groups:
            keys = [task.vote_key(s.answer) if s.answer is not None else None for s in g[:k]]
            winner = majority_vote(keys)
            maj.append(float(winner is not None and g[winner].correct))
        values[f"maj@{k}"] = maj
    values["format_rate"] = [sum(s.formatted for s in g) / samples for g in groups]
    return values


def with_intervals(values: dict[str, list[float]]) -> dict:
    """`<rate>`: the mean of its per-problem values, with `<rate>_stderr`, `_ci_low`, `_ci_high` beside it."""
    out = {}
    for key, vals in values.items():
        out[key], out[f"{key}_stderr"], out[f"{key}_ci_low"], out[f"{key}_ci_high"] = rate_interval(vals)
    return out


def summarize(scored: list[Scored], samples: int, task: Task, phrases=REFLECTION_PHRASES, seeds: int = 1) -> dict:
    """The metrics of the module docstring from scored completions, grouped by problem (prompt-major);
    with `seeds` > 1, that many such runs over the same problems one after another."""
    n = len(scored) // samples // seeds
    per_group = problem_values(scored, samples, task)  # [seeds * n] each, seed-major
    values = {k: [sum(v[s * n + i] for s in range(seeds)) / seeds for i in range(n)] for k, v in per_group.items()}
    result: dict = {"n": n, "samples": samples, "completions": len(scored)}
    result.update(with_intervals(values))
    result["mean_response_tokens"] = _mean([len(s.completion.token_ids) for s in scored])
    result["truncated_rate"] = _mean([s.completion.finish_reason == "length" for s in scored])
    for name, part in (("correct", [s for s in scored if s.correct]), ("incorrect", [s for s in scored if not s.correct])):
        result[f"{name}/count"] = len(part)
        result[f"{name}/format_rate"] = _mean([s.formatted for s in part])
        result[f"{name}/mean_response_tokens"] = _mean([len(s.completion.token_ids) for s in part])
        result[f"{name}/truncated_rate"] = _mean([s.completion.finish_reason == "length" for s in part])
    result.update(reflection_metrics([s.completion.text for s in scored], [s.correct for s in scored], phrases))
    result.update(by_budget(scored))
    result.update(outcome_rates(scored, task))
    return result


def outcome_rates(scored: list[Scored], task: Task) -> dict:
    """`code/<verdict>`: the share of completions with each verdict, for a task that gives them
    (a code task: pass, wrong, crash, syntax_error, timeout, no_code); nothing for the others."""
    verdicts = task.outcomes([s.completion.text for s in scored], [s.problem for s in scored]) if scored else None
    if verdicts is None:
        return {}
    return {f"code/{v}": verdicts.count(v) / len(verdicts) for v in sorted(set(verdicts))}


def seed_spread(per_seed: list[tuple[int, dict]]) -> dict:
    """Across sampling seeds, from each seed's metrics: `<rate>_seed_std`, `_seed_min`, `_seed_max` of
    every rate, and `per_seed`, each seed with its rates."""
    rates = [k for k in per_seed[0][1] if k.startswith(("pass@", "maj@")) or k == "format_rate"]
    rates = [k for k in rates if not k.endswith(("_stderr", "_ci_low", "_ci_high"))]
    out: dict = {}
    for key in rates:
        s = spread([m[key] for _, m in per_seed])
        out[f"{key}_seed_std"], out[f"{key}_seed_min"], out[f"{key}_seed_max"] = s["std"], s["min"], s["max"]
    out["per_seed"] = [{"seed": seed, **{k: m[k] for k in rates}} for seed, m in per_seed]
    return out


def by_budget(scored: list[Scored]) -> dict:
    """Accuracy and length per requested thinking budget (task.think_budgets): `budget/<N>/...`."""
    groups: dict[int, list[Scored]] = {}
    for s in scored:
        if s.problem.meta.get("think_budget"):
            groups.setdefault(s.problem.meta["think_budget"], []).append(s)
    out = {}
    for budget, part in sorted(groups.items()):
        tokens = [len(s.completion.token_ids) for s in part]
        out[f"budget/{budget}/pass@1"] = _mean([s.correct for s in part])
        out[f"budget/{budget}/mean_response_tokens"] = _mean(tokens)
        out[f"budget/{budget}/length_ratio"] = _mean(tokens) / budget  # 1.0: as long as asked
        out[f"budget/{budget}/format_rate"] = _mean([s.formatted for s in part])
    return out


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
    prompts: list[list[int]] | None = None,
    tools: Toolbox | None = None,
    first_index: int = 0,
    reflection_phrases=REFLECTION_PHRASES,
) -> tuple[dict, list[Scored]]:
    """Evaluate `problems`: returns (metrics, scored completions in problem-major order).
    `prompts`: their ids from encode_problems, when the caller checked them already; `tools`: the
    tools the model may call (metrics then include tools/*); `first_index`: the position of
    problems[0] in the whole evaluation set (a data-parallel rank's share), which seeds follow;
    `reflection_phrases`: what the reflection/* metrics count (the config's list).
    A task with environments (thinkrl.envs) is evaluated as conversations, each prompt its first observation."""
    schemas = tools.prompt_tools(engine.tokenizer) if tools is not None else None
    if prompts is None:
        prompts = encode_problems(engine.tokenizer, task, problems, template, shots, params.max_new_tokens, engine.context,
                                  schemas)
    # seed per problem from its position, so --limit N gives the first N problems the same completions
    seeds = [seed * 1_000_003 + first_index + i for i in range(len(problems))]
    per_call = max(1, batch_size // samples)
    scored: list[Scored] = []
    conversing = False
    t0 = time.perf_counter()
    for start in range(0, len(problems), per_call):
        idx = range(start, min(start + per_call, len(problems)))
        asked, envs = envs_mod.start(task, [problems[i] for i in idx], samples)
        chunk = [prompts[i] for i in idx] if envs is None else encode_problems(engine.tokenizer, task, asked, template, shots,
                                                                                    tools=schemas)
        conversing |= envs is not None
        outs = engine.generate(chunk, params, n=samples, seeds=[seeds[i] for i in idx], tools=tools, envs=envs)
        for c in outs:
            c.prompt_index += start
        batch = score_completions(task, problems, outs, template)
        scored += batch
        if on_batch is not None:
            on_batch(batch)
    return eval_metrics(scored, samples, task, time.perf_counter() - t0, tools is not None or conversing,
                        reflection_phrases), scored


def run_seeds(engine: Engine, task: Task, problems: list[Problem], seeds: list[int], **kw) -> tuple[dict, list[Scored]]:
    """run_eval (its keyword arguments `kw`) once per sampling seed over the same problems. One seed:
    its (metrics, scored). Several: the metrics of all their completions (rates: means over seeds,
    intervals over problems) with seed_spread's, and the completions, one seed's run after another."""
    runs = [run_eval(engine, task, problems, seed=seed, **kw) for seed in seeds]
    if len(runs) == 1:
        return runs[0]
    scored = [s for _, part in runs for s in part]
    multi_turn = any(k.startswith("tools/") for k in runs[0][0])  # tools or environments
    metrics = eval_metrics(scored, kw["samples"], task, sum(m["seconds"] for m, _ in runs), multi_turn,
                           kw.get("reflection_phrases", REFLECTION_PHRASES), len(seeds))
    return {**metrics, **seed_spread([(seed, m) for seed, (m, _) in zip(seeds, runs)])}, scored


def eval_metrics(scored: list[Scored], samples: int, task: Task, seconds: float, with_tools: bool,
                 phrases=REFLECTION_PHRASES, seeds: int = 1) -> dict:
    """run_eval's metrics of some scored completions (all of them: a data-parallel run gathers them
    first; several seeds' runs over the same problems, one after another: `seeds`)."""
    metrics = summarize(scored, samples, task, phrases, seeds)
    metrics["seconds"] = round(seconds, 2)
    metrics["tokens_per_second"] = round(sum(len(s.completion.token_ids) for s in scored) / max(seconds, 1e-9), 1)
    if with_tools:
        metrics.update({k: round(v, 4) for k, v in call_metrics([s.completion for s in scored]).items()})
    return metrics
