"""One table of every figure benchmarks/gpu_bench.sh measures, against issue 21's targets.

    python -m thinkrl.bench_summary run RUN_DIR OUT.json   # a `thinkrl rl` run's figures (demo, mismatch)
    python -m thinkrl.bench_summary table RESULTS_DIR      # the table (printed, and RESULTS_DIR/summary.md)

The results folder holds what the script wrote, by name: train_fast.json (the default fast settings,
with TRL's run inside when it ran), train_gc.json (TRL's settings: gradient checkpointing),
train_release.json (the engine released before each update), decode_64.json, decode_256.json,
profile.json, mismatch.json (one rollout of the demo recipe on the real model: `run` of a 1-step run),
demo.json (the demo recipe's 40 steps: `run` of its run folder) and cuda_tests.json. A missing file
gives "n/a" in its rows, never an error: a stage that failed leaves the others' figures readable.
A verdict is "yes" or "NO" against the target; "-" where a row has no target.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"speedup": 10.0, "decode_64": 60_000.0, "decode_256": 120_000.0, "mfu": 0.35, "peak_fast_gib": 20.0,
           "mismatch_mean": 0.005, "demo_step_s": 15.0, "heldout": 0.40}


# ---------------------------------------------------------------- a training run's figures


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_figures(run_dir: str | Path) -> dict:
    """A `thinkrl rl` run's step-time breakdown, log-prob mismatch and held-out pass@1, from metrics.jsonl.

    Step times are summed over the training steps (evaluations are not steps); the mismatch of step 1
    is one rollout of the initial model (the update measures it before its first optimizer step)."""
    rows = read_metrics(Path(run_dir))
    steps = [r for r in rows if "time/step" in r]
    evals = [r for r in rows if "eval/pass@1" in r]
    out = {"run_dir": str(run_dir), "steps": len(steps),
           "step_s": sum(r["time/step"] for r in steps), "generate_s": sum(r["time/generate"] for r in steps),
           "update_s": sum(r["time/update"] for r in steps)}
    with_mismatch = [r for r in steps if "mismatch/mean" in r]
    if with_mismatch:
        first = with_mismatch[0]
        out.update({"mismatch_first_max": first["mismatch/max"], "mismatch_first_mean": first["mismatch/mean"],
                    "mismatch_max": max(r["mismatch/max"] for r in with_mismatch),
                    "mismatch_mean": sum(r["mismatch/mean"] for r in with_mismatch) / len(with_mismatch)})
    if evals:
        out.update({"heldout_first": evals[0]["eval/pass@1"], "heldout_last": evals[-1]["eval/pass@1"],
                    "heldout_first_step": evals[0]["step"], "heldout_last_step": evals[-1]["step"],
                    "format_first": evals[0].get("eval/format_rate"), "format_last": evals[-1].get("eval/format_rate")})
    return out


# ---------------------------------------------------------------- the table


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _get(d: dict | None, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _num(x, spec: str, unit: str = "") -> str:
    return "n/a" if x is None else format(x, spec) + unit


def _small(x) -> str:
    """A log-prob mismatch: 4 decimals, or 2 significant digits below 0.001 (fp32 gives ~1e-7)."""
    return "n/a" if x is None else f"{x:.4f}" if x >= 1e-3 else f"{x:.1e}"


def summary_rows(folder: str | Path) -> list[tuple[str, str, str, str]]:
    """(what, figure, target, verdict) for every row of the table."""
    f = Path(folder)
    fast, gc, rel = _load(f, "train_fast.json"), _load(f, "train_gc.json"), _load(f, "train_release.json")
    d64, d256, prof = _load(f, "decode_64.json"), _load(f, "decode_256.json"), _load(f, "profile.json")
    mism, demo, tests = _load(f, "mismatch.json"), _load(f, "demo.json"), _load(f, "cuda_tests.json")
    trl = _get(fast, "trl") if _get(fast, "trl", "step_s") is not None else None
    rows = []

    def row(what, figure, target="", ok=None):
        rows.append((what, figure, target, _verdict(ok) if figure != "n/a" else "n/a"))

    row("CUDA tests", "n/a" if tests is None else ("passed" if tests["rc"] == 0 else f"FAILED (rc {tests['rc']})"),
        "pass", None if tests is None else tests["rc"] == 0)
    step, trl_step = _get(fast, "step_s"), _get(trl, "step_s")
    row("GRPO step, fast settings", _num(step, ".3f", " s") + (f" (rollout {fast['rollout_s']:.3f} + update "
        f"{fast['update_s']:.3f})" if step is not None else ""))
    row("GRPO step, TRL's settings (grad. checkpointing)", _num(_get(gc, "step_s"), ".3f", " s"))
    row(f"TRL {_get(trl, 'trl') or ''} GRPOTrainer step".replace("  ", " "), _num(trl_step, ".3f", " s"))
    speedup = trl_step / step if step and trl_step else None
    row("speed-up over TRL", _num(speedup, ".1f", "x"), ">= 10x (stretch 20x)", speedup and speedup >= TARGETS["speedup"])
    for key, batch in (("decode_64", 64), ("decode_256", 256)):
        tps = _get({"64": d64, "256": d256}[str(batch)], "tokens_per_s")
        row(f"decode tokens/s, batch {batch}", _num(tps, ",.0f"), f">= {TARGETS[key]:,.0f}", tps and tps >= TARGETS[key])
    mfu = _get(fast, "mfu")
    row("update MFU, fast settings", _num(mfu and 100 * mfu, ".1f", "%"), ">= 35%", mfu and mfu >= TARGETS["mfu"])
    peak = _get(fast, "peak_memory_gib")
    row("peak memory, fast settings", _num(peak, ".2f", " GiB"), "<= 20 GiB", peak and peak <= TARGETS["peak_fast_gib"])
    gc_peak, trl_peak = _get(gc, "peak_memory_gib"), _get(trl, "peak_memory_gib")
    row("peak memory, TRL's settings", _num(gc_peak, ".2f", " GiB"),
        f"< TRL's {trl_peak:.2f} GiB" if trl_peak else "< TRL's",
        gc_peak < trl_peak if gc_peak and trl_peak else None)
    row("peak memory, TRL", _num(trl_peak, ".2f", " GiB"))
    eng = _get(fast, "engine_memory")
    row("engine between rollouts: KV cache / buffers / graph pool",
        "n/a" if eng is None else f"{eng['kv_cache_gib']:.3f} / {eng['runner_buffers_gib']:.3f} / "
        f"{_num(eng['graph_pool_gib'], '.3f')} GiB; release() frees {_num(eng['released_allocated_gib'], '.3f')} GiB")
    row("update-phase peak: kept engine / released engine",
        "n/a" if rel is None or fast is None else f"{_num(fast.get('update_peak_gib'), '.2f')} / "
        f"{_num(rel.get('update_peak_gib'), '.2f')} GiB (step {fast['step_s']:.3f} / {rel['step_s']:.3f} s)")
    row("log-prob mismatch, real model, one rollout: mean", _small(_get(mism, "mismatch_first_mean")), "<= 0.005",
        _get(mism, "mismatch_first_mean") is not None and mism["mismatch_first_mean"] <= TARGETS["mismatch_mean"])
    row("log-prob mismatch, real model, one rollout: max", _small(_get(mism, "mismatch_first_max")))
    row("log-prob mismatch, random weights (fast bench step)", "n/a" if _get(fast, "mismatch_mean") is None else
        f"mean {_small(fast['mismatch_mean'])}, max {_small(fast['mismatch_max'])}")
    row("demo mismatch over its steps: mean / max", "n/a" if _get(demo, "mismatch_mean") is None else
        f"{_small(demo['mismatch_mean'])} / {_small(demo['mismatch_max'])}")
    demo_s = _get(demo, "step_s")
    row(f"demo: {_get(demo, 'steps') or '?'} steps' time", "n/a" if demo_s is None else
        f"{demo_s:.1f} s (generate {demo['generate_s']:.1f} + update {demo['update_s']:.1f})", "<= 15 s",
        demo_s is not None and demo_s <= TARGETS["demo_step_s"])
    last = _get(demo, "heldout_last")
    row("demo: held-out pass@1", "n/a" if last is None else f"{demo['heldout_first']:.3f} -> {last:.3f}", ">= 0.40",
        last is not None and last >= TARGETS["heldout"])
    top = _get(prof, "top")
    row("profile: top entry", "n/a" if not top else f"{top[0]['name'][:48]} {100 * top[0]['share']:.1f}%")
    return rows


def table(rows) -> str:
    lines = ["| what | figure | target | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "run":
        result = run_figures(argv[1])
        Path(argv[2]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2))
        return 0
    if len(argv) == 2 and argv[0] == "table":
        text = table(summary_rows(argv[1]))
        (Path(argv[1]) / "summary.md").write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
    print("usage: python -m thinkrl.bench_summary run RUN_DIR OUT.json | table RESULTS_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
