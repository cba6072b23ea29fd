"""The verifier's false positives and negatives of issue 20 (item 4, item 7), one table per class.

Each class has answers that must be accepted and near misses that must not: a false positive
is a reward a model can learn to farm, a false negative a right answer scored wrong. The mutation
check (benchmarks/mutation_check.py) runs this file against plausible bugs in thinkrl/verify*.py.
"""

from __future__ import annotations

import logging

import pytest

import thinkrl.verify as verify
from thinkrl.tasks.arithmetic import Arithmetic
from thinkrl.tasks.base import Problem
from thinkrl.verify import canonical, caught_exceptions, math_equal
from thinkrl.verify_numbers import closed_form, restates, squeeze


def check(pred, gold, expected, question=None):
    assert math_equal(pred, gold, question=question) is expected, (pred, gold, question)


# ---------------------------------------------------------------- spaces inside a number

SPACES = [
    ("1 000 000", "1000000", True),
    (r"1\,234", "1234", True),
    (r"1\ 000", "1000", True),
    ("12 345.5", "12345.5", True),
    ("- 5", "-5", True),
    ("12 34", "1234", False),  # two numbers, not one
    ("1 2", "12", False),
    ("3 5", "35", False),
    ("1 2345", "12345", False),
    ("1 000 00", "100000", False),
    (r"1\,23", "123", False),
    ("32, 349", "32349", False),  # a list (Math-Verify's tests reject it too)
    (r"49,\!479", "49479", True),  # a thousands comma with a negative thin space
    (r"11,\! 111,\! 100", "11111100", True),
    ("The answer is 12 34", "1234", False),
]


@pytest.mark.parametrize("pred, gold, expected", SPACES)
def test_spaces_join_only_digit_groups(pred, gold, expected):
    check(pred, gold, expected)


def test_squeeze():
    assert squeeze("1 000 000") == "1000000" and squeeze("- 1 / 2") == "-1/2"
    assert squeeze("12 34") is None and squeeze("0.123 456") is None


# ---------------------------------------------------------------- thousands separators, chains, negations

DIGIT_GROUPS = [
    ("1,234", "1234", True),
    ("12,345,678", "12345678", True),
    ("1,23", "123", False),  # a two-digit group is no thousands group
    ("12,34", "1234", False),
    ("1,2345", "12345", False),
    ("1,234,56", "123456", False),
]


@pytest.mark.parametrize("pred, gold, expected", DIGIT_GROUPS)
def test_thousands_groups_have_three_digits(pred, gold, expected):
    check(pred, gold, expected)
    assert (canonical(pred) == gold) is expected


CHAINS = [
    ("54 * 8 = 50 * 8 + 4 * 8 = 432", "432", True),  # the value after the LAST "="
    ("a = 6 * 7 = 42", "42", True),
    (r"\frac{22}{7} \approx 3.14", "3.14", True),  # an \approx chain ending in the number
    (r"x \approx 2.5", "2.5", True),
    ("\\pi \u2248 3.14", "3.14", True),
    (r"\frac{1}{3} \approx 0.333", "1/3", True),  # the exact value, when the approximation agrees with it
    (r"\frac{1}{3} \approx 0.333", "0.333", True),
    (r"x = \frac{1}{3} \approx 0.33", "1/3", True),
    (r"5 \approx 7", "5", False),  # one chain, two different answers: only the last counts
    (r"x = 1/3 \approx 1.3", "1/3", False),
    ("54 * 8 = 432 = 50 * 8 + 4 * 8", "432", False),  # ends in an expression
    (r"\frac{22}{7} \approx 3.14", "22/7", True),  # 22/7 rounds to 3.14: the chain states both
    (r"\frac{22}{7} \approx 3.15", "22/7", False),  # it does not round to 3.15: only 3.15 is stated
    ("432 = 54 * 8", "432", False),
]


@pytest.mark.parametrize("pred, gold, expected", CHAINS)
def test_chains_read_the_last_value(pred, gold, expected):
    check(pred, gold, expected)


def test_chain_vote_key_is_the_last_value():
    assert canonical("54 * 8 = 50 * 8 + 4 * 8 = 432") == "432"


NEGATED = [
    ("18 is not the answer", "18"),
    ("18 is wrong", "18"),
    ("18 is incorrect", "18"),
    ("18 or 19", "18"),
    ("18 might be right", "18"),
    ("18, but I am not sure", "18"),
    ("not 18", "18"),
    ("The answer is not 18", "18"),
    ("Wrong: 18", "18"),
    ("x = 18 is wrong", "18"),
]


@pytest.mark.parametrize("pred, gold", NEGATED)
def test_a_clause_about_the_number_is_not_the_number(pred, gold):
    check(pred, gold, False)
    assert canonical(pred) != gold


