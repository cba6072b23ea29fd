"""Checkpoints of a training run: HF folders plus the trainer state, written atomically.

<run>/checkpoints/step-000040/ holds the model (safetensors, config, tokenizer) and
trainer_state.pt (optimizer, scheduler, RNG states, step, data position), and the prompt set-up the
stage trained with (thinkrl_prompt.json, thinkrl.prompt_setup). A model with LoRA
adapters (thinkrl.model.lora) is kept as its adapter instead (adapter_config.json and
adapter_model.safetensors, peft's format): the base is the run's model.name, unchanged. A folder appears only
when complete (temp folder, fsync, rename: thinkrl.models.save_pretrained), so the newest
step-N folder is always a good one, whenever the writer was killed. Older ones beyond `keep` are
deleted after the new one is in place, each first renamed out of the step-N namespace so that a
kill mid-delete never leaves a half-deleted folder that looks like a checkpoint. Hidden folders
(`.step-N.tmp-*`, `.step-N.del`) are what a killed writer left behind: readers ignore them and
the next save removes them. A data-parallel checkpoint adds `sharded/`: each rank's shard of the
fp32 weights and optimizer state (torch.distributed.checkpoint), what its resume reads.

benchmarks/kill_test.py SIGKILLs a run at random moments and checks that resuming ends with the
same weights and metrics as an uninterrupted run.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Callable

import torch

from thinkrl import prompt_setup
from thinkrl.errors import UserError
from thinkrl.model.lora import has_lora, save_adapter
from thinkrl.models import fsync_dir, save_pretrained

STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def checkpoint_to_resume(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from (None: a fresh run), after the checks every loop needs:
    --resume needs a complete checkpoint, and a fresh run must not write over an earlier one."""
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        hint = (" (the run stopped before its first checkpoint): start it afresh by removing the folder or setting "
                "out_dir elsewhere" if (run_dir / "metrics.jsonl").exists() else "")
        raise UserError(f"--resume: no complete checkpoint in {run_dir / 'checkpoints'}{hint}")
    if not resume and (run_dir / "metrics.jsonl").exists():
        raise UserError(f"out_dir {run_dir} already holds a run: pass --resume to continue it, or set out_dir elsewhere")
    return ckpt


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, trainer_state: dict, keep: int,
                    extra: Callable[[Path], None] | None = None, prompt: dict | None = None) -> Path:
    """`extra(tmp_folder)` adds files (a critic's weights) that land atomically with the model and state;
    `prompt`: the stage's prompt set-up, written as thinkrl_prompt.json (thinkrl.prompt_setup)."""
    path = Path(run_dir) / "checkpoints" / f"step-{step:06d}"
    state = {**trainer_state, "rng": rng_state()}

    adapter = has_lora(model)
    extra = prompt_setup.writer(prompt, extra)

    def write_state(tmp: Path) -> None:
        if adapter:
            save_adapter(model, tmp)
        if extra is not None:
            extra(tmp)
        torch.save(state, tmp / STATE_FILE)

    _remove_leftovers(path.parent)
    save_pretrained(None if adapter else model, tokenizer, path, extra=write_state)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        trash = old.with_name(f".{old.name}.del")
        old.rename(trash)  # atomic: from here on no reader takes it for a checkpoint
        shutil.rmtree(trash, ignore_errors=True)
    fsync_dir(path.parent)
    return path


SHARDED = "sharded"  # trainer_state["optimizer"] of a data-parallel checkpoint: the state is in its sharded/ folder
SHARDED_DIR = "sharded"


def _sharded_state(model, optimizer) -> dict:
    """What a rank holds of a trained model's fp32 weights (the trainable ones: with LoRA the
    adapters) and of its optimizer state, for torch.distributed.checkpoint."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    return {"model": get_model_state_dict(model, options=StateDictOptions(ignore_frozen_params=True)),
            "optim": get_optimizer_state_dict(model, optimizer)}


def save_sharded_checkpoint(run_dir: Path, step: int, group, model, optimizer, weights, tokenizer, trainer_state: dict,
                            keep: int, more: dict | None = None, extra: Callable[[Path], None] | None = None,
                            prompt: dict | None = None) -> None:
    """A data-parallel checkpoint, called on every rank. Every rank writes its own shard of the
    trained weights (fp32, the exact master copy) and of the optimizer state with
    torch.distributed.checkpoint (no rank holds them whole); rank 0 moves those files into the
    checkpoint folder (`sharded/`) that save_checkpoint writes with the full weights in the model
    dtype (`weights`, the engine's unsharded copy: a plain HF folder to evaluate or merge) and the
    trainer state, atomically as always. `more` = {key: (model, optimizer)}: further trained models
    (PPO's critic) in the same folder under their key, the trainer state marking each key SHARDED;
    `extra(tmp)` and `prompt` as in save_checkpoint (rank 0 only)."""
    import torch.distributed.checkpoint as dcp

    root = Path(run_dir) / "checkpoints"
    side = root / f".sharded-{step:06d}"
    if group.main and root.is_dir():
        for old in root.glob(".sharded-*"):  # what a killed writer left
            shutil.rmtree(old, ignore_errors=True)
    group.barrier()
    states = {key: _sharded_state(m, o) for key, (m, o) in {"optimizer": (model, optimizer), **(more or {})}.items()}
    dcp.save(states, checkpoint_id=str(side))
    group.barrier()
    if group.main:
        def write(tmp: Path) -> None:
            side.rename(Path(tmp) / SHARDED_DIR)
            if extra is not None:
                extra(tmp)

        marks = {key: SHARDED for key in states}
        save_checkpoint(run_dir, step, weights, tokenizer, {**trainer_state, **marks}, keep, extra=write,
                        prompt=prompt)
    group.barrier()


def load_sharded_state(model, optimizer, ckpt: Path, saved, key: str = "optimizer") -> None:
    """restore()'s `load_optimizer` for a data-parallel run: each rank reads its shard of the
    checkpoint's sharded/ folder into the sharded `model` (its exact fp32 weights) and `optimizer`
    (any world size >= 2: the state is keyed by parameter name); `key` names which trained model
    of the folder (PPO's critic's is "critic_optimizer")."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    if saved != SHARDED:
        raise UserError(f"{ckpt} holds no sharded optimizer state: it was not written by a data-parallel run")
    state = {key: _sharded_state(model, optimizer)}  # the shapes and shards to read into
    dcp.load(state, checkpoint_id=str(Path(ckpt) / SHARDED_DIR))
    set_model_state_dict(model, state[key]["model"], options=StateDictOptions(ignore_frozen_params=True))
    set_optimizer_state_dict(model, optimizer, state[key]["optim"])


def _remove_leftovers(root: Path) -> None:
    """Hidden folders a killed save left in checkpoints/ (temp folders, half-deleted old checkpoints)."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".step-") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def load_trainer_state(path: Path) -> dict:
    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)


def restore(path: Path, optimizer, scheduler, load_optimizer=None, check=None) -> dict:
    """Load a checkpoint's optimizer, scheduler and RNG states in place; returns the whole trainer state.
    `load_optimizer(state)` replaces optimizer.load_state_dict (a sharded optimizer's, thinkrl.dist.fsdp);
    `check(trainer_state)` may refuse the checkpoint (a UserError) before anything is loaded."""
    saved = load_trainer_state(path)
    if check is not None:
        check(saved)
    (load_optimizer or optimizer.load_state_dict)(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    return saved
