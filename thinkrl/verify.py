"""The answer verifier: find the final answer in a completion and decide if it equals the reference.

Every reward and every eval number goes through these three functions, so they must be cheap on
the common case, never raise, and stay bounded on hostile model output:

- `extract_answer(text)`: the last closed `<answer>...</answer>`, else the last `\\boxed{...}`.
- `math_equal(pred, gold)`: a fast exact path (numbers as `fractions.Fraction`) decides most
  answers without sympy; only what it cannot decide goes to `math_verify` under a timer.
- `canonical(answer)`: the key majority voting groups answers by.

Choices (documented because graders differ):
- Percent: "50%" equals both "50" and "0.5". GSM8K-style references drop the percent sign
  ("50" for "50%"), while a model may also convert it ("0.5"); either reading is accepted when
  exactly one side carries a percent sign. When both carry one, the numbers are compared as is.
  `canonical("50%")` is "50" (the percent sign dropped, as the references write it).
- "1,234" is the number 1234 (thousands separators in groups of three); "1,2" is not a number.
- Decimals are exact: "0.333" is not 1/3 (the fast path compares exact rationals).
- "x = 5" and "5" are equal: an answer of the form `<variable> = <value>` is its value.
- Unit words ("dollars", "cm", ...), `\\text{...}` after a number, currency signs and degree
  signs are dropped: "$5", "5 dollars" and "5" are equal.
- An empty `<answer></answer>` or `\\boxed{}` is no answer (None).
- When the reference is a plain number, the answer must be one too; an expression is not
  evaluated. "50 * 2" is not 100: on the arithmetic task, whose question is the expression, RL
  learned within 20 steps to copy the question into the answer (benchmarks/RESULTS.md). Around
  the number, what is read is the value after the last "=" ("42 * 3 = 126" is 126) and the number
  without words before or after it ("The answer is 18", "12 cookies"). "5 or 7", "2^{10}" and
  "0</answer" are not numbers. Non-numeric references ("\\frac{\\sqrt{3}}{2}", "x+1") still go to
  math_verify, which does evaluate.

Timeouts: every symbolic comparison runs under one deadline (`timeout` seconds, fractional, for
parsing and comparing both answers), in any thread. math_verify's own timeout uses `signal.alarm`
with whole seconds and fails outside the main thread, so we pass it `None` and bound it ourselves:
- The comparison always runs in a helper process (`thinkrl.verify_process`), from the main
  thread too: a signal timer in this process could not stop one long C call (sympy's
  `1000000000!!` ran 13.8 s past a 1 s timer). The helper runs it under a `signal.setitimer`
  timer in its own main thread; the caller waits on a pipe at most `timeout` + a small grace
  and, past it, kills the process and answers False. A thread could not do this: a worker
  thread cannot be interrupted, and sympy's big-integer arithmetic holds the GIL.
  The answer does not depend on the calling thread.
So `math_equal` returns within `timeout` + 0.5 s and never raises (benchmarks/fuzz_verifiers.py
checks it), except that a caller's first symbolic comparison, and the first after a helper was
killed, also wait for a helper process to start (about a second; once per process in practice).
Answers longer than MAX_SYMBOLIC_CHARS never reach sympy at all.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_SYMBOLIC_CHARS = 1000  # longer answers are never handed to sympy
MAX_NORMALISE_CHARS = 10_000  # longer answers are compared as exact strings only
MAX_NUMBER_CHARS = 400  # longest digit string the fast path turns into a Fraction
MAX_EXPONENT = 400  # largest |exponent| accepted in scientific notation ("1e400")

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
# Tokens that matter for brace matching: a \boxed/\fbox opener, an escaped char, or a brace.
_BOX_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\\.|[{}]", re.S)

# Unit words dropped after a number. Single letters only after a space ("5 m", not "5m").
_UNIT_WORDS = (
    "dollars|dollar|usd|euros|euro|cents|cent|pounds|pound|lbs|lb|ounces|ounce|oz|kg|grams|gram|mg|"
    "km|cm|mm|meters|meter|metres|metre|miles|mile|mph|feet|foot|ft|inches|inch|yards|yard|"
    "hours|hour|hrs|hr|minutes|minute|mins|min|seconds|second|secs|sec|days|day|weeks|week|"
    "months|month|years|year|degrees|degree|units|unit|liters|liter|litres|litre|ml|"
    "square|sq|cubic|each"
)
_TRAILING_UNIT = re.compile(rf"(?:(?<=[\d\s])(?:{_UNIT_WORDS})|\s[mgsl])\.?\s*$", re.I)
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_WORDY_TEXT = re.compile(r"^[A-Za-z][A-Za-z\s.]*$")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b|\\(?:left|right)(?![A-Za-z])|\\displaystyle|~")
_DEGREES = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)|\\circ|\\degree|°")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w{1,8}\}?)?\s*=\s*([^=]+)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$")
_STATING_WORDS = {"is", "are", "was", "be", "equals"}  # "... is 18": the words before a stated value
_LATEX_FRAC = re.compile(r"^([+-]?)\\[dt]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))$")


# ----------------------------------------------------------------------------- extraction


def _last_boxed(text: str) -> str | None:
    """Content of the last closed `\\boxed{...}` / `\\fbox{...}` (the one that closes last).

    One left-to-right pass over the relevant tokens with a stack of open braces, so nested
    braces work and hostile text (a megabyte of unclosed `\\boxed{`) stays linear.
    """
    first = text.find("\\boxed")
    fbox = text.find("\\fbox")
    if first < 0 or (0 <= fbox < first):
        first = fbox
    if first < 0:
        return None
    stack: list[int] = []  # for each open brace: content start if it opens a box, else -1
    found: tuple[int, int] | None = None
    for m in _BOX_TOKEN.finditer(text, first):
        tok = m.group()
        if tok == "{":
            stack.append(-1)
        elif tok == "}":
            if stack:
                start = stack.pop()
                if start >= 0:
                    found = (start, m.start())
        elif tok[-1] == "{" and len(tok) > 2:  # \boxed{ or \fbox{
            stack.append(m.end())
    if found is None:
        return None
    return text[found[0] : found[1]].strip() or None


def extract_answer(text: str) -> str | None:
    """The final answer in a completion: the last closed <answer> pair, else the last \\boxed{}.

    An <answer> without a closing tag does not count (a truncated completion has not answered).
    The <answer> that counts is the last one opened before the last </answer>; its content ends
    at the first </answer> after it, so nested tags yield the innermost answer. An empty answer
    (or empty box) is None. Only str.rfind/find and one linear token scan: no backtracking regex.
    """
    if not isinstance(text, str):
        return None
    close = text.rfind(_ANSWER_CLOSE)
    if close >= 0:
        open_ = text.rfind(_ANSWER_OPEN, 0, close)
        if open_ >= 0:
            start = open_ + len(_ANSWER_OPEN)
            end = text.find(_ANSWER_CLOSE, start)
            return text[start:end].strip() or None
    return _last_boxed(text)


# ----------------------------------------------------------------------------- normalisation


def _text_replacement(m: re.Match) -> str:
    """`\\text{cm}` after a value is a unit: drop it. Otherwise keep the text, unwrapped."""
    inner = m.group(1)
    has_value_before = bool(m.string[: m.start()].strip())
    if has_value_before and _WORDY_TEXT.match(inner.strip() or "x"):
        return " "
    return inner


def _drop_text_commands(s: str) -> str:
    """Unwrap `\\text{...}`-like commands, dropping the ones that are units (see above)."""
    for _ in range(4):  # a few rounds handle \text{...} nested inside \mathrm{...}
        new = _TEXT_CMD.sub(_text_replacement, s)
        if new == s:
            break
        s = new
    return s


def normalise(answer: str) -> str:
    """The answer with presentation removed: math delimiters, currency, units, spacing, `x =`.

    Keeps mathematical content untouched (no case folding, no reordering); percent signs stay
    (they change the value, `_parse_number` reads them).
    """
    s = answer.strip()
    if len(s) > MAX_NORMALISE_CHARS:
        return s
    if "\\boxed" in s or "\\fbox" in s:
        s = _last_boxed(s) or s
    s = s.replace("\u2212", "-").replace("\\$", "").replace("$", "").replace("{,}", ",")
    s = re.sub(r"\\[\(\)\[\]]", "", s)
    s = _SPACING.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = _drop_text_commands(s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.strip().rstrip(".").strip()
    m = _ASSIGNMENT.match(s)
    if m:
        s = m.group(1).strip()
    return _drop_trailing_units(s).rstrip(".").strip()


def _drop_trailing_units(s: str) -> str:
    """"5 square meters" -> "5": unit words at the end go when a digit comes before them.

    One short anchored match per round (no open-ended repetition, so no quadratic backtracking).
    """
    for _ in range(3):
        m = _TRAILING_UNIT.search(s)
        if not m or not any(c.isdigit() for c in s[: m.start()]):
            break
        s = s[: m.start()].rstrip()
    return s


def _split_percent(s: str) -> tuple[str, bool]:
    """("50", True) for "50%", "50\\%" or "50 percent"; (s, False) otherwise. No regex: linear."""
    t = s.rstrip()
    for suffix in ("\\%", "%"):
        if t.endswith(suffix):
            return t[: -len(suffix)], True
    if t.lower().endswith("percent") and (len(t) == 7 or not t[-8].isalpha()):
        return t[:-7], True
    return s, False


def _plain_number(s: str) -> Fraction | None:
    """An integer, decimal or scientific-notation literal as an exact Fraction, else None."""
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


def _parse_number(s: str) -> tuple[Fraction, bool] | None:
    """(value, had_percent_sign) when the normalised answer is a plain number, else None.

    Numbers: integers, "1,234", decimals, "1e3", "a/b", "\\frac{a}{b}", "\\frac12", with signs.
    """
    s, percent = _split_percent(s)
    s = re.sub(r"\s+", "", s)
    if s.startswith("+"):
        s = s[1:]
    value = _plain_number(s)
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
    a, b = _plain_number(num.strip()), _plain_number(den.strip())
    if a is None or b is None or b == 0:
        return None
    return -(a / b) if sign == "-" else a / b


def _numbers_equal(p: tuple[Fraction, bool], g: tuple[Fraction, bool]) -> bool:
    """Exact comparison; with a percent sign on one side, both readings of it are accepted."""
    (pv, pp), (gv, gp) = p, g
    if pv == gv:
        return True
    if pp != gp:
        percent_value = pv if pp else gv
        other = gv if pp else pv
        return percent_value / 100 == other
    return False


# ----------------------------------------------------------------------------- symbolic path


def _symbolic_equal_bounded(pred: str, gold: str, timeout: float) -> bool:
    """The symbolic comparison under a `timeout`-second deadline, in any thread (module docstring)."""
    if len(pred) > MAX_SYMBOLIC_CHARS or len(gold) > MAX_SYMBOLIC_CHARS or timeout <= 0:
        return False
    # math_verify's LaTeX reader misreads Python's "**" ("$10**10**10$" parses as 10); use "^".
    pred, gold = pred.replace("**", "^"), gold.replace("**", "^")
    # Always in a helper process, main thread included: the signal timer cannot stop one long C
    # call (sympy's 1000000000!! ran 13.8 s past a 1 s timer, benchmarks/RESULTS.md); killing
    # the helper process can.
    from thinkrl import verify_process  # noqa: PLC0415 - loaded on the first symbolic comparison

    return verify_process.symbolic_equal(pred, gold, timeout)


# ----------------------------------------------------------------------------- public API


def math_equal(pred: str, gold: str, timeout: float = 2.0) -> bool:
    """True if `pred` is mathematically equal to the reference `gold`. Never raises.

    Fast path: normalise both; equal strings are equal; two plain numbers are compared exactly
    (and decided: no sympy). Everything else goes to math_verify under a `timeout`-second timer.
    """
    try:
        return _math_equal(pred, gold, timeout)
    except Exception:  # noqa: BLE001 - the verifier must never take a run down
        return False


def _math_equal(pred: str, gold: str, timeout: float) -> bool:
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    if len(pred) > MAX_NORMALISE_CHARS or len(gold) > MAX_NORMALISE_CHARS:
        return pred.strip() == gold.strip() != ""
    p, g = normalise(pred), normalise(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    gn = _parse_number(g)
    if gn is not None:  # a number is answered by a number, never by an expression (module docstring)
        pn = _stated_number(p)
        return pn is not None and _numbers_equal(pn, gn)
    return _symbolic_equal_bounded(p, g, timeout)


def _stated_number(s: str) -> tuple[Fraction, bool] | None:
    """The number a normalised answer states: itself, else read out of a sentence or an equation.
    One reading for both the verdict (math_equal) and the vote (canonical)."""
    number = _parse_number(s)
    return number if number is not None else _parse_number(_number_in_words(s))


def _number_in_words(s: str) -> str:
    """The value a sentence states: after the last "=", without the words around it.

    "42 * 3 = 126" -> "126", "The answer is 18" and "Answer: 18" -> "18", "12 cookies" -> "12".
    Words before the number go only when the last of them states it ("is", "equals", ...) or ends
    in ":" ("minus 5" and "not 5" stay as they are); "5 or 7" stays as it is. str.split only:
    linear on any input.
    """
    tokens = s.rsplit("=", 1)[-1].split()
    lead = 0
    while lead < len(tokens) and tokens[lead].rstrip(":,.").isalpha():
        lead += 1
    if lead and (tokens[lead - 1].endswith(":") or tokens[lead - 1].lower() in _STATING_WORDS):
        tokens = tokens[lead:]
    while tokens and tokens[-1].rstrip(":,.").isalpha():
        tokens.pop()
    return " ".join(tokens)


def canonical(answer: str) -> str:
    """Majority-vote key: a number as its reduced fraction ("1/2", "-3"), else the normalised text.

    "0.5", "1/2", "\\frac{1}{2}" and "$0.50" share a key, and so do "18", "The answer is 18" and
    "3 * 6 = 18" (read as math_equal reads them); "50%" votes with "50". Whitespace is
    removed from non-numeric keys so "x + 1" and "x+1" vote together.
    """
    try:
        s = normalise(answer)
        number = _stated_number(s)  # "The answer is 18" votes with "18", as math_equal reads it
        if number is not None:
            return str(number[0])
        return re.sub(r"\s+", "", s)
    except Exception:  # noqa: BLE001 - a key must always exist
        return str(answer)
