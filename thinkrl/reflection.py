"""Reflection metrics: how often completions check themselves ("wait", "let me verify", "mistake").

DeepSeek-R1 reports an "aha moment", reflective words rising during RL; "There May Not be Aha
Moment in R1-Zero-like Training" (Liu et al. 2025) finds base models already write them. Counting
the phrases, split by correct and incorrect answers, shows which is happening in a run and whether
reflection goes with being right. The phrase list is the config's (`reflection_phrases` of
`thinkrl eval`, `[eval] reflection_phrases` of training runs; an empty list turns the metrics off).

Matching: whole words or phrases (a letter, digit or underscore on either side is no match:
"wait" is not found in "awaiting"), any case, any run of white space between a phrase's words;
non-overlapping, the longer phrase first ("let me check" is one occurrence, not also a "check").
"""

from __future__ import annotations

import functools
import re

# Self-verification and self-correction words of R1-style traces (R1's paper, Liu et al. 2025's list)
REFLECTION_PHRASES = (
    "wait", "hmm", "actually", "let me check", "let me verify", "let me re-check", "verify", "re-check", "recheck",
    "double-check", "double check", "check again", "mistake", "re-evaluate", "reconsider", "on second thought",
)


@functools.lru_cache(maxsize=16)
def _pattern(phrases: tuple[str, ...]) -> re.Pattern:
    words = sorted({" ".join(p.split()).lower() for p in phrases if p.strip()}, key=len, reverse=True)
    alternatives = "|".join(r"\s+".join(re.escape(w) for w in phrase.split(" ")) for phrase in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def count_reflections(text: str, phrases) -> int:
    """Occurrences of the phrases in `text` (module docstring: how they are matched)."""
    phrases = tuple(phrases)
    if not any(p.strip() for p in phrases):
        return 0
    return len(_pattern(phrases).findall(text))


def reflection_stats(texts: list[str], phrases) -> tuple[float, float]:
    """(share of texts with at least one phrase, mean occurrences per text); (0, 0) for no texts."""
    counts = [count_reflections(t, phrases) for t in texts]
    if not counts:
        return 0.0, 0.0
    return sum(c > 0 for c in counts) / len(counts), sum(counts) / len(counts)


def reflection_metrics(texts: list[str], correct: list[bool] | None, phrases, prefix: str = "reflection/") -> dict:
    """`<prefix>rate` and `<prefix>count_mean` over all texts, and (with `correct`) the same over the
    correct and the incorrect ones: `<prefix>correct_rate`, `<prefix>incorrect_count_mean`, ...
    No keys when the phrase list is empty."""
    if not any(p.strip() for p in phrases):
        return {}
    out = {}
    parts = [("", texts)]
    if correct is not None:
        parts += [("correct_", [t for t, ok in zip(texts, correct) if ok]),
                  ("incorrect_", [t for t, ok in zip(texts, correct) if not ok])]
    for name, part in parts:
        out[f"{prefix}{name}rate"], out[f"{prefix}{name}count_mean"] = reflection_stats(part, phrases)
    return out
