"""Where `thinkrl bench`'s device memory goes (issue 21, item 3): the peak of each phase of a GRPO
step, and what the rollout engine keeps allocated between rollouts.

The engine's graph runner (thinkrl.engine.graph_runner) keeps its KV cache, its step buffers and the
CUDA graphs' private memory pool across calls, so graphs are captured once; during the update all
of that sits idle. `engine_memory` says how big it is: the KV cache and buffers by their tensors'
sizes (on any device), and on CUDA what `Engine.release()` really gives back (allocated and reserved
bytes before and after). Whether releasing it pays is then measured by a run with
bench.release_engine = true (the engine released after every rollout, so the update's peak no longer
holds it, and the next rollout rebuilds and recaptures: its cost shows in the rollout time).

Phase peaks come from torch.cuda.max_memory_allocated, reset at each phase's start; on CPU there is
no resettable peak, so they are None there (the run's peak RSS is reported instead).
"""

from __future__ import annotations

import gc

import torch

GIB = 2**30


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def phase_peak(device: str) -> float | None:
    """GiB allocated at most since the last call (or the process start), then reset; None on CPU."""
    if not _cuda(device):
        return None
    dev = torch.device(device)
    peak = torch.cuda.max_memory_allocated(dev) / GIB
    torch.cuda.reset_peak_memory_stats(dev)
    return peak


def _tensor_bytes(obj) -> int:
    """Bytes of the distinct tensor storages among an object's attributes (one level down)."""
    seen, total = set(), 0
    for value in vars(obj).values():
        if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() not in seen:
            seen.add(value.untyped_storage().data_ptr())
            total += value.untyped_storage().nbytes()
    return total


def runner_sizes(runner) -> dict:
    """GiB of a kept runner's KV cache (k and v of every layer) and of its other buffers."""
    if runner is None:
        return {"kv_cache_gib": 0.0, "runner_buffers_gib": 0.0}
    kv = runner.cache.k.untyped_storage().nbytes() + runner.cache.v.untyped_storage().nbytes()
    return {"kv_cache_gib": kv / GIB, "runner_buffers_gib": _tensor_bytes(runner) / GIB,
            "kv_cache_shape": list(runner.cache.k.shape), "graphs_captured": len(getattr(runner, "graphs", {}))}


def engine_memory(engine, device: str) -> dict:
    """What the engine holds between rollouts, and (CUDA) what releasing it frees. Releases it."""
    sizes = runner_sizes(getattr(engine, "_graph", None))
    out = {"engine_runner": engine.runner, **sizes}
    if not _cuda(device):
        engine.release()
        return {**out, "released_allocated_gib": None, "released_reserved_gib": None, "graph_pool_gib": None}
    dev = torch.device(device)
    gc.collect()
    torch.cuda.synchronize(dev)
    alloc, reserved = torch.cuda.memory_allocated(dev), torch.cuda.memory_reserved(dev)
    engine.release()
    gc.collect()
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    freed_alloc = (alloc - torch.cuda.memory_allocated(dev)) / GIB
    freed_reserved = (reserved - torch.cuda.memory_reserved(dev)) / GIB
    # the graphs' private pool: reserved memory the release gave back beyond the runner's own tensors
    pool = max(freed_reserved - sizes["kv_cache_gib"] - sizes["runner_buffers_gib"], 0.0)
    return {**out, "released_allocated_gib": freed_alloc, "released_reserved_gib": freed_reserved, "graph_pool_gib": pool}


def memory_lines(r: dict) -> list[str]:
    """The printed memory figures of a train result."""
    def gib(x):  # small buffers (a CPU shape) in MiB, so they do not print as 0.00 GiB
        return "n/a" if x is None else f"{x:.2f} GiB" if x >= 0.1 else f"{x * 1024:.2f} MiB"

    e = r.get("engine_memory", {})
    lines = [f"  phase peaks          rollout {gib(r.get('rollout_peak_gib'))}, update {gib(r.get('update_peak_gib'))}"
             + ("  (engine released before each update)" if r.get("release_engine") else "")]
    if e:
        lines.append(f"  engine keeps         KV cache {gib(e['kv_cache_gib'])}, buffers {gib(e['runner_buffers_gib'])}, "
                     f"graph pool {gib(e['graph_pool_gib'])}; release() frees {gib(e['released_allocated_gib'])} "
                     f"allocated, {gib(e['released_reserved_gib'])} reserved ({e['engine_runner']} runner)")
    return lines
