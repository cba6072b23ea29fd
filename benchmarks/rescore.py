"""Rescore stored `thinkrl eval` completions with the current verifier, to see what a verifier change moves.

    python benchmarks/rescore.py runs/eval-*/results.completions.jsonl ...

For each file: the accuracy as stored (the verifier of the run) and as `math_equal(extracted,
reference)` says now, the mean tokens, and how many rows changed verdict, with one example each way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from thinkrl.verify import math_equal


def rescore(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return {"file": str(path), "n": 0}
    now = [r["extracted"] is not None and math_equal(r["extracted"], r["reference"], question=r.get("question")) for r in rows]
    lost = [r for r, ok in zip(rows, now) if r["correct"] and not ok]
    won = [r for r, ok in zip(rows, now) if ok and not r["correct"]]
    return {
        "file": str(path),
        "n": len(rows),
        "stored_accuracy": sum(r["correct"] for r in rows) / len(rows),
        "accuracy_now": sum(now) / len(rows),
        "mean_tokens": sum(r["tokens"] for r in rows) / len(rows),
        "right_to_wrong": len(lost),
        "wrong_to_right": len(won),
        "example_right_to_wrong": lost[0]["extracted"] if lost else None,
        "example_wrong_to_right": won[0]["extracted"] if won else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="*.completions.jsonl written by thinkrl eval")
    args = parser.parse_args()
    for path in args.files:
        r = rescore(path)
        if not r["n"]:
            print(f"{path}: empty")
            continue
        line = (f"{path}: n={r['n']} stored {r['stored_accuracy']:.3f} now {r['accuracy_now']:.3f} "
                f"tokens {r['mean_tokens']:.1f}")
        if r["right_to_wrong"] or r["wrong_to_right"]:
            line += (f"  right->wrong {r['right_to_wrong']} (e.g. {r['example_right_to_wrong']!r}),"
                     f" wrong->right {r['wrong_to_right']} (e.g. {r['example_wrong_to_right']!r})")
        print(line)


if __name__ == "__main__":
    main()
