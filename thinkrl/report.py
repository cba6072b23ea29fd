"""Learning curves of a run as one PNG: reward, held-out accuracy, response length."""

from __future__ import annotations

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
