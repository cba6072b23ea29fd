"""Response-length histograms of `thinkrl eval` completion files, side by side.

    python benchmarks/length_histogram.py before.completions.jsonl after.completions.jsonl [--bin 8]

Each file is what `thinkrl eval --out X.json` writes next to X.json (X.completions.jsonl, one row
per completion with its token count). Prints a markdown table: token bins, the count in each file,
then the mean tokens and accuracy of each file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def histogram(lengths: list[int], width: int) -> dict[int, int]:
    """{bin start: count} for bins [start, start + width)."""
    counts: dict[int, int] = {}
    for n in lengths:
        start = n // width * width
        counts[start] = counts.get(start, 0) + 1
    return counts


def table(files: list[str], width: int) -> str:
    rows = [load(f) for f in files]
    hists = [histogram([r["tokens"] for r in rs], width) for rs in rows]
    starts = sorted(set().union(*hists))
    names = [Path(f).name.removesuffix(".completions.jsonl") for f in files]
    lines = ["| tokens | " + " | ".join(names) + " |", "|---|" + "---|" * len(files)]
    lines += [f"| {s}-{s + width - 1} | " + " | ".join(str(h.get(s, 0)) for h in hists) + " |" for s in starts]
    lines.append("| mean tokens | " + " | ".join(f"{sum(r['tokens'] for r in rs) / max(len(rs), 1):.1f}" for rs in rows) + " |")
    lines.append("| accuracy | " + " | ".join(f"{sum(bool(r['correct']) for r in rs) / max(len(rs), 1):.3f}" for rs in rows) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--bin", type=int, default=8, help="bin width in tokens")
    args = parser.parse_args()
    print(table(args.files, args.bin))


if __name__ == "__main__":
    main()
