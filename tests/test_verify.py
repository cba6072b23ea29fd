"""The verifier: extraction, equivalence, voting keys, and staying bounded on hostile input."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thinkrl.verify import canonical, extract_answer, math_equal

SLACK = 1.0  # seconds on top of the timeout: a loaded 2-core CI box


@pytest.fixture(scope="module", autouse=True)
def warm_symbolic_path():
    """Import sympy/math_verify and build their caches once, so timings measure the comparison."""
    math_equal(r"\sqrt{2}", r"\sqrt{2}+0")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


# ----------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>hm</think> <answer>42</answer>", "42"),
        ("<answer>  7 </answer>", "7"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # last pair wins
        ("<answer>1</answer> then <answer>2", "1"),  # an unclosed <answer> does not count
        ("<answer>2", None),
        ("<answer></answer>", None),  # empty answer is no answer
        ("<answer>   </answer>", None),
        ("<answer><answer>5</answer></answer>", "5"),  # nested: the innermost
        ("</answer>5<answer>", None),  # wrong order is no pair
        (r"so \boxed{5}", "5"),
        (r"\boxed{1} or maybe \boxed{2}", "2"),  # last boxed wins
        (r"\boxed{\frac{3}{4}}", r"\frac{3}{4}"),  # nested braces
        (r"\boxed {x^{2}}", "x^{2}"),
        (r"\fbox{9}", "9"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces are not structure
        (r"\boxed{3} and \boxed{4", "3"),  # an unclosed box does not count
        (r"\boxed{}", None),
        (r"<answer>7</answer> \boxed{8}", "7"),  # <answer> beats boxed
        (r"\boxed{8} <answer>7", "8"),  # unclosed answer: boxed is the fallback
        (r"<answer>\boxed{9}</answer>", r"\boxed{9}"),  # content as is; math_equal unwraps
        ("no answer here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<answer>" * 150_000,
        "</answer>" * 100_000,
        "\\boxed{" * 150_000,
        "\\boxed{" + "}" * 1_000_000,
        "{" * 1_000_000,
        "<answer>" + "a" * 1_000_000 + "</answer>",
        "\\boxed" + " " * 1_000_000,
        "\\" * 1_000_000,
    ],
)
def test_extract_answer_is_fast_on_a_megabyte_of_hostile_text(text):
    _, elapsed = timed(extract_answer, text)
    assert elapsed < 1.5


# ----------------------------------------------------------------------------- equivalence

EQUAL = [
    ("1/2", "0.5"),
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac12", "1/2"),
    (r"\tfrac{1}{2}", r"\frac12"),
    ("1,000", "1000"),
    ("1,234,567.5", "1234567.5"),
    ("70{,}000", "70000"),
    (r"1\,234", "1234"),
    ("$5", "5"),
    (r"\$5", "5"),
    ("$5$", "5"),
    ("5 dollars", "5"),
    (r"5\text{ dollars}", "5"),
    (r"\text{5 cm}", "5"),
    ("5cm", "5"),
    ("12 square meters", "12"),
    ("5.0", "5"),
    ("5.", "5"),
    ("+5", "5"),
    ("-3", "-3.00"),
    ("x=5", "5"),
    ("x = 5", "5"),
    ("5", "y = 5"),
    (r"\boxed{\frac{3}{4}}", "0.75"),
    (r"-\frac{1}{2}", "-0.5"),
    (r"\frac{-1}{2}", "-1/2"),
    (r"50\%", "50"),  # documented: a percent sign may be dropped ...
    ("50%", "0.5"),  # ... or mean /100
    ("50 percent", "50"),
    ("336", r"336^\circ"),
    ("90°", "90"),
    ("\u22125", "-5"),  # unicode minus
    ("1e3", "1000"),
    (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"),
    (r"\frac{1}{\sqrt{3}}", r"\frac{\sqrt{3}}{3}"),
    ("2x+3", "3+2x"),
    ("x^2-1", "(x-1)(x+1)"),
    (r"\pi/2", r"\frac{\pi}{2}"),
    (r"3\sqrt{2}", r"\sqrt{18}"),
    (r"\{1,2\}", r"\{2,1\}"),
    ("x+1", "1+x"),  # a non-numeric reference: math_verify evaluates
    # a number stated in a sentence or an equation: the value after the last "=", words dropped
    ("42 * 3 = 126", "126"),
    ("The answer is 18", "18"),
    ("Answer: 18", "18"),
    ("12 cookies", "12"),
    ("18 dollars per day", "18"),
    ("$5 each", "5"),
]

NOT_EQUAL = [
    ("6", "5"),
    ("0.333", "1/3"),  # decimals are exact
    ("1,2", "12"),  # not a thousands separator
    ("50%", "5"),
    ("1/2", "2"),
    ("-5", "5"),
    (r"\sqrt{2}", "1.414"),
    ("x+1", "x+2"),
    (r"\frac{1}{0}", "0"),
    ("", "5"),
    ("5", ""),
    ("  ", "  "),
    ("five", "5"),
    ("10**10**10", "10**10**10+1"),
    # a numeric reference takes a number, never an expression: RL learned to copy the question
    ("50 * 2", "100"),
    ("54*6", "324"),
    ("= 3 * 81", "243"),
    ("2+3", "5"),
    # closed forms ("2**10", "\sqrt{4}") count unless they restate the question: tests/test_verify_classes.py
    ("0</answer", "0"),  # "<answer>0</answer</answer>" extracts this
    ("5 or 7", "7"),
    ("minus 5", "5"),
    ("not 5", "5"),
]


@pytest.mark.parametrize("pred, gold", EQUAL)
def test_equal_forms(pred, gold):
    assert math_equal(pred, gold)


@pytest.mark.parametrize("pred, gold", NOT_EQUAL)
def test_unequal_forms(pred, gold):
    assert not math_equal(pred, gold)


def test_number_fast_path_needs_no_sympy(monkeypatch):
    """Two plain numbers are decided exactly without the symbolic path, even when they differ."""
    import thinkrl.verify as verify_mod

    def no_symbolic(*args, **kwargs):
        raise AssertionError("the symbolic path was used for plain numbers")

    monkeypatch.setattr(verify_mod, "_symbolic_equal_bounded", no_symbolic)
    assert math_equal("1,000", "1000") and math_equal("0.5", r"\frac{1}{2}")
    assert not math_equal("7", "8")
    assert not math_equal("50 * 2", "100") and math_equal("50 * 2 = 100", "100")  # numeric reference: no sympy


def test_non_strings_are_false():
    assert not math_equal(None, "5")  # type: ignore[arg-type]
    assert not math_equal("5", 5)  # type: ignore[arg-type]


# References that are not plain numbers, so the comparison reaches sympy (a numeric reference
# takes only a number and never gets there).
PATHOLOGICAL = [
    ("9^9^9^9^9", r"\sqrt{25}"),
    ("9^{9^{9^{9^{9}}}}", "9^{9^{9^{9^{8}}}}"),
    ("10**10**10", r"\sqrt{25}"),
    ("(10^{10})!", r"\sqrt{25}"),
    (r"\binom{10^{10}}{5000000}", r"\sqrt{49}"),
    ("2^{2^{2^{2^{2^{2^{2}}}}}}", r"\sqrt{4}"),
    (r"10^{10^{10}} + x", "5 + x"),
    (r"\frac{1}{" * 90 + "2" + "}" * 90, r"\sqrt{4}"),  # 90-deep, under the symbolic length limit
    (r"\frac{1}{" * 100 + "2" + "}" * 100, r"\sqrt{9}"),  # 100-deep, over it
    (r"\sqrt{" * 100 + "2" + "}" * 100, r"\sqrt{4}"),
    ("1" * 5000, "1" * 5001),
    ("1e99999", r"\sqrt{25}"),
    ("x" * 1_000_000, r"\sqrt{25}"),
    ("5", "y" * 1_000_000),
    ("(" * 500 + "1" + ")" * 500, r"\sqrt{1}"),
    ("^" + " " * 9000 + "x", r"\sqrt{25}"),
    ("a" + " " * 9000 + "b", r"\sqrt{25}"),
    ("5 " + "m " * 3000 + "x", r"\sqrt{25}"),
    ("\\text{" * 3000, r"\sqrt{25}"),
]


@pytest.mark.parametrize("pred, gold", PATHOLOGICAL)
def test_pathological_inputs_return_within_the_timeout(pred, gold):
    result, elapsed = timed(math_equal, pred, gold, timeout=0.5)
    assert isinstance(result, bool)
    assert elapsed < 0.5 + SLACK


def in_thread(fn, *args, **kwargs):
    """fn(*args) in a fresh thread (no signal timer there): (result, seconds)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(timed(fn, *args, **kwargs)))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return out[0]


