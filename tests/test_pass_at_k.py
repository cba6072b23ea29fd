"""pass@k's unbiased estimator (Chen et al. 2021) at its edges, against enumerating every k-subset."""

import itertools
import math

import pytest

from thinkrl.evaluate import pass_at_k


@pytest.mark.parametrize("n, c, k", [(n, c, k) for n in range(1, 7) for c in range(n + 1) for k in range(1, n + 1)])
def test_pass_at_k_equals_the_share_of_k_subsets_with_a_correct_sample(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    share = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), share, abs_tol=1e-12)


def test_pass_at_k_boundaries():
    assert math.isclose(pass_at_k(4, 1, 3), 0.75)  # n - c == k: one subset of all-wrong samples
    assert pass_at_k(4, 2, 3) == 1.0  # n - c < k
    assert pass_at_k(10, 0, 10) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