@pytest.mark.parametrize("pred", ["18 cookies", "18 dollars per day", "The answer is 18", "Answer: 18", "18."])
def test_a_count_of_something_is_the_number(pred):
    check(pred, "18", True)


# ---------------------------------------------------------------- \text{ and } between numbers

TEXT_BETWEEN = [
    (r"3 \text{ and } 5", "35", False),  # two numbers, not 35
    ("35", r"3 \text{ and } 5", False),
    (r"3\text{ and }5", "35", False),
    (r"1\text{ or }2", "12", False),
    (r"5\text{ and }3", r"3 \text{ and } 5", True),  # both numbers, math_verify compares them as a set
    (r"3 \text{ and } 5", r"3 \text{ and } 5", True),
    (r"5\text{ cm}", "5", True),  # a unit: a value before it, no digit after it
    (r"5 \text{ cm}^2", "5", True),
    (r"\text{5 cm}", "5", True),
]


@pytest.mark.parametrize("pred, gold, expected", TEXT_BETWEEN)
def test_text_between_numbers_is_not_a_unit(pred, gold, expected):
    check(pred, gold, expected)


def test_text_between_numbers_keeps_its_words():
    assert "and" in verify.normalise(r"3 \text{ and } 5") and "cm" not in verify.normalise(r"5 \text{ cm}")


# ---------------------------------------------------------------- the \\ row break of a matrix

