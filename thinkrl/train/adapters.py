"""`[lora]` in the training stages: which model a stage trains, which parameters its optimizer
holds, what its checkpoints and final/ folder keep (the adapters themselves: thinkrl.model.lora).

With lora.r = 0 everything here is the full fine-tune as before: the model comes from the
checkpoint when resuming, every parameter trains. With r > 0 the model is always the base
(model.name) with fresh adapters, and a resumed run then loads the checkpoint's adapter weights
into them; checkpoints hold only the adapter (see thinkrl.train.checkpoint) and final/ is the
merged model with the adapter in final/adapter/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from thinkrl.model import lora
from thinkrl.models import load_model, resolve_model

trainable = lora.trainable  # the optimizer's parameters: all of them, or the adapters (and heads)


def add_adapters(model, cfg, base: str, seed: int, ckpt: Path | None = None, heads=()):
    """`model` with cfg's adapters (cfg: a LoraConfig; r = 0 returns it untouched), the checkpoint's
    weights loaded into them when `ckpt` is given. `heads` stay trainable in full (a new score head)."""
    if not cfg.r:
        return model
    lora.attach(model, cfg.r, cfg.alpha, cfg.dropout, cfg.target_modules, seed=seed, heads=tuple(heads),
                base=str(resolve_model(base).resolve()))
    if ckpt is not None:
        lora.load_adapter(model, ckpt)
    return model


def load_trained(model_cfg, cfg, ckpt: Path | None, seed: int, device, dtype):
    """(model, tokenizer) a stage trains: the checkpoint's full model, or with LoRA the base plus adapters."""
    if not cfg.r:
        return load_model(ckpt if ckpt else model_cfg.name, device=device, dtype=dtype)
    model, tokenizer = load_model(model_cfg.name, device=device, dtype=dtype)
    return add_adapters(model, cfg, model_cfg.name, seed, ckpt), tokenizer


def with_adapter(model, extra: Callable[[Path], None] | None = None) -> Callable[[Path], None] | None:
    """save_pretrained's `extra` for final/: the adapter in adapter/ beside the merged weights (plus `extra`)."""
    if not lora.has_lora(model):
        return extra

    def write(folder: Path) -> None:
        lora.save_adapter(model, Path(folder) / "adapter")
        if extra is not None:
            extra(folder)

    return write


def summary(model) -> str | None:
    """The line a stage prints at its start with LoRA on (trainable against all parameters)."""
    return f"lora: {lora.describe(model)}" if lora.has_lora(model) else None
