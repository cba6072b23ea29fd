"""`thinkrl merge`: the weighted average of checkpoints of one architecture, parameter by parameter.

Kimi k1.5's simplest long2short route: average a long-reasoning model with a short one and the
result answers at a length between the two. Weights are checked to sum to 1, and every model
must have the same parameter names and shapes (same architecture, same size); the average is
taken in fp32 and saved in `dtype` as a plain HF folder with the first model's tokenizer, and
with the models' prompt set-up (thinkrl_prompt.json) when they were all trained with the same one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from thinkrl import prompt_setup
from thinkrl.config import MergeConfig
from thinkrl.errors import UserError
from thinkrl.models import load_model, save_pretrained


def merge_state_dicts(states: list[dict[str, torch.Tensor]], weights: list[float], names: list[str]) -> dict:
    """sum_i w_i * state_i for every parameter; a name or shape mismatch is a UserError naming both."""
    keys = list(states[0])
    for state, name in zip(states[1:], names[1:]):
        if set(state) != set(keys):
            missing = sorted(set(keys) ^ set(state))[:3]
            raise UserError(f"{name} and {names[0]} have different parameters (e.g. {', '.join(missing)}): not one architecture")
        for k in keys:
            if state[k].shape != states[0][k].shape:
                raise UserError(f"{name}: parameter {k} has shape {tuple(state[k].shape)}, "
                                f"{names[0]} has {tuple(states[0][k].shape)}")
    return {k: sum(w * s[k].float() for w, s in zip(weights, states)) for k in keys}


def merge(cfg: MergeConfig) -> Path:
    if len(cfg.models) < 2:
        raise UserError("merge needs two or more models: --set models=a,b")
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # never replace a model (one of the inputs, say)
        raise UserError(f"out {out} already exists: merge writes a new folder, set --out elsewhere")
    weights = cfg.weights or [1.0 / len(cfg.models)] * len(cfg.models)
    loaded = [load_model(name) for name in cfg.models]
    merged = merge_state_dicts([m.state_dict() for m, _ in loaded], weights, cfg.models)
    model, tokenizer = loaded[0]
    model.load_state_dict(merged)
    model.to(getattr(torch, cfg.dtype))
    return save_pretrained(model, tokenizer, cfg.out, extra=prompt_setup.writer(shared_prompt(cfg.models)))


def shared_prompt(models: list[str]) -> dict | None:
    """The prompt set-up every model was trained with (template, system and example turns agree), or None."""
    setups = [prompt_setup.read(p) if (p := prompt_setup.locate(name)) else None for name in models]
    if any(s is None for s in setups):
        return None
    same = lambda s: (s.get("template"), s.get("system"), s.get("examples"))  # noqa: E731
    return {**setups[0], "stage": "merge"} if all(same(s) == same(setups[0]) for s in setups) else None
