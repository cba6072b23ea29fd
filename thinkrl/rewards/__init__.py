"""Rewards: pure functions `(completion, reference, info) -> float`, combined with weights.

`info` carries what a reward may need beyond the text: `task` and `problem` (the verifier lives
on the task), `tokens` (completion length in tokens), `finish_reason`, `max_new_tokens`,
`env_reward` (what a multi-turn rollout's environment gave, or None: thinkrl.envs).
Built in (weights in the recipe's [rewards] table; 0 switches one off):
- accuracy      1 if the task's verifier accepts the final answer (the same check as `thinkrl eval`);
                a code task with `code_mode = "share"`: the share of its tests passed
- format        strict R1 format: exactly one <think>...</think> then one <answer>...</answer>,
                nothing before or after but white space
- format_soft   a <think>...</think> block followed later by an <answer>...</answer> block
- tag_count     0.25 for each of the four tags that appears exactly once (partial credit)
- env           the reward the completion's environment gave over its turns (thinkrl.envs), 0 without one
- overlong      DAPO's soft overlong punishment (0 down to -1 over the last `overlong_buffer` tokens)
- language      R1's language consistency: share of the reasoning's words in `language_target`
- length_kimi   Kimi k1.5 length penalty within each prompt's group of samples (tokens, batched)
- length_cosine cosine length reward: short correct and long wrong answers preferred (`cosine_max_len`)
- length_l1     L1/LCPO: correctness held to the prompt's thinking budget (task.think_budgets);
                `l1_mode` exact: correct - l1_alpha * |budget - tokens|; max: correct * clip(
                l1_alpha * (budget - tokens) + l1_delta, 0, 1). It includes correctness: set accuracy = 0
- judge         a local model's soft verdict that the final answer agrees with the reference:
                p(yes) / (p(yes) + p(no)) (`judge = "FOLDER"`, thinkrl.rewards.judge); batched
- rm            a trained reward model's score (`reward_model = "runs/rm/final"`, `thinkrl rm` trains one),
                of the final answer (`reward_model_input = "answer"`) or the whole response; batched
A user's reward: `custom = ["mypkg.rewards:brevity"]` with `custom_weights = [0.5]`; the module is
imported from the Python path, only because the recipe names it. A function with the attribute
`batched = True` is called once per rollout batch with lists (completions, references, infos)
and returns one float per completion (the reward model is one).

A code task (thinkrl.tasks.code) runs every completion of the batch in the sandbox at once,
in parallel, before the rewards read its verdicts one by one, and counts each verdict but pass
(`reward/code/wrong`, `.../crash`, `.../syntax_error`, `.../timeout`, `.../no_code`).

Which rewards apply to a problem: `problem.meta["rewards"]`, a list of reward names (None: all).
A reward that does not apply adds 0 to the total and is left out of its `reward/<name>/mean`, so a
batch can mix reasoning prompts (rule rewards) and general prompts (the reward model).

A reward never stops a run. One that raises, returns something that is not a finite number, or
does not return within `rewards.timeout` seconds scores 0 on that completion (a batched one: on
every completion of that call), is counted (`reward/errors`, `reward/timeouts`, and per reward
`reward/<name>/errors`, `reward/<name>/timeouts`) and is reported on stderr with the reward's name,
the exception and the completion (cut to 200 characters). A UserError is the exception: it means
the recipe or the data is wrong (accuracy on a problem without an answer) and stops the run as
always. User rewards and the reward model run under thinkrl.rewards.deadline, one worker thread
per reward per batch with a deadline (a batched call gets `timeout` per completion); after
TIMEOUTS_PER_BATCH timeouts a reward is not called again in that batch. The built-in rule rewards
(`fn.inline`) run in the caller's thread: their cost is bounded by construction (string checks;
the verifier has its own time limit).

Modules: config.py (RewardConfig, the [rewards] table), rules.py (the built-in rule rewards),
deadline.py (calls with a deadline in worker threads), failures.py (one reward's values on a
batch, failures scored 0 and reported), model.py (the reward model); this one builds the list of
rewards a config asks for and scores a batch with them.
"""

from __future__ import annotations

import importlib

from thinkrl.errors import UserError, warn
from thinkrl.rewards.config import RewardConfig
from thinkrl.rewards.deadline import TIMEOUTS_PER_BATCH
from thinkrl.rewards.failures import reward_values
from thinkrl.rewards.rules import (
    RewardFn, accuracy, accuracy_share, env_reward, format_soft, format_strict, kimi_reward, l1_reward, language_reward, length_cosine,
    overlong, overlong_penalty, problem_name, tag_count,
)

