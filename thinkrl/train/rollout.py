"""Rollouts: sample completions of the step's problems with the engine and score them with the rewards.

`collect` is the generation half of an RL step (`thinkrl rl`, and `thinkrl bench` times it):
prompts in groups of `group_size`, with dynamic sampling (drop groups whose rewards are all equal,
draw more) when the algorithm asks for it. `rollout_metrics` summarises what was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thinkrl import envs as envs_mod
from thinkrl import rewards as rewards_mod
from thinkrl.config import RLConfig
from thinkrl.dist import Group
from thinkrl.engine import Completion, Engine
from thinkrl.reflection import reflection_metrics
from thinkrl.tasks.base import Problem, Task
from thinkrl.tools import call_metrics
from thinkrl.train.order import problem_at, rollout_seed


@dataclass
class Rollout:
    """One sampled completion with everything the update and the logs need."""

    problem: Problem
    prompt: list[int]
    completion: Completion
    rewards: dict[str, float]
    reward: float


def score(task: Task, problems: list[Problem], completions: list[Completion], rewards,
          max_new_tokens: int, timeout: float = 0.0, stats: dict | None = None) -> list[tuple[dict[str, float], float]]:
    """(components, weighted total) per completion, completions[i] answering problems[i].

    One call per rollout batch, so a reward model scores the whole batch in a few forward passes.
    A component is present only where it applies to the problem (`problem.meta["rewards"]`).
    A reward that raises or passes `timeout` scores 0 there, counted into `stats` (thinkrl.rewards)."""
    infos = [{"task": task, "problem": p, "tokens": len(c.token_ids), "finish_reason": c.finish_reason,
              "max_new_tokens": max_new_tokens, "env_reward": c.env_reward} for p, c in zip(problems, completions)]
    return rewards_mod.score_batch(rewards, [c.text for c in completions], infos, timeout=timeout, stats=stats)


def collect(cfg: RLConfig, step: int, position: int, engine: Engine, task: Task, problems: list[Problem], encode,
            rewards, tools=None, dp: Group = Group()) -> tuple[list[Rollout], int, dict, list[Rollout]]:
    """Rollouts for one step, prompt-major in groups of G. With dynamic sampling, groups whose
    rewards are all equal are dropped and further prompts drawn, up to algo.max_draws batches.
    `tools` (thinkrl.tools.Toolbox): the calls rollouts may make, their results inserted; a task
    whose problems have environments (thinkrl.envs) asks their first observation and converses.
    Data-parallel (`dp`): each rank samples and scores its share of the prompts (whole groups),
    then every rank receives all of them, so what follows is the same on every rank as in one process.
    Returns (rollouts to train on, new data position, metrics, every rollout drawn)."""
    g, want = cfg.group_size, cfg.prompts_per_step
    kept: list[list[Rollout]] = []
    drawn_groups, draws, all_rollouts = 0, 0, []
    failures: dict[str, float] = {}  # reward/errors, reward/timeouts, ... over every draw
    while len(kept) < want and draws < (cfg.algo.max_draws if cfg.algo.dynamic_sampling else 1):
        batch = [problem_at(problems, position + i, cfg.seed) for i in range(want)]
        position += want
        asked, envs = envs_mod.start(task, batch, g)
        prompts = [encode(p) for p in asked]
        seeds = [rollout_seed(cfg.seed, step, draws, i) for i in range(want)]
        mine = dp.share(want)  # seeds are per prompt: the same completions whichever rank samples them
        outs = engine.generate(prompts[mine.start : mine.stop], cfg.sampling, n=g, seeds=seeds[mine.start : mine.stop],
                               tools=tools, envs=envs[mine.start * g : mine.stop * g] if envs else None)
        scored = score(task, [batch[mine.start + j // g] for j in range(len(outs))], outs, rewards,
                       cfg.sampling.max_new_tokens, cfg.rewards.timeout, failures)
        outs, scored = dp.gather(outs), dp.gather(scored)
        for i, p in enumerate(batch):
            group = [Rollout(p, prompts[i], c, parts, total)
                     for c, (parts, total) in zip(outs[i * g : (i + 1) * g], scored[i * g : (i + 1) * g])]
            all_rollouts += group
            if not cfg.algo.dynamic_sampling or len({r.reward for r in group}) > 1:
                kept.append(group)
        drawn_groups += want
        draws += 1
    if not kept:  # dynamic sampling found no informative group: train on the last batch (advantages 0)
        kept = [all_rollouts[i : i + g] for i in range(len(all_rollouts) - want * g, len(all_rollouts), g)]
    kept = kept[:want]
    metrics = {"dynamic/draws": draws, "dynamic/groups_drawn": drawn_groups, "dynamic/groups_kept": len(kept),
               **dp.sum(failures)}
    return [r for group in kept for r in group], position, metrics, all_rollouts


def rollout_metrics(drawn: list[Rollout], rollouts: list[Rollout], g: int, phrases=()) -> dict:
    """Reward and length statistics of the trained batch (and of everything drawn, for dynamic sampling);
    reflection/* of the trained batch with `phrases` (split by correct and incorrect where every
    rollout has an accuracy reward: correct = accuracy > 0)."""
    out: dict[str, float] = {}
    rew = torch.tensor([r.reward for r in rollouts])
    out["reward/mean"], out["reward/std"] = float(rew.mean()), float(rew.std()) if len(rew) > 1 else 0.0
    for name in dict.fromkeys(k for r in rollouts for k in r.rewards):  # each over the rollouts it applies to
        x = torch.tensor([r.rewards[name] for r in rollouts if name in r.rewards])
        out[f"reward/{name}/mean"], out[f"reward/{name}/std"] = float(x.mean()), float(x.std()) if len(x) > 1 else 0.0
    groups = [torch.tensor([r.reward for r in drawn[i : i + g]]) for i in range(0, len(drawn), g)]
    out["groups/zero_std_frac"] = sum(float(len(x) > 1 and bool(x.std() == 0)) for x in groups) / len(groups)
    lens = torch.tensor([len(r.completion.token_ids) for r in rollouts], dtype=torch.float)
    out["response/len_mean"], out["response/len_max"] = float(lens.mean()), float(lens.max())
    out["response/truncated_frac"] = sum(r.completion.finish_reason == "length" for r in rollouts) / len(rollouts)
    correct = [r.rewards["accuracy"] > 0 for r in rollouts] if all("accuracy" in r.rewards for r in rollouts) else None
    out.update(reflection_metrics([r.completion.text for r in rollouts], correct, phrases))
    if any(r.completion.calls or 0 in r.completion.mask for r in drawn):  # multi-turn rollouts: tools/*
        out.update(call_metrics([r.completion for r in drawn]))
    return out
