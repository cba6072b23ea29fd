"""thinkrl.stats: intervals, the paired bootstrap and McNemar's exact test against hand-computed values."""

import math
import random

import pytest

from thinkrl.stats import (mcnemar_exact, mean_stderr, paired_bootstrap, rate_interval, spread, wilson_interval,
                           z_value)


def test_z_value_of_the_usual_levels():
    assert math.isclose(z_value(0.95), 1.959964, abs_tol=1e-6)
    assert math.isclose(z_value(0.90), 1.644854, abs_tol=1e-6)
    with pytest.raises(ValueError):
        z_value(1.0)


def test_wilson_interval_known_values():
    # 8 of 10: the textbook Wilson interval (0.4902, 0.9433)
    low, high = wilson_interval(8, 10)
    assert math.isclose(low, 0.4902, abs_tol=1e-4) and math.isclose(high, 0.9433, abs_tol=1e-4)
    # by hand: p = 0.5, n = 4, z^2 = 3.8415: centre 0.5, half = z/(1 + z^2/4) * sqrt(1/16 + z^2/64)
    # = 0.99980 * 0.35003 = 0.34996
    low, high = wilson_interval(2, 4)
    assert math.isclose(low, 0.5 - 0.34996, abs_tol=1e-4) and math.isclose(high, 0.5 + 0.34996, abs_tol=1e-4)
    # the ends stay inside [0, 1] and are exact there: 0 of 10 -> [0, z^2 / (n + z^2)]
    z2 = z_value() ** 2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2)))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + z2)), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mean_stderr_by_hand():
    # values 0, 0.5, 1: mean 0.5, sample variance 0.25, stderr sqrt(0.25 / 3)
    assert math.isclose(mean_stderr([0.0, 0.5, 1.0]), math.sqrt(0.25 / 3))
    assert mean_stderr([0.3]) == 0.0


def test_rate_interval_binary_is_wilson_with_the_binomial_stderr():
    values = [1.0] * 8 + [0.0] * 2
    mean, se, low, high = rate_interval(values)
    assert mean == 0.8 and math.isclose(se, math.sqrt(0.8 * 0.2 / 10))
    assert (low, high) == wilson_interval(8, 10)


def test_rate_interval_of_fractions_is_normal_and_clipped():
    values = [0.0, 0.5, 1.0]
    mean, se, low, high = rate_interval(values)
    assert mean == 0.5 and math.isclose(se, math.sqrt(0.25 / 3))
    assert math.isclose(low, max(0.0, 0.5 - z_value() * se)) and math.isclose(high, min(1.0, 0.5 + z_value() * se))
    assert rate_interval([0.9, 1.0, 1.0, 0.95])[3] <= 1.0
    assert rate_interval([]) == (0.0, 0.0, 0.0, 1.0)


def test_mcnemar_exact_small_tables():
    assert mcnemar_exact(1, 6) == 2 * (1 + 7) / 2**7  # 0.125
    assert mcnemar_exact(6, 1) == 0.125  # two-sided: symmetric
    assert mcnemar_exact(0, 5) == 2 / 2**5  # 0.0625
    assert mcnemar_exact(0, 6) == 2 / 2**6  # 0.03125: the smallest table significant at 5%
    assert mcnemar_exact(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 0.03857
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert 0 < mcnemar_exact(400, 600) < 1e-9  # large counts: exact integers, no overflow


def test_paired_bootstrap_constant_difference_and_determinism():
    a = [0.0, 1.0, 0.0, 1.0, 0.5]
    b = [x + 0.25 for x in a]
    assert paired_bootstrap(a, b, resamples=500) == pytest.approx((0.25, 0.25, 0.25))
    rng = random.Random(1)
    x = [rng.random() for _ in range(50)]
    y = [v + rng.gauss(0.1, 0.3) for v in x]
    assert paired_bootstrap(x, y, seed=3) == paired_bootstrap(x, y, seed=3)
    assert paired_bootstrap(x, y, seed=3) != paired_bootstrap(x, y, seed=4)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_paired_bootstrap_covers_the_true_difference():
    # 300 problems: A right on 40%, B right where A is and on a further 20% of the rest. True mean
    # difference 0.6 * 0.2 = 0.12; the interval's half-width is about 1.96 * sqrt(0.12 * 0.88 / 300) = 0.037.
    rng = random.Random(0)
    covered = 0
    for trial in range(100):
        a = [float(rng.random() < 0.4) for _ in range(300)]
        b = [1.0 if x else float(rng.random() < 0.2) for x in a]
        diff, low, high = paired_bootstrap(a, b, resamples=1000, seed=trial)
        assert low <= diff <= high and 0.05 < high - low < 0.11
        covered += low <= 0.12 <= high
    assert 88 <= covered <= 100  # a 95% interval: 95 of 100 expected


def test_spread_across_seeds():
    s = spread([0.30, 0.34, 0.32])
    assert s["mean"] == pytest.approx(0.32) and s["std"] == pytest.approx(0.02) and (s["min"], s["max"]) == (0.30, 0.34)
    assert spread([0.5])["std"] == 0.0
