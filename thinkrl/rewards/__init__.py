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
- length_l1     L1/LCPO: correctness held to the prompt's thinking budget (task.think_budgets);
                `l1_mode` exact: correct - l1_alpha * |budget - tokens|; max: correct * clip(
                l1_alpha * (budget - tokens) + l1_delta, 0, 1). It includes correctness: set accuracy = 0
- rm            a trained reward model's score (`reward_model = "runs/rm/final"`, `thinkrl rm` trains one),
                of the final answer (`reward_model_input = "answer"`) or the whole response; batched
A user's reward: `custom = ["mypkg.rewards:brevity"]` with `custom_weights = [0.5]`; the module is
imported from the Python path, only because the recipe names it. A function with the attribute
`batched = True` is called once per rollout batch with lists (completions, references, infos)
and returns one float per completion (the reward model is one).

Which rewards apply to a problem: `problem.meta["rewards"]`, a list of reward names (None: all).
A reward that does not apply adds 0 to the total and is left out of its `reward/<name>/mean`, so a
batch can mix reasoning prompts (rule rewards) and general prompts (the reward model).

A reward never stops a run. One that raises, returns something that is not a finite number, or
does not return within `rewards.timeout` seconds scores 0 on that completion (a batched one: on
every completion of that call), is counted (`reward/errors`, `reward/timeouts`, and per reward
`reward/<name>/errors`, `reward/<name>/timeouts`) and is reported on stderr with the reward's name,
the exception and the completion (cut to 200 characters). A UserError is the exception: it means
the recipe or the data is wrong (accuracy on a problem without an answer) and stops the run as
always. User rewards and the reward model run in a daemon worker thread, one per reward per batch,
that the caller waits on with a deadline (a batched call gets `timeout` per completion); a call
past its deadline is abandoned (a Python loop in it is interrupted, a thread blocked in `sleep` or
C code is left to sleep: a daemon never holds up the run or the interpreter's exit). After
`TIMEOUTS_PER_BATCH` timeouts a reward is not called again in that batch. The built-in rule rewards
(`fn.inline`) run in the caller's thread: their cost is bounded by construction (string checks;
the verifier has its own time limit, a signal timer that only works in the main thread).
"""

from __future__ import annotations

import ctypes
import importlib
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from thinkrl.errors import UserError, warn
from thinkrl.prompts import split_response
from thinkrl.rewards.length import cosine_length_reward, kimi_length_rewards, l1_exact_reward, l1_max_reward

RewardFn = Callable[[str, str, dict], float]

_SOFT = re.compile(r"<think>.*?</think>.*?<answer>.*?</answer>", re.DOTALL)


# every name a problem's `rewards` list may hold, besides the recipe's custom reward names
BUILTIN = ("accuracy", "format", "format_soft", "tag_count", "overlong", "language", "length_kimi", "length_cosine", "length_l1", "rm")
TIMEOUTS_PER_BATCH = 2  # after this many timeouts in one batch, a reward is not called again in that batch


def _inline(fn: RewardFn) -> RewardFn:
    """Mark a built-in rule reward: called in the caller's thread, without a worker or deadline
    (bounded by construction, and the verifier's own timer needs the main thread)."""
    fn.inline = True
    return fn


@_inline
def accuracy(completion: str, reference: str, info: dict) -> float:
    problem = info["problem"]
    if not str(problem.answer).strip():
        raise UserError(f"problem {_where(problem)} has no reference answer but the accuracy reward applies to it: "
                        "give it an answer, or a \"rewards\" list without \"accuracy\" (e.g. [\"rm\"])")
    return float(info["task"].score(completion, problem))


@_inline
def format_strict(completion: str, reference: str, info: dict) -> float:
    return float(split_response(completion)[1] is not None)


@_inline
def format_soft(completion: str, reference: str, info: dict) -> float:
    return float(_SOFT.search(completion) is not None)


@_inline
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
    length_warmup_steps: int = 0  # Kimi k1.5's warm-up: length_kimi and length_cosine count from this RL step on
    length_l1: float = 0.0  # L1 budget reward (needs task.think_budgets; replaces accuracy)
    l1_mode: str = "exact"  # exact (as long as asked) | max (at most as long as asked)
    l1_alpha: float = 0.0003  # reward per token off the budget (the L1 paper's; raise it for budgets of tens of tokens)
    l1_delta: float = 0.5  # max mode: the reward of a correct answer exactly at its budget
    custom: list[str] = field(default_factory=list)  # "module:function" rewards of your own
    custom_weights: list[float] = field(default_factory=list)  # one weight per custom reward
    reward_model: str = ""  # folder of a reward model trained by `thinkrl rm`; "" = none
    reward_model_weight: float = 1.0  # weight of its score (the reward named "rm")
    reward_model_input: str = "answer"  # answer (the final answer only, R1 helpfulness) | response (all of it)
    reward_model_batch_size: int = 16  # completions per reward-model forward pass
    reward_model_max_length: int = 1024  # tokens of prompt + response it reads (longer: the end is kept)
    timeout: float = 10.0  # seconds a user reward (or the reward model, per completion) may take before it scores 0; 0 = no limit

    def __post_init__(self):
        from thinkrl.rewards.model import RM_INPUTS

        if self.reward_model_input not in RM_INPUTS:
            raise UserError(f"rewards.reward_model_input must be one of {', '.join(RM_INPUTS)}, got '{self.reward_model_input}'")
        if not self.timeout >= 0:
            raise UserError(f"rewards.timeout must be >= 0 seconds (0 = no limit), got {self.timeout}")
        if self.l1_mode not in ("exact", "max"):
            raise UserError(f"rewards.l1_mode must be exact or max, got '{self.l1_mode}'")
        if self.length_warmup_steps < 0:
            raise UserError(f"rewards.length_warmup_steps must be >= 0, got {self.length_warmup_steps}")
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

    return _inline(language)


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


def score_batch(rewards: list[tuple[str, float, RewardFn]], completions: list[str], infos: list[dict],
                timeout: float = 0.0, stats: dict[str, float] | None = None) -> list[tuple[dict[str, float], float]]:
    """(components, weighted total) of each completion; infos[i]["problem"] says which rewards apply.

    A component appears in a completion's dict only where it applies (so its logged mean is over
    those completions); a total sums the applicable ones. Per-completion rewards are called once
    per completion, batched ones (`fn.batched`) once with every completion they apply to.
    A reward that fails scores 0 there (module docstring); `timeout` is rewards.timeout (0 = no
    limit, every reward called in this thread), and `stats`, if given, gets the failure counts
    added (reward/errors, reward/timeouts, reward/<name>/errors, reward/<name>/timeouts).
    """
    known = set(BUILTIN) | {name for name, _, _ in rewards}
    for info in infos:
        _check_names(info["problem"], known)
    parts: list[dict[str, float]] = [{} for _ in completions]
    failures = {"errors": 0, "timeouts": 0}
    for name, _, fn in rewards:
        rows = [i for i, info in enumerate(infos) if applies(name, info["problem"])]
        if not rows:
            continue
        values, failed = _reward_values(name, fn, rows, completions, infos, timeout)
        for i, v in zip(rows, values):
            parts[i][name] = v
        for kind, n in failed.items():
            failures[kind] += n
            if stats is not None and n:
                stats[f"reward/{name}/{kind}"] = stats.get(f"reward/{name}/{kind}", 0) + n
    if stats is not None:
        for kind, n in failures.items():
            stats[f"reward/{kind}"] = stats.get(f"reward/{kind}", 0) + n
    return [(p, sum(w * p[name] for name, w, _ in rewards if name in p)) for p in parts]


# ---------------------------------------------------------------- calling a reward that may fail

_TIMEOUT, _SKIPPED = ("timeout", None), ("skipped", None)  # a call past its deadline; one not made after too many


class _Abandoned(BaseException):
    """Raised in a worker whose call passed its deadline (a BaseException: a reward's `except Exception` cannot eat it)."""


def _call(fn, args: tuple) -> tuple[str, object]:
    """("ok", value) or ("error", exception) of fn(*args) in this thread; a UserError propagates."""
    try:
        return "ok", fn(*args)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a reward's bug scores 0, it does not end the run
        return "error", e


class _Worker(threading.Thread):
    """fn(*calls[i]) for i = first, first + 1, ... in a daemon thread, each result into results[i].

    The caller (`wait`) watches the call in progress: one running past the deadline is abandoned,
    its result (if it ever comes) dropped. A lock orders the worker's moves against the caller's
    decision, so a result is either stored or its call declared timed out, never both."""

    def __init__(self, fn, calls: list[tuple], first: int, results: list):
        super().__init__(daemon=True, name="thinkrl-reward")
        self.fn, self.calls, self.results = fn, calls, results
        self.lock = threading.Lock()
        self.index, self.since, self.abandoned = first, time.monotonic(), False

    def run(self) -> None:
        try:
            for i in range(self.index, len(self.calls)):
                with self.lock:
                    if self.abandoned:
                        return
                    self.index, self.since = i, time.monotonic()
                try:
                    result = ("ok", self.fn(*self.calls[i]))
                except _Abandoned:
                    return
                except BaseException as e:  # noqa: BLE001 - even SystemExit from a reward only scores 0
                    result = ("error", e)
                with self.lock:
                    if self.abandoned:
                        return
                    self.results[i] = result
                if isinstance(result[1], UserError):
                    return
        except _Abandoned:  # delivered just after the call returned
            pass

    def wait(self, timeout: float) -> int | None:
        """Start; return None once every call has returned, or the index of the call that ran past
        `timeout` seconds (the worker is then abandoned)."""
        self.start()
        while True:
            with self.lock:
                i, since = self.index, self.since
            self.join(max(0.0, since + timeout - time.monotonic()))
            if not self.is_alive():
                return None
            with self.lock:
                if self.index == i and self.results[i] is None and time.monotonic() - since >= timeout:
                    self.abandoned = True
                    # best effort: stop a Python loop in the reward (sleep and C code are not interrupted)
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), ctypes.py_object(_Abandoned))
                    return i


