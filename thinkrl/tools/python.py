"""The Python tool: the model writes code, the sandbox runs it, the model reads the result text.

The code never runs in the calling (training) process: run_python starts an isolated one.
"""

from __future__ import annotations

from thinkrl.sandbox import Limits, Result, run_python


def result_text(result: Result, max_chars: int = 2000) -> str:
    """What the model sees of one execution. Pure.

    ok: the stdout (or "(no output)"). A limit: a one-line note of which limit, after any stdout.
    An error: the stdout, then the last lines of stderr (the traceback's end names the error).
    The text is cut to its last `max_chars` characters, since the end says what happened.
    """
    out = result.stdout.rstrip()
    if result.status == "ok":
        text = out or "(no output)"
    elif result.status == "refused":
        text = f"Error: the sandbox refused to run the code: {result.message}"
    else:
        notes = {"timeout": "Error: time limit exceeded", "memory": "Error: memory limit exceeded",
                 "output_limit": "Error: output limit exceeded (output truncated)",
                 "killed": f"Error: {result.message}"}
        tail = "\n".join(result.stderr.rstrip().splitlines()[-5:])
        parts = [out, tail if result.status in ("error", "memory") else "", notes.get(result.status, "")]
        text = "\n".join(p for p in parts if p) or f"Error: {result.message}"
    return text if len(text) <= max_chars else "..." + text[-max_chars:]


def python_tool(code: str, limits: Limits, max_chars: int = 2000) -> str:
    """Run `code` in the sandbox and return the result text the model sees."""
    return result_text(run_python(code, limits), max_chars)
