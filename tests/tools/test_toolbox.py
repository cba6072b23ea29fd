"""build_toolbox: a [tools] section into the functions the engine calls."""

import pytest

from thinkrl.errors import UserError
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tools import SearchToolConfig, ToolConfig, build_toolbox


def test_no_tools_is_none():
    assert build_toolbox(ToolConfig()) is None


def test_search_over_the_tasks_own_corpus_through_a_wrapper(tmp_path, monkeypatch):
    monkeypatch.setenv("THINKRL_CACHE", str(tmp_path))
    task = get_task(TaskConfig(name="lookup", lookup_entities=50, rewards="accuracy"))  # wrapped by task.rewards
    box = build_toolbox(ToolConfig(search=SearchToolConfig(corpus="task", k=2)), task)
    problem = task.problems("eval")[0]
    found = box.tools["search"](problem.question)
    assert found.count("\n") <= 1 and ":" in found
    assert box.find_call(f"<search>{problem.question}</search>") == ("search", problem.question, "")


def test_a_corpus_of_task_needs_a_task_that_has_one():
    with pytest.raises(UserError, match="lookup"):
        build_toolbox(ToolConfig(search=SearchToolConfig(corpus="task")), get_task(TaskConfig(name="arithmetic")))


def test_a_call_stuck_past_its_deadline_does_not_hold_up_the_exit():
    """The stuck call's thread is left behind; the process still ends at once (a pool's worker would be joined)."""
    import subprocess
    import sys
    import time

    code = ("import time; from thinkrl.tools import Toolbox\n"
            "box = Toolbox({'slow': lambda t: time.sleep(60) or 'late'}, call_timeout_s=0.2)\n"
            "print(box.run([('slow', 'x')])[0].error)\n")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "timeout", out.stderr
    assert time.perf_counter() - t0 < 20
