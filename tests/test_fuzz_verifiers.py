"""Fuzzing every verifier: no input makes one raise or run past its time bound.

Inputs mix random text, soups of the tokens that make parsers and sympy work hard (powers,
braces, \\frac, factorials, digits, answer tags), and short units repeated up to a megabyte.
benchmarks/fuzz_verifiers.py runs the same checks on 10,000+ inputs per verifier.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench_modules import load_benchmark

import thinkrl.verify
from thinkrl.tasks.arithmetic import Arithmetic
from thinkrl.tasks.base import Problem
from thinkrl.tasks.countdown import Countdown, check, evaluate_equation
from thinkrl.tasks.gsm8k import GSM8K
from thinkrl.tasks.knights_knaves import KnightsKnaves, MalformedAnswer, parse_roles, people_share
from thinkrl.verify import canonical, caught_exceptions, extract_answer, math_equal

FUZZ = FUZZ_MODULE = load_benchmark("fuzz_verifiers")  # the benchmark module
TIMEOUT = 0.5  # math_equal's timeout in these tests
SLACK = 1.0  # seconds on top of a bound: a loaded 2-core CI box
TEXT_BOUND = 1.0  # extraction and the Countdown checker are linear: 1 MB takes milliseconds
MEGABYTE, TOKENS = FUZZ.MEGABYTE, FUZZ.TOKENS  # the benchmark's hostile vocabulary


def repeat_to(unit: str, size: int) -> str:
    """`unit` repeated, cut to `size` characters: cheap megabyte inputs for hypothesis."""
    return (unit * (size // len(unit) + 1))[:size]


token_soup = st.lists(st.sampled_from(TOKENS), max_size=80).map("".join)
huge = st.builds(repeat_to, st.one_of(st.text(min_size=1, max_size=12), token_soup.filter(bool)),
                 st.integers(1, MEGABYTE))  # fmt: skip
texts = st.one_of(st.text(max_size=300), token_soup, huge)
# Wrapped in answer tags or a box, so that the hostile part is what extraction hands on.
completions = st.one_of(texts, texts.map(lambda t: f"<answer>{t}</answer>"), texts.map(lambda t: f"\\boxed{{{t}}}"))
GOLDS = ["5", "-3", "0.25", "1/2", "72", r"\frac{\sqrt{2}}{2}", "x+1", r"10^{10}", "120", "x + y = 5"]
near = st.sampled_from(FUZZ.NEAR)
questions = st.sampled_from(FUZZ.QUESTIONS)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def short_default_timeout():
    """Task.score uses math_equal's default timeout (2 s): shortened here to keep the file fast.

    Also imports sympy/math_verify once, so timings measure the comparison, not the import.
    """
    import thinkrl.verify

    math_equal(r"\sqrt{2}", r"\sqrt{2}+0")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(thinkrl.verify.math_equal, "__defaults__", (TIMEOUT,))
        yield


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


@SETTINGS
@given(completions)
def test_extract_answer(text):
    result, elapsed = timed(extract_answer, text)
    assert result is None or (isinstance(result, str) and result and result in text)
    assert elapsed < TEXT_BOUND


@SETTINGS
@given(st.one_of(texts, near), st.one_of(st.sampled_from(GOLDS), texts), questions)
def test_math_equal(pred, gold, question):
    caught = sum(caught_exceptions().values())
    result, elapsed = timed(math_equal, pred, gold, timeout=TIMEOUT, question=question)
    assert isinstance(result, bool)
    assert elapsed < TIMEOUT + SLACK
    assert isinstance(canonical(pred), str)
    assert sum(caught_exceptions().values()) == caught, caught_exceptions()  # "never raises" hid nothing


@SETTINGS
@given(st.one_of(texts, near), st.one_of(st.sampled_from(GOLDS), texts), questions)
def test_math_equal_inner_comparison(pred, gold, question):
    """The comparison without math_equal's exception guard: an exception fails here."""
    result, elapsed = timed(thinkrl.verify._math_equal, pred, gold, TIMEOUT, question)
    assert isinstance(result, bool)
    assert elapsed < TIMEOUT + SLACK


