"""Mutation check: plant one plausible bug at a time and see whether that module's tests catch it.

    python benchmarks/mutation_check.py [--only NAME ...] [--list] [--old-tests]

Each mutant is a text substitution in one file of thinkrl/ (the text must occur exactly once).
For each, thinkrl/ is copied to a temporary folder, the substitution applied there, and only the
tests mapped to that module (TESTS below) run with the copy first on PYTHONPATH (`pytest -x`,
so a kill stops at the first failing test). A mutant is killed when the tests fail, survives when
they pass. Before the mutants, the unmutated copy runs every mapped test file once: they must pass
(else the check means nothing) and `thinkrl` must import from the copy. Prints a table (mutant,
file, verdict, seconds, first failing test) and exits 1 if a mutant survives.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The tests that cover each module, run for its mutants (fastest first: -x stops at the first failure).
VERIFY_TESTS = ["tests/test_verify_classes.py", "tests/test_verify.py"]
ALGO_TESTS = ["tests/algos/test_algo_invariants.py", "tests/algos/test_algos.py"]
TESTS = {
    "thinkrl/verify.py": VERIFY_TESTS,
    "thinkrl/verify_numbers.py": VERIFY_TESTS,
    "thinkrl/verify_closed.py": VERIFY_TESTS,
    "thinkrl/algos/losses.py": ALGO_TESTS,
    "thinkrl/algos/advantages.py": ALGO_TESTS,
    "thinkrl/evaluate.py": ["tests/test_pass_at_k.py", "tests/test_evaluate.py"],
}

# The test files that existed before this check (issue 20): `--old-tests` runs only these, to show
# what the suite let through.
OLD_TESTS = {"tests/test_verify.py", "tests/algos/test_algos.py", "tests/test_evaluate.py"}


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str


MUTANTS = [
    # losses
    Mutant("entropy bonus sign flipped", "thinkrl/algos/losses.py",
           "token_loss = token_loss - entropy_coef * entropy", "token_loss = token_loss + entropy_coef * entropy"),
    Mutant("clip bounds swapped (low <-> high)", "thinkrl/algos/losses.py",
           "ratio.clamp(1.0 - clip_low, 1.0 + clip_high)", "ratio.clamp(1.0 - clip_high, 1.0 + clip_low)"),
    Mutant("optimistic min instead of pessimistic max", "thinkrl/algos/losses.py",
           "pg = torch.maximum(-adv * ratio,", "pg = torch.minimum(-adv * ratio,"),
    Mutant("KL estimator sign (d = logp - ref)", "thinkrl/algos/losses.py",
           "    d = ref_logp - logp\n", "    d = logp - ref_logp\n"),
    Mutant("KL term subtracted from the loss", "thinkrl/algos/losses.py",
           "token_loss = token_loss + kl_coef * kl", "token_loss = token_loss - kl_coef * kl"),
    Mutant("dual clip bound as max", "thinkrl/algos/losses.py",
           "torch.minimum(pg, -adv * dual_clip)", "torch.maximum(pg, -adv * dual_clip)"),
    Mutant("token_mean over all tokens, mask ignored in the count", "thinkrl/algos/losses.py",
           "(normalizer if normalizer is not None else mask.sum().clamp(min=1.0))",
           "(normalizer if normalizer is not None else mask.numel())"),
    # advantages
    Mutant("group std normalisation off", "thinkrl/algos/advantages.py",
           "adv = adv / (r.std(dim=1, keepdim=True) + STD_EPS)", "adv = adv"),
    Mutant("group mean over the wrong axis", "thinkrl/algos/advantages.py",
           "baseline = r.mean(dim=1, keepdim=True)", "baseline = r.mean(dim=0, keepdim=True)"),
    Mutant("group std without Bessel's correction", "thinkrl/algos/advantages.py",
           "r.std(dim=1, keepdim=True)", "r.std(dim=1, keepdim=True, unbiased=False)"),
    Mutant("RLOO baseline includes the sample itself", "thinkrl/algos/advantages.py",
           "(r.sum(dim=1, keepdim=True) - r) / (group_size - 1)", "r.sum(dim=1, keepdim=True) / group_size"),
    # pass@k
    Mutant("pass@k: n - c <= k counted as certain", "thinkrl/evaluate.py",
           "if n - c < k:", "if n - c <= k:"),
    Mutant("pass@k: C(n, c) in the denominator", "thinkrl/evaluate.py",
           "math.comb(n - c, k) / math.comb(n, k)", "math.comb(n - c, k) / math.comb(n, c)"),
    Mutant("pass@k: k samples with replacement", "thinkrl/evaluate.py",
           "return 1.0 - math.comb(n - c, k) / math.comb(n, k)", "return 1.0 - ((n - c) / n) ** k"),
    # verifier
    Mutant("first '=' of a chain instead of the last", "thinkrl/verify_numbers.py",
           "s.rfind(sep) + len(sep)", "s.find(sep) + len(sep)"),
    Mutant("two-digit thousands group accepted", "thinkrl/verify_numbers.py",
           r"(?:,\d{3})+(?:\.\d*)?$", r"(?:,\d{2,3})+(?:\.\d*)?$"),
    Mutant("trailing words dropped whatever they say", "thinkrl/verify_numbers.py",
           "if tokens.pop().rstrip(\":,.\").lower() in _CLAUSE_WORDS:", "if tokens.pop() and False:"),
    Mutant("leading negation ignored", "thinkrl/verify_numbers.py",
           "for t in tokens[:lead]):", "for t in tokens[:0]):"),
    Mutant("spaces removed without checking digit groups", "thinkrl/verify_numbers.py",
           "    if _DIGIT_SPACE_DIGIT.search(s):\n        return None\n", ""),
    Mutant("inexact root rounded down", "thinkrl/verify_closed.py",
           "return x if x**n == a else None", "return x"),
    Mutant("matrix row break removed as a thin space", "thinkrl/verify.py",
           's = _SPACING.sub(lambda m: m.group(1) or " ", s)', 's = _SPACING.sub(" ", s)'),
    Mutant("\\text{ and } between numbers dropped as a unit", "thinkrl/verify.py",
           "and last_digit < m.end() and", "and"),
    Mutant("'y =' stripped against an equation", "thinkrl/verify.py",
           "p = normalise(pred, assignment=not equation)", "p = normalise(pred)"),
    Mutant("closed form restating the question accepted", "thinkrl/verify.py",
           "if question and not numbers.is_plain(text) and numbers.restates(text, question):",
           "if False:"),
    Mutant("approximation accepted whatever its value", "thinkrl/verify_numbers.py",
           " or abs(exact[1][0] - approx[1][0]) > Fraction(1, 2 * 10 ** len(decimals))", ""),
    Mutant("percent read both ways when both sides carry one", "thinkrl/verify_numbers.py",
           "    if pp != gp:\n", "    if True:\n"),
]


def copy_package(dest: Path) -> None:
    shutil.copytree(ROOT / "thinkrl", dest / "thinkrl", ignore=shutil.ignore_patterns("__pycache__"))


def apply(dest: Path, mutant: Mutant) -> None:
    path = dest / mutant.file
    text = path.read_text(encoding="utf-8")
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutant {mutant.name!r}: its text occurs {count} times in {mutant.file}, not once")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def run_tests(dest: Path, tests: list[str]) -> tuple[bool, str, float]:
    """(passed, first failing test or '', seconds) of pytest on `tests` with the copy first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(dest), env_path()]), PYTHONDONTWRITEBYTECODE="1", PYTHONSAFEPATH="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    failed = re.search(r"^FAILED (\S+)", proc.stdout, re.M) or re.search(r"^ERROR (\S+)", proc.stdout, re.M)
    return proc.returncode == 0, failed.group(1) if failed else "", time.perf_counter() - start


