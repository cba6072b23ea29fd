"""Uncertainty of evaluation figures: pure functions over per-problem outcomes.

An accuracy measured on 200 problems is a sample, not the model's accuracy: "A Sober Look at
Progress in Language Model Reasoning" (Hochlehnert et al. 2025) shows many reported RL gains
vanish once this noise is counted. So every rate `thinkrl eval` reports carries a standard error
and a 95% interval over problems, and `thinkrl compare` tests a difference on the same problems.

- `rate_interval`: mean, standard error and interval of per-problem values in [0, 1]. Values that
  are all 0/1 (one sample per problem, maj@k) are a binomial rate: Wilson score interval (it
  stays inside [0, 1] and keeps its coverage near 0 and 1, where the normal one collapses).
  Fractions (pass@1 of K samples, the pass@k estimator) get the normal interval of their mean,
  mean +- z * s / sqrt(n), clipped to [0, 1].
- `paired_bootstrap`: interval of mean(b - a) over problems, resampling problems (pairs stay
  together, so what two models share, the problems' difficulty, cancels).
- `mcnemar_exact`: two-sided exact test of paired binary outcomes: under "no difference" the
  discordant pairs (one right, the other wrong) split as Binomial(b + c, 1/2).
- `spread`: mean, sample standard deviation, min and max across sampling seeds.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def z_value(level: float = 0.95) -> float:
    """The standard normal quantile of a two-sided `level` interval (1.959964 for 0.95)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate `successes / n`; (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    z = z_value(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, no rounding residue
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mean_stderr(values: list[float]) -> float:
    """Standard error of the mean, sample standard deviation (n - 1) over sqrt(n); 0 for n < 2."""
    n = len(values)
    if n < 2:
        return 0.0
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


def rate_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, stderr, low, high) of per-problem values in [0, 1] (module docstring: which interval)."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0, 1.0
    mean = sum(values) / n
    if all(v in (0, 1) for v in values):  # a binomial rate: its standard error sqrt(p(1-p)/n), Wilson's interval
        low, high = wilson_interval(round(sum(values)), n, level)
        return mean, math.sqrt(mean * (1 - mean) / n), low, high
    se = mean_stderr(values)
    z = z_value(level)
    return mean, se, max(0.0, mean - z * se), min(1.0, mean + z * se)


def paired_bootstrap(a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """(mean of b - a, low, high): percentile interval of the mean paired difference over
    `resamples` resamplings of the problems with replacement; the same seed, the same interval."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired bootstrap needs two equal, non-empty lists, got {len(a)} and {len(b)}")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)  # [n]
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(d))  # at most ~2M indices in memory at once
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        means[start : start + rows] = d[rng.integers(0, len(d), size=(rows, len(d)))].mean(axis=1)  # [rows]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(d.mean()), float(low), float(high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c are the discordant pair counts (A right B wrong, and
    the reverse); p = min(1, 2 * P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2); 1 when b + c = 0."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integer arithmetic, one rounding


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of a figure across seeds."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}
