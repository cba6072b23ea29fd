"""Run set-up shared by the training loops, once the model and its optimizer exist: restore a
checkpoint's state when resuming, open the run's log and write the resolved config beside it."""

from __future__ import annotations

from pathlib import Path

from thinkrl.config import save as save_config
from thinkrl.train.checkpoint import restore
from thinkrl.train.logger import NullLogger, RunLogger


def resume_run(cfg, ckpt: Path | None, optimizer, scheduler, main: bool = True,
               load_optimizer=None) -> tuple[dict, RunLogger]:
    """(trainer state, logger) of a run writing to cfg.out_dir.

    With a checkpoint (thinkrl.train.checkpoint.checkpoint_to_resume) its optimizer, scheduler and
    RNG states are loaded in place and its whole trainer state returned (the caller reads its own
    keys: step, data position, the critic's states); the log continues from its step, dropping
    rows logged after it. Without one the state is {"step": 0} and the log starts empty.
    Data-parallel: only the main rank (rank 0) logs and writes (the others get a NullLogger);
    `load_optimizer` loads the saved full optimizer state into the sharded optimizer."""
    saved = {"step": 0}
    if ckpt:
        saved = restore(ckpt, optimizer, scheduler, load_optimizer)
        main and print(f"resuming from {ckpt} (step {saved['step']})", flush=True)
    if not main:
        return saved, NullLogger()
    run_dir = Path(cfg.out_dir)
    logger = RunLogger(run_dir, resume_step=saved["step"] if ckpt else None)
    save_config(cfg, run_dir / "config.toml")
    return saved, logger
