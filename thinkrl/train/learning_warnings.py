"""Say when nothing is learning: `thinkrl rl` reads its own metrics after each step and warns, once
each, when a run can learn nothing (the commonest complaint on the peers' trackers: hours of
training, no change).

Each check is a small pure function of the metric rows logged so far (one dict per step, the keys
of thinkrl.train.rollout.rollout_metrics and the policy loss) that holds only when the condition has
lasted WINDOW steps, so a warning comes early but not from one unlucky batch. Its message names the
likely cause and the knob to turn. Thresholds, from real runs (benchmarks/RESULTS.md): the default
recipe on the embedded model starts with 75% of its groups equal and 34% of its completions
truncated, and its entropy falls from 1.9 to 0.4 nats a token in 12 steps while it learns; the L1
run that could not move had an entropy of 0.012-0.015, the one that moved 0.04-0.22.
"""

from __future__ import annotations

WINDOW = 5  # steps a condition must hold before its warning; no warning comes before this many steps
ENTROPY_FLOOR = 0.03  # nats a token, mean over the window: below it the policy samples one completion
CONVERGED = 0.9  # training accuracy over the window at which a collapse means "solved", not "stuck"


def recent(rows: list[dict], key: str, n: int = WINDOW) -> list[float] | None:
    """The last n values of a metric, or None while fewer than n steps logged it."""
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return vals[-n:] if len(vals) >= n else None


def no_gradient(rows: list[dict]) -> bool:
    """The loss gave no gradient (grad_norm 0) for WINDOW steps: a zero loss."""
    vals = recent(rows, "grad_norm")
    return vals is not None and all(v == 0 for v in vals)


def groups_all_equal(rows: list[dict]) -> bool:
    """Every group's completions had one reward for WINDOW steps: every group advantage is 0."""
    vals = recent(rows, "groups/zero_std_frac")
    return vals is not None and all(v >= 1.0 for v in vals)


def all_truncated(rows: list[dict]) -> bool:
    """Every completion ran to the token budget for WINDOW steps."""
    vals = recent(rows, "response/truncated_frac")
    return vals is not None and all(v >= 1.0 for v in vals)


def entropy_collapsed(rows: list[dict]) -> bool:
    """The policy's mean entropy over WINDOW steps fell below ENTROPY_FLOOR."""
    vals = recent(rows, "entropy")
    return vals is not None and sum(vals) / len(vals) < ENTROPY_FLOOR


def format_keys(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in r if k.startswith("reward/") and "format" in k and k.endswith("/mean")})


def format_never(rows: list[dict]) -> bool:
    """No completion earned any format reward in any step so far (at least WINDOW steps)."""
    keys = format_keys(rows)
    return bool(keys) and all(
        (vals := [r[k] for r in rows if isinstance(r.get(k), (int, float))]) and len(vals) >= WINDOW and max(vals) <= 0
        for k in keys)


def _mean(rows: list[dict], key: str) -> float:
    vals = recent(rows, key) or [0.0]
    return sum(vals) / len(vals)