def test_works_from_a_worker_thread():
    """Outside the main thread the symbolic path runs in a helper process: correct and bounded."""
    in_thread(math_equal, "x+1", "1+x")  # start the helper (once per process)
    assert in_thread(math_equal, r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}")[0]
    assert in_thread(math_equal, "1/2", "0.5")[0]
    for hostile in ["9^9^9^9^9", "(10^{10})!", r"\Gamma(10^{10})", "((10^{999})^{999})^{999}"]:
        result, elapsed = in_thread(math_equal, hostile, r"\sqrt{25}", timeout=0.5)
        assert result is False and elapsed < 0.5 + SLACK, (hostile, elapsed)


def test_thread_and_main_thread_agree():
    """Same sympy, same deadline: the calling thread does not change the answer."""
    pairs = [("2^{2^{2}}", r"\sqrt{256}"), ("3!", r"\sqrt{36}"), (r"\binom{5}{2}", r"\sqrt{100}"),
             ("x^2-1", "(x-1)(x+1)"), ("2^{10}", r"\sqrt{10^6}")]
    for pred, gold in pairs:
        assert in_thread(math_equal, pred, gold)[0] == math_equal(pred, gold) == (pred != "2^{10}")


def test_runaway_in_big_integer_code_does_not_freeze_other_threads():
    """sympy computes 10^(10^10) in C holding the GIL; a worker thread could never be stopped.

    The main-thread run first fills sympy's cache so that a second run reaches that C code
    quickly (this froze the whole process when the comparison ran in a thread).
    """
    math_equal("10^{10^{10^{10}}}", r"\sqrt{25}", timeout=0.5)
    for _ in range(2):
        result, elapsed = in_thread(math_equal, "10^{10^{10^{10}}}", r"\sqrt{25}", timeout=0.5)
        assert result is False and elapsed < 0.5 + SLACK


