"""Data-parallel training on PyTorch's own engine: torchrun processes, FSDP2, gloo on CPU, NCCL on CUDA.

One process per device. Each rank generates whole prompt groups with its own engine (a group
never spans ranks, so group advantages need no communication), then every rank receives every
rollout (`Group.gather`: token ids, log-probs and rewards are small), so the mini-batch plan, the
loss normaliser (token mean over the whole batch), dynamic sampling and the metrics are the same
on every rank as in one process; each rank runs the forward/backward of its share of each
mini-batch's rows and FSDP2 sums the gradients. `Group.single()` is the one-process case: every
collective is the identity and nothing else changes.

Launch: `torchrun --nproc-per-node N -m thinkrl rl RECIPE` or `thinkrl rl --nproc N RECIPE`.
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

COLLECTIVE_TIMEOUT_S = 600  # a rank that stops answering ends the others' wait with an error, never a hang


def collective_timeout_s() -> float:
    """COLLECTIVE_TIMEOUT_S, or $THINKRL_COLLECTIVE_TIMEOUT_S (longer for slow first steps on big
    models, shorter in tests)."""
    return float(os.environ.get("THINKRL_COLLECTIVE_TIMEOUT_S", COLLECTIVE_TIMEOUT_S))


@dataclass(frozen=True)
class Group:
    """This process's place in the job: rank, world size, and the device it trains on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @staticmethod
    def single() -> "Group":
        return Group()

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs, prints and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, n: int) -> range:
        """This rank's contiguous share of n items (the first n % world ranks take one more)."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return range(lo, lo + base + (self.rank < extra))

    def rows(self, rows: list[int]) -> list[int]:
        """This rank's rows of a mini-batch (the rows' positions modulo the world size)."""
        return rows[self.rank :: self.world]

    def passes(self, n: int, size: int) -> int:
        """Micro-batches of `size` every rank runs for a mini-batch of n rows split by `rows`: the
        largest rank's count (FSDP2's collectives need the same number of forwards and backwards
        on every rank; a rank with fewer rows fills in with zero-loss passes)."""
        return max(-(-len(range(r, n, self.world)) // size) for r in range(self.world))

    def gather(self, items: list) -> list:
        """Every rank's `items`, concatenated in rank order, on every rank (picklable objects)."""
        if not self.active:
            return list(items)
        parts: list = [None] * self.world
        dist.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each key summed over the ranks; a key some rank lacks counts 0 there."""
        if not self.active:
            return dict(values)
        keys = sorted(set(self.gather(list(values))))
        t = torch.tensor([float(values.get(k, 0.0)) for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(keys, t.tolist()))

    def worst(self, loss: float) -> float:
        """A non-finite loss if any rank saw one (NaN then), else `loss`: every rank skips, or steps, together."""
        if not self.active:
            return loss
        return float("nan") if self.max(float(not math.isfinite(loss))) else loss

    def max(self, x: float) -> float:
        if not self.active:
            return x
        t = torch.tensor([x], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched() -> bool:
    """Started by torchrun (or another launcher that sets the same variables)?"""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str) -> tuple[Group, str]:
    """The process group of a torchrun job (gloo on CPU, NCCL on CUDA) and this rank's device;
    (Group.single(), device) in a plain process."""
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        return Group.single(), device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                                timeout=datetime.timedelta(seconds=collective_timeout_s()))
    return Group(rank, world, local), device


def engine_model(model, dtype: torch.dtype, group: Group):
    """The model the engine samples from: `model` itself in one process; data-parallel, an unsharded
    copy (thinkrl.dist.fsdp.inference_copy) taken before `model` is sharded in place with FSDP2."""
    if not group.active:
        return model
    from thinkrl.dist import fsdp

    sampler = fsdp.inference_copy(model, dtype)
    fsdp.shard(model, dtype)
    return sampler


def shard_with_host_copy(model, dtype: torch.dtype, group: Group):
    """A second trained model of the job (PPO's critic), sharded in place with FSDP2 when
    data-parallel; returns an unsharded fp32 copy on the host (None in one process) that `refresh`
    fills before a checkpoint or the final save: the engine never samples from it, so it is brought
    up to date only when written, and costs host memory, not device memory."""
    if not group.active:
        return None
    from thinkrl.dist import fsdp

    host = fsdp.inference_copy(model, torch.float32).to("cpu")
    fsdp.shard(model, dtype)
    return host


def refresh(sampler, model) -> None:
    """Bring the engine's copy up to the trained weights (a collective); nothing when they are one model."""
    if sampler is not model:
        from thinkrl.dist import fsdp

        fsdp.refresh(sampler, model)


def close(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()
