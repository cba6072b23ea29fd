"""What `thinkrl eval` writes: where its results go, the results JSON (the metrics of
thinkrl.evaluate, with the model, task, split and how completions were drawn), one JSONL line
per scored completion beside it, and the table it prints.

Files of a run at OUT (default runs/eval-<task>-<time>/results.json): OUT itself,
OUT's stem + `.config.toml` (the resolved config, written before sampling starts) and
OUT's stem + `.completions.jsonl`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from thinkrl.config import EvalConfig


def results_path(cfg: EvalConfig) -> Path:
    """cfg.out, or runs/eval-<task>-<time>/results.json."""
    if cfg.out:
        return Path(cfg.out)
    return Path("runs") / f"eval-{_slug(cfg.task.name)}-{time.strftime('%Y%m%d-%H%M%S')}" / "results.json"


def write_results(out: Path, cfg: EvalConfig, metrics: dict, scored: list) -> dict:
    """Write the results JSON to `out` and the completions JSONL beside it; returns the results."""
    result = {"model": cfg.model.name, "task": cfg.task.name, "split": cfg.split,
              "sampling": describe_sampling(cfg.sampling), **metrics}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with open(out.with_name(out.stem + ".completions.jsonl"), "w", encoding="utf-8") as f:
        for s in scored:
            row = {"id": s.problem.id, "sample": s.completion.sample_index, "reference": s.problem.answer,
                   "extracted": s.answer, "correct": s.correct, "formatted": s.formatted,
                   "finish_reason": s.completion.finish_reason, "tokens": len(s.completion.token_ids), "text": s.completion.text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return result


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


def print_table(result: dict) -> None:
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
