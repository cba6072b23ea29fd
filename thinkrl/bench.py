"""`thinkrl bench`: how fast one GRPO step and plain decoding run, on the TRL anchor's settings.

Why a command and not a script: issue 6's targets (step time against TRL's GRPOTrainer, decode
tokens/s, MFU, peak memory) must be measured the same way on every machine, by the code training
runs. So a step here is `thinkrl.train.rl`'s own: `collect` (the engine, reward scoring), then
`group_advantages` and `update` (the losses of thinkrl.algos, the optimizer of thinkrl.train.optim),
on a random-weight model built locally from a shape: no hub, and no tokenizer, since the engine
and the trainer speak token ids. Rewards are random numbers, so every group has non-zero
advantages and the update does real work; completions are forced to their full length
(SamplingParams.ignore_eos), as the anchor forces them.

The shapes, the random-weight model and the peak-memory reading are thinkrl.bench_model's, shared
with the TRL side (thinkrl.bench_trl), which runs as its own child process.

Figures: rollout tokens/s = completion tokens / rollout seconds (prefill included); update tokens/s
= trained completion tokens / update seconds; MFU = model FLOPs of the update (6 x parameters x the
tokens its forward and backward process: prompt and completion of every row) / update seconds /
the GPU's bf16 dense peak (PEAK_TFLOPS by device name, or bench.peak_tflops; none on CPU unless
given); peak memory = torch.cuda.max_memory_allocated over the whole run on a GPU (what the TRL
anchor reports), the process's peak RSS on CPU. `vs_trl` runs TRL's GRPOTrainer on the same model
shape, prompts and settings in a child process (its own CUDA memory accounting; ours is freed
first) and prints the ratios.

Memory (thinkrl.bench_memory): the peak of each phase (rollout, update) on a GPU, what the engine keeps
between rollouts (KV cache, buffers, the graphs' pool) and what releasing it frees; with
release_engine the engine is released after every rollout, as a training loop could. Mode `profile`
(thinkrl.bench_profile) runs one train step under torch.profiler and prints its top kernels.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from thinkrl.bench_memory import engine_memory, memory_lines, phase_peak
from thinkrl.bench_model import SHAPES, IdsOnly, Workload, build_model, peak_memory, random_prompts
from thinkrl.bench_profile import profile_lines, profiled
from thinkrl.config import BenchConfig, RLConfig
from thinkrl.errors import UserError
from thinkrl.model import adopt

# bf16 dense tensor-core peaks (no sparsity), TFLOP/s; the first name found in the device's name wins
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0))


def resolve(cfg: BenchConfig) -> Workload:
    """The shape (auto: the anchor's on CUDA, small on CPU) and the workload numbers of a run."""
    from thinkrl.models import device_and_dtype

    device, dtype = device_and_dtype(cfg.device, cfg.dtype)
    name = cfg.shape if cfg.shape != "auto" else ("qwen2.5-0.5b" if device.startswith("cuda") else "small")
    s = SHAPES[name]
    group = cfg.group_size or s.group_size
    if group < 2 and cfg.mode == "train":
        raise UserError(f"group_size = {group}: GRPO's group advantages need at least 2 completions per prompt")
    return Workload(name, s, cfg.prompt_tokens or s.prompt_tokens, cfg.new_tokens or s.new_tokens,
                    cfg.prompts or s.prompts, group, device, dtype)


# ---------------------------------------------------------------- the reward


def random_reward(seed: int):
    """A reward that ignores the completion: seeded random numbers, so every group's rewards
    differ and its advantages are non-zero (an all-equal group would make the update trivial)."""
    rng = random.Random(seed)

    def reward(completion: str, reference: str, info: dict) -> float:
        return rng.random()

    reward.inline = True  # called in the caller's thread, like the built-in rule rewards
    return reward


# ---------------------------------------------------------------- the GRPO step


def rl_config(cfg: BenchConfig, w: Workload) -> RLConfig:
    """The RLConfig `thinkrl rl` would run with: the anchor's sampling (temperature 1, forced length),
    one rollout batch of prompts x group_size rows, the bench's algo and optim sections."""
    from thinkrl.engine import SamplingParams

    return RLConfig(
        algo=cfg.algo, optim=cfg.optim, steps=cfg.warmup + cfg.steps, prompts_per_step=w.prompts,
        group_size=w.group_size, rollout_batch=w.prompts * w.group_size, seed=cfg.seed,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=w.new_tokens, ignore_eos=True),
    )


