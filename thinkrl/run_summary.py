"""A finished run at a glance: held-out accuracy before and after (with a 95% interval), format rate,
mean length, time, and one held-out problem answered before and after.

Every stage ends with `finish` (thinkrl.report_html writes report.html from the same facts). The
facts come from what the run wrote (metrics.jsonl and samples.jsonl, or the results file of a stage
that has no log), so `thinkrl report RUN_DIR` rebuilds them for a finished run.

An evaluation is one row of plain keys: accuracy, n (problems or pairs: the interval is over them),
format_rate, length (mean response tokens), plus anything else the stage measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from thinkrl.train.logger import read_metrics

EVAL_KEYS = {"eval/pass@1": "accuracy", "eval/accuracy": "accuracy", "eval/n": "n", "eval/format_rate": "format_rate",
             "eval/mean_response_tokens": "length", "eval/truncated_rate": "truncated", "eval/loss": "loss"}


def wilson(p: float, n: int | float | None, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a rate p over n trials (95% with z = 1.96); None without n.
    Unlike p +- z*se it stays inside [0, 1] and is not empty at p = 0 or 1 (a run that starts at 0)."""
    if not n or p is None:
        return None
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def eval_rows(rows: list[dict]) -> list[tuple[str, dict]]:
    """(label, evaluation) per step that logged eval/* keys, rows of one step merged (sft logs its
    held-out loss and its held-out accuracy apart)."""
    by_step: dict[int, dict] = {}
    for r in rows:
        found = {k: v for k, v in r.items() if k.startswith("eval/") and v is not None}
        if found:
            by_step.setdefault(r["step"], {}).update(found)
    out = []
    for step, found in sorted(by_step.items()):
        ev = {EVAL_KEYS.get(k, k[len("eval/"):]): v for k, v in found.items()}
        out.append((f"step {step}", {"step": step, **ev}))
    return out


