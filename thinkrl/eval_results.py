"""`thinkrl eval` (run_command) and what it writes: where its results go, the results JSON (the
metrics of thinkrl.evaluate, with the model, task, split and how completions were drawn, and each
problem's outcome under "problems", which `thinkrl compare` pairs), one JSONL line per scored
completion beside it, and the table it prints. Training runs write their held-out evaluations in
the same format (thinkrl.train.heldout: RUN/eval/step_NNNN.json).

Files of a run at OUT (default runs/eval-<task>-<time>/results.json): OUT itself,
OUT's stem + `.config.toml` (the resolved config, written before sampling starts) and
OUT's stem + `.completions.jsonl`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from thinkrl.config import EvalConfig
from thinkrl.config.loader import save
from thinkrl.errors import UserError


def results_path(cfg: EvalConfig) -> Path:
    """cfg.out, or runs/eval-<task>-<time>/results.json."""
    if cfg.out:
        return Path(cfg.out)
    return Path("runs") / f"eval-{_slug(cfg.task.name)}-{time.strftime('%Y%m%d-%H%M%S')}" / "results.json"


def write_results(out: Path, cfg: EvalConfig, metrics: dict, scored: list, seeds: list[int] | None = None) -> dict:
    """Write the results JSON to `out` and the completions JSONL beside it; returns the results.
    `seeds`: the sampling seeds whose runs `scored` holds one after another (default: cfg.seed)."""
    header = {"model": cfg.model.name, "task": cfg.task.name, "split": cfg.split, "sampling": describe_sampling(cfg.sampling)}
    return write_json(out, header, metrics, scored, seeds or [cfg.seed])


def write_json(out: Path, header: dict, metrics: dict, scored: list, seeds: list[int]) -> dict:
    """The results JSON (header, metrics, per-problem outcomes) and the completions JSONL beside it."""
    n, samples = metrics["n"], metrics["samples"]
    result = {**header, **metrics, "seeds": seeds, "problems": problem_outcomes(scored, samples, n)}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with open(out.with_name(out.stem + ".completions.jsonl"), "w", encoding="utf-8") as f:
        for i, s in enumerate(scored):
            row = {"id": s.problem.id, "seed": seeds[i // (samples * n)], "sample": s.completion.sample_index,
                   "reference": s.problem.answer, "extracted": s.answer, "correct": s.correct, "formatted": s.formatted,
                   "finish_reason": s.completion.finish_reason, "tokens": len(s.completion.token_ids), "text": s.completion.text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return result


def problem_outcomes(scored: list, samples: int, n: int) -> list[dict]:
    """Per problem, in evaluation order: its id and reference answer (so two results can be checked to
    be on the same problems), correct completions and completions drawn (over every seed's run:
    `scored` holds runs of `n` problems x `samples` one after another)."""
    rows = [{"id": scored[i * samples].problem.id, "reference": scored[i * samples].problem.answer, "correct": 0,
             "samples": 0} for i in range(n)]
    for i, s in enumerate(scored):
        row = rows[(i // samples) % n]
        row["correct"] += int(s.correct)
        row["samples"] += 1
    return rows


def describe_sampling(sp) -> str:
    """One line saying how completions were drawn, so a sampled figure is never read as greedy."""
    if sp.temperature == 0:
        how = "greedy"
    else:
        how = f"temperature {sp.temperature:g}, top-p {sp.top_p:g}" + (f", top-k {sp.top_k}" if sp.top_k else "")
        how += " (greedy: --set sampling.temperature=0)"
    return f"{how}, at most {sp.max_new_tokens} new tokens" + (f", stop {sp.stop}" if sp.stop else "")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(name.split(":", 1)[-1]).stem or name)


INTERVAL_SUFFIXES = ("_stderr", "_ci_low", "_ci_high", "_seed_std", "_seed_min", "_seed_max")


def print_table(result: dict) -> None:
    """One row per figure; a rate's standard error, 95% interval and spread across seeds on its row."""
    rows = {k: v for k, v in result.items() if not k.endswith(INTERVAL_SUFFIXES) and not isinstance(v, (list, dict))}
    width = max(len(k) for k in rows)
    for k, v in rows.items():
        line = f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
        if f"{k}_stderr" in result:
            line += f" ± {result[k + '_stderr']:.4f}  95% CI [{result[k + '_ci_low']:.4f}, {result[k + '_ci_high']:.4f}]"
        if f"{k}_seed_std" in result:
            line += (f"  seeds: sd {result[k + '_seed_std']:.4f}, "
                     f"range [{result[k + '_seed_min']:.4f}, {result[k + '_seed_max']:.4f}]")
        print(line)
    for row in result.get("per_seed", []):
        print(f"  seed {row['seed']}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "seed"))


def run_command(cfg: EvalConfig, args=None) -> int:
    """`thinkrl eval`: check everything that can be wrong before sampling, then sample with a
    progress bar, write the results and print their table."""
    from tqdm import tqdm

    from thinkrl.evaluate import encode_problems, load_engine, run_seeds
    from thinkrl.tasks import get_task
    from thinkrl.tools import build_toolbox

    task = get_task(cfg.task)
    problems = task.problems(cfg.split)
    if cfg.limit:
        problems = problems[: cfg.limit]
    if not problems:
        raise UserError(f"task '{cfg.task.name}' split '{cfg.split}' has no problems")
    engine = load_engine(cfg.model, cfg.batch_size)  # a bad model fails here, before anything is written
    tools = build_toolbox(cfg.tools, task)  # a missing or bad search corpus fails here
    prompts = encode_problems(engine.tokenizer, task, problems, cfg.task.template, cfg.task.shots,
                              cfg.sampling.max_new_tokens, engine.context,
                              tools.prompt_tools(engine.tokenizer) if tools else None)  # so does a prompt too long
    out = results_path(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(cfg, out.with_name(out.stem + ".config.toml"))
    bar = tqdm(total=len(problems) * cfg.samples * cfg.seeds, desc=f"eval {cfg.task.name}", unit="sample", dynamic_ncols=True)
    seen = {"n": 0, "correct": 0, "tokens": 0}

    def on_batch(batch):
        seen["n"] += len(batch)
        seen["correct"] += sum(s.correct for s in batch)
        seen["tokens"] += sum(len(s.completion.token_ids) for s in batch)
        bar.set_postfix(acc=f"{seen['correct'] / seen['n']:.3f}", tok=f"{seen['tokens'] / seen['n']:.0f}")
        bar.update(len(batch))

    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    metrics, scored = run_seeds(
        engine, task, problems, seeds, template=cfg.task.template, shots=cfg.task.shots, params=cfg.sampling,
        samples=cfg.samples, batch_size=cfg.batch_size, on_batch=on_batch, prompts=prompts, tools=tools,
        reflection_phrases=cfg.reflection_phrases,
    )
    bar.close()
    result = write_results(out, cfg, metrics, scored, seeds)
    print_table(result)
    print(f"wrote {out}")
    return 0