@dataclass
class GRPOSetup:
    """Everything one GRPO step needs, set up once as `thinkrl.train.rl.train` sets it up."""

    rl: RLConfig
    model: torch.nn.Module
    engine: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    guard: object
    problems: list
    prompts: dict
    rewards: list
    position: int = 0


def setup_grpo(cfg: BenchConfig, w: Workload, model) -> GRPOSetup:
    from thinkrl.engine import Engine
    from thinkrl.tasks.base import Problem
    from thinkrl.train.optim import SkipGuard, adamw
    from thinkrl.train.rl import use_gradient_checkpointing

    rl = rl_config(cfg, w)
    engine = Engine(model, IdsOnly(w.shape.vocab - 1), [w.shape.vocab - 2], max_batch=rl.rollout_batch,
                    runner=cfg.runner)
    use_gradient_checkpointing(model, rl.algo)  # as thinkrl rl does
    optimizer, scheduler = adamw(model.parameters(), rl.optim, rl.steps * rl.algo.epochs * rl.algo.mini_batches)
    problems = [Problem(f"bench-{i}", "", "") for i in range(w.prompts)]
    prompts = dict(zip((p.id for p in problems), random_prompts(w, w.prompts, cfg.seed)))
    return GRPOSetup(rl, model, engine, optimizer, scheduler, SkipGuard(rl.optim.max_skipped_updates, "the policy"),
                   problems, prompts, [("random", 1.0, random_reward(cfg.seed))])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def grpo_step(t: GRPOSetup, step: int, device: str, release_engine: bool = False) -> dict:
    """One step of `thinkrl rl` (the GRPO branch of its loop): collect, advantages, update.
    Returns the phase times and peaks (GPU), the completion lengths and the update's metrics.
    release_engine: the engine's KV cache and graphs are freed between the rollout and the update."""
    from thinkrl.algos import group_advantages
    from thinkrl.tasks.base import Task
    from thinkrl.train.rl import collect, update

    _sync(device)
    t0 = time.perf_counter()
    rollouts, t.position, _, _ = collect(t.rl, step, t.position, t.engine, Task(), t.problems,
                                         lambda p: t.prompts[p.id], t.rewards)
    if release_engine:
        t.engine.release()
    _sync(device)
    t1 = time.perf_counter()
    rollout_peak = phase_peak(device)
    reward = torch.tensor([r.reward for r in rollouts])
    advantages = group_advantages(reward, t.rl.group_size, estimator=t.rl.algo.estimator, scale=t.rl.algo.scale)
    metrics = update(t.rl, step, t.model, None, t.optimizer, t.scheduler, rollouts, advantages, t.engine.pad_id, t.guard)
    _sync(device)
    t2 = time.perf_counter()
    return {"rollout_s": t1 - t0, "update_s": t2 - t1, "lengths": [len(r.completion.token_ids) for r in rollouts],
            "metrics": metrics, "rollout_peak_gib": rollout_peak, "update_peak_gib": phase_peak(device)}


# ---------------------------------------------------------------- figures


def peak_tflops(cfg: BenchConfig, device: str) -> tuple[float | None, str]:
    """(bf16 dense peak TFLOP/s, where it came from): the config's, else the table's for this GPU."""
    if cfg.peak_tflops:
        return cfg.peak_tflops, "bench.peak_tflops"
    if not device.startswith("cuda"):
        return None, "no peak on CPU (give --peak-tflops)"
    name = torch.cuda.get_device_name(torch.device(device))
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops, f"{name} bf16 dense peak"
    return None, f"no peak known for {name} (give --peak-tflops)"


