"""run_python and Pool on ordinary code: output, stdin, exit codes, timing, a fresh folder, parallelism."""

import os
import time

import pytest
from sandbox_checks import assert_clean

from thinkrl.sandbox import Limits, Pool, run_python
from thinkrl.sandbox.run import classify

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's uid and namespace isolation needs root")
LIMITS = Limits(cpu_s=2, wall_s=5)


def test_prints_and_exits_ok():
    r = run_python("print('hello')\nprint(2 + 2)", LIMITS)
    assert (r.status, r.stdout, r.stderr, r.exit_code, r.truncated) == ("ok", "hello\n4\n", "", 0, False)


def test_stdin_reaches_the_code():
    r = run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", LIMITS, stdin="1 2 3\n4")
    assert r.stdout == "10\n"


def test_exit_codes_and_errors():
    assert run_python("import sys\nsys.exit(3)", LIMITS).exit_code == 3
    r = run_python("raise ValueError('bad input')", LIMITS)
    assert r.status == "error" and r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1] == "ValueError: bad input"
    assert run_python("def f(:\n  pass", LIMITS).status == "error"


def test_seconds_measure_the_run():
    r = run_python("import time\ntime.sleep(0.5)", LIMITS)
    assert r.status == "ok" and 0.5 <= r.seconds < 2


def test_each_run_gets_a_fresh_folder():
    first = run_python("open('note', 'w').write('x')\nimport os\nprint(os.getcwd(), sorted(os.listdir('.')))", LIMITS)
    second = run_python("import os\nprint(os.listdir('.'))", LIMITS)
    assert first.stdout == "/tmp ['main.py', 'note']\n"
    assert second.stdout == "['main.py']\n"


def test_runs_as_an_unprivileged_uid():
    r = run_python("import os\nprint(os.getuid(), os.getgid(), os.getgroups())", LIMITS)
    uid, gid, groups = r.stdout.split(maxsplit=2)
    assert int(uid) >= 61000 and gid == uid and groups.strip() == "[]"


def test_pool_runs_in_parallel_and_keeps_order():
    codes = [f"import time\ntime.sleep(1)\nprint({i})" for i in range(4)]
    start = time.monotonic()
    with Pool(4, LIMITS) as pool:
        results = pool.map(codes)
    elapsed = time.monotonic() - start
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n", "3\n"]
    assert elapsed < 3  # four one-second sleeps, not four seconds in a row
    assert_clean()


def test_pool_slots_use_distinct_uids():
    with Pool(3, LIMITS) as pool:
        results = pool.map(["import os, time\ntime.sleep(0.5)\nprint(os.getuid())"] * 3)
    assert len({r.stdout for r in results}) == 3


def test_limits_are_validated():
    for bad in [dict(cpu_s=0), dict(wall_s=-1), dict(memory_mb=10), dict(processes=1), dict(output_bytes=True)]:
        with pytest.raises(ValueError):
            Limits(**bad)


def test_classify_is_pure():
    assert classify(0, "", None, "")[0] == "ok"
    assert classify(None, "", None, "refused: no netns")[0] == "refused"
    assert classify(-24, "", None, "")[0] == "timeout"
    assert classify(1, "Traceback\nMemoryError\n", None, "")[0] == "memory"
    assert classify(-11, "", None, "")[0] == "killed"
    assert classify(2, "", None, "")[0] == "error"
    assert classify(-9, "", "output_limit", "")[0] == "output_limit"


def test_code_runs_on_the_base_interpreter_not_the_venv():
    """A venv under /tmp (a CI checkout) is hidden by the sandbox's private /tmp."""
    import os
    import sys

    from thinkrl.sandbox.run import interpreter

    if sys.prefix != sys.base_prefix:
        assert not interpreter().startswith(os.path.realpath(sys.prefix) + os.sep)
    assert os.path.isfile(interpreter())


def test_a_trainer_killed_mid_call_leaves_nothing_running(tmp_path):
    """SIGKILL the process that called run_python while the code sleeps: the launcher and the
    namespace die with it (parent-death signals), long before the code's own wall limit."""
    import signal
    import subprocess
    import sys

    marker = tmp_path / "started"
    code = ("import pathlib, time\nfrom thinkrl.sandbox import Limits, run_python\n"
            f"pathlib.Path({str(marker)!r}).write_text('x')\n"
            "run_python('import time\\ntime.sleep(60)', Limits(cpu_s=2, wall_s=60))\n")
    trainer = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the code is asleep in the sandbox now
    from thinkrl.sandbox.run import SLOTS, UID_BASE, processes_of_uids

    assert processes_of_uids(range(UID_BASE, UID_BASE + SLOTS)), "the code never started"
    os.kill(trainer.pid, signal.SIGKILL)
    trainer.wait()
    for _ in range(100):
        if not processes_of_uids(range(UID_BASE, UID_BASE + SLOTS)):
            break
        time.sleep(0.05)
    assert_clean()
