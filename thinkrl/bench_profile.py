"""`thinkrl bench --mode profile` (thinkrl.bench.run_profile): one GRPO step under torch.profiler, as a small table.

Issue 21 asks where a step's device time goes (a decode step made of many tiny kernels, a float64
scan over the vocabulary): this runs the bench's own step (thinkrl.bench.grpo_step, after
`warmup` untimed ones, so graphs are captured and the allocator is warm) under the profiler and
lists the top `profile_rows` entries by self device time (kernels) on a GPU, by self CPU time
(operators) on a CPU, with their share of the total, call count and mean duration.
"""

from __future__ import annotations



def _self_time_us(event, cuda: bool) -> float:
    """Self device time (CUDA) or self CPU time of a profiler average, in microseconds, across torch versions."""
    if not cuda:
        return float(event.self_cpu_time_total)
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, attr):
            return float(getattr(event, attr))
    return 0.0


def top_entries(averages, cuda: bool, rows: int) -> tuple[list[dict], float]:
    """([{name, ms, share, calls, mean_us}] of the `rows` largest by self time, total self time in ms)."""
    timed = [(e, _self_time_us(e, cuda)) for e in averages]
    timed = [(e, t) for e, t in timed if t > 0]
    total = sum(t for _, t in timed)
    timed.sort(key=lambda et: -et[1])
    table = [{"name": e.key, "ms": t / 1000, "share": t / total if total else 0.0, "calls": e.count,
              "mean_us": t / max(e.count, 1)} for e, t in timed[:rows]]
    return table, total / 1000


def profile_lines(r: dict) -> list[str]:
    """The table as printed: one line a kernel (operator on CPU), the name cut to 60 characters."""
    what = "kernel (self device time)" if r["device"].startswith("cuda") else "operator (self CPU time)"
    lines = [f"thinkrl bench: profile of one GRPO step, shape {r['shape']} on {r['gpu'] or r['device']}: "
             f"step {r['step_s']:.3f} s (rollout {r['rollout_s']:.3f} s + update {r['update_s']:.3f} s), "
             f"{r['profiled_ms']:.1f} ms profiled",
             f"  {what:<62} {'ms':>9} {'share':>7} {'calls':>8} {'mean us':>9}"]
    for e in r["top"]:
        name = e["name"] if len(e["name"]) <= 60 else e["name"][:57] + "..."
        lines.append(f"  {name:<62} {e['ms']:>9.2f} {100 * e['share']:>6.1f}% {e['calls']:>8} {e['mean_us']:>9.1f}")
    return lines


def profiled(fn, cuda: bool, rows: int):
    """(fn(), its top `rows` entries, total self time in ms): fn run once under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        out = fn()
    return (out, *top_entries(prof.key_averages(), cuda, rows))
