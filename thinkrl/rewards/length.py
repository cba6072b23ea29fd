"""Length rewards on token counts (never characters): how long a correct or wrong answer may be.

- Kimi k1.5 length penalty (Kimi Team 2025, section 2.3.3): within one prompt's group of samples,
  lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len); a correct answer earns lambda_i, a
  wrong one min(0, lambda_i); every member earns 0 when all lengths are equal. Shorter than the
  group's middle is rewarded, longer penalised, and a wrong answer is never rewarded for brevity.
- Cosine (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs"): the reward
  moves from a value at length 0 to a value at `max_len` along half a cosine,
  r = long + (short - long) * (1 + cos(pi * min(len / max_len, 1))) / 2, with separate
  (short, long) pairs for correct and wrong answers: correct answers prefer short (2.0 -> 1.0),
  wrong ones prefer long (-10.0 -> 0.0), so the model keeps thinking when it is unsure.
- L1 / LCPO (Aggarwal & Welleck 2025): the prompt asks for `target` tokens. Exact mode:
  correct - alpha * |target - len|; max mode: correct * clip(alpha * (target - len) + delta, 0, 1).
"""

from __future__ import annotations

import math


def kimi_length_rewards(lengths: list[int], correct: list[bool]) -> list[float]:
    """Kimi k1.5 length reward of each member of one prompt's group."""
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    out = []
    for n, ok in zip(lengths, correct):
        lam = 0.5 - (n - lo) / (hi - lo)
        out.append(lam if ok else min(0.0, lam))
    return out


def cosine_length_reward(length: int, max_len: int, correct: bool, correct_range: tuple[float, float] = (2.0, 1.0),
                         wrong_range: tuple[float, float] = (-10.0, 0.0)) -> float:
    """Cosine-scaled reward; a range is (value at length 0, value at max_len); progress is clamped at 1."""
    short, long = correct_range if correct else wrong_range
    progress = min(length / max_len, 1.0) if max_len > 0 else 1.0
    return long + (short - long) * (1.0 + math.cos(math.pi * progress)) / 2.0


def l1_exact_reward(correct: bool, length: int, target: int, alpha: float) -> float:
    """L1-Exact: correctness minus alpha per token of distance from the requested length."""
    return float(correct) - alpha * abs(target - length)


def l1_max_reward(correct: bool, length: int, target: int, alpha: float, delta: float) -> float:
    """L1-Max: correctness scaled by how far under the budget the answer stays (clipped to [0, 1])."""
    return float(correct) * min(1.0, max(0.0, alpha * (target - length) + delta))
