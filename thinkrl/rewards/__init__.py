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
- language      R1's language consistency: share of the reasoning's words in `language_target`
- length_kimi   Kimi k1.5 length penalty within each prompt's group of samples (tokens, batched)
- length_cosine cosine length reward: short correct and long wrong answers preferred (`cosine_max_len`)
- rm            a trained reward model's score (`reward_model = "runs/rm/final"`, `thinkrl rm` trains one),
                of the final answer (`reward_model_input = "answer"`) or the whole response; batched
A user's reward: `custom = ["mypkg.rewards:brevity"]` with `custom_weights = [0.5]`; the module is
imported from the Python path, only because the recipe names it. A function with the attribute
`batched = True` is called once per rollout batch with lists (completions, references, infos)
and returns one float per completion (the reward model is one).

Which rewards apply to a problem: `problem.meta["rewards"]`, a list of reward names (None: all).
A reward that does not apply adds 0 to the total and is left out of its `reward/<name>/mean`, so a
batch can mix reasoning prompts (rule rewards) and general prompts (the reward model).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Callable

from thinkrl.errors import UserError
from thinkrl.prompts import split_response
from thinkrl.rewards.length import cosine_length_reward, kimi_length_rewards

RewardFn = Callable[[str, str, dict], float]

_SOFT = re.compile(r"<think>.*?</think>.*?<answer>.*?</answer>", re.DOTALL)


# every name a problem's `rewards` list may hold, besides the recipe's custom reward names
BUILTIN = ("accuracy", "format", "format_soft", "tag_count", "overlong", "language", "length_kimi", "length_cosine", "rm")


def accuracy(completion: str, reference: str, info: dict) -> float:
    problem = info["problem"]
    if not str(problem.answer).strip():
        raise UserError(f"problem {_where(problem)} has no reference answer but the accuracy reward applies to it: "
                        "give it an answer, or a \"rewards\" list without \"accuracy\" (e.g. [\"rm\"])")
    return float(info["task"].score(completion, problem))


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
    language: float = 0.0  # R1 language consistency of the reasoning (thinkrl.rewards.language)
    language_target: str = "en"  # the language the reasoning should be written in
    length_kimi: float = 0.0  # Kimi k1.5 length penalty within each prompt's group (thinkrl.rewards.length)
    length_cosine: float = 0.0  # cosine length reward: short correct and long wrong answers preferred
    cosine_max_len: int = 0  # tokens at which the cosine reaches its long value; 0 = sampling.max_new_tokens
    custom: list[str] = field(default_factory=list)  # "module:function" rewards of your own
    custom_weights: list[float] = field(default_factory=list)  # one weight per custom reward
    reward_model: str = ""  # folder of a reward model trained by `thinkrl rm`; "" = none
    reward_model_weight: float = 1.0  # weight of its score (the reward named "rm")
    reward_model_input: str = "answer"  # answer (the final answer only, R1 helpfulness) | response (all of it)
    reward_model_batch_size: int = 16  # completions per reward-model forward pass
    reward_model_max_length: int = 1024  # tokens of prompt + response it reads (longer: the end is kept)

    def __post_init__(self):
        from thinkrl.rewards.model import RM_INPUTS

        if self.reward_model_input not in RM_INPUTS:
            raise UserError(f"rewards.reward_model_input must be one of {', '.join(RM_INPUTS)}, got '{self.reward_model_input}'")
        if self.reward_model_batch_size < 1:
            raise UserError(f"rewards.reward_model_batch_size must be >= 1, got {self.reward_model_batch_size}")
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


def _language_reward(lang: str) -> RewardFn:
    from thinkrl.rewards.language import language_share, reasoning_part

    language_share("", lang)  # an unknown language fails when the recipe is read, not mid-run

    def language(completion: str, reference: str, info: dict) -> float:
        return language_share(reasoning_part(completion), lang)

    return language


def _where(problem) -> str:
    source = problem.meta.get("source")
    return f"'{problem.id}'" + (f" ({source})" if source else "")


def applies(name: str, problem) -> bool:
    """Does the reward `name` apply to `problem`? Its meta["rewards"] lists those that do (None: all)."""
    names = problem.meta.get("rewards")
    return names is None or name in names