def update_flops(params: int, rows: int, prompt_tokens: int, new_tokens: int, detach_prompt: bool) -> float:
    """Model FLOPs of one update: 6 x params per token trained through (forward + backward), 2 x
    params per prompt token encoded without gradient (algo.detach_prompt). Attention's own FLOPs
    and gradient-checkpointing recomputation are left out, as MFU conventionally does."""
    prompt_factor = 2 if detach_prompt else 6
    return float(params) * rows * (6 * new_tokens + prompt_factor * prompt_tokens)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def train_figures(cfg: BenchConfig, w: Workload, params: int, timed: list[dict]) -> dict:
    """The printed and written figures of the timed steps (their means)."""
    rows = w.prompts * w.group_size
    lengths = [n for s in timed for n in s["lengths"]]
    rollout_s, update_s = _mean([s["rollout_s"] for s in timed]), _mean([s["update_s"] for s in timed])
    trained = _mean([sum(s["lengths"]) for s in timed])
    peak, peak_source = peak_tflops(cfg, w.device)
    flops = update_flops(params, rows, w.prompt_tokens, w.new_tokens, cfg.algo.detach_prompt)
    mem, mem_source = peak_memory(w.device)
    first = timed[0]["metrics"]
    peaks = {k: max(s[k] for s in timed) if timed[0][k] is not None else None for k in ("rollout_peak_gib", "update_peak_gib")}
    return {
        "step_s": rollout_s + update_s, "rollout_s": rollout_s, "update_s": update_s,
        "rollout_tokens_per_s": trained / rollout_s, "update_tokens_per_s": trained / update_s,
        "step_tokens_per_s": trained / (rollout_s + update_s),  # completion tokens end to end, as TRL's is counted
        "update_tflops_per_s": flops / update_s / 1e12,
        "mfu": flops / update_s / (peak * 1e12) if peak else None, "peak_tflops": peak, "peak_tflops_source": peak_source,
        "mfu_basis": f"6 x {params} params x {rows} rows x ({w.prompt_tokens} prompt + {w.new_tokens} completion) "
                     "tokens / update seconds / peak" + (" (prompt at 2x: detach_prompt)" if cfg.algo.detach_prompt else ""),
        "peak_memory_gib": mem, "peak_memory_source": mem_source,
        "completion_tokens_min": min(lengths), "completion_tokens_max": max(lengths),
        "mismatch_max": first.get("mismatch/max"), "mismatch_mean": first.get("mismatch/mean"),
        "step_times_s": [s["rollout_s"] + s["update_s"] for s in timed], **peaks,
    }


# ---------------------------------------------------------------- the two modes


def header(cfg: BenchConfig, w: Workload, params: int) -> dict:
    """What was run, on what: goes first in the JSON, so a result file says what it measured."""
    import transformers

    gpu = torch.cuda.get_device_name(torch.device(w.device)) if w.device.startswith("cuda") else None
    return {"mode": cfg.mode, "shape": w.shape_name, "params": params, "device": w.device, "gpu": gpu,
            "dtype": str(w.dtype).removeprefix("torch."), "prompt_tokens": w.prompt_tokens, "new_tokens": w.new_tokens,
            "prompts": w.prompts, "group_size": w.group_size, "warmup": cfg.warmup, "steps": cfg.steps,
            "gradient_checkpointing": cfg.algo.gradient_checkpointing, "logprob_chunk": cfg.algo.logprob_chunk,
            "bucket_by_length": cfg.algo.bucket_by_length, "pack": cfg.algo.pack, "release_engine": cfg.release_engine,
            "torch": torch.__version__, "transformers": transformers.__version__}


def run_train(cfg: BenchConfig, w: Workload) -> dict:
    """warm-up + timed GRPO steps; every object on the device is released on return."""
    model = adopt(build_model(w, cfg.seed))  # run by thinkrl.model's decoder, as thinkrl rl runs it
    params = sum(p.numel() for p in model.parameters())
    setup = setup_grpo(cfg, w, model)
    if w.device.startswith("cuda"):  # the first phase's peak includes the model, as the whole run's does
        torch.cuda.reset_peak_memory_stats(torch.device(w.device))
    steps = [grpo_step(setup, i, w.device, cfg.release_engine) for i in range(cfg.warmup + cfg.steps)]
    figures = train_figures(cfg, w, params, steps[cfg.warmup:])
    if w.device.startswith("cuda"):  # the phase peaks were reset at each phase: the run's peak is their max
        figures["peak_memory_gib"] = max(max(s["rollout_peak_gib"], s["update_peak_gib"]) for s in steps)
    if not cfg.release_engine:  # what the engine held through every update, and what releasing it frees
        figures["engine_memory"] = engine_memory(setup.engine, w.device)
    return {**header(cfg, w, params), **figures}


