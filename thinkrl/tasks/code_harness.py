"""The test harness of code tasks: one program that runs a completion's code and all its tests, in
one sandbox execution, and prints one JSON verdict; and the reading of that verdict. Pure.

Why one execution per completion (not one per test): the sandbox's cost is two interpreter starts,
so a completion with five tests costs one start-up, not five; and a wall-clock limit on the whole
run bounds a completion whatever its tests do.

The program (`harness`) compiles the code (a SyntaxError: `syntax_error`), executes it as module
`solution` (so an `if __name__ == "__main__":` demo does not run), then executes each test in the
code's namespace; an AssertionError is a wrong answer, any other exception a crash. The code's own
prints go to /dev/null. The verdict is one line starting with a random nonce, so the code's output
cannot pass for it by accident. (Code written to fool the harness could: it runs in the same
process and can read the program's text. The sandbox still contains it; it is a reward hack, not an
escape. A 135M model does not find it; a strong one might: see docs/sandbox.md.)

Verdicts (`VERDICTS`): pass (every test passed), wrong (some assertion failed, nothing crashed),
crash (an exception at import or in a test, or the process died: memory, output, exit),
syntax_error, timeout (the sandbox's limit), no_code (the completion holds no code to run).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

VERDICTS = ("pass", "wrong", "crash", "syntax_error", "timeout", "no_code")

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python|python3)?[ \t]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:python|py|Python|python3)?[ \t]*\n(.*)\Z", re.DOTALL)

_PROGRAM = '''\
import json as _json, os as _os, sys as _sys
_out = _sys.stdout
_sys.stdout = open(_os.devnull, "w")
_NONCE, _SOURCE, _TESTS = {nonce!r}, {source!r}, {tests!r}

def _report(verdict, passed, detail=""):
    _out.write(_NONCE + _json.dumps({{"verdict": verdict, "passed": passed, "total": len(_TESTS), "detail": detail[:200]}}) + "\\n")
    _out.flush()
    _os._exit(0)

def _name(e):
    return type(e).__name__ + (": " + str(e) if str(e) else "")

try:
    _code = compile(_SOURCE, "solution.py", "exec")
except (SyntaxError, ValueError) as e:
    _report("syntax_error", 0, _name(e))
_ns = {{"__name__": "solution"}}
try:
    exec(_code, _ns)
except BaseException as e:
    _report("crash", 0, "at import: " + _name(e))
_passed, _first = 0, None
for _test in _TESTS:
    try:
        exec(compile(_test, "test.py", "exec"), _ns)
        _passed += 1
    except AssertionError as e:
        _first = _first or ("wrong", "wrong: " + _test[:120])
    except BaseException as e:
        _first = ("crash", _name(e)) if _first is None or _first[0] == "wrong" else _first
if _first is None:
    _report("pass", _passed)
_report(_first[0], _passed, _first[1])
'''


@dataclass(frozen=True)
class Outcome:
    """What running one completion's code gave: its verdict, tests passed of total, and why."""

    verdict: str
    passed: int
    total: int
    detail: str = ""

    @property
    def share(self) -> float:
        """The share of tests passed; 0 for a syntax error, timeout or crash at import."""
        return self.passed / self.total if self.total and self.verdict in ("pass", "wrong", "crash") else 0.0


def extract_code(completion: str) -> str | None:
    """The code of a completion: the last fenced Python block (```python ... ```), else the content
    of the last <answer>...</answer> (itself unfenced if it holds a fence), else an unclosed fence
    at the end. None when there is none or it is blank."""
    if not isinstance(completion, str):
        return None
    blocks = _FENCE.findall(completion)
    if blocks:
        return blocks[-1].strip("\n") or None
    close = completion.rfind("</answer>")
    open_ = completion.rfind("<answer>", 0, close) if close >= 0 else -1
    if open_ >= 0:
        inner = completion[open_ + len("<answer>") : close]
        fenced = _FENCE.findall(inner + ("```" if inner.count("```") % 2 else ""))
        code = fenced[-1] if fenced else inner
        return code.strip("\n") if code.strip() else None
    m = _OPEN_FENCE.search(completion)
    return m.group(1).strip("\n") if m and m.group(1).strip() else None


def harness(source: str, tests: list[str], nonce: str | None = None) -> tuple[str, str]:
    """(the program that runs `source` then each of `tests`, its nonce)."""
    nonce = nonce or "@@thinkrl-" + secrets.token_hex(8) + "@@"
    return _PROGRAM.format(nonce=nonce, source=source, tests=list(tests)), nonce


def read_outcome(status: str, stdout: str, nonce: str, total: int, message: str = "") -> Outcome:
    """The Outcome of one sandbox execution of a harness program (status: thinkrl.sandbox STATUSES)."""
    if status == "timeout":
        return Outcome("timeout", 0, total, message)
    for line in reversed(stdout.splitlines()):
        if line.startswith(nonce):
            try:
                data = json.loads(line[len(nonce):])
                verdict, passed = str(data["verdict"]), int(data["passed"])
            except (ValueError, KeyError, TypeError):
                break
            if verdict in VERDICTS and 0 <= passed <= total:
                return Outcome(verdict, passed, total, str(data.get("detail", "")))
            break
    return Outcome("crash", 0, total, f"no verdict ({status}{': ' + message if message else ''})")
