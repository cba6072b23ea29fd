"""The built-in rule rewards, `(completion, reference, info) -> float`: accuracy, the format checks,
DAPO's overlong penalty, language consistency and the length rewards (what each scores:
thinkrl.rewards). All are `inline`: called in the caller's thread, bounded by construction.
"""

from __future__ import annotations

import re
from typing import Callable

from thinkrl.errors import UserError
from thinkrl.prompts import split_response
from thinkrl.rewards.config import RewardConfig
from thinkrl.rewards.length import cosine_length_reward, kimi_length_rewards, l1_exact_reward, l1_max_reward

RewardFn = Callable[[str, str, dict], float]

_SOFT = re.compile(r"<think>.*?</think>.*?<answer>.*?</answer>", re.DOTALL)


def inline(fn: RewardFn) -> RewardFn:
    """Mark a built-in rule reward: called in the caller's thread, without a worker or deadline
    (bounded by construction, and the verifier's own timer needs the main thread)."""
    fn.inline = True
    return fn


def _with_reference(problem):
    if not str(problem.answer).strip():
        raise UserError(f"problem {problem_name(problem)} has no reference answer but the accuracy reward applies to it: "
                        "give it an answer, or a \"rewards\" list without \"accuracy\" (e.g. [\"rm\"])")
    return problem


@inline
def accuracy(completion: str, reference: str, info: dict) -> float:
    return float(info["task"].score(completion, _with_reference(info["problem"])))


@inline
def accuracy_share(completion: str, reference: str, info: dict) -> float:
    """accuracy with partial credit where the task gives it (`code_mode = "share"`: the share of a
    code task's tests passed); the same 1/0 as accuracy for every other task."""
    return float(info["task"].partial(completion, _with_reference(info["problem"])))


@inline
def env_reward(completion: str, reference: str, info: dict) -> float:
    """What the completion's environment gave (thinkrl.envs: the sum of its steps' rewards); 0 without one."""
    return float(info.get("env_reward") or 0.0)


@inline
def format_strict(completion: str, reference: str, info: dict) -> float:
    return float(split_response(completion)[1] is not None)


@inline
def format_soft(completion: str, reference: str, info: dict) -> float:
    return float(_SOFT.search(completion) is not None)


@inline
def tag_count(completion: str, reference: str, info: dict) -> float:
    return sum(0.25 for tag in ("<think>", "</think>", "<answer>", "</answer>") if completion.count(tag) == 1)


def overlong_penalty(length: int, max_len: int, buffer: int) -> float:
    """DAPO soft overlong punishment: 0 up to max_len - buffer, then linear down to -1 at max_len."""
    if buffer <= 0 or length <= max_len - buffer:
        return 0.0
    return max(-1.0, (max_len - buffer - length) / buffer)


def language_reward(lang: str) -> RewardFn:
    from thinkrl.rewards.language import language_share, reasoning_part

    language_share("", lang)  # an unknown language fails when the recipe is read, not mid-run

    def language(completion: str, reference: str, info: dict) -> float:
        return language_share(reasoning_part(completion), lang)

    return inline(language)


def problem_name(problem) -> str:
    source = problem.meta.get("source")
    return f"'{problem.id}'" + (f" ({source})" if source else "")


def kimi_reward(completions: list[str], references: list[str], infos: list[dict]) -> list[float]:
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


kimi_reward.batched = True
inline(kimi_reward)


def l1_reward(cfg: RewardConfig) -> RewardFn:
    def length_l1(completion: str, reference: str, info: dict) -> float:
        problem = info["problem"]
        budget = problem.meta.get("think_budget")
        if not budget:
            raise UserError(f"rewards.length_l1 is on but problem {problem_name(problem)} has no thinking budget: "
                            "set task.think_budgets (e.g. \"16,32,64\")")
        correct = info["task"].score(completion, problem) > 0
        if cfg.l1_mode == "exact":
            return l1_exact_reward(correct, info["tokens"], budget, cfg.l1_alpha)
        return l1_max_reward(correct, info["tokens"], budget, cfg.l1_alpha, cfg.l1_delta)

    return inline(length_l1)


def overlong(cfg: RewardConfig) -> RewardFn:
    @inline
    def overlong(completion: str, reference: str, info: dict) -> float:
        return overlong_penalty(info["tokens"], info["max_new_tokens"], cfg.overlong_buffer)

    return overlong


def length_cosine(cfg: RewardConfig) -> RewardFn:
    @inline
    def length_cosine(completion: str, reference: str, info: dict) -> float:
        correct = info["task"].score(completion, info["problem"]) > 0
        return cosine_length_reward(info["tokens"], cfg.cosine_max_len or info["max_new_tokens"], correct)

    return length_cosine