def _call_with_deadline(fn, calls: list[tuple], timeout: float) -> list[tuple[str, object]]:
    """_call of each, in worker threads, each call at most `timeout` seconds: past it the call is
    _TIMEOUT and a fresh worker goes on with the next; after TIMEOUTS_PER_BATCH timeouts the
    remaining calls are _SKIPPED."""
    results: list = [None] * len(calls)
    first, timeouts = 0, 0
    while first < len(calls):
        stuck = _Worker(fn, calls, first, results).wait(timeout)
        if stuck is None:
            break
        results[stuck] = _TIMEOUT
        timeouts, first = timeouts + 1, stuck + 1
        if timeouts >= TIMEOUTS_PER_BATCH:
            results[first:] = [_SKIPPED] * (len(calls) - first)
            break
    for r in results:
        if r is not None and isinstance(r[1], UserError):
            raise r[1]
    return [r if r is not None else ("error", RuntimeError("the reward's worker thread ended early")) for r in results]


def _clip(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _value(x) -> float:
    """A reward's value as a finite float; anything else is the reward's error."""
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"returned {v}, not a finite number")
    return v


def _reward_values(name: str, fn, rows: list[int], completions: list[str], infos: list[dict],
                   timeout: float) -> tuple[list[float], dict[str, int]]:
    """One reward's value on completions[rows] (0 where it failed) and its failure counts; one
    warning line per kind of failure names the reward, the exception and the first completion."""
    batched = getattr(fn, "batched", False)
    if batched:
        calls = [([completions[i] for i in rows], [infos[i]["problem"].answer for i in rows], [infos[i] for i in rows])]
    else:
        calls = [(completions[i], infos[i]["problem"].answer, infos[i]) for i in rows]
    if timeout > 0 and not getattr(fn, "inline", False):
        results = _call_with_deadline(fn, calls, timeout * len(rows) if batched else timeout)
    else:
        results = [_call(fn, args) for args in calls]
    if batched:  # one result for every row
        kind, out = results[0]
        if kind == "ok":
            if len(out) != len(rows):
                raise UserError(f"batched reward '{name}' returned {len(out)} scores for {len(rows)} completions")
            results = [_call(_value, (v,)) for v in out]
        else:
            results = results * len(rows)
    else:
        results = [_call(_value, (v,)) if kind == "ok" else (kind, v) for kind, v in results]
    values = [v if kind == "ok" else 0.0 for kind, v in results]
    failed = {"errors": 0, "timeouts": 0}
    first: dict[str, tuple[int, object]] = {}
    for j, (kind, v) in enumerate(results):
        if kind != "ok":
            key = "errors" if kind == "error" else "timeouts"
            failed[key] += 1
            first.setdefault(key, (rows[j], v))
    if "errors" in first:
        i, e = first["errors"]
        warn(f"reward '{name}' failed on {failed['errors']} of {len(rows)} completions, scored 0 there: "
             f"{type(e).__name__}: {e}; first on {_clip(completions[i])}")
    if "timeouts" in first:
        i, _ = first["timeouts"]
        skipped = sum(kind == "skipped" for kind, _ in results)
        limit = f"{timeout * len(rows):g} s for its batch" if batched else f"{timeout:g} s"
        warn(f"reward '{name}' did not return within {limit} on {failed['timeouts']} of {len(rows)} completions, "
             f"scored 0 there" + (f" ({skipped} not tried after {TIMEOUTS_PER_BATCH} timeouts)" if skipped else "")
             + f"; first on {_clip(completions[i])}")
    return values, failed


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
_inline(_kimi_reward)