def run_decode(cfg: BenchConfig, w: Workload) -> dict:
    """`batch` distinct prompts, one completion each, new_tokens forced: generation alone, as the
    anchor's HF `generate` rows measure it (prefill included in the time)."""
    from thinkrl.engine import Engine, SamplingParams

    model = adopt(build_model(w, cfg.seed))
    params = sum(p.numel() for p in model.parameters())
    engine = Engine(model, IdsOnly(w.shape.vocab - 1), [w.shape.vocab - 2], max_batch=cfg.batch, runner=cfg.runner)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=w.new_tokens, ignore_eos=True)
    prompts = random_prompts(w, cfg.batch, cfg.seed)
    times, lengths = [], []
    for i in range(cfg.warmup + cfg.steps):
        _sync(w.device)
        t0 = time.perf_counter()
        outs = engine.generate(prompts, sampling, n=1, seeds=[cfg.seed * 100003 + i * 1009 + r for r in range(cfg.batch)])
        _sync(w.device)
        if i >= cfg.warmup:
            times.append(time.perf_counter() - t0)
            lengths += [len(c.token_ids) for c in outs]
    seconds = _mean(times)
    mem, mem_source = peak_memory(w.device)
    head = {**header(cfg, w, params), "prompts": cfg.batch, "group_size": 1, "batch": cfg.batch}
    return {**head, "seconds": seconds, "tokens_per_s": sum(lengths) / len(times) / seconds,
            "ms_per_step": 1000 * seconds / w.new_tokens, "peak_memory_gib": mem, "peak_memory_source": mem_source,
            "completion_tokens_min": min(lengths), "completion_tokens_max": max(lengths), "run_times_s": times}


def run_profile(cfg: BenchConfig, w: Workload) -> dict:
    """Warm-up steps (graphs captured, allocator warm), then one step under torch.profiler; prints its table."""
    model = adopt(build_model(w, cfg.seed))
    params = sum(p.numel() for p in model.parameters())
    setup = setup_grpo(cfg, w, model)
    for i in range(max(cfg.warmup, 1)):
        grpo_step(setup, i, w.device, cfg.release_engine)
    cuda = w.device.startswith("cuda")
    step, top, total_ms = profiled(lambda: grpo_step(setup, max(cfg.warmup, 1), w.device, cfg.release_engine),
                                   cuda, cfg.profile_rows)
    result = {**header(cfg, w, params), "step_s": step["rollout_s"] + step["update_s"], "rollout_s": step["rollout_s"],
              "update_s": step["update_s"], "profiled_ms": total_ms,
              "sorted_by": "self device time" if cuda else "self CPU time", "top": top}
    print("\n".join(profile_lines(result)), flush=True)
    return result