__all__ = [
    "BUILTIN", "TIMEOUTS_PER_BATCH", "WARMED_UP", "RewardConfig", "RewardFn", "accuracy", "active", "applies",
    "build", "format_soft", "verify_first", "format_strict", "load_custom", "overlong_penalty", "score_batch", "tag_count",
]

# every name a problem's `rewards` list may hold, besides the recipe's custom reward names
BUILTIN = ("accuracy", "format", "format_soft", "tag_count", "env", "overlong", "language", "length_kimi", "length_cosine",
           "length_l1", "rm", "judge")


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


def applies(name: str, problem) -> bool:
    """Does the reward `name` apply to `problem`? Its meta["rewards"] lists those that do (None: all)."""
    names = problem.meta.get("rewards")
    return names is None or name in names


def _check_names(problem, known: set[str]) -> None:
    unknown = [n for n in problem.meta.get("rewards") or [] if n not in known]
    if unknown:
        raise UserError(f"problem {problem_name(problem)}: its rewards list names '{unknown[0]}', which is no reward; "
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
    verify_first(completions, infos, stats)
    parts: list[dict[str, float]] = [{} for _ in completions]
    failures = {"errors": 0, "timeouts": 0}
    for name, _, fn in rewards:
        rows = [i for i, info in enumerate(infos) if applies(name, info["problem"])]
        if not rows:
            continue
        values, failed = reward_values(name, fn, rows, completions, infos, timeout)
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


def verify_first(completions: list[str], infos: list[dict], stats: dict[str, float] | None = None) -> None:
    """Judge the batch with each task's verifier at once, where the task gives verdicts (a code
    task runs the completions in the sandbox in parallel and remembers them, so the rewards that
    then ask one by one do not wait on each); `stats` gets reward/code/<verdict> counts. A failure
    here (not the user's) is only reported: the rewards then meet it themselves, and count it."""
    by_task: dict[int, tuple[object, list[int]]] = {}
    for i, info in enumerate(infos):
        if info.get("task") is not None:  # a caller scoring rewards without a task has no verifier to run first
            by_task.setdefault(id(info["task"]), (info["task"], []))[1].append(i)
    for task, rows in by_task.values():
        try:
            verdicts = task.outcomes([completions[i] for i in rows], [infos[i]["problem"] for i in rows])
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - a reward never stops a run
            warn(f"the verifier of task '{getattr(task, 'name', '?')}' failed on a batch: {type(e).__name__}: {e}")
            continue
        for v in verdicts or []:
            if stats is not None and v != "pass":
                stats[f"reward/code/{v}"] = stats.get(f"reward/code/{v}", 0) + 1


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
    for name, fn in (("accuracy", accuracy_share if cfg.code_mode == "share" else accuracy), ("format", format_strict), ("format_soft", format_soft), ("tag_count", tag_count),
                     ("env", env_reward)):
        if getattr(cfg, name):
            out.append((name, getattr(cfg, name), fn))
    if cfg.overlong:
        out.append(("overlong", cfg.overlong, overlong(cfg)))
    if cfg.language:
        out.append(("language", cfg.language, language_reward(cfg.language_target)))
    if cfg.length_kimi:
        out.append(("length_kimi", cfg.length_kimi, kimi_reward))
    if cfg.length_cosine:
        out.append(("length_cosine", cfg.length_cosine, length_cosine(cfg)))
    if cfg.length_l1:
        out.append(("length_l1", cfg.length_l1, l1_reward(cfg)))
    for spec, weight in zip(cfg.custom, cfg.custom_weights):
        out.append((spec.split(":")[-1], weight, load_custom(spec)))
    if cfg.reward_model and cfg.reward_model_weight:
        from thinkrl.rewards.model import RewardModelReward

        out.append(("rm", cfg.reward_model_weight, RewardModelReward(
            cfg.reward_model, device, dtype, input=cfg.reward_model_input, batch_size=cfg.reward_model_batch_size,
            max_length=cfg.reward_model_max_length)))
    if cfg.judge and cfg.judge_weight:
        from thinkrl.rewards.judge import JudgeReward

        out.append(("judge", cfg.judge_weight, JudgeReward(cfg.judge, device, dtype, cfg.judge_template, cfg.judge_input,
                                                           cfg.judge_batch_size)))
    if not out:
        raise UserError("every reward weight is 0: set at least one of rewards.accuracy, rewards.format, ..., rewards.reward_model")
    return out
