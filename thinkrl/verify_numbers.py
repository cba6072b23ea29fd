"""Reading the number a normalised answer states, exactly, for `thinkrl.verify.math_equal`.

Pure functions on short strings (the caller caps their length), linear or bounded on any input:

- `parse_number(s)`: a plain number ("1,234", "1 000 000", "0.5", "1e3", "3/4", "\\frac34",
  "(5)", "50%") as (Fraction, had_percent_sign), else None.
- `closed_form(s)`: an exact closed form of a rational number built from numbers with powers,
  roots and fractions ("2^{10}", "\\sqrt{16}", "\\frac{\\sqrt{9}}{2}", "4^{1/2}"), else None.
  No sum, product or other operator: "50 * 2" is an expression, never a number here.
- `stated(s)`: the text and value an answer states: itself, else the value read out of a
  sentence or a chain ("The answer is 18", "54 * 8 = 50 * 8 + 4 * 8 = 432", "\\pi \\approx 3.14").
- `restates(text, question)`: whether an answer that is not a plain number copies an expression
  of the question (RL learned to answer "50 * 2" for "What is 50 * 2?", benchmarks/RESULTS.md).

Why each rule (the false positives and negatives of issue 20, item 4):
- Spaces inside a number only join digit groups of three ("1 000 000", "1\\,234"): "12 34" is
  two numbers, not 1234.
- Trailing words are dropped only when they name what was counted ("12 cookies", "18 dollars per
  day"): a clause about the number ("18 is not the answer", "18 is wrong", "18 or 19") is not an
  answer of 18. Leading words go only when the last one states the value ("The answer is 18").
"""

from __future__ import annotations

import re
from fractions import Fraction

from thinkrl import verify_closed

MAX_NUMBER_CHARS = 400  # longest digit string turned into a Fraction
MAX_EXPONENT = 400  # largest |exponent| accepted in scientific notation ("1e400")

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$")
_LATEX_FRAC = re.compile(r"^([+-]?)\\frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))$")
_SPACED_GROUPS = re.compile(r"(?<![\d.,])\d{1,3}(?:\s\d{3})+(?![\d,])")  # "1 000 000"
_DIGIT_SPACE_DIGIT = re.compile(r"[\d,]\s+\d")  # "12 34", and "32, 349" (a list, not 32349)
_WHITESPACE = re.compile(r"\s+")
_SIMPLE_FRAC = re.compile(r"\\frac\s*(\{[^{}]*\}|\d)\s*(\{[^{}]*\}|\d)")
_CHAIN = ("=", "\\approx", "\u2248")  # "a = b = c", "x \approx 3.14": the value is after the last one
_STATING_WORDS = {"is", "are", "was", "be", "equals"}  # "... is 18": the words before a stated value
# Words that make what follows or precedes a number a clause about it, not a count of something:
# verbs, negations, judgements, alternatives and hedges ("18 is wrong", "18 or 19", "not 18").
_CLAUSE_WORDS = {
    "is", "are", "was", "were", "be", "been", "being", "am", "seems", "seem", "looks", "appears",
    "might", "may", "could", "would", "should", "will", "can", "cannot", "must", "does", "do",
    "did", "has", "have", "had", "not", "no", "never", "nor", "neither", "none", "wrong",
    "incorrect", "false", "invalid", "impossible", "unlikely", "or", "but", "maybe", "perhaps",
    "probably", "possibly", "either", "unless", "except", "if", "than", "instead", "rather",
    "approximately", "about", "roughly", "nearly", "almost", "around",
}  # fmt: skip
_NEGATIONS = {"not", "no", "never", "nor", "neither", "none", "wrong", "incorrect", "false", "isn't", "aren't"}


# ----------------------------------------------------------------------------- plain numbers


