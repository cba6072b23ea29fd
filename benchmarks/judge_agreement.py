"""How often a generative judge (thinkrl.rewards.judge) agrees with the rule verifier, on stored
completions of the arithmetic task (the default recipe's: 2-digit x 1-digit products).

    thinkrl eval --model MODEL --set task.name=arithmetic --set task.digits=2,1 --set task.ops='*' \
        --set task.shots=1 --set limit=200 --set samples=5 --set sampling.temperature=1.0 \
        --set sampling.max_new_tokens=48 --set 'sampling.stop=["</answer>"]' --set out=/tmp/judge/results.json
    python benchmarks/judge_agreement.py /tmp/judge/results.completions.jsonl --judge smollm2-135m-instruct

Prints the confusion table (rule verdict x judge verdict at p(yes) >= 0.5), the agreement with its
95% Wilson interval, Cohen's kappa, the mean soft reward on each side of the rule, and the time.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def confusion(rule: list[bool], judge: list[bool]) -> dict[str, int]:
    return {f"rule_{'yes' if r else 'no'}/judge_{'yes' if j else 'no'}": sum(1 for a, b in zip(rule, judge) if (a, b) == (r, j))
            for r in (True, False) for j in (True, False)}


def kappa(rule: list[bool], judge: list[bool]) -> float:
    """Cohen's kappa: agreement beyond what the two verdicts' rates give by chance."""
    n = len(rule)
    observed = sum(a == b for a, b in zip(rule, judge)) / n
    pr, pj = sum(rule) / n, sum(judge) / n
    chance = pr * pj + (1 - pr) * (1 - pj)
    return (observed - chance) / (1 - chance) if chance < 1 else 0.0


def main() -> None:
    from thinkrl.rewards.judge import JudgeReward
    from thinkrl.tasks import TaskConfig, get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("completions", type=Path, help="a *.completions.jsonl written by thinkrl eval")
    ap.add_argument("--judge", default="smollm2-135m-instruct", help="MODEL folder or embedded name")
    ap.add_argument("--input", default="answer", choices=("answer", "response"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--digits", default="2,1")
    ap.add_argument("--ops", default="*")
    args = ap.parse_args()

    rows = [json.loads(line) for line in args.completions.read_text(encoding="utf-8").splitlines() if line.strip()]
    task = get_task(TaskConfig(name="arithmetic", digits=args.digits, ops=args.ops, template="r1_zero"))
    problems = {p.id: p for p in task.problems("eval")}
    missing = [r["id"] for r in rows if r["id"] not in problems]
    if missing:
        raise SystemExit(f"{args.completions}: problem {missing[0]} is not in the arithmetic task asked for (--digits/--ops)")
    t0 = time.perf_counter()
    judge = JudgeReward(args.judge, input=args.input, batch_size=args.batch_size)
    soft = judge([r["text"] for r in rows], [r["reference"] for r in rows], [{"problem": problems[r["id"]]} for r in rows])
    seconds = time.perf_counter() - t0
    rule = [bool(r["correct"]) for r in rows]
    said = [p >= 0.5 for p in soft]
    agree = sum(a == b for a, b in zip(rule, said))
    lo, hi = wilson(agree, len(rows))
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    print(f"{len(rows)} completions, rule accuracy {sum(rule) / len(rows):.3f}; judge {args.judge} ({args.input}), "
          f"{seconds:.1f} s ({1000 * seconds / len(rows):.1f} ms a completion)")
    print("                 judge yes   judge no")
    c = confusion(rule, said)
    print(f"rule correct   {c['rule_yes/judge_yes']:>10} {c['rule_yes/judge_no']:>10}")
    print(f"rule wrong     {c['rule_no/judge_yes']:>10} {c['rule_no/judge_no']:>10}")
    print(f"agreement {agree / len(rows):.3f} (95% CI {lo:.3f}-{hi:.3f}), Cohen's kappa {kappa(rule, said):.3f}")
    print(f"mean soft reward: rule-correct {mean([p for p, r in zip(soft, rule) if r]):.3f}, "
          f"rule-wrong {mean([p for p, r in zip(soft, rule) if not r]):.3f}")


if __name__ == "__main__":
    main()