def read_samples(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "samples.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a kill
            continue
    return out


def before_after_example(samples: list[dict], first_step: int, last_step: int) -> dict | None:
    """One held-out problem answered at the first and the last evaluation: the first of the logged
    ones whose verdict changed (wrong -> right preferred), else the first logged at both."""
    before = {s["id"]: s for s in samples if s.get("eval") and s["step"] == first_step}
    after = {s["id"]: s for s in samples if s.get("eval") and s["step"] == last_step}
    both = [i for i in before if i in after]
    if not both or first_step == last_step:
        return None
    rank = lambda i: (not (after[i]["correct"] and not before[i]["correct"]), before[i]["correct"] == after[i]["correct"])  # noqa: E731
    pick = min(both, key=lambda i: (rank(i), both.index(i)))
    return {"id": pick, "question": after[pick].get("question"), "reference": after[pick].get("reference"),
            "before": before[pick], "after": after[pick]}


def from_results(run_dir: Path, stage: str) -> list[tuple[str, dict]]:
    """The evaluations of the stages that write a results file rather than eval/* rows: distill's
    models and the pipeline's stages on the same held-out problems (thinkrl.train.heldout)."""
    run_dir = Path(run_dir)
    plain = lambda m: {"accuracy": m["pass@1"], "n": m.get("n"), "format_rate": m.get("format_rate"),  # noqa: E731
                       "length": m.get("mean_response_tokens"), "truncated": m.get("truncated_rate")}
    if stage == "distill" and (run_dir / "report.json").is_file():
        rep = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        return [(k, plain(rep[k + "_eval"])) for k in ("teacher", "student_before", "student_after") if k + "_eval" in rep]
    if stage == "pipeline" and (run_dir / "report.json").is_file():
        rep = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        return [(r["stage"], plain(r)) for r in rep["stages"]]
    return []


def eval_limit(run_dir: Path) -> int | None:
    """The held-out problems a run's config asks for (eval.limit), for a log without eval/n."""
    import tomllib

    path = Path(run_dir) / "config.toml"
    try:
        limit = tomllib.loads(path.read_text(encoding="utf-8")).get("eval", {}).get("limit")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return limit if isinstance(limit, int) and limit > 0 else None


def summarize(run_dir: Path, stage: str, wall_seconds: float | None = None) -> dict:
    """The facts of the summary and the report, from the files of a run folder."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    evals = from_results(run_dir, stage) or eval_rows(rows)
    headline = [(k, e) for k, e in evals if k != "teacher"]  # distill: student before -> after
    before, after = (headline[0], headline[-1]) if len(headline) > 1 else (None, headline[-1] if headline else None)
    if stage in ("rm", "dpo") and (run_dir / "results.json").is_file():  # pairwise accuracy: n is the held-out pairs
        pairs = json.loads((run_dir / "results.json").read_text(encoding="utf-8")).get("eval_pairs")
        for _, e in evals:
            e.setdefault("n", pairs)
    limit = eval_limit(run_dir)
    for _, e in evals:  # a run from before eval/n was logged: its eval.limit problems
        if e.get("n") is None and limit and "accuracy" in e:
            e["n"] = limit
    steps = max((r["step"] for r in rows), default=0)
    logged = sum((r.get("time/step") or 0.0) + (r.get("eval/seconds") or 0.0) for r in rows)
    example = None
    if before is not None and "step" in before[1]:
        example = before_after_example(read_samples(run_dir), before[1]["step"], after[1]["step"])
    return {"stage": stage, "run_dir": str(run_dir), "steps": steps, "evals": evals, "before": before, "after": after,
            "wall_seconds": wall_seconds if wall_seconds is not None else (logged or None),
            "wall_from": "wall clock" if wall_seconds is not None else "steps and evaluations logged",
            "example": example, "pairwise": stage in ("rm", "dpo")}


def _rate(e: dict, key: str) -> str:
    v = e.get(key)
    if v is None:
        return "-"
    ci = wilson(v, e.get("n")) if key == "accuracy" else None
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _one_line(text: str | None, width: int = 110) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def verdict_of(sample: dict) -> str:
    """right, wrong (with the answer read), or no answer: why a held-out completion scored as it did."""
    if sample.get("correct"):
        return "right"
    if "answer" in sample and sample["answer"] is None:
        return "wrong: no answer found"
    return f"wrong: answered {sample['answer']}" if sample.get("answer") is not None else "wrong"


def summary_lines(s: dict) -> list[str]:
    """The printed summary: a handful of short lines."""
    out = [f"== {s['stage']} summary: {s['run_dir']} =="]
    before, after = s["before"], s["after"]
    what = "held-out pairwise accuracy" if s["pairwise"] else "held-out accuracy"
    if after is not None and after[1].get("accuracy") is not None:
        n = after[1].get("n")
        scope = f"95% Wilson interval over {n} {'pairs' if s['pairwise'] else 'problems'}" if n else "no interval: n unknown"
        if before is not None and before[1].get("accuracy") is not None:
            gain = after[1]["accuracy"] - before[1]["accuracy"]
            out.append(f"{what}: {_rate(before[1], 'accuracy')} ({before[0]}) -> {_rate(after[1], 'accuracy')} "
                       f"({after[0]}), {gain:+.3f}; {scope}")
        else:
            out.append(f"{what}: {_rate(after[1], 'accuracy')} ({after[0]}); {scope}")
    elif after is not None and after[1].get("loss") is not None:  # sft without a task: the held-out loss
        first = f"{before[1]['loss']:.4f} -> " if before is not None and before[1].get("loss") is not None else ""
        out.append(f"held-out loss: {first}{after[1]['loss']:.4f}")
    for key, label, fmt in (("format_rate", "format rate", "{:.3f}"), ("length", "mean response tokens", "{:.1f}")):
        vals = [e[1].get(key) for e in (before, after) if e is not None and e[1].get(key) is not None]
        if vals:
            out.append(f"{label}: " + " -> ".join(fmt.format(v) for v in vals))
    if s["wall_seconds"]:
        steps = f", {s['steps']} steps" if s["steps"] else ""
        out.append(f"time: {s['wall_seconds'] / 60:.1f} min ({s['wall_from']}{steps})")
    ex = s["example"]
    if ex:
        said = f": {_one_line(ex['question'], 90)} (reference {ex['reference']})" if ex.get("question") else ""
        out.append(f"held-out problem {ex['id']}{said}")
        for when in ("before", "after"):
            smp = ex[when]
            verdict = verdict_of(smp)
            out.append(f"  {when:6} ({verdict}): {_one_line(smp['text'])}")
    return out


def sample_lines(out: Path, stats: dict, wall_seconds: float | None = None) -> list[str]:
    """`thinkrl sample`'s summary: the sampled accuracy (an interval over its prompts), what was kept."""
    m = stats["sampled"]
    e = {"accuracy": m["pass@1"], "n": stats["prompts"]}
    lines = [f"== sample summary: {out} ==",
             f"sampled accuracy: {_rate(e, 'accuracy')}; 95% Wilson interval over {stats['prompts']} prompts",
             f"format rate: {_rate(m, 'format_rate')}", f"mean response tokens: {_num(m.get('mean_response_tokens'))}",
             f"kept {stats['kept']} of {stats['samples']} samples: " + ", ".join(f"{k} {v}" for k, v in stats["verdicts"].items())]
    seconds = wall_seconds if wall_seconds is not None else stats.get("seconds")
    if seconds:
        lines.append(f"time: {seconds / 60:.1f} min")
    return lines
