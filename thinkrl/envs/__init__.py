"""Environments: tasks that are a conversation rather than one call.

An Environment is one completion's other side. `reset(problem)` gives the first observation (the
user's first message, from which the caller builds the prompt); then the engine (thinkrl.engine)
samples a model turn until it ends, calls `step(model_turn)` with the turn's text, and gets a
`Step(observation, done, reward)`. If not done, the observation is inserted as tokens the model
did not sample (loss mask 0, log-prob 0, one per decode step, as `encode` writes them) and the
model's next turn decodes on from them; the completion is the token-exact transcript: the ids
the model sampled and the ids inserted, never a re-tokenised chat.

A model turn ends at one of `stops` (strings, detected as stop strings are) or at eos / a
sampling stop string. With `eos_ends_episode` (tools) eos or a stop string ends the whole
conversation without a step; otherwise (a chat) it ends a turn and `step` says whether the
conversation goes on. After `max_steps` steps that inserted an observation, the env is not
stepped again: the rest of the completion ends as a single-turn one does. The steps of one decode step's rows run
in parallel threads, each under `timeout_s`; a step that raises or passes its deadline gives
`failed(model_turn, error, seconds)` (by default the conversation's end).

Rewards: each step may return one; a completion's `env_reward` is the sum of those given
(None when no step gave one), which the `env` reward component reads (thinkrl.rewards).

One instance per completion row, built by a factory per problem (`Task.environment`, or
`Toolbox.env` for tools). The simplest environment is a toolbox (thinkrl.tools.ToolEnv: a turn
ends at a call's closing tag, the step runs the call); thinkrl.envs.chat.ChatEnv talks through the
chat template; thinkrl.envs.guess is a small game on it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Environment", "Step", "run_parallel", "run_steps", "start"]


@dataclass
class Step:
    """What the environment answers to one model turn."""

    observation: str = ""  # inserted when not done ("" with done=False: decoding goes on, nothing inserted)
    done: bool = False
    reward: float | None = None
    call: Any = None  # a thinkrl.tools.ToolCall to record on Completion.calls (tool environments)


class Environment:
    """The interface; subclass it and implement reset and step (module docstring)."""

    stops: tuple[str, ...] = ()  # strings that end a model turn, besides eos and the sampling stop strings
    eos_ends_episode: bool = False  # True: eos / a stop string ends the conversation without a step
    max_steps: int = 1 << 30  # steps that insert an observation, at most, per completion
    timeout_s: float = 10.0  # a step that takes longer gives failed(..., "timeout", ...)

    def reset(self, problem) -> str:
        """The first observation: the user's first message."""
        raise NotImplementedError

    def step(self, model_turn: str) -> Step:
        """Answer one model turn (its text, special tokens left out). Runs in a worker thread."""
        raise NotImplementedError

    def encode(self, step: Step, tokenizer) -> list[int]:
        """The ids inserted for a step that goes on (called on the engine's thread, once per step)."""
        return tokenizer.encode(step.observation, add_special_tokens=False) if step.observation else []

    def failed(self, model_turn: str, error: str, seconds: float) -> Step:
        """The step of a turn whose `step` raised (error "Type: message") or passed timeout_s ("timeout")."""
        return Step(done=True)


def run_parallel(fns: list[Callable[[], Any]], timeouts: list[float], name: str = "thinkrl-step") -> list[tuple[Any, str, float]]:
    """(value, error, seconds) of each fn, run side by side in daemon threads, each under its timeout.

    error: "" when fn returned, "timeout", or the exception's type and first line. One thread per
    call (a step's own cost, a sandbox process or a search, dwarfs a thread's start): a call that
    ignores its deadline is left behind and never holds up the interpreter's exit, as a pool's
    worker would."""
    t0 = time.perf_counter()
    boxes: list[list] = [[] for _ in fns]
    threads = [threading.Thread(target=_timed, args=(fn, box), daemon=True, name=name) for fn, box in zip(fns, boxes)]
    for t in threads:
        t.start()
    out = []
    for thread, box, timeout in zip(threads, boxes, timeouts):
        thread.join(max(0.0, timeout - (time.perf_counter() - t0)))  # the calls run side by side
        out.append(box[0] if box else (None, "timeout", time.perf_counter() - t0))
    return out


def _timed(fn: Callable[[], Any], box: list) -> None:
    """fn() as (value, error, seconds), appended to `box`."""
    t0 = time.perf_counter()
    try:
        box.append((fn(), "", time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001 - a tool's or an environment's failure is the model's result, not the run's end
        line = next((x for x in str(e).splitlines() if x.strip()), type(e).__name__)
        box.append((None, f"{type(e).__name__}: {line}", time.perf_counter() - t0))


def run_steps(envs: list[Environment], turns: list[str]) -> list[Step]:
    """envs[i].step(turns[i]) for each i, in parallel, each under its env's timeout_s."""
    outs = run_parallel([lambda e=e, t=t: e.step(t) for e, t in zip(envs, turns)], [e.timeout_s for e in envs])
    steps = []
    for env, turn, (value, error, seconds) in zip(envs, turns, outs):
        if not error and not isinstance(value, Step):
            error = f"TypeError: {type(env).__name__}.step returned {type(value).__name__}, not a Step"
        steps.append(env.failed(turn, error, seconds) if error else value)
    return steps


def start(task, problems: list, n: int) -> tuple[list, list[Environment | None] | None]:
    """(the problems as asked, one reset environment per completion row) for `engine.generate(envs=)`:
    rows prompt-major, n per problem, None for a problem without one (`task.environment`); a
    problem with one is asked its first observation (that of its first row) as the question.
    (problems, None) when no problem has an environment: single-turn rollouts."""
    envs = [task.environment(p) for p in problems for _ in range(n)]
    if all(e is None for e in envs):
        return problems, None
    firsts = [env.reset(problems[i // n]) if env is not None else None for i, env in enumerate(envs)]
    asked = [dataclasses.replace(p, question=firsts[i * n]) if envs[i * n] is not None else p for i, p in enumerate(problems)]
    return asked, envs