def _check_names(problem, known: set[str]) -> None:
    unknown = [n for n in problem.meta.get("rewards") or [] if n not in known]
    if unknown:
        raise UserError(f"problem {_where(problem)}: its rewards list names '{unknown[0]}', which is no reward; "
                        f"choose from {', '.join(sorted(known))}")


def score_batch(rewards: list[tuple[str, float, RewardFn]], completions: list[str],
                infos: list[dict]) -> list[tuple[dict[str, float], float]]:
    """(components, weighted total) of each completion; infos[i]["problem"] says which rewards apply.

    A component appears in a completion's dict only where it applies (so its logged mean is over
    those completions); a total sums the applicable ones. Per-completion rewards are called once
    per completion, batched ones (`fn.batched`) once with every completion they apply to.
    """
    known = set(BUILTIN) | {name for name, _, _ in rewards}
    for info in infos:
        _check_names(info["problem"], known)
    parts: list[dict[str, float]] = [{} for _ in completions]
    for name, _, fn in rewards:
        rows = [i for i, info in enumerate(infos) if applies(name, info["problem"])]
        if not rows:
            continue
        if getattr(fn, "batched", False):
            values = fn([completions[i] for i in rows], [infos[i]["problem"].answer for i in rows], [infos[i] for i in rows])
            if len(values) != len(rows):
                raise UserError(f"batched reward '{name}' returned {len(values)} scores for {len(rows)} completions")
        else:
            values = [fn(completions[i], infos[i]["problem"].answer, infos[i]) for i in rows]
        for i, v in zip(rows, values):
            parts[i][name] = float(v)
    return [(p, sum(w * p[name] for name, w, _ in rewards if name in p)) for p in parts]


def _kimi_reward(completions: list[str], references: list[str], infos: list[dict]) -> list[float]:
    """Kimi k1.5 length reward, batched: the samples of one problem form its group."""
    groups: dict[str, list[int]] = {}
    for i, info in enumerate(infos):
        groups.setdefault(info["problem"].id, []).append(i)
    out = [0.0] * len(completions)
    for rows in groups.values():
        correct = [infos[i]["task"].score(completions[i], infos[i]["problem"]) > 0 for i in rows]
        for i, v in zip(rows, kimi_length_rewards([infos[i]["tokens"] for i in rows], correct)):
            out[i] = v
    return out


_kimi_reward.batched = True


def build(cfg: RewardConfig, device: str = "cpu", dtype=None) -> list[tuple[str, float, RewardFn]]:
    """(name, weight, fn) for every reward with a non-zero weight; a reward model is loaded on
    `device` in `dtype` (those of the policy; default fp32)."""
    out: list[tuple[str, float, RewardFn]] = []
    for name, fn in (("accuracy", accuracy), ("format", format_strict), ("format_soft", format_soft), ("tag_count", tag_count)):
        if getattr(cfg, name):
            out.append((name, getattr(cfg, name), fn))
    if cfg.overlong:
        def overlong(completion: str, reference: str, info: dict) -> float:
            return overlong_penalty(info["tokens"], info["max_new_tokens"], cfg.overlong_buffer)

        out.append(("overlong", cfg.overlong, overlong))
    if cfg.language:
        out.append(("language", cfg.language, _language_reward(cfg.language_target)))
    if cfg.length_kimi:
        out.append(("length_kimi", cfg.length_kimi, _kimi_reward))
    if cfg.length_cosine:
        def length_cosine(completion: str, reference: str, info: dict) -> float:
            correct = info["task"].score(completion, info["problem"]) > 0
            return cosine_length_reward(info["tokens"], cfg.cosine_max_len or info["max_new_tokens"], correct)

        out.append(("length_cosine", cfg.length_cosine, length_cosine))
    for spec, weight in zip(cfg.custom, cfg.custom_weights):
        out.append((spec.split(":")[-1], weight, load_custom(spec)))
    if cfg.reward_model and cfg.reward_model_weight:
        from thinkrl.rewards.model import RewardModelReward

        out.append(("rm", cfg.reward_model_weight, RewardModelReward(
            cfg.reward_model, device, dtype, input=cfg.reward_model_input, batch_size=cfg.reward_model_batch_size,
            max_length=cfg.reward_model_max_length)))
    if not out:
        raise UserError("every reward weight is 0: set at least one of rewards.accuracy, rewards.format, ..., rewards.reward_model")
    return out