def squeeze(s: str) -> str | None:
    """`s` without whitespace, where whitespace inside a number only separates digit groups of
    three ("1 000 000" -> "1000000"); None when it separates other digits ("12 34") or follows a
    comma before a digit ("32, 349" is two numbers)."""
    s = _SPACED_GROUPS.sub(lambda m: _WHITESPACE.sub("", m.group()), s)
    if _DIGIT_SPACE_DIGIT.search(s):
        return None
    return _WHITESPACE.sub("", s)


def plain_number(s: str) -> Fraction | None:
    """An integer, decimal or scientific-notation literal (no spaces) as an exact Fraction, else None."""
    if len(s) > MAX_NUMBER_CHARS:
        return None
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    m = _DECIMAL.match(s)
    if not m or not (m.group(2) or m.group(3)):
        return None
    sign, whole, frac, exp = m.groups()
    value = Fraction(int((whole or "0") + (frac or "")), 10 ** len(frac or ""))
    if exp:
        e = int(exp)
        if abs(e) > MAX_EXPONENT:
            return None
        value *= Fraction(10) ** e
    return -value if sign == "-" else value


def split_percent(s: str) -> tuple[str, bool]:
    """("50", True) for "50%", "50\\%" or "50 percent"; (s, False) otherwise. No regex: linear."""
    t = s.rstrip()
    for suffix in ("\\%", "%"):
        if t.endswith(suffix):
            return t[: -len(suffix)], True
    if t.lower().endswith("percent") and (len(t) == 7 or not t[-8].isalpha()):
        return t[:-7], True
    return s, False


def _unwrap_parens(s: str) -> str:
    """"(5)" -> "5": one pair of parentheses around what has none inside (`\\left( 5 \\right)`)."""
    if len(s) > 2 and s[0] == "(" and s[-1] == ")" and "(" not in s[1:-1] and ")" not in s[1:-1]:
        return s[1:-1]
    return s


def parse_number(s: str) -> tuple[Fraction, bool] | None:
    """(value, had_percent_sign) when `s` is a plain number, else None.

    Numbers: integers, "1,234", "1 234", decimals, "1e3", "a/b", "\\frac{a}{b}", "\\frac12", with
    signs, optionally in one pair of parentheses.
    """
    s, percent = split_percent(s)
    squeezed = squeeze(s)
    if squeezed is None:
        return None
    s = _unwrap_parens(squeezed)
    if s.startswith("+"):
        s = s[1:]
    value = plain_number(s)
    if value is None:
        value = _fraction(s)
    return None if value is None else (value, percent)


def _fraction(s: str) -> Fraction | None:
    """`a/b` or `\\frac{a}{b}` with plain-number parts, exactly; None otherwise or if b is 0."""
    m = _LATEX_FRAC.match(s)
    if m:
        sign, num, den = m.group(1), m.group(2) or m.group(3), m.group(4) or m.group(5)
    elif s.count("/") == 1:
        sign, (num, den) = "", s.split("/")
    else:
        return None
    a, b = plain_number(num.strip()), plain_number(den.strip())
    if a is None or b is None or b == 0:
        return None
    return -(a / b) if sign == "-" else a / b


def numbers_equal(p: tuple[Fraction, bool], g: tuple[Fraction, bool]) -> bool:
    """Exact comparison; with a percent sign on one side, both readings of it are accepted."""
    (pv, pp), (gv, gp) = p, g
    if pv == gv:
        return True
    if pp != gp:
        percent_value = pv if pp else gv
        other = gv if pp else pv
        return percent_value / 100 == other
    return False


# ----------------------------------------------------------------------------- closed forms


def closed_form(s: str) -> tuple[Fraction, bool] | None:
    """(value, had_percent_sign) of an exact closed form of a rational number ("2^{10}",
    "\\sqrt{16}"; thinkrl.verify_closed has the grammar), else None."""
    s, percent = split_percent(s)
    squeezed = squeeze(s)
    if squeezed is None or len(squeezed) > MAX_NUMBER_CHARS:
        return None
    value = verify_closed.evaluate(squeezed)
    return None if value is None else (value, percent)


# ----------------------------------------------------------------------------- sentences, chains