def _release(device: str) -> None:
    """Give the device memory of the finished run back, so a TRL child process has the whole GPU."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- TRL on the same configuration


def trl_available() -> bool:
    return importlib.util.find_spec("trl") is not None and importlib.util.find_spec("datasets") is not None


def trl_spec(cfg: BenchConfig, w: Workload) -> dict:
    """What the TRL child runs: the same shape, prompts, seed, steps and settings as ours."""
    rows = w.prompts * w.group_size
    return {"shape": w.shape_name, "prompt_tokens": w.prompt_tokens, "new_tokens": w.new_tokens,
            "prompts": w.prompts, "group_size": w.group_size, "device": w.device, "dtype": str(w.dtype).removeprefix("torch."),
            "warmup": cfg.warmup, "steps": cfg.steps, "seed": cfg.seed, "lr": cfg.optim.lr, "rows": rows,
            "grad_clip": cfg.optim.grad_clip, "prompt_ids": random_prompts(w, w.prompts * (cfg.warmup + cfg.steps), cfg.seed)}


def run_trl_child(spec: dict) -> dict:
    """Start `python -m thinkrl.bench_trl SPEC` and read its result file.

    A child process, so TRL's peak memory is its own and our run's memory is gone; its output is
    shown only if it fails (its last lines, in the result's `error`)."""
    with tempfile.TemporaryDirectory(prefix="thinkrl-bench-trl-") as tmp:
        spec = {**spec, "result_path": str(Path(tmp) / "trl.json"), "output_dir": str(Path(tmp) / "trainer")}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
        proc = subprocess.run([sys.executable, "-m", "thinkrl.bench_trl", str(Path(tmp) / "spec.json")],
                              capture_output=True, text=True, env=env)
        result_file = Path(spec["result_path"])
        if proc.returncode != 0 or not result_file.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            return {"error": f"TRL run exited with {proc.returncode}: " + "\n".join(tail)}
        return json.loads(result_file.read_text(encoding="utf-8"))


def ratios(ours: dict, trl: dict) -> dict:
    """thinkrl against TRL: speed-ups above 1 and a memory ratio below 1 mean thinkrl is ahead."""
    return {"step_speedup": trl["step_s"] / ours["step_s"],
            "completion_tokens_per_s_ratio": ours["step_tokens_per_s"] / trl["step_tokens_per_s"],
            "peak_memory_ratio": ours["peak_memory_gib"] / trl["peak_memory_gib"]}


# ---------------------------------------------------------------- printing and the entry point


def _fmt(x, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def report_lines(r: dict) -> list[str]:
    """The human-readable figures of one result, train or decode (TRL's: trl_lines)."""
    what = (f"{r['prompts']} prompts x {r['group_size']} completions" if r["mode"] == "train" else f"batch {r['batch']}")
    params = f"{r['params'] / 1e6:.1f}M" if r["params"] >= 1e6 else f"{r['params']:,}"
    lines = [f"thinkrl bench: {r['mode']}, shape {r['shape']} ({params} params, {r['dtype']}) on "
             f"{r['gpu'] or r['device']}; {what}, {r['prompt_tokens']} + {r['new_tokens']} tokens (forced); "
             f"{r['warmup']} warm-up + {r['steps']} timed"]
    if r["mode"] == "decode":
        lines += [f"  decode tokens/s      {r['tokens_per_s']:,.0f}  ({r['ms_per_step']:.2f} ms a step, prefill included)"]
    else:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        lines += [
            f"  step time            {r['step_s']:.3f} s  (rollout {r['rollout_s']:.3f} s + update {r['update_s']:.3f} s)",
            f"  rollout tokens/s     {r['rollout_tokens_per_s']:,.0f}",
            f"  update tokens/s      {r['update_tokens_per_s']:,.0f}  (trained completion tokens / update seconds)",
            f"  MFU (update)         {mfu}  ({r['update_tflops_per_s']:.3g} TFLOP/s of {_fmt(r['peak_tflops'], 'g')}: "
            f"{r['peak_tflops_source']}; {r['mfu_basis']})",
            f"  logprob mismatch     max {_fmt(r['mismatch_max'], '.2e')}, mean {_fmt(r['mismatch_mean'], '.2e')} "
            "(engine vs training forward)",
        ]
    lines.append(f"  peak memory          {r['peak_memory_gib']:.2f} GiB  ({r['peak_memory_source']})"
                 + ("  [gradient checkpointing]" if r.get("gradient_checkpointing") else ""))
    if r["mode"] == "train":
        lines += memory_lines(r)
    lines.append(f"  completion lengths   {r['completion_tokens_min']}..{r['completion_tokens_max']}")
    return lines


def trl_lines(r: dict) -> list[str]:
    t = r["trl"]
    if "error" in t:
        return [f"  TRL GRPOTrainer      failed: {t['error']}"]
    q = r["ratios"]
    return [f"  TRL {t['trl']} GRPOTrainer  step {t['step_s']:.3f} s, peak {t['peak_memory_gib']:.2f} GiB, "
            f"completions {t.get('completion_tokens_min')}..{t.get('completion_tokens_max')} tokens",
            f"  thinkrl vs TRL       step {q['step_speedup']:.2f}x faster, completion tokens/s "
            f"{q['completion_tokens_per_s_ratio']:.2f}x, peak memory {q['peak_memory_ratio']:.2f}x of TRL's"]


def run(cfg: BenchConfig) -> dict:
    """Run the configured benchmark, print its figures, write the JSON if asked; returns the result."""
    if cfg.vs_trl and not trl_available():  # before any work: nothing to compare against
        raise UserError("--vs-trl needs the packages trl and datasets, which are not importable here "
                        "(pip install trl datasets, or drop --vs-trl)")
    w = resolve(cfg)
    if cfg.mode == "profile":
        result = run_profile(cfg, w)
        _release(w.device)
        return _write(cfg, result)
    result = run_decode(cfg, w) if cfg.mode == "decode" else run_train(cfg, w)
    _release(w.device)
    print("\n".join(report_lines(result)), flush=True)  # ours first: TRL's run takes minutes
    if cfg.vs_trl:
        print("running TRL's GRPOTrainer on the same configuration (child process)...", file=sys.stderr, flush=True)
        result["trl"] = run_trl_child(trl_spec(cfg, w))
        if "error" not in result["trl"]:
            result["ratios"] = ratios(result, result["trl"])
        print("\n".join(trl_lines(result)), flush=True)
    return _write(cfg, result)


def _write(cfg: BenchConfig, result: dict) -> dict:
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {cfg.out}")
    return result

