"""Data order and seeds as functions of (seed, step): what makes a resumed run continue exactly.

No state is kept between steps: the problem a step trains on, the seed it samples with and the
order of a pair file's batches are recomputed from the run's seed and the step (or epoch), so a
run resumed from a checkpoint draws what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import functools
import random

from thinkrl.tasks.base import Problem


@functools.lru_cache(maxsize=4)
def epoch_order(size: int, seed: int, epoch: int) -> tuple[int, ...]:
    """A seeded permutation of range(size) for one epoch (rl's problem stream, rm's pair batches)."""
    order = list(range(size))
    random.Random(f"{seed}-epoch-{epoch}").shuffle(order)
    return tuple(order)


def problem_at(problems: list[Problem], position: int, seed: int) -> Problem:
    """The problem at a position of the endless, per-epoch shuffled stream of train problems."""
    epoch, i = divmod(position, len(problems))
    return problems[epoch_order(len(problems), seed, epoch)[i]]


def rollout_seed(seed: int, step: int, draw: int, slot: int) -> int:
    """The sampling seed of one prompt (`slot`) of one draw of a step."""
    return random.Random(f"{seed}-rollout-{step}-{draw}-{slot}").randrange(2**31 - 1)
