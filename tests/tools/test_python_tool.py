"""The Python tool: result text for each outcome, on real sandboxed runs."""

from thinkrl.sandbox import Limits, Result
from thinkrl.tools.python import python_tool, result_text

LIMITS = Limits(cpu_s=2, wall_s=3, output_bytes=10_000)


def test_stdout_is_the_result():
    assert python_tool("print(6 * 7)", LIMITS) == "42"


def test_no_output_says_so():
    assert python_tool("x = 1", LIMITS) == "(no output)"


def test_error_shows_the_last_traceback_line():
    text = python_tool("print('before')\n1 / 0", LIMITS)
    assert text.startswith("before\n")
    assert text.splitlines()[-1] == "ZeroDivisionError: division by zero"


def test_timeout_says_so():
    assert python_tool("import time\ntime.sleep(30)", Limits(wall_s=1)).endswith("Error: time limit exceeded")


def test_memory_says_so():
    assert "memory limit exceeded" in python_tool("x = bytearray(10**11)", LIMITS)


def test_huge_output_is_cut_from_the_front():
    text = python_tool("print('x' * 10**6)", LIMITS, max_chars=100)
    assert len(text) == 103 and text.startswith("...") and text.endswith("(output truncated)")


def test_result_text_is_pure_over_results():
    refused = Result(status="refused", stdout="", stderr="", exit_code=None, seconds=0.0, message="no netns")
    assert result_text(refused) == "Error: the sandbox refused to run the code: no netns"