@SETTINGS
@given(completions)
def test_countdown_checker(text):
    task, problem = Countdown(), Problem("p", "q", "16", {"numbers": [3, 5, 2], "target": 16})
    start = time.perf_counter()
    assert check(text, [3, 5, 2], 16) in (True, False)
    evaluate_equation(text)
    assert task.score(text, problem) in (0.0, 1.0)
    assert isinstance(task.vote_key(text), str)
    assert time.perf_counter() - start < TEXT_BOUND


@SETTINGS
@given(completions, st.sampled_from([(Arithmetic(), "432"), (GSM8K(), "18")]))
def test_math_task_score(text, task_and_answer):
    task, answer = task_and_answer
    score, elapsed = timed(task.score, text, Problem("p", "q", answer))
    assert score in (0.0, 1.0)
    assert elapsed < TIMEOUT + SLACK


KK_PROBLEM = FUZZ_MODULE.KNIGHTS  # a 3-person puzzle
role_soup = st.lists(st.sampled_from(FUZZ_MODULE.KK_TOKENS + TOKENS[:20]), max_size=80).map("".join)
role_answers = st.one_of(completions, role_soup.map(lambda t: f"<answer>{t}</answer>"))


@SETTINGS
@given(role_answers)
def test_knights_knaves_verifier(text):
    """Score, vote key and the share reward: a verdict or a MalformedAnswer, never anything else."""
    task, start = KnightsKnaves(), time.perf_counter()
    assert task.score(text, KK_PROBLEM) in (0.0, 1.0)
    assert isinstance(task.vote_key(text), str)
    try:
        share = people_share(text, KK_PROBLEM.answer, {"problem": KK_PROBLEM})
        assert 0.0 <= share <= 1.0
    except MalformedAnswer as e:
        assert e.kind in ("no answer", "too long", "two roles", "missing role")
    try:
        assert set(parse_roles(text[:3000], KK_PROBLEM.meta["names"])) == set(KK_PROBLEM.meta["names"])
    except MalformedAnswer:
        pass
    assert time.perf_counter() - start < TEXT_BOUND


ADVERSARIAL = [
    "2^2^2^2^2^2^2",
    "10^{10^{10^{10}}}",
    "((10^{999})^{999})^{999}",
    "\\frac{" * 10_000 + "1" + "}" * 10_000,
    "\\frac{1}{" * 120 + "2" + "}" * 120,  # just under the 1000-character symbolic limit
    "{" * 10_000 + "1" + "}" * 10_000,
    "1000000!",
    "(10^{10})!",
    "9" * 100_000,
    "\\boxed{" * 100_000,
    "<answer>" * 100_000,
    "{{{}" * 100_000,
    "}" * 1000 + "{" * 1000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: t[:24])
def test_adversarial_inputs_in_every_verifier(text):
    """Each named input, bare and as a tagged answer, through every verifier: bounded, no raise."""
    problem = Problem("p", "q", "16", {"numbers": [3, 5, 2], "target": 16})
    for completion in (text, f"<answer>{text}</answer>"):
        assert timed(extract_answer, completion)[1] < TEXT_BOUND
        assert timed(check, completion, [3, 5, 2], 16)[1] < TEXT_BOUND
        for gold in ("16", r"\sqrt{256}"):  # a number (fast path) and the same value symbolically
            result, elapsed = timed(math_equal, text, gold, timeout=TIMEOUT)
            assert result is False and elapsed < TIMEOUT + SLACK
        for task in (Countdown(), Arithmetic(), GSM8K()):
            score, elapsed = timed(task.score, completion, problem)
            assert score == 0.0 and elapsed < TIMEOUT + SLACK
        score, elapsed = timed(KnightsKnaves().score, completion, KK_PROBLEM)
        assert score == 0.0 and elapsed < TEXT_BOUND
