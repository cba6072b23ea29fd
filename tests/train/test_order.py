"""Data order and seeds are functions of (seed, step) alone: what exact resume rests on."""

from thinkrl.tasks import Problem
from thinkrl.train.order import epoch_order, problem_at, rollout_seed


def test_each_epoch_is_a_seeded_permutation():
    order = epoch_order(10, 0, 0)
    assert sorted(order) == list(range(10)) and order == epoch_order(10, 0, 0)
    assert order != epoch_order(10, 0, 1) and order != epoch_order(10, 1, 0)


def test_the_problem_stream_visits_every_problem_once_per_epoch():
    problems = [Problem(str(i), "q", "a") for i in range(7)]
    stream = [problem_at(problems, position, seed=3).id for position in range(21)]
    for epoch in range(3):
        assert sorted(stream[epoch * 7 : (epoch + 1) * 7], key=int) == [p.id for p in problems]
    assert stream == [problem_at(problems, position, seed=3).id for position in range(21)]  # no state between calls


def test_rollout_seeds_differ_by_step_draw_and_slot():
    seeds = {rollout_seed(0, step, draw, slot) for step in range(3) for draw in range(2) for slot in range(4)}
    assert len(seeds) == 24 and rollout_seed(0, 2, 1, 3) == rollout_seed(0, 2, 1, 3)