def _l1_reward(cfg: RewardConfig) -> RewardFn:
    def length_l1(completion: str, reference: str, info: dict) -> float:
        problem = info["problem"]
        budget = problem.meta.get("think_budget")
        if not budget:
            raise UserError(f"rewards.length_l1 is on but problem {_where(problem)} has no thinking budget: "
                            "set task.think_budgets (e.g. \"16,32,64\")")
        correct = info["task"].score(completion, problem) > 0
        if cfg.l1_mode == "exact":
            return l1_exact_reward(correct, info["tokens"], budget, cfg.l1_alpha)
        return l1_max_reward(correct, info["tokens"], budget, cfg.l1_alpha, cfg.l1_delta)

    return length_l1


WARMED_UP = ("length_kimi", "length_cosine")


def active(rewards: list[tuple[str, float, RewardFn]], cfg: RewardConfig, step: int) -> list[tuple[str, float, RewardFn]]:
    """The rewards that count at RL step `step` (0-based): Kimi k1.5 trains without its length
    penalty first ("it may slow down training in the initial phase"), then with it at a constant
    weight, so length_kimi and length_cosine wait for rewards.length_warmup_steps steps.
    (length_l1 is the whole reward of an L1 run, so it never waits.)"""
    if step >= cfg.length_warmup_steps:
        return rewards
    return [r for r in rewards if r[0] not in WARMED_UP]


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

        out.append(("overlong", cfg.overlong, _inline(overlong)))
    if cfg.language:
        out.append(("language", cfg.language, _language_reward(cfg.language_target)))
    if cfg.length_kimi:
        out.append(("length_kimi", cfg.length_kimi, _kimi_reward))
    if cfg.length_cosine:
        def length_cosine(completion: str, reference: str, info: dict) -> float:
            correct = info["task"].score(completion, info["problem"]) > 0
            return cosine_length_reward(info["tokens"], cfg.cosine_max_len or info["max_new_tokens"], correct)

        out.append(("length_cosine", cfg.length_cosine, _inline(length_cosine)))
    if cfg.length_l1:
        out.append(("length_l1", cfg.length_l1, _inline(_l1_reward(cfg))))
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