def env_path() -> str:
    return os.environ.get("PYTHONPATH", "")


def imports_from(dest: Path) -> bool:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(dest), env_path()]), PYTHONSAFEPATH="1")
    out = subprocess.run([sys.executable, "-c", "import thinkrl; print(thinkrl.__file__)"], cwd=ROOT, env=env,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.strip().startswith(str(dest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only mutants whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--old-tests", action="store_true", help="run only the test files that predate this check")
    args = parser.parse_args()
    if args.old_tests:
        for module, files in TESTS.items():
            TESTS[module] = [t for t in files if t in OLD_TESTS]
    mutants = [m for m in MUTANTS if not args.only or any(w in m.name for w in args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.file}: {m.name}")
        return 0
    with tempfile.TemporaryDirectory(prefix="thinkrl-mutant-") as tmp:
        base = Path(tmp) / "base"
        copy_package(base)
        for m in mutants:  # every substitution must apply once, before anything runs
            if (ROOT / m.file).read_text(encoding="utf-8").count(m.old) != 1:
                raise SystemExit(f"mutant {m.name!r}: its text does not occur exactly once in {m.file}")
        if not imports_from(base):
            raise SystemExit("thinkrl does not import from the copied package: the check would test the original")
        files = sorted({t for m in mutants for t in TESTS[m.file]})
        ok, failed, seconds = run_tests(base, files)
        print(f"unmutated: {len(files)} test files {'pass' if ok else 'FAIL at ' + failed} ({seconds:.0f} s)", flush=True)
        if not ok:
            return 1
        rows = []
        for i, m in enumerate(mutants):
            dest = Path(tmp) / f"m{i}"
            copy_package(dest)
            apply(dest, m)
            passed, failed, seconds = run_tests(dest, TESTS[m.file])
            rows.append((m, "survived" if passed else "killed", seconds, failed))
            print(f"  {m.name}: {rows[-1][1]} ({seconds:.0f} s) {failed}", file=sys.stderr, flush=True)
            shutil.rmtree(dest)
    print("\n| mutant | file | verdict | s | killed by |")
    print("|---|---|---|---:|---|")
    for m, verdict, seconds, failed in rows:
        print(f"| {m.name} | {m.file.removeprefix('thinkrl/')} | {verdict} | {seconds:.0f} | {failed.split('::')[-1][:70]} |")
    survivors = [m.name for m, verdict, _, _ in rows if verdict == "survived"]
    print(f"\n{len(rows) - len(survivors)} of {len(rows)} mutants killed" + (f"; survived: {survivors}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