COLUMN_12, COLUMN_21 = r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}"
MATRICES = [
    (COLUMN_12, COLUMN_21, False),  # entries in another order
    (r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", r"\begin{bmatrix} 3 & 4 \\ 1 & 2 \end{bmatrix}", False),
    (COLUMN_12, r"\begin{pmatrix} 1 & 2 \end{pmatrix}", False),  # a column is no row
    (COLUMN_12, r"\begin{pmatrix}1\\2\end{pmatrix}", True),
    (COLUMN_12, r"\begin{pmatrix} 1 \\\, 2 \end{pmatrix}", True),  # a thin space after the break
    (r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", True),
]


@pytest.mark.parametrize("pred, gold, expected", MATRICES)
def test_row_break_is_kept(pred, gold, expected):
    check(pred, gold, expected)


def test_normalise_keeps_the_row_break():
    assert r"1 \\ 2" in verify.normalise(COLUMN_12)
    assert verify.normalise(r"1\,000 \\[2pt]").startswith("1 000 \\\\")


# ---------------------------------------------------------------- y = ... against an equation

EQUATIONS = [
    ("y = 5 - x", "x + y = 5", True),  # stripped to "5 - x" it could never equal an equation
    ("y = 3+2x", "y = 2x+3", True),
    ("2x+3", "y = 2x + 3", True),
    ("x + y = 5", "x + y = 5", True),
    ("x = 5", "5", True),  # a numeric reference still takes "x = 5" as 5 ...
    ("5", "y = 5", True),  # ... and an assignment of a number is that number
    ("y = 5 + x", "x + y = 5", False),
    ("x = 3+2x", "y = 2x+3", False),
    ("x = 6", "5", False),
]


@pytest.mark.parametrize("pred, gold, expected", EQUATIONS)
def test_assignment_is_kept_against_an_equation(pred, gold, expected):
    check(pred, gold, expected)


# ---------------------------------------------------------------- presentation a grader accepts

FORMS = [
    (r"\cfrac{3}{4}", "0.75", True),
    (r"\cfrac{3}{4}", "0.7", False),
    (r"\left( 5 \right)", "5", True),
    ("(5)", "5", True),
    ("(-5)", "-5", True),
    (r"\left( 5 \right)", "-5", False),
    ("(1, 2)", "12", False),
    ("(5)(2)", "10", False),
    (r"5\textnormal{ cm}", "5", True),
    (r"\textnormal{5}", "5", True),
    (r"5\textnormal{ cm}", "6", False),
    ("\u20ac5", "5", True),  # €
    ("\u00a312.50", "12.5", True),  # £
    ("\u00a5100", "100", True),  # ¥
    ("\u20b9 2,000", "2000", True),  # ₹
    ("5 \u20ac", "5", True),
    (r"\pounds 3", "3", True),
    (r"\text{\pounds}3", "3", True),
    (r"\euro 7", "7", True),
    ("\u20ac5", "6", False),
    ("\u00a312.50", "1250", False),
]


@pytest.mark.parametrize("pred, gold, expected", FORMS)
def test_presentation_forms(pred, gold, expected):
    check(pred, gold, expected)


PERCENT = [
    ("50%", "50", True),  # a percent sign on one side: either reading
    ("50%", "0.5", True),
    ("0.5%", "50%", False),  # on both sides: compared as they stand
    ("50%", "0.5%", False),
]


@pytest.mark.parametrize("pred, gold, expected", PERCENT)
def test_percent(pred, gold, expected):
    check(pred, gold, expected)


# ---------------------------------------------------------------- exact closed forms vs the question

CLOSED_FORMS = [
    ("2^{10}", "1024", None, True),
    ("2^{10}", "1024", "How many subsets has a set of 10 elements?", True),
    ("2**10", "1024", None, True),
    (r"\sqrt{16}", "4", None, True),
    (r"\sqrt{16}", "4", "What is the side of a square of area 16?", True),
    (r"\frac{3}{4}", "0.75", "What is 3 divided by 4?", True),
    (r"\sqrt[3]{27}", "3", None, True),
    ("4^{1/2}", "2", None, True),
    ("2^{-2}", "0.25", None, True),
    (r"\frac{\sqrt{9}}{2}", "1.5", None, True),
    (r"-\sqrt{4}", "-2", None, True),
    ("The answer is 2^{10}", "1024", None, True),
    # restating the question's expression is copying it, not answering (the reward hack in RESULTS.md)
    ("2^{10}", "1024", "What is $2^{10}$?", False),
    ("2**10", "1024", "Compute 2**10.", False),
    ("2^{10}", "1024", "Compute 2**10.", False),
    (r"\sqrt{16}", "4", r"Simplify $\sqrt{16}$.", False),
    (r"\frac{3}{4}", "0.75", r"Write $\frac{3}{4}$ as a decimal.", False),
    ("3/4", "0.75", r"Write $\dfrac{3}{4}$ as a decimal.", False),
    ("12/4", "3", "What is 12 / 4?", False),
    # not equal, or not a closed form of a rational
    ("2^{10}", "1000", None, False),
    (r"\sqrt{2}", "1.414", None, False),
    (r"\sqrt{15}", "4", None, False),
    (r"\sqrt{17}", "4", None, False),  # a root that is not exact is not rounded
    (r"\sqrt[3]{30}", "3", None, False),
    ("2^3^2", "64", None, False),
    ("2^{10000}", "0", None, False),
    ("50 * 2", "100", None, False),  # a product is an expression, never a number
    ("54 * 8", "432", "What is 54 * 8?", False),
]


@pytest.mark.parametrize("pred, gold, question, expected", CLOSED_FORMS)
def test_closed_forms(pred, gold, question, expected):
    check(pred, gold, expected, question)


def test_closed_form_reader_is_bounded():
    assert closed_form("2^{10}") == (1024, False)
    assert closed_form("10^{10^{10}}") is None  # too many bits: not evaluated
    assert closed_form("{" * 500 + "1" + "}" * 500) is None
    assert closed_form(r"\sqrt[100]{2}") is None and closed_form("0^{-1}") is None
    assert restates("2^{10}", "What is $2^{10}$?") and not restates("2^{1}", "What is 2^{10}?")


def test_task_score_passes_the_question():
    """Task.score hands the question over, so a copied power scores 0 and the evaluated one 1."""
    task, problem = Arithmetic(), Problem("p", "What is 2^{10}?", "1024")
    assert task.score("<answer>2^{10}</answer>", problem) == 0.0
    assert task.score("<answer>1024</answer>", problem) == 1.0
    assert task.score("<answer>2^{10}</answer>", Problem("p", "How many subsets has a 10-set?", "1024")) == 1.0


# ---------------------------------------------------------------- redundant braces in \boxed{}

BRACES = [
    (r"\boxed{{5}}", "5", True),
    (r"\boxed{{{42}}}", "42", True),
    (r"\boxed{ {0.5} }", "1/2", True),
    ("{1,000}", "1000", True),
    (r"\boxed{{5}}", "6", False),
    ("{1}{2}", "12", False),
    ("{5", "5", False),
]


@pytest.mark.parametrize("pred, gold, expected", BRACES)
def test_redundant_braces(pred, gold, expected):
    check(pred, gold, expected)


# ---------------------------------------------------------------- exceptions are counted, not hidden


def test_caught_exceptions_are_counted_and_logged(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    before = caught_exceptions().get("math_equal: ZeroDivisionError", 0)
    monkeypatch.setattr(verify.numbers, "stated", broken)
    with caplog.at_level(logging.WARNING, logger="thinkrl.verify"):
        assert math_equal("5", "5.0") is False
    assert caught_exceptions()["math_equal: ZeroDivisionError"] == before + 1
    assert "planted" in caplog.text
    with pytest.raises(ZeroDivisionError):
        verify._math_equal("5", "5.0", 1.0)  # the inner comparison hides nothing
