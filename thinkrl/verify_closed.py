"""Exact closed forms of rational numbers: "2^{10}", "\\sqrt{16}", "\\frac{\\sqrt{9}}{2}", "4^{1/2}".

`evaluate(text)` reads one (no whitespace, no percent sign: `thinkrl.verify_numbers.closed_form`
strips those) into an exact Fraction, or None. Grammar: [sign] power [/ power], power = atom
[^ atom], atom = number | {closed} | (closed) | \\sqrt{closed} | \\sqrt[n]{closed} |
\\frac{closed}{closed}. No sum or product: "50 * 2" is an expression, never a closed form here
(thinkrl.verify: a numeric reference is not answered by evaluating the question). A root or a
fractional power that is not rational ("\\sqrt{2}") is None: it cannot equal a plain number.
Bounded on any input: at most MAX_CHARS characters, MAX_DEPTH levels, MAX_BITS bits a value.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_CHARS = 400  # longer text is not read
MAX_BITS = 4096  # a closed form whose value needs more bits is not evaluated
MAX_ROOT = 16  # largest root index (\\sqrt[16]{...}, x^{1/16})
MAX_DEPTH = 16  # nesting of braces, roots and fractions


def evaluate(text: str) -> Fraction | None:
    """The exact value of the closed form `text`, else None."""
    if len(text) > MAX_CHARS:
        return None
    text = text.replace("**", "^").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    try:
        value, end = _ClosedForm(text).expr(0, 0)
    except _NotClosed:
        return None
    return value if end == len(text) else None


class _NotClosed(Exception):
    """Internal: the text is not a closed form (caught in closed_form, never escapes)."""


_NUMBER_AT = re.compile(r"\d+(?:\.\d*)?|\.\d+")


class _ClosedForm:
    """A recursive-descent reader of closed forms; every method takes and returns a position."""

    def __init__(self, text: str):
        self.text = text

    def expr(self, i: int, depth: int) -> tuple[Fraction, int]:
        sign = 1
        if i < len(self.text) and self.text[i] in "+-":
            sign, i = (-1 if self.text[i] == "-" else 1), i + 1
        value, i = self.power(i, depth)
        if i < len(self.text) and self.text[i] == "/":
            den, i = self.power(i + 1, depth)
            if den == 0:
                raise _NotClosed
            value /= den
        return sign * value, i

    def power(self, i: int, depth: int) -> tuple[Fraction, int]:
        base, i = self.atom(i, depth)
        if i < len(self.text) and self.text[i] == "^":
            exponent, i = self.atom(i + 1, depth)
            base = _power(base, exponent)
        return base, i

    def atom(self, i: int, depth: int) -> tuple[Fraction, int]:
        if depth > MAX_DEPTH or i >= len(self.text):
            raise _NotClosed
        t = self.text
        m = _NUMBER_AT.match(t, i)
        if m:
            return Fraction(m.group()), m.end()
        if t[i] in "{(":
            value, j = self.expr(i + 1, depth + 1)
            if j >= len(t) or t[j] != ("}" if t[i] == "{" else ")"):
                raise _NotClosed
            return value, j + 1
        if t.startswith("\\sqrt", i):
            i, index = i + 5, 2
            if i < len(t) and t[i] == "[":
                close = t.find("]", i)
                if close < 0 or not t[i + 1 : close].isdigit():
                    raise _NotClosed
                index, i = int(t[i + 1 : close]), close + 1
            radicand, i = self.atom(i, depth + 1)
            return _root(radicand, index), i
        if t.startswith("\\frac", i):
            num, i = self.atom(i + 5, depth + 1)
            den, i = self.atom(i, depth + 1)
            if den == 0:
                raise _NotClosed
            return num / den, i
        raise _NotClosed


def _bits(x: Fraction) -> int:
    return max(x.numerator.bit_length(), x.denominator.bit_length())


def _iroot(a: int, n: int) -> int | None:
    """The exact n-th root of a >= 0 if it is an integer, else None (integer Newton iteration)."""
    if a < 2:
        return a
    x = 1 << (a.bit_length() // n + 1)
    while True:
        y = ((n - 1) * x + a // x ** (n - 1)) // n
        if y >= x:
            break
        x = y
    return x if x**n == a else None


def _root(x: Fraction, n: int) -> Fraction:
    if not 2 <= n <= MAX_ROOT or x < 0:
        raise _NotClosed
    num, den = _iroot(x.numerator, n), _iroot(x.denominator, n)
    if num is None or den is None:
        raise _NotClosed
    return Fraction(num, den)


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    """base ** exponent when it is rational and small enough; a fractional exponent p/q is a q-th root."""
    if exponent.denominator != 1:
        base = _root(base, exponent.denominator)
        exponent = Fraction(exponent.numerator)
    e = exponent.numerator
    if base == 0 and e < 0:
        raise _NotClosed
    if base not in (0, 1, -1) and abs(e) * _bits(base) > MAX_BITS:
        raise _NotClosed
    return base ** e if base not in (1, -1) else base ** (e % 2)
