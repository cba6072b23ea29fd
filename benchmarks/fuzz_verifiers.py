"""Fuzz every verifier with generated hostile inputs: count exceptions and calls over the time limit.

    python benchmarks/fuzz_verifiers.py [--n 10000] [--timeout 1.0] [--seed 0] [--only NAME ...]

Each verifier gets --n inputs from a seeded generator (the same inputs for every verifier):
random text, soups of the tokens that make parsers and sympy work hard (`^`, `{`, `\\frac`, `!`,
digits, answer tags), a grammar of known-adversarial shapes at random sizes (power towers,
nested fractions and braces, huge factorials, long digit strings, repeated `\\boxed{` and
`<answer>`, unbalanced braces), near-correct answers, and short units repeated up to 1 MB; many
are wrapped in `<answer>` tags or `\\boxed{}` so extraction hands the hostile part on.

math_equal runs with `timeout=--timeout`, from the main thread (signal timer) and from a worker
thread (helper process); Task.score calls math_equal with its default timeout, which this script
sets to --timeout too. The time limit for every call is --timeout + 0.5 s. Prints a table
(verifier, inputs, exceptions, exceptions caught inside math_equal/canonical, over-limit, max
seconds, mean ms) and each verifier's slowest input; exits 1 if any call raised, any exception was
caught inside (math_equal answers False on one: "0 exceptions" alone could not fail), or any call
went over the limit. "math_equal inner" fuzzes the comparison without that guard.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import traceback

import thinkrl.verify
from thinkrl import verify_process
from thinkrl.tasks.arithmetic import Arithmetic
from thinkrl.tasks.base import Problem
from thinkrl.tasks.countdown import Countdown, check
from thinkrl.tasks.gsm8k import GSM8K
from thinkrl.tasks.knights_knaves import KnightsKnaves, MalformedAnswer, people_share
from thinkrl.verify import canonical, caught_exceptions, extract_answer, math_equal

MEGABYTE = 1 << 20
TOKENS = [
    "^", "^{", "{", "}", "\\frac", "\\frac{", "\\dfrac", "!", "(", ")", "0", "1", "2", "9", "10", "99999",
    "+", "-", "*", "/", "**", "=", ".", ",", "%", "$", " ", "x", "e", "\\pi", "\\sqrt{", "\\binom",
    "\\Gamma(", "\\sum_{i=1}^{", "\\prod", "\\int", "\\infty", "\\left(", "\\right)", "\\text{", "\\\\",
    "\\cdot", "\\times", "\\div", "<answer>", "</answer>", "\\boxed{", "\\fbox{", "\\mod", "\\log",
]  # fmt: skip
KK_TOKENS = ["Alice", "Bob", "knight", "knave", "Knights", "not", ":", ",", " and ", " is a ", "liar", " ",
             "<answer>", "</answer>", "isn't", "truth-teller", "ALICE", "-", "'"]  # fmt: skip
GOLDS = ["5", "-3", "0.25", "1/2", "72", "16", r"\frac{\sqrt{2}}{2}", "x+1", r"10^{10}", "120"]
NEAR = ["16", "(3+5)*2", "2*(5+3)", "16.0", "\\frac{32}{2}", "x = 16", "$16$", "2^4", "4^2", "4!", "1/2",
        "0.5", "\\sqrt{256}", "(5+3)*2 = 16", "3*5+2-1",
        # the forms of issue 20 item 4: digit groups, text between numbers, matrices, equations,
        # presentation, closed forms, braces, chains and negations
        "1 6", "1 000 016", "1\\,6", "1,6", "1 \\text{ and } 6", "\\begin{pmatrix} 1 \\\\ 6 \\end{pmatrix}",
        "\\begin{pmatrix} 6 \\\\ 1 \\end{pmatrix}", "y = 16 - x", "x + y = 16", "\\cfrac{32}{2}",
        "\\left( 16 \\right)", "16\\textnormal{ cm}", "\\frac{49}{3} \\approx 16", "\u20ac16", "\u00a316", "\u00a516",
        "\u20b916", "\\boxed{{16}}", "{{{16}}}", "2^{4}", "2^{4^{2^{2}}}", "\\sqrt[4]{65536}", "256^{1/2}",
        "16^{10^{9}}", "\\sqrt[999]{16}", "4 * 4 = 2 * 8 = 16", "16 is wrong", "16 is not the answer",
        "not 16", "16 or 17"]  # fmt: skip
# Questions passed with the answers (an answer that restates one is not the number it evaluates to).
QUESTIONS = ["What is 2^{4}?", "What is 54 * 8?", "Simplify $\\sqrt{256}$.", "How many are left?", ""]
COUNTDOWN = Problem("countdown", "q", "16", {"numbers": [3, 5, 2], "target": 16})
KNIGHTS = KnightsKnaves(people=3, num_train=0, num_eval=1).problems("eval")[0]
KK_TOKENS += KNIGHTS.meta["names"] * 3 + ["knave"] * 3  # the puzzle's own names: answers the reader can complete


# ----------------------------------------------------------------------------- inputs


def _random_text(rng: random.Random) -> str:
    pool = rng.choice(["printable", "unicode", "math"])
    n = rng.randint(0, 300)
    if pool == "printable":
        return "".join(chr(rng.randint(32, 126)) for _ in range(n))
    if pool == "unicode":
        return "".join(chr(rng.choice([rng.randint(32, 0x2FF), rng.randint(0x370, 0xD7FF)])) for _ in range(n))
    return "".join(rng.choice("0123456789+-*/^()!{}.,= x") for _ in range(n))


def _token_soup(rng: random.Random) -> str:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 80)))


def _size(rng: random.Random) -> int:
    """Mostly small (what reaches sympy), sometimes past every cap, up to a megabyte."""
    return rng.choice([rng.randint(1, 10), rng.randint(10, 200), rng.randint(200, 20_000), rng.randint(1, MEGABYTE)])


def _adversarial(rng: random.Random) -> str:
    kind = rng.randrange(12)
    n, base, d = _size(rng), str(rng.choice([2, 3, 9, 10, 99, 999])), rng.randint(2, 8)
    if kind == 0:  # power tower, plain or braced
        return base + "".join(f"^{base}" for _ in range(d)) if rng.random() < 0.5 else base + "^{" * d + base + "}" * d
    if kind == 1:  # nested powers: ((10^{999})^{999})^{999}
        return "(" * d + base + "".join(f"^{{{base}}})" for _ in range(d))
    if kind == 2:  # nested fractions
        m = min(n, 20_000)
        return "\\frac{1}{" * m + "2" + "}" * m
    if kind == 3:
        return "{" * n + "1" + "}" * n
    if kind == 4:  # factorials, gamma, binomials of big numbers
        big = str(rng.choice([100, 10**4, 10**6, 10**9])) if rng.random() < 0.7 else f"10^{{{rng.randint(2, 20)}}}"
        return rng.choice([f"{big}!", f"({big})!", f"\\Gamma({big})", f"\\binom{{{big}}}{{{big}//2}}", f"{big}!!"])
    if kind == 5:
        return "".join(rng.choice("0123456789") for _ in range(min(n, 200_000)))
    if kind == 6:
        return "\\boxed{" * n
    if kind == 7:
        return "<answer>" * n
    if kind == 8:  # unbalanced braces
        return "".join(rng.choice("{}") for _ in range(min(n, 100_000)))
    if kind == 9:  # big exponents and products
        e = rng.choice(["10^{10}", "99999999", "10^{100}", "9^{9^{9}}", str(rng.randint(10**5, 10**9))])
        return rng.choice([f"{base}^{{{e}}}", f"{base}**{e}", f"{base}^{{{e}}} - {base}^{{{e}}}", f"\\sqrt{{{base}^{{{e}}}}}"])
    if kind == 10:  # sums, products, integrals over huge ranges
        return rng.choice([f"\\sum_{{i=1}}^{{10^{{{d}}}}} i^{{{d}}}", f"\\prod_{{i=1}}^{{10^{{{d}}}}} i", f"\\int_0^1 x^{{x^{{{d}}}}} dx"])
    return "(" * min(n, 1000) + "1" + ")" * min(n, 1000)


def _repeated(rng: random.Random) -> str:
    unit = rng.choice([_token_soup(rng), _random_text(rng), rng.choice(TOKENS)])[:20] or "{"
    n = rng.randint(1, MEGABYTE)
    return (unit * (n // len(unit) + 1))[:n]


def generate(rng: random.Random) -> tuple[str, str]:
    """(text, gold): text is a completion or an answer; gold a reference for math_equal."""
    r = rng.random()
    if r < 0.25:
        text = _random_text(rng)
    elif r < 0.50:
        text = _token_soup(rng)
    elif r < 0.62:
        text = rng.choice(NEAR)
    elif r < 0.90:
        text = _adversarial(rng)
    else:
        text = _repeated(rng)
    wrap = rng.random()
    if wrap < 0.3:
        text = f"<think>{_token_soup(rng)}</think> <answer>{text}</answer>"
    elif wrap < 0.45:
        text = f"so \\boxed{{{text}}}"
    gold = rng.choice(GOLDS) if rng.random() < 0.85 else generate(rng)[0][:2000]
    return text, gold


# ----------------------------------------------------------------------------- verifiers


def question(gold: str) -> str:
    return QUESTIONS[len(gold) % len(QUESTIONS)]


def verifiers(timeout: float) -> dict:
    """Each verifier as fn(text, gold). "math_equal inner" is the comparison without math_equal's
    exception guard (thinkrl.verify._math_equal), so an exception there is counted, not hidden."""
    arithmetic, gsm8k, countdown, knights = Arithmetic(), GSM8K(), Countdown(), KnightsKnaves()
    return {
        "extract_answer": lambda text, gold: extract_answer(text),
        "math_equal (main thread)": lambda text, gold: math_equal(text, gold, timeout=timeout, question=question(gold)),
        "math_equal (worker thread)": lambda text, gold: math_equal(text, gold, timeout=timeout, question=question(gold)),
        "math_equal inner (no guard)": lambda text, gold: thinkrl.verify._math_equal(text, gold, timeout, question(gold)),
        "canonical": lambda text, gold: canonical(text),
        "countdown check": lambda text, gold: check(text, COUNTDOWN.meta["numbers"], COUNTDOWN.meta["target"]),
        "countdown score": lambda text, gold: countdown.score(text, COUNTDOWN),
        "arithmetic score": lambda text, gold: arithmetic.score(text, Problem("a", "q", gold)),
        "gsm8k score": lambda text, gold: gsm8k.score(text, Problem("g", "q", gold)),
        "knights_knaves score": lambda text, gold: (knights.score(text, KNIGHTS), knights.vote_key(text)),
        "knights_knaves share": lambda text, gold: _share(text),
        "knights_knaves roles": lambda text, gold: (knights.score(_with_roles(text), KNIGHTS), _share(_with_roles(text))),
    }


def _with_roles(text: str) -> str:
    """Up to 400 characters of the input with a soup of names and role words spliced in, as an
    answer (seeded by its length, so the other verifiers' inputs stay as they were): what the
    role reader works on."""
    rng = random.Random(len(text))
    soup = " ".join(rng.choice(KK_TOKENS) for _ in range(rng.randint(0, 60)))
    cut = rng.randint(0, len(text))
    return f"<answer>{text[max(0, cut - 200) : cut]}{soup}{text[cut : cut + 200]}</answer>"


def _share(text: str) -> float:
    """The share reward; its MalformedAnswer is the documented failure (counted, scored 0), not a crash."""
    try:
        return people_share(text, KNIGHTS.answer, {"problem": KNIGHTS})
    except MalformedAnswer:
        return 0.0


def run_one(fn, n: int, seed: int, limit: float) -> dict:
    """n calls of fn on the seeded inputs: exceptions, over-limit count, max and total time."""
    rng = random.Random(seed)
    stats = {"exceptions": 0, "over": 0, "max": 0.0, "total": 0.0, "worst": "", "error": ""}
    for _ in range(n):
        text, gold = generate(rng)
        start = time.perf_counter()
        try:
            fn(text, gold)
        except BaseException as e:  # noqa: BLE001 - counting them is the point
            stats["exceptions"] += 1
            stats["error"] = stats["error"] or "".join(traceback.format_exception_only(type(e), e)).strip()
        elapsed = time.perf_counter() - start
        stats["total"] += elapsed
        stats["over"] += elapsed > limit
        if elapsed > stats["max"]:
            stats["max"], stats["worst"] = elapsed, repr(text[:120]) + (f"... ({len(text)} chars)" if len(text) > 120 else "")
    return stats


def run_in_thread(fn, n: int, seed: int, limit: float) -> dict:
    out: list[dict] = []
    worker = threading.Thread(target=lambda: out.append(run_one(fn, n, seed, limit)))
    worker.start()
    worker.join()
    return out[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="inputs per verifier")
    parser.add_argument("--timeout", type=float, default=1.0, help="math_equal timeout (seconds), also for Task.score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run only verifiers whose name contains one of these")
    args = parser.parse_args()
    limit = args.timeout + 0.5
    thinkrl.verify.math_equal.__defaults__ = (args.timeout,)  # what Task.score uses
    math_equal(r"\sqrt{2}", r"\sqrt{2}+0")  # import sympy once, outside the timings
    warm = threading.Thread(target=math_equal, args=("x+1", "1+x"))  # symbolic, so the helper process starts
    warm.start()
    warm.join()

    rows = []
    print(f"{args.n} inputs per verifier, seed {args.seed}, timeout {args.timeout} s, limit {limit} s", flush=True)
    for name, fn in verifiers(args.timeout).items():
        if args.only and not any(word in name for word in args.only):
            continue
        start = time.perf_counter()
        runner = run_in_thread if "worker thread" in name else run_one
        replaced, caught = verify_process._pool.replaced, sum(caught_exceptions().values())
        stats = runner(fn, args.n, args.seed, limit)
        stats["caught"] = sum(caught_exceptions().values()) - caught
        rows.append((name, stats))
        killed = verify_process._pool.replaced - replaced
        print(f"  {name}: {time.perf_counter() - start:.0f} s, helper processes killed: {killed}", file=sys.stderr, flush=True)

    print()
    print("| verifier | inputs | exceptions | caught inside | over-limit | max s | mean ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in rows:
        print(f"| {name} | {args.n} | {s['exceptions']} | {s['caught']} | {s['over']} | {s['max']:.3f} | "
              f"{1000 * s['total'] / args.n:.2f} |")
    print("\nslowest input per verifier (and the first exception, if any):")
    for name, s in rows:
        print(f"  {name}: {s['max']:.3f} s on {s['worst']}" + (f"; raised {s['error']}" if s["error"] else ""))
    if caught_exceptions():
        print(f"exceptions math_equal/canonical caught and answered: {caught_exceptions()}")
    return 1 if any(s["exceptions"] or s["caught"] or s["over"] for _, s in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
