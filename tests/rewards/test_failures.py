"""thinkrl.rewards.failures and .deadline: a reward that raises, hangs or returns no number never stops a run."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reward_cases import GOOD, _score
from thinkrl import rewards as R
from thinkrl.errors import UserError
from thinkrl.rewards.rules import inline


def _fails(kind):
    """A per-completion reward that raises / hangs / spins / returns nan on completions containing `kind`, else 1."""
    def fn(completion, reference, info):
        if kind in completion:
            if kind == "raise":
                raise KeyError("no such field")
            if kind == "hang":
                time.sleep(10**6)
            if kind == "spin":
                while True:
                    pass
            if kind == "nan":
                return float("nan")
            if kind == "none":
                return None
        return 1.0

    return fn


@pytest.mark.parametrize("kind, timeout", [("raise", 5.0), ("raise", 0.0), ("nan", 5.0), ("none", 0.0)])
def test_a_reward_that_raises_or_returns_no_number_scores_zero_and_is_counted(kind, timeout, capsys):
    long_text = "x" * 500 + kind
    texts = [GOOD, kind, GOOD, long_text]
    rewards = [("format", 1.0, R.format_strict), ("mine", 2.0, _fails(kind))]
    parts, totals, stats = _score(rewards, texts, timeout)
    assert [p["mine"] for p in parts] == [1.0, 0.0, 1.0, 0.0]
    assert [p["format"] for p in parts] == [1.0, 0.0, 1.0, 0.0]  # the other reward is still scored
    assert totals == [3.0, 0.0, 3.0, 0.0]
    assert stats == {"reward/mine/errors": 2, "reward/errors": 2, "reward/timeouts": 0}
    err = capsys.readouterr().err
    assert err.count("thinkrl: warning: reward 'mine' failed on 2 of 4 completions") == 1  # one line per reward and batch
    assert ("KeyError: 'no such field'" if kind == "raise" else "ValueError" if kind == "nan" else "TypeError") in err
    assert f"first on '{kind}'" in err


def test_a_reward_failing_every_step_warns_once_and_counts_every_time(capsys):
    """A reward that scores malformed answers by raising (knights_knaves.people_share) would print a
    line every step; the line comes once per reward and exception type, the counts every batch."""
    fn = _fails("raise")
    for _ in range(3):
        _, _, stats = _score([("mine", 1.0, fn)], [GOOD, "raise"])
        assert stats["reward/mine/errors"] == 1
    err = capsys.readouterr().err
    assert err.count("reward 'mine' failed") == 1 and "said once; every step's count is in reward/mine/errors" in err

    def two_ways(completion, reference, info):
        raise KeyError("k") if "key" in completion else ZeroDivisionError("z")

    for texts in (["key"], ["key"], ["zero"], ["zero"]):  # the same reward failing another way is said again
        _score([("mine", 1.0, two_ways)], texts)
    _score([("mine", 1.0, _fails("raise"))], ["raise"])  # a fresh reward function: its own first time
    err = capsys.readouterr().err
    assert err.count("reward 'mine' failed") == 3 and err.count("KeyError") == 2 and err.count("ZeroDivisionError") == 1


def test_a_long_completion_is_cut_in_the_warning(capsys):
    _score([("mine", 1.0, _fails("raise"))], ["y" * 500 + "raise"])
    err = capsys.readouterr().err
    assert "'" + "y" * 200 + "...'" in err and "y" * 201 not in err


def test_a_reward_that_hangs_times_out_per_completion(capsys):
    texts = ["a", "hang", "b", "hang", "c", "d"]
    t = time.perf_counter()
    parts, _, stats = _score([("slow", 1.0, _fails("hang")), ("tags", 1.0, R.tag_count)], texts, timeout=0.2)
    took = time.perf_counter() - t
    # after the first timeout a fresh worker goes on ("b" is scored); after the second the batch gives up
    assert [p["slow"] for p in parts] == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert stats == {"reward/slow/timeouts": 4, "reward/errors": 0, "reward/timeouts": 4}
    assert 0.4 <= took < 2.0
    err = capsys.readouterr().err
    assert "reward 'slow' did not return within 0.2 s on 4 of 6 completions" in err
    assert "(2 not tried after 2 timeouts)" in err and "first on 'hang'" in err


def test_a_reward_stuck_in_a_python_loop_is_stopped():
    _, _, stats = _score([("spin", 1.0, _fails("spin"))], ["spin"], timeout=0.1)
    assert stats["reward/timeouts"] == 1
    deadline = time.monotonic() + 5
    while any(t.name == "thinkrl-reward" and t.is_alive() for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == "thinkrl-reward" and t.is_alive()
                and "spin" in repr(getattr(t, "calls", ""))]  # interrupted, no CPU spent on it any more


def test_batched_reward_failures_cover_its_whole_call(capsys):
    def bad(completions, references, infos):
        raise RuntimeError("model fell over")

    def slow(completions, references, infos):
        time.sleep(10**6)

    bad.batched = slow.batched = True
    texts = [GOOD, "abc", GOOD]
    parts, totals, stats = _score([("rm", 1.0, bad), ("format", 1.0, R.format_strict)], texts)
    assert [p["rm"] for p in parts] == [0.0, 0.0, 0.0] and totals == [1.0, 0.0, 1.0]
    assert stats["reward/rm/errors"] == 3 and "RuntimeError: model fell over" in capsys.readouterr().err
    parts, _, stats = _score([("rm", 1.0, slow)], texts, timeout=0.05)  # the deadline: 0.05 s per completion
    assert [p["rm"] for p in parts] == [0.0] * 3 and stats["reward/rm/timeouts"] == 3
    assert "did not return within 0.15 s for its batch" in capsys.readouterr().err


def test_user_error_from_a_reward_still_stops_the_run():
    def needs_answer(completion, reference, info):
        raise UserError("problem 'p' has no answer")

    with pytest.raises(UserError, match="has no answer"):
        _score([("mine", 1.0, needs_answer)], ["a", "b"], timeout=5.0)


def test_user_rewards_run_in_a_worker_built_in_ones_in_the_callers_thread():
    threads = []

    def where(completion, reference, info):
        threads.append(threading.current_thread().name)
        return 0.0

    _score([("mine", 1.0, where)], ["a"], timeout=5.0)
    _score([("mine", 1.0, inline(where))], ["a"], timeout=5.0)  # the built-ins' mark
    _score([("mine", 1.0, lambda *a: where(*a))], ["a"], timeout=0.0)  # 0 = no limit: no worker either
    assert threads == ["thinkrl-reward", "MainThread", "MainThread"]
    built = R.build(R.RewardConfig(accuracy=1.0, format=1.0, format_soft=1.0, tag_count=1.0, overlong=1.0, language=1.0,
                                   length_kimi=1.0, length_cosine=1.0, length_l1=1.0))
    assert all(getattr(fn, "inline", False) for _, _, fn in built)
    with pytest.raises(UserError, match="rewards.timeout must be >= 0"):
        R.RewardConfig(timeout=-1)


def test_a_hanging_reward_does_not_hold_up_the_interpreters_exit(tmp_path):
    code = ("import time, tiny_rewards\nfrom reward_cases import R, _info, PROBLEM\n"
            "print(R.score_batch([('hang', 1.0, tiny_rewards.hang)], ['x'], [_info(PROBLEM)], timeout=0.1))\n")
    root = Path(__file__).resolve().parent.parent.parent
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "tests" / "rewards"), str(root / "tests"), str(root)])})
    assert out.returncode == 0, out.stderr
    assert "[({'hang': 0.0}, 0.0)]" in out.stdout and time.perf_counter() - t < 30
