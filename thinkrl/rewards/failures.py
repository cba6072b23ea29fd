"""One reward's values on a batch, its failures scored 0, counted and reported.

A reward that raises, returns something that is not a finite number, or does not return within
its deadline (thinkrl.rewards.deadline) scores 0 on that completion (a batched one: on every
completion of that call); `reward_values` returns the counts (`errors`, `timeouts`), which the run
logs every step (reward/<name>/errors, reward/<name>/timeouts), and warns one line on stderr naming
the reward, the exception and the first completion it failed on (cut to 200 characters). The line
comes once per reward and kind of failure (for an error: its exception type) in a process: a reward
that scores malformed answers by raising would otherwise print one every step of the run.
"""

from __future__ import annotations

import math
import weakref

from thinkrl.errors import UserError, warn
from thinkrl.rewards.deadline import TIMEOUTS_PER_BATCH, call, call_with_deadline


_LATER = " (said once; every step's count is in reward/{name}/{kind})"


def _clip(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _value(x) -> float:
    """A reward's value as a finite float; anything else is the reward's error."""
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"returned {v}, not a finite number")
    return v


_WARNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # reward function -> the failures it warned of


def _first_time(fn, key: str) -> bool:
    """Is this the first warning of `key` for the reward `fn` in this process? (Always, for a
    function that cannot be weakly referenced.)"""
    try:
        seen = _WARNED.setdefault(fn, set())
    except TypeError:
        return True
    if key in seen:
        return False
    seen.add(key)
    return True


def reward_values(name: str, fn, rows: list[int], completions: list[str], infos: list[dict],
                  timeout: float) -> tuple[list[float], dict[str, int]]:
    """One reward's value on completions[rows] (0 where it failed) and its failure counts; a
    warning line names the reward, the exception and the first completion, the first time this
    reward fails that way in the process (module docstring)."""
    batched = getattr(fn, "batched", False)
    if batched:
        calls = [([completions[i] for i in rows], [infos[i]["problem"].answer for i in rows], [infos[i] for i in rows])]
    else:
        calls = [(completions[i], infos[i]["problem"].answer, infos[i]) for i in rows]
    if timeout > 0 and not getattr(fn, "inline", False):
        results = call_with_deadline(fn, calls, timeout * len(rows) if batched else timeout)
    else:
        results = [call(fn, args) for args in calls]
    if batched:  # one result for every row
        kind, out = results[0]
        if kind == "ok":
            if len(out) != len(rows):
                raise UserError(f"batched reward '{name}' returned {len(out)} scores for {len(rows)} completions")
            results = [call(_value, (v,)) for v in out]
        else:
            results = results * len(rows)
    else:
        results = [call(_value, (v,)) if kind == "ok" else (kind, v) for kind, v in results]
    values = [v if kind == "ok" else 0.0 for kind, v in results]
    failed = {"errors": 0, "timeouts": 0}
    first: dict[str, tuple[int, object]] = {}
    for j, (kind, v) in enumerate(results):
        if kind != "ok":
            key = "errors" if kind == "error" else "timeouts"
            failed[key] += 1
            first.setdefault(key, (rows[j], v))
    if "errors" in first and _first_time(fn, f"error {type(first['errors'][1]).__name__}"):
        i, e = first["errors"]
        warn(f"reward '{name}' failed on {failed['errors']} of {len(rows)} completions, scored 0 there: "
             f"{type(e).__name__}: {e}; first on {_clip(completions[i])}{_LATER.format(name=name, kind='errors')}")
    if "timeouts" in first and _first_time(fn, "timeout"):
        i, _ = first["timeouts"]
        skipped = sum(kind == "skipped" for kind, _ in results)
        limit = f"{timeout * len(rows):g} s for its batch" if batched else f"{timeout:g} s"
        warn(f"reward '{name}' did not return within {limit} on {failed['timeouts']} of {len(rows)} completions, "
             f"scored 0 there" + (f" ({skipped} not tried after {TIMEOUTS_PER_BATCH} timeouts)" if skipped else "")
             + f"; first on {_clip(completions[i])}{_LATER.format(name=name, kind='timeouts')}")
    return values, failed
