"""thinkrl's verifier on the peers' own reward test cases: its false positives and negatives.

    python benchmarks/peer_verifier_cases.py [--cases benchmarks/peer_verifier_cases.jsonl] [--timeout 2] [--show fn]

The cases (benchmarks/peer_verifier_cases.jsonl, one JSON object a line: prediction, reference,
expected, source) are the parametrized (gold, pred, expected) rows of Math-Verify's tests and the
accuracy-reward cases of TRL's and open-r1's tests, each with the repository, commit, file and
test it came from. They are kept apart from thinkrl's tests: some encode the peers' own choices
(free-text extraction, float rounding, set relations under a non-default option) that thinkrl
makes differently on purpose, so a disagreement is a thing to read, not a failure.

Each prediction is read as thinkrl reads a completion: `extract_answer` (the last <answer> or
\\boxed{}), else, when it has neither, the prediction as it stands (thinkrl itself would score such
a completion 0: no answer). Prints the counts (agree, false positives: thinkrl accepts what the
peer rejects; false negatives: the other way) by source, and every false positive.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from thinkrl.verify import extract_answer, math_equal

DEFAULT = Path(__file__).resolve().parent / "peer_verifier_cases.jsonl"


def verdict(prediction: str, reference: str, timeout: float) -> bool:
    answer = extract_answer(prediction) or prediction
    return math_equal(answer, reference, timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT)
    parser.add_argument("--timeout", type=float, default=2.0, help="math_equal's timeout (seconds)")
    parser.add_argument("--show", choices=["fp", "fn", "both"], default="fp", help="which disagreements to list")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = time.perf_counter()
    counts: dict[str, Counter] = {}
    listed = []
    for row in rows:
        got = verdict(row["prediction"], row["reference"], args.timeout)
        kind = "agree" if got == row["expected"] else ("fp" if got else "fn")
        test = row["source"].split("::")[-1]
        counts.setdefault(test, Counter())[kind] += 1
        if kind != "agree" and args.show in (kind, "both"):
            listed.append((kind, row))
    total = sum(counts.values(), Counter())
    print(f"{len(rows)} cases, {time.perf_counter() - start:.0f} s: agree {total['agree']}, "
          f"false positives {total['fp']}, false negatives {total['fn']}")
    print("\n| test | cases | agree | false positives | false negatives |\n|---|---:|---:|---:|---:|")
    for test, c in sorted(counts.items()):
        print(f"| {test} | {sum(c.values())} | {c['agree']} | {c['fp']} | {c['fn']} |")
    for kind, row in listed:
        print(f"\n{kind.upper()} {row['source'].split(':', 1)[-1]}\n  reference {row['reference'][:200]!r}\n"
              f"  prediction {row['prediction'][:300]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
