"""Rewards: pure functions `(completion, reference, info) -> float`, combined with weights.

`info` carries what a reward may need beyond the text: `task` and `problem` (the verifier lives
on the task), `tokens` (completion length in tokens), `finish_reason`, `max_new_tokens`.
Built in (weights in the recipe's [rewards] table; 0 switches one off):
- accuracy      1 if the task's verifier accepts the final answer (the same check as `thinkrl eval`)
- format        strict R1 format: exactly one <think>...</think> then one <answer>...</answer>,
                nothing before or after but white space
- format_soft   a <think>...</think> block followed later by an <answer>...</answer> block
- tag_count     0.25 for each of the four tags that appears exactly once (partial credit)
- overlong      DAPO's soft overlong punishment (0 down to -1 over the last `overlong_buffer` tokens)
A user's reward: `custom = ["mypkg.rewards:brevity"]` with `custom_weights = [0.5]`; the module is
imported from the Python path, only because the recipe names it.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Callable

from thinkrl.errors import UserError
from thinkrl.prompts import split_response

RewardFn = Callable[[str, str, dict], float]

_SOFT = re.compile(r"<think>.*?</think>.*?<answer>.*?</answer>", re.DOTALL)


def accuracy(completion: str, reference: str, info: dict) -> float:
    return float(info["task"].score(completion, info["problem"]))


def format_strict(completion: str, reference: str, info: dict) -> float:
    return float(split_response(completion)[1] is not None)


def format_soft(completion: str, reference: str, info: dict) -> float:
    return float(_SOFT.search(completion) is not None)


def tag_count(completion: str, reference: str, info: dict) -> float:
    return sum(0.25 for tag in ("<think>", "</think>", "<answer>", "</answer>") if completion.count(tag) == 1)


def overlong_penalty(length: int, max_len: int, buffer: int) -> float:
    """DAPO soft overlong punishment: 0 up to max_len - buffer, then linear down to -1 at max_len."""
    if buffer <= 0 or length <= max_len - buffer:
        return 0.0
    return max(-1.0, (max_len - buffer - length) / buffer)


@dataclass
class RewardConfig:
    accuracy: float = 1.0
    format: float = 0.0
    format_soft: float = 0.0
    tag_count: float = 0.0
    overlong: float = 0.0
    overlong_buffer: int = 16  # tokens before max_new_tokens where the overlong penalty starts
    custom: list[str] = field(default_factory=list)  # "module:function" rewards of your own
    custom_weights: list[float] = field(default_factory=list)  # one weight per custom reward

    def __post_init__(self):
        if len(self.custom) != len(self.custom_weights):
            raise UserError(
                f"rewards.custom has {len(self.custom)} entries but rewards.custom_weights has {len(self.custom_weights)}: give one weight each"
            )


def load_custom(spec: str) -> RewardFn:
    """Import `module:function` named in a recipe."""
    module_name, _, fn_name = spec.partition(":")
    if not module_name or not fn_name:
        raise UserError(f"rewards.custom entry '{spec}' must look like 'module.path:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"rewards.custom '{spec}': cannot import module '{module_name}' ({e})") from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise UserError(f"rewards.custom '{spec}': module '{module_name}' has no function '{fn_name}'")
    return fn


def build(cfg: RewardConfig) -> list[tuple[str, float, RewardFn]]:
    """(name, weight, fn) for every reward with a non-zero weight."""
    out: list[tuple[str, float, RewardFn]] = []
    for name, fn in (("accuracy", accuracy), ("format", format_strict), ("format_soft", format_soft), ("tag_count", tag_count)):
        if getattr(cfg, name):
            out.append((name, getattr(cfg, name), fn))
    if cfg.overlong:
        def overlong(completion: str, reference: str, info: dict) -> float:
            return overlong_penalty(info["tokens"], info["max_new_tokens"], cfg.overlong_buffer)

        out.append(("overlong", cfg.overlong, overlong))
    for spec, weight in zip(cfg.custom, cfg.custom_weights):
        out.append((spec.split(":")[-1], weight, load_custom(spec)))
    if not out:
        raise UserError("every reward weight is 0: set at least one of rewards.accuracy, rewards.format, ...")
    return out