def number_in_words(s: str) -> str:
    """The value a sentence states: after the last "=" or "\\approx", without the words around it.

    "42 * 3 = 126" -> "126", "The answer is 18" and "Answer: 18" -> "18", "12 cookies" -> "12".
    Words before the number go only when the last of them states it ("is", "equals", ...) or ends
    in ":" ("minus 5" and "not 5" stay as they are), and never when one of them negates it; words
    after it go only when none of them makes a clause ("18 is wrong", "18 or 19": "" is returned).
    str.split only: linear on any input.
    """
    cut = max((s.rfind(sep) + len(sep) if sep in s else 0) for sep in _CHAIN)
    tokens = s[cut:].split()
    lead = 0
    while lead < len(tokens) and tokens[lead].rstrip(":,.").isalpha():
        lead += 1
    if any(t.rstrip(":,.").lower() in _NEGATIONS for t in tokens[:lead]):
        return ""
    if lead and (tokens[lead - 1].endswith(":") or tokens[lead - 1].lower() in _STATING_WORDS):
        tokens = tokens[lead:]
    while tokens and tokens[-1].rstrip(":,.").isalpha():
        if tokens.pop().rstrip(":,.").lower() in _CLAUSE_WORDS:
            return ""
    return " ".join(tokens)


def stated(s: str) -> tuple[str, tuple[Fraction, bool]] | None:
    """(text, value) of the number a normalised answer states: itself, else read out of a
    sentence or a chain; a plain number or an exact closed form. None if it states none."""
    for text in (s, number_in_words(s)):
        value = parse_number(text) or closed_form(text)
        if value is not None:
            return text, value
    return None


def approximated(s: str) -> tuple[str, tuple[Fraction, bool]] | None:
    """The exact value an approximation chain starts from, when the approximation agrees with it
    to the decimals it is written with: "\\frac{1}{3} \\approx 0.333" states 1/3 as well as 0.333.
    "5 \\approx 7" states only 7 (one chain must not offer two different answers)."""
    cut = min((s.find(sep), sep) for sep in _CHAIN[1:] if sep in s) if any(sep in s for sep in _CHAIN[1:]) else None
    if cut is None:
        return None
    exact, approx = stated(s[: cut[0]]), stated(s[cut[0] + len(cut[1]) :])
    if exact is None or approx is None or exact[1][1] != approx[1][1]:
        return None
    decimals = approx[0].partition(".")[2]
    if not decimals.isdigit() or abs(exact[1][0] - approx[1][0]) > Fraction(1, 2 * 10 ** len(decimals)):
        return None
    return exact


# ----------------------------------------------------------------------------- copied questions


def _compact(s: str) -> str:
    """Text with the presentation that does not change an expression removed, for comparing."""
    for old, new in (("**", "^"), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
                     ("\\cdot", "*"), ("\\times", "*"), ("$", "")):  # fmt: skip
        s = s.replace(old, new)
    s = _SIMPLE_FRAC.sub(r"\1/\2", s)  # "\frac{3}{4}" is written "3/4" too
    return "".join(c for c in s if c not in "{} \t\n\\,")


def is_plain(text: str) -> bool:
    """True when `text` is a decimal literal (braces and percent aside): nothing a question could hold
    as an expression."""
    squeezed = squeeze(split_percent(text)[0].replace("{", "").replace("}", ""))
    return squeezed is not None and plain_number(squeezed.lstrip("+")) is not None


def restates(text: str, question: str) -> bool:
    """True when the answer `text` (a fraction, power or root) occurs in the question as written there,
    not as part of a longer number: "2^{10}" in "What is $2^{10}$?", "12/4" in "What is 12 / 4?"."""
    key, where = _compact(text).lstrip("+"), _compact(question)
    if not key:
        return False
    start = where.find(key)
    while start >= 0:
        end = start + len(key)
        if not (start and where[start - 1].isdigit()) and not (end < len(where) and where[end].isdigit()):
            return True
        start = where.find(key, start + 1)
    return False

