"""Run set-up shared by the training loops, once the model and its optimizer exist: restore a
checkpoint's state when resuming, open the run's log and write the resolved config beside it."""

from __future__ import annotations

import functools
from pathlib import Path

from thinkrl.config import save as save_config
from thinkrl.dist import Group
from thinkrl.train.checkpoint import load_sharded_state, restore
from thinkrl.train.logger import NullLogger, RunLogger


def resume_run(cfg, ckpt: Path | None, optimizer, scheduler, group: Group = Group(),
               model=None) -> tuple[dict, RunLogger]:
    """(trainer state, logger) of a run writing to cfg.out_dir.

    With a checkpoint (thinkrl.train.checkpoint.checkpoint_to_resume) its optimizer, scheduler and
    RNG states are loaded in place and its whole trainer state returned (the caller reads its own
    keys: step, data position, the critic's states); the log continues from its step, dropping
    rows logged after it. Without one the state is {"step": 0} and the log starts empty.
    Data-parallel (`group`, with the sharded `model`): only the main rank (rank 0) logs and writes
    (the others get a NullLogger); each rank reads its shard of the saved optimizer state; a
    checkpoint written by another number of processes resumes too, and says what that changes."""
    saved = {"step": 0}
    main, world = group.main, group.world
    if ckpt:
        load = functools.partial(load_sharded_state, model, optimizer, ckpt) if group.active else None
        saved = restore(ckpt, optimizer, scheduler, load, lambda st: _same_kind(st, world, ckpt))
        main and print(f"resuming from {ckpt} (step {saved['step']})", flush=True)
        if main and saved.get("world_size", 1) != world:
            print(f"note: {ckpt} was written by {saved.get('world_size', 1)} process(es), this run has {world}: "
                  "data order, seeds and the optimizer state continue as saved; per-rank floating-point sums "
                  "differ, so the run is no longer bit-identical to one never interrupted", flush=True)
    if not main:
        return saved, NullLogger()
    run_dir = Path(cfg.out_dir)
    logger = RunLogger(run_dir, resume_step=saved["step"] if ckpt else None)
    save_config(cfg, run_dir / "config.toml")
    return saved, logger


def _same_kind(saved: dict, world: int, ckpt: Path) -> None:
    """One process and several save the optimizer state differently (by index, by parameter name)."""
    was = saved.get("world_size", 1)
    if (was == 1) != (world == 1):
        from thinkrl.errors import UserError

        raise UserError(f"{ckpt} was written by {was} process(es) and this run has {world}: one process and "
                        "several keep the optimizer state in different forms, so resume with "
                        f"{'one process' if was == 1 else 'torchrun / --nproc (any number >= 2)'}")
