"""The answer verifier: find the final answer in a completion and decide if it equals the reference.

Every reward and every eval number goes through these three functions, so they must be cheap on
the common case, never raise, and stay bounded on hostile model output:

- `extract_answer(text)`: the last closed `<answer>...</answer>`, else the last `\\boxed{...}`.
- `math_equal(pred, gold)`: a fast exact path (numbers as `fractions.Fraction`) decides most
  answers without sympy; only what it cannot decide goes to `math_verify` under a timer.
- `canonical(answer)`: the key majority voting groups answers by.

Reading numbers is `thinkrl.verify_numbers` (and `thinkrl.verify_closed` for "2^{10}"); the
symbolic path is `thinkrl.verify_process`. `math_equal` and `canonical` never raise: an exception
inside is answered False (or the raw text), counted in `caught_exceptions()` and logged, so the
fuzz (benchmarks/fuzz_verifiers.py) can fail on one; `_math_equal` is the unguarded comparison.

Choices (documented because graders differ):
- Percent: "50%" equals both "50" and "0.5". GSM8K-style references drop the percent sign
  ("50" for "50%"), while a model may also convert it ("0.5"); either reading is accepted when
  exactly one side carries a percent sign. When both carry one, the numbers are compared as is.
  `canonical("50%")` is "50" (the percent sign dropped, as the references write it).
- "1,234" is the number 1234 (thousands separators in groups of three); "1,2" is not a number.
- Decimals are exact: "0.333" is not 1/3 (the fast path compares exact rationals).
- "1 000 000" is 1000000 (spaces between digit groups of three); "12 34" is not a number.
- "x = 5" and "5" are equal: an answer of the form `<variable> = <value>` is its value, except
  when the reference is itself an equation ("x + y = 5" takes "y = 5 - x" as it stands).
- Unit words ("dollars", "cm", ...), `\\text{...}` / `\\textnormal{...}` after a number and no digit
  after it, currency signs ($, €, £, ¥, ₹, ...) and degree signs are dropped: "$5", "€5",
  "5 dollars" and "5" are equal; "3 \\text{ and } 5" is two numbers, not 35.
- The row break `\\\\` of a matrix is kept (only spacing commands such as `\\,` and `\\ ` go).
- `\\dfrac`, `\\tfrac` and `\\cfrac` are `\\frac`; `\\left( 5 \\right)` and `\\boxed{{5}}` are 5.
- An empty `<answer></answer>` or `\\boxed{}` is no answer (None).
- When the reference is a plain number, the answer must be one too, or an exact closed form of
  one (powers, roots, fractions: "2^{10}", "\\sqrt{16}", "\\frac{3}{4}") that does not restate an
  expression of the question (`question=`, which Task.score passes). Other expressions are not
  evaluated: "50 * 2" is not 100. On the arithmetic task, whose question is the expression, RL
  learned within 20 steps to copy the question into the answer (benchmarks/RESULTS.md). Around
  the number, what is read is the value after the last "=" or "\\approx" ("54 * 8 = 50 * 8 +
  4 * 8 = 432" is 432) and the number without words before or after it ("The answer is 18", "12
  cookies"); words that make a clause about it do not go ("18 is wrong", "18 is not the answer",
  "5 or 7" are not numbers; thinkrl.verify_numbers). "0</answer" is not a number. Non-numeric references ("\\frac{\\sqrt{3}}{2}", "x+1") still go to
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

import logging
import re
from collections import Counter

from thinkrl import verify_numbers as numbers

MAX_SYMBOLIC_CHARS = 1000  # longer answers are never handed to sympy
MAX_NORMALISE_CHARS = 10_000  # longer answers are compared as exact strings only

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
# Tokens that matter for brace matching: a \boxed/\fbox opener, an escaped char, or a brace.
_BOX_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\\.|[{}]", re.S)

# Unit words dropped after a number. Single letters only after a space ("5 m", not "5m").
_UNIT_WORDS = (
    "dollars|dollar|usd|euros|euro|cents|cent|pounds|pound|lbs|lb|ounces|ounce|oz|kg|grams|gram|mg|"
    "rupees|rupee|yen|yuan|"
    "km|cm|mm|meters|meter|metres|metre|miles|mile|mph|feet|foot|ft|inches|inch|yards|yard|"
    "hours|hour|hrs|hr|minutes|minute|mins|min|seconds|second|secs|sec|days|day|weeks|week|"
    "months|month|years|year|degrees|degree|units|unit|liters|liter|litres|litre|ml|"
    "square|sq|cubic|each"
)
_TRAILING_UNIT = re.compile(rf"(?:(?<=[\d\s])(?:{_UNIT_WORDS})|\s[mgsl])\.?\s*$", re.I)
# \text{...}-like commands; group 2: a square or cube after one ("\text{ cm}^2" is a unit)
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textrm|textit|textnormal|textup|textsf|texttt|mathrm|mathbf|mathit|mathsf|mathnormal|"
    r"mbox|hbox|operatorname)\s*\{([^{}]*)\}(\s*\^\s*(?:\{\s*[23]\s*\}|[23]))?"
)
_WORDY_TEXT = re.compile(r"^[A-Za-z][A-Za-z\s.]*$")
# Spacing commands become a space; group 1, the row break "\\\\" of a matrix, stays (it is no
# thin space "\ ": removing it would let entries in another order compare equal).
_SPACING = re.compile(r"(\\\\)|\\[,;:! ]|\\q?quad\b|\\(?:left|right)(?![A-Za-z])|\\displaystyle|~")
_DELIMITERS = re.compile(r"(\\\\)|\\[\(\)\[\]]")  # \( \) \[ \], again not the row break
_DEGREES = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)|\\circ|\\degree|°")
_CURRENCY = re.compile(
    r"\\?\$|[\u20ac\u00a3\u00a5\u20b9\u20a9\u20bd\u00a2]"  # $ € £ ¥ ₹ ₩ ₽ ¢
    r"|\\(?:euro|pounds|yen|textsterling|texteuro|textyen|textdollar|rupee)(?![A-Za-z])"
)
_FRACTIONS = re.compile(r"\\[dtc]frac(?![A-Za-z])")  # \dfrac, \tfrac, \cfrac: all \frac
_THOUSANDS_COMMA = re.compile(r"\{,\}|,\\!\s*")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w{1,8}\}?)?\s*=\s*([^=]+)$")
_caught: Counter = Counter()  # exceptions math_equal/canonical turned into an answer (caught_exceptions)
_log = logging.getLogger(__name__)


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


def _drop_text_commands(s: str) -> str:
    """Unwrap `\\text{...}`-like commands; drop the ones that are units.

    A wordy `\\text{cm}` (or `\\text{ cm}^2`) is a unit when a value comes before it and no digit
    after it: `3 \\text{ and } 5` keeps its "and" (two numbers, not 35). One pass per round.
    """
    for _ in range(4):  # a few rounds handle \text{...} nested inside \mathrm{...}
        first_value = len(s) - len(s.lstrip())
        last_digit = max(s.rfind(d) for d in "0123456789")

        def replace(m: re.Match) -> str:
            inner = m.group(1)
            is_unit = m.start() > first_value and last_digit < m.end() and _WORDY_TEXT.match(inner.strip() or "x")
            return " " if is_unit else inner + (m.group(2) or "")

        new = _TEXT_CMD.sub(replace, s)
        if new == s:
            break
        s = new
    return s


def _unwrap_braces(s: str) -> str:
    """"{5}" -> "5", "{{5}}" -> "5": braces around the whole answer (as in `\\boxed{{5}}`) are no
    structure. A few rounds at most; "{1}{2}" is left alone (its first brace closes early)."""
    for _ in range(8):
        if len(s) < 2 or s[0] != "{" or s[-1] != "}":
            break
        depth = 0
        for i, c in enumerate(s):
            depth += (c == "{") - (c == "}")
            if depth == 0:
                break
        if depth or i != len(s) - 1 or s[i - 1] == "\\":  # closes before the end, or an escaped "\\}"
            break
        s = s[1:-1].strip()
    return s


def normalise(answer: str, assignment: bool = True) -> str:
    """The answer with presentation removed: math delimiters, currency, units, spacing, `x =`.

    Keeps mathematical content untouched (no case folding, no reordering); percent signs stay
    (they change the value, the number reader reads them). `assignment=False` keeps a leading
    `x = ` (math_equal does so when the reference is itself an equation).
    """
    s = answer.strip()
    if len(s) > MAX_NORMALISE_CHARS:
        return s
    if "\\boxed" in s or "\\fbox" in s:
        s = _last_boxed(s) or s
    s = _THOUSANDS_COMMA.sub(",", s.replace("\u2212", "-"))  # "49{,}479" and "49,\\! 479" are 49,479
    s = _CURRENCY.sub("", s)
    s = _DELIMITERS.sub(lambda m: m.group(1) or "", s)
    s = _SPACING.sub(lambda m: m.group(1) or " ", s)
    s = _DEGREES.sub("", s)
    s = _drop_text_commands(s)
    s = _FRACTIONS.sub(r"\\frac", s)
    s = _unwrap_braces(s.strip().rstrip(".").strip())
    m = _ASSIGNMENT.match(s) if assignment else None
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


def math_equal(pred: str, gold: str, timeout: float = 2.0, *, question: str | None = None) -> bool:
    """True if `pred` is mathematically equal to the reference `gold`. Never raises.

    Fast path: normalise both; equal strings are equal; against a numeric reference the answer
    must state a number (plain, or an exact closed form such as "2^{10}" that does not restate
    an expression of `question`), compared exactly, no sympy. Everything else goes to math_verify
    under a `timeout`-second timer. An exception inside is counted (`caught_exceptions`), logged
    and answered False.
    """
    try:
        return _math_equal(pred, gold, timeout, question)
    except Exception as e:  # noqa: BLE001 - the verifier must never take a run down
        _record(e, "math_equal", pred, gold)
        return False


def caught_exceptions() -> dict[str, int]:
    """How many exceptions math_equal and canonical caught in this process, by type ("where: Type").
    Should stay empty: benchmarks/fuzz_verifiers.py and tests/test_fuzz_verifiers.py check it."""
    return dict(_caught)


def _record(e: Exception, where: str, *args) -> None:
    key = f"{where}: {type(e).__name__}"
    _caught[key] += 1
    if _caught[key] <= 3:  # the first few of each kind, not a flood in a long run
        _log.warning("%s caught %s: %s on %s", where, type(e).__name__, e, ", ".join(repr(a)[:200] for a in args))


def _math_equal(pred: str, gold: str, timeout: float, question: str | None = None) -> bool:
    """math_equal without its exception guard (the fuzz calls it directly, so nothing hides)."""
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    if len(pred) > MAX_NORMALISE_CHARS or len(gold) > MAX_NORMALISE_CHARS:
        return pred.strip() == gold.strip() != ""
    g = normalise(gold)  # "y = 5" is the number 5
    gold_number = numbers.parse_number(g)
    # A reference that is itself an equation ("x + y = 5", "y = 2x + 1") stays one, and so does the answer.
    equation = gold_number is None and "=" in normalise(gold, assignment=False)
    if equation:
        g = normalise(gold, assignment=False)
    p = normalise(pred, assignment=not equation)  # "y = 5 - x" is an answer to "x + y = 5" as it stands
    if not p or not g:
        return False
    if p == g:
        return True
    if gold_number is not None:  # a number is answered by a number, never by an expression (module docstring)
        for found in (numbers.stated(p), numbers.approximated(p)):  # "1/3 \approx 0.333": either value
            if found is None:
                continue
            text, value = found
            if question and not numbers.is_plain(text) and numbers.restates(text, question):
                continue  # "2^{10}" for "What is 2^{10}?" is the question copied, not an answer
            if numbers.numbers_equal(value, gold_number):
                return True
        return False
    return _symbolic_equal_bounded(p, g, timeout)


def canonical(answer: str) -> str:
    """Majority-vote key: a number as its reduced fraction ("1/2", "-3"), else the normalised text.

    "0.5", "1/2", "\\frac{1}{2}" and "$0.50" share a key, and so do "18", "The answer is 18" and
    "3 * 6 = 18" (read as math_equal reads them); "50%" votes with "50". A closed form ("2^{10}")
    keeps its own key: whether it answers depends on the question, which a vote does not see.
    Whitespace is removed from non-numeric keys so "x + 1" and "x+1" vote together.
    """
    try:
        s = normalise(answer)
        if len(s) > MAX_NORMALISE_CHARS:  # not an answer anyone votes on: its text, in linear time
            return s
        for text in (s, numbers.number_in_words(s)):  # "The answer is 18" votes with "18"
            number = numbers.parse_number(text)
            if number is not None:
                return str(number[0])
        return re.sub(r"\s+", "", s)
    except Exception as e:  # noqa: BLE001 - a key must always exist
        _record(e, "canonical", answer)
        return str(answer)
