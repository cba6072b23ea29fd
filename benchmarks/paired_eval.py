"""Two evaluations of the same problems, paired: each accuracy with its 95% interval, and the difference.

    python benchmarks/paired_eval.py BEFORE.completions.jsonl AFTER.completions.jsonl [--chance 0.25]

Reads `thinkrl eval --out X.json`'s X.completions.jsonl (one sample per problem: the first is used),
matches the problems by id, and prints: each side's accuracy with its Wilson 95% interval over
problems; the paired difference (after - before) with a paired bootstrap 95% interval (10,000
resamples of problems, seeded); the discordant pairs and McNemar's exact two-sided p-value; and,
with --chance, whether each side's interval lies above the chance level.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c discordant pairs, binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(before: list[bool], after: list[bool], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of mean(after) - mean(before), resampling problems with replacement."""
    rng, n = random.Random(seed), len(before)
    diffs = [int(a) - int(b) for b, a in zip(before, after)]
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def load(path: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            out.setdefault(row["id"], bool(row["correct"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--chance", type=float, default=None, help="the chance level, printed beside each accuracy")
    args = parser.parse_args()
    a, b = load(args.before), load(args.after)
    ids = [i for i in a if i in b]
    if not ids:
        print("no problem in common", file=sys.stderr)
        return 1
    before, after = [a[i] for i in ids], [b[i] for i in ids]
    for name, xs in (("before", before), ("after", after)):
        lo, hi = wilson(sum(xs), len(xs))
        above = "" if args.chance is None else f"; chance {args.chance:.3f}: {'above' if lo > args.chance else 'not above'}"
        print(f"{name}: {sum(xs)}/{len(xs)} = {sum(xs) / len(xs):.3f} (Wilson 95% {lo:.3f}-{hi:.3f}){above}")
    gained = sum(x and not y for x, y in zip(after, before))
    lost = sum(y and not x for x, y in zip(after, before))
    lo, hi = paired_bootstrap(before, after)
    diff = (sum(after) - sum(before)) / len(ids)
    print(f"paired difference on {len(ids)} problems: {diff:+.3f} (paired bootstrap 95% {lo:+.3f} to {hi:+.3f})")
    print(f"discordant: {gained} right only after, {lost} right only before; McNemar exact p = {mcnemar_exact(gained, lost):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
