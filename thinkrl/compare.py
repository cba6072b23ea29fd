"""`thinkrl compare A.json B.json`: is B's accuracy different from A's beyond sampling noise?

Both files are results of `thinkrl eval` (or a training run's RUN/eval/step_NNNN.json, the same
format) on the same problems. Each problem's value is its pass@1, the share of its completions
judged correct. Problems are paired by id (the k-th occurrence of an id with the k-th), and must be
the same set with the same reference answers, or it is an error: a difference over different
problems is not a paired difference.

Reported: the mean paired difference B - A with a paired bootstrap interval (problems resampled,
seeded, so the same call gives the same interval), and when every problem has one completion on
both sides (binary outcomes) McNemar's exact test on the discordant problems. The difference is
called distinguishable from noise when the interval excludes 0 and, where the test applies, its
p-value is below 1 - level as well. Older results without "problems" are read from the
completions JSONL beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

from thinkrl.errors import UserError
from thinkrl.stats import mcnemar_exact, paired_bootstrap


def load_outcomes(path: str | Path) -> list[dict]:
    """The per-problem rows of a results JSON: {"id", "reference"?, "correct", "samples"} each."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (give two results JSON files of thinkrl eval)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a results JSON ({e})") from None
    rows = data.get("problems") if isinstance(data, dict) else None
    if rows is None:
        rows = _from_completions(path)
    for i, row in enumerate(rows):
        ok = isinstance(row, dict) and "id" in row and all(isinstance(row.get(k), int) for k in ("correct", "samples"))
        if not ok or not 0 <= row["correct"] <= row["samples"] or row["samples"] < 1:
            raise UserError(f"{path}: problems[{i}] must have an id and 0 <= correct <= samples, samples >= 1; got {row!r}")
    if not rows:
        raise UserError(f"{path}: no problems in it")
    return rows


def _from_completions(path: Path) -> list[dict]:
    """Per-problem rows rebuilt from the completions JSONL beside a results JSON written before "problems"."""
    jsonl = path.with_name(path.stem + ".completions.jsonl")
    if not jsonl.is_file():
        raise UserError(f"{path}: has no per-problem results (\"problems\") and no {jsonl.name} beside it: "
                        "rerun thinkrl eval to write them")
    rows: dict[str, dict] = {}
    for lineno, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
        try:
            c = json.loads(line)
            row = rows.setdefault(str(c["id"]), {"id": c["id"], "reference": c.get("reference"), "correct": 0, "samples": 0})
            row["correct"] += int(bool(c["correct"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{jsonl}:{lineno}: not a completion row with an id and correct") from None
        row["samples"] += 1
    return list(rows.values())


def _keyed(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """Rows keyed by (id, occurrence): the k-th problem with an id pairs with the other side's k-th."""
    seen: dict[str, int] = {}
    out = {}
    for row in rows:
        pid = str(row["id"])
        out[(pid, seen.get(pid, 0))] = row
        seen[pid] = seen.get(pid, 0) + 1
    return out


def pair(a_rows: list[dict], b_rows: list[dict], a_name: str = "A", b_name: str = "B") -> list[tuple[dict, dict]]:
    """(A's row, B's row) per problem in A's order; a UserError naming the difference if the sets differ."""
    a, b = _keyed(a_rows), _keyed(b_rows)
    only_a, only_b = [k for k in a if k not in b], [k for k in b if k not in a]
    if only_a or only_b:
        example = f"'{only_a[0][0]}' only in {a_name}" if only_a else f"'{only_b[0][0]}' only in {b_name}"
        raise UserError(f"{a_name} ({len(a)} problems) and {b_name} ({len(b)} problems) are not on the same problems "
                        f"({len(only_a)} only in the first, {len(only_b)} only in the second, e.g. {example}): "
                        "compare evaluations of one task, split and limit")
    for k in a:
        ra, rb = a[k].get("reference"), b[k].get("reference")
        if ra is not None and rb is not None and ra != rb:
            raise UserError(f"problem '{k[0]}' has reference {ra!r} in {a_name} but {rb!r} in {b_name}: "
                            "these are different problems under one id (another task setting?)")
    return [(a[k], b[k]) for k in a]


def compare(a_path: str | Path, b_path: str | Path, resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> dict:
    """The comparison of the module docstring, as a dict (what --out writes)."""
    pairs = pair(load_outcomes(a_path), load_outcomes(b_path), str(a_path), str(b_path))
    va = [ra["correct"] / ra["samples"] for ra, _ in pairs]
    vb = [rb["correct"] / rb["samples"] for _, rb in pairs]
    diff, low, high = paired_bootstrap(va, vb, resamples, seed, level)
    out = {"a": str(a_path), "b": str(b_path), "n": len(pairs), "a_pass@1": sum(va) / len(va),
           "b_pass@1": sum(vb) / len(vb), "difference": diff, "ci_low": low, "ci_high": high, "level": level,
           "resamples": resamples, "seed": seed}
    distinguishable = low > 0 or high < 0
    if all(ra["samples"] == 1 and rb["samples"] == 1 for ra, rb in pairs):  # binary outcomes: McNemar applies
        a_only = sum(x > y for x, y in zip(va, vb))  # A right, B wrong
        b_only = sum(y > x for x, y in zip(va, vb))
        out.update({"a_only_correct": a_only, "b_only_correct": b_only, "mcnemar_p": mcnemar_exact(a_only, b_only)})
        distinguishable = distinguishable and out["mcnemar_p"] < 1 - level
    out["distinguishable"] = distinguishable
    return out


def describe(r: dict) -> str:
    """What `thinkrl compare` prints."""
    pct = f"{r['level'] * 100:g}%"
    lines = [f"A: {r['a']}  pass@1 {r['a_pass@1']:.4f}",
             f"B: {r['b']}  pass@1 {r['b_pass@1']:.4f}",
             f"on the same {r['n']} problems, B - A = {r['difference']:+.4f}, {pct} paired bootstrap interval "
             f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] ({r['resamples']} resamples, seed {r['seed']})"]
    if "mcnemar_p" in r:
        lines.append(f"McNemar exact test: B right where A wrong on {r['b_only_correct']}, A right where B wrong on "
                     f"{r['a_only_correct']}: p = {r['mcnemar_p']:.4g}")
    else:
        lines.append("McNemar's test: not applicable (more than one completion per problem: outcomes are not binary)")
    if r["distinguishable"]:
        lines.append(f"verdict: B is {'better' if r['difference'] > 0 else 'worse'} than A beyond noise "
                     f"(the interval excludes 0{' and p < ' + format(1 - r['level'], '.2g') if 'mcnemar_p' in r else ''})")
    else:
        lines.append("verdict: not distinguishable from noise (" + (
            "the interval includes 0" if r["ci_low"] <= 0 <= r["ci_high"] else f"p >= {1 - r['level']:.2g}") + ")")
    return "\n".join(lines)


def run(cfg, args) -> int:
    """`thinkrl compare` (cfg: a CompareConfig; args.results: the two files): print, and write --out."""
    result = compare(args.results[0], args.results[1], resamples=cfg.resamples, seed=cfg.seed, level=cfg.level)
    print(describe(result))
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {cfg.out}")
    return 0