def message(name: str, rows: list[dict], knobs: dict) -> str:
    """The warning's text: what was seen, the likely cause, the knob to turn. `knobs`: the run's
    group_size, max_new_tokens and temperature, quoted so the user sees the value they set."""
    w = WINDOW
    if name == "no_gradient":
        return (f"the policy loss gave no gradient for {w} steps (grad_norm 0): the model does not change. Likely "
                "cause: every advantage is zero (groups with equal rewards) or every token is masked out "
                "(algo.mask_truncated with every completion truncated). Turn: see the other warnings; check the "
                "rewards differ within a group (thinkrl eval --samples 8 on a few train problems).")
    if name == "groups_all_equal":
        acc = _mean(rows, "reward/accuracy/mean")
        cause = ("no completion is ever right: the task is too hard for the model" if acc == 0 else
                 "every completion is right: the task is too easy" if acc >= 1 else "the rewards do not tell completions apart")
        return (f"every group of {knobs.get('group_size')} completions got equal rewards for {w} steps, so every "
                f"GRPO advantage is zero and nothing is learned. Likely cause: {cause}. Turn: an easier or harder "
                "task (task.digits, task.ops), a worked example (task.shots = 1), a larger group_size or "
                f"sampling.temperature (now {knobs.get('temperature')}), or algo.dynamic_sampling = true to redraw such groups.")
    if name == "all_truncated":
        return (f"every completion ran to sampling.max_new_tokens = {knobs.get('max_new_tokens')} for {w} steps: none "
                "finishes, so none reaches an answer to reward. Turn: raise sampling.max_new_tokens, stop at the "
                "answer (sampling.stop = [\"</answer>\"]), or ask for shorter reasoning (task.template, a worked example).")
    if name == "entropy_collapsed":
        acc = _mean(rows, "reward/accuracy/mean")
        if acc >= CONVERGED:  # the collapse of a policy that solves its training problems
            return (f"the policy's entropy fell to {_mean(rows, 'entropy'):.4f} nats a token (mean of {w} steps) with a "
                    f"training accuracy of {acc:.2f}: it has converged, and little is left to learn at this difficulty. "
                    "Likely cause: the task is solved. Turn: a harder task (task.digits, task.ops), or stop here.")
        return (f"the policy's entropy fell to {_mean(rows, 'entropy'):.4f} nats a token (mean of {w} steps): it samples "
                "nearly the same completion every time, groups stop differing and learning stalls. Likely cause: "
                "updates too large or too one-sided for the reward's spread. Turn: a higher "
                f"sampling.temperature (now {knobs.get('temperature')}), algo.clip_high (clip-higher, 0.28), an entropy "
                "bonus (algo.entropy_coef), or a lower optim.lr.")
    if name == "format_never":
        return (f"no completion earned the format reward ({', '.join(format_keys(rows))}) in {len(rows)} steps: the "
                "model never writes the <think>/<answer> tags, and the accuracy reward reads the <answer> tag. Turn: "
                "task.template = \"r1_zero\" with a worked example (task.shots = 1), a larger sampling.max_new_tokens, "
                "or a cold-start SFT first (thinkrl pipeline).")
    raise ValueError(name)


TITLES = {"no_gradient": "no gradient (a zero loss)", "groups_all_equal": "every group had equal rewards",
          "all_truncated": "every completion truncated", "entropy_collapsed": "entropy collapsed",
          "format_never": "the format never appeared"}
CHECKS = {"no_gradient": no_gradient, "groups_all_equal": groups_all_equal, "all_truncated": all_truncated,
          "entropy_collapsed": entropy_collapsed, "format_never": format_never}


def check(rows: list[dict], knobs: dict, given: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(name, message) of every check that holds now and was not given before."""
    return [(name, message(name, rows, knobs)) for name, holds in CHECKS.items() if name not in given and holds(rows)]


class Watch:
    """The metric rows of a run and the warnings it gave; `see` one step's metrics, get its new warnings.
    A resumed run starts from the rows and warnings its log already holds (they are not given twice)."""

    def __init__(self, knobs: dict, rows: list[dict] = ()):
        self.knobs = knobs
        self.rows = [r for r in rows if "reward/mean" in r]  # the training steps, not evaluations
        self.given = {k[len("warning/"):] for r in rows for k in r if k.startswith("warning/")}

    def see(self, metrics: dict) -> list[tuple[str, str]]:
        self.rows.append(metrics)
        found = check(self.rows, self.knobs, self.given)
        self.given.update(name for name, _ in found)
        return found


def replay(rows: list[dict], knobs: dict) -> list[tuple[str, str]]:
    """(title, message) of the warnings a run's rows give, step by step as `thinkrl rl` checks them:
    the warnings of a run logged before the checks existed."""
    watch = Watch(knobs)
    return [(TITLES[name], text) for r in rows if "reward/mean" in r for name, text in watch.see(r)]


def given(rows: list[dict]) -> list[tuple[str, str]]:
    """(title, message) of the warnings a run logged (metrics.jsonl rows with warning/<name> keys), in order."""
    return [(TITLES.get(k[len("warning/"):], k), v) for r in rows for k, v in r.items()
            if k.startswith("warning/") and isinstance(v, str)]