def test_timer_is_restored():
    """After a timed symbolic comparison no alarm is left running and the old handler is back."""
    import signal

    before = signal.getsignal(signal.SIGALRM)
    math_equal("(10^{10})!", r"\sqrt{25}", timeout=0.3)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) is before


# ----------------------------------------------------------------------------- voting keys


def test_canonical_groups_equal_numbers():
    assert len({canonical(a) for a in ["0.5", "1/2", r"\frac{1}{2}", r"\dfrac12", "$0.50", "x = 0.5"]}) == 1
    assert canonical("1,000") == canonical("1000.0") == "1000"
    assert canonical("50%") == "50"
    assert canonical("-0") == "0"
    assert canonical(r"\boxed{7}") == "7"
    assert canonical("The answer is 18") == canonical("3 * 6 = 18") == canonical("18 cookies") == "18"


def test_canonical_keeps_other_answers_apart():
    assert canonical("x + 1") == canonical("x+1")
    assert canonical("x+1") != canonical("x+2")
    assert canonical("1,2") != canonical("12")
    assert canonical("50 * 2") == "50*2" != canonical("100")  # an expression is not evaluated for a vote either


# ----------------------------------------------------------------------------- properties

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAGGY = st.text(alphabet=st.sampled_from(list("<>/answer{}\\boxedfbx 0123456789$%.,=")), max_size=200)


@FAST
@given(st.one_of(st.text(max_size=300), TAGGY))
def test_extract_answer_never_raises(text):
    result = extract_answer(text)
    assert result is None or (isinstance(result, str) and result and result in text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), TAGGY), st.sampled_from(["5", "1/2", r"\frac{\sqrt{2}}{2}", "x+1"]))
def test_math_equal_never_raises_and_stays_bounded(pred, gold):
    result, elapsed = timed(math_equal, pred, gold, timeout=0.5)
    assert isinstance(result, bool)
    assert elapsed < 0.5 + SLACK
    canonical(pred)


@FAST
@given(st.fractions(max_denominator=10**6).filter(lambda f: abs(f) < 10**12))
def test_fraction_forms_agree(value: Fraction):
    text = f"{value.numerator}/{value.denominator}"
    latex = rf"\frac{{{value.numerator}}}{{{value.denominator}}}"
    assert math_equal(text, latex)
    assert canonical(text) == canonical(latex)
    assert not math_equal(text, str(value + 1))


@FAST
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_thousands_separators(n: int):
    assert math_equal(f"{n:,}", str(n))
    assert canonical(f"{n:,}") == str(n)


def test_rescore_finds_the_copied_questions_a_stored_eval_counted(tmp_path):
    """benchmarks/rescore.py: stored verdicts against the current verifier, row by row."""
    import json

    from bench_modules import load_benchmark

    rows = [("50 * 2", "100", True), ("100", "100", True), ("99", "100", False), (None, "7", False)]
    path = tmp_path / "r.completions.jsonl"
    path.write_text("".join(json.dumps({"extracted": e, "reference": g, "correct": c, "tokens": 10}) + "\n"
                            for e, g, c in rows))
    r = load_benchmark("rescore").rescore(path)
    assert (r["stored_accuracy"], r["accuracy_now"]) == (0.5, 0.25)
    assert (r["right_to_wrong"], r["wrong_to_right"], r["example_right_to_wrong"]) == (1, 0, "50 * 2")
