"""The end of a run: learning curves as one PNG (reward, held-out accuracy, response length), and
`finish`: the printed summary and report.html of every stage (thinkrl.run_summary, thinkrl.report_html)."""

from __future__ import annotations

import json
from pathlib import Path

from thinkrl.train.logger import read_metrics


def plot_run(run_dir: Path, out: Path | None = None) -> Path | None:
    """Write <run>/curves.png from metrics.jsonl; None if matplotlib is missing or nothing was logged."""
    rows = read_metrics(run_dir)
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out = out or Path(run_dir) / "curves.png"

    def series(key):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("reward/mean", "reward (sampled)"), ("reward/accuracy/mean", "accuracy (sampled)")):
        x, y = series(key)
        if x:
            axes[0].plot(x, y, label=label)
    axes[0].set_title("training reward")
    for key, label in (("eval/pass@1", "held-out accuracy"), ("eval/format_rate", "held-out format rate")):
        x, y = series(key)
        if x:
            axes[1].plot(x, y, marker="o", label=label)
    axes[1].set_title("held-out evaluation")
    axes[1].set_ylim(0, 1)
    x, y = series("response/len_mean")
    axes[2].plot(x, y)
    axes[2].set_title("mean response tokens")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# ---------------------------------------------------------------- the end of a stage: summary and report.html

SUMMARY_FILE = "run_summary.json"  # the stage and its wall time, for `thinkrl report` to rebuild the same page


def guess_stage(run_dir: Path) -> str:
    """The stage that wrote a run folder without run_summary.json (a run from before it existed)."""
    run_dir = Path(run_dir)
    if (run_dir / "report.json").is_file():
        return "pipeline" if "stages" in json.loads((run_dir / "report.json").read_text(encoding="utf-8")) else "distill"
    keys = {k for r in read_metrics(run_dir) for k in r}
    if "reward/mean" in keys:
        return "rl"
    if "train/nll" in keys:
        return "sft"
    return "dpo" if "eval/logratio" in keys else "rm"


def _knobs(run_dir: Path) -> dict:
    """The settings a warning quotes, from the run's config.toml (empty if it has none)."""
    import tomllib

    try:
        cfg = tomllib.loads((Path(run_dir) / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    sampling = cfg.get("sampling", {})
    return {"group_size": cfg.get("group_size"), "max_new_tokens": sampling.get("max_new_tokens"),
            "temperature": sampling.get("temperature")}


def finish(run_dir: Path, stage: str | None = None, wall_seconds: float | None = None, quiet: bool = False) -> Path:
    """Print the run's summary (thinkrl.run_summary) and write its report.html; returns the page's path.
    Without `stage` and `wall_seconds` (`thinkrl report RUN_DIR`) they come from the run's SUMMARY_FILE."""
    from thinkrl.errors import UserError
    from thinkrl.report_html import run_page
    from thinkrl.run_summary import summarize, summary_lines
    from thinkrl.train.learning_warnings import given, replay

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} not found")
    saved = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8")) if (run_dir / SUMMARY_FILE).is_file() else {}
    stage = stage or saved.get("stage") or guess_stage(run_dir)
    wall_seconds = wall_seconds if wall_seconds is not None else saved.get("wall_seconds")
    if not (read_metrics(run_dir) or (run_dir / "report.json").is_file()):
        raise UserError(f"{run_dir} holds no run: no metrics.jsonl nor report.json in it")
    facts = summarize(run_dir, stage, wall_seconds)
    path = run_dir / "report.html"
    warnings = given(read_metrics(run_dir))  # thinkrl rl's "nothing is learning" warnings
    if stage == "rl" and not warnings:  # a run from before the checks: the same checks over its log
        warnings = replay(read_metrics(run_dir), _knobs(run_dir))
    lines = summary_lines(facts) + [f"warning: {title} (why, and what to turn: report.html)" for title, _ in warnings]
    lines.append(f"report: {path}")
    path.write_text(run_page(facts, lines, warnings), encoding="utf-8")
    (run_dir / SUMMARY_FILE).write_text(json.dumps({"stage": stage, "wall_seconds": wall_seconds}) + "\n", encoding="utf-8")
    if not quiet:
        print("\n".join(lines), flush=True)
    return path


def finish_sample(out: Path, stats: dict, wall_seconds: float | None = None) -> Path:
    """`thinkrl sample`'s summary and report, <out stem>.report.html beside its data."""
    from thinkrl.report_html import sample_page
    from thinkrl.run_summary import sample_lines

    out = Path(out)
    path = out.with_name(out.stem + ".report.html")
    lines = sample_lines(out, stats, wall_seconds) + [f"report: {path}"]
    path.write_text(sample_page(out, stats, lines), encoding="utf-8")
    print("\n".join(lines), flush=True)
    return path
