import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from thinkrl import rewards as R
from thinkrl.errors import UserError
from thinkrl.tasks import Problem, TaskConfig, get_task

TASK = get_task(TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=10, num_train=10))
PROBLEM = TASK.problems("eval")[0]
INFO = {"task": TASK, "problem": PROBLEM, "tokens": 10, "finish_reason": "eos", "max_new_tokens": 64}
GOOD = f"<think>I multiply.</think> <answer>{PROBLEM.answer}</answer>"


@pytest.mark.parametrize(
    "text, strict, soft, tags",
    [
        (GOOD, 1, 1, 1.0),
        ("  <think>a</think>\n<answer>5</answer>\n", 1, 1, 1.0),
        ("preamble <think>a</think><answer>5</answer>", 0, 1, 1.0),  # text before: not strict
        ("<think>a</think><answer>5</answer> trailing", 0, 1, 1.0),  # text after: not strict
        ("<think>a</think><think>b</think><answer>5</answer>", 0, 1, 0.5),  # two think blocks
        ("<answer>5</answer><think>a</think>", 0, 0, 1.0),  # wrong order
        ("<think>a</think> 5", 0, 0, 0.5),
        ("no tags at all", 0, 0, 0.0),
    ],
)
def test_format_rewards(text, strict, soft, tags):
    assert R.format_strict(text, "5", INFO) == strict
    assert R.format_soft(text, "5", INFO) == soft
    assert R.tag_count(text, "5", INFO) == tags


def test_accuracy_uses_the_task_verifier():
    assert R.accuracy(GOOD, PROBLEM.answer, INFO) == 1.0
    assert R.accuracy(GOOD.replace(PROBLEM.answer, str(int(PROBLEM.answer) + 1)), PROBLEM.answer, INFO) == 0.0


def test_overlong_penalty_hand_computed():
    assert R.overlong_penalty(40, 64, 16) == 0.0  # before the buffer
    assert R.overlong_penalty(48, 64, 16) == 0.0  # at its start
    assert R.overlong_penalty(56, 64, 16) == -0.5
    assert R.overlong_penalty(64, 64, 16) == -1.0
    assert R.overlong_penalty(70, 64, 16) == -1.0
    assert R.overlong_penalty(70, 64, 0) == 0.0


def test_build_weights_and_errors():
    built = R.build(R.RewardConfig(accuracy=1.0, format=0.1, overlong=0.5))
    assert [(n, w) for n, w, _ in built] == [("accuracy", 1.0), ("format", 0.1), ("overlong", 0.5)]
    overlong = built[2][2]
    assert overlong("x", "5", {**INFO, "tokens": 56}) == -0.5
    with pytest.raises(UserError, match="every reward weight is 0"):
        R.build(R.RewardConfig(accuracy=0.0))
    with pytest.raises(UserError, match="one weight each"):
        R.RewardConfig(custom=["a:b"])
    with pytest.raises(UserError, match="cannot import module"):
        R.build(R.RewardConfig(custom=["no_such_module_xyz:f"], custom_weights=[1.0]))
    with pytest.raises(UserError, match="module.path:function"):
        R.build(R.RewardConfig(custom=["justamodule"], custom_weights=[1.0]))


# ---------------------------------------------------------------- which rewards apply to which prompt


def _info(problem, task=TASK):
    return {**INFO, "task": task, "problem": problem}


def test_a_reward_that_does_not_apply_is_left_out():
    rm_only = Problem("open-1", "Explain tides.", "", {"rewards": ["rm"]})
    calls = []

    def rm(completions, references, infos):  # a batched reward: one call with every completion it applies to
        calls.append([i["problem"].id for i in infos])
        return [float(len(c)) for c in completions]

    rm.batched = True
    rewards = [("accuracy", 1.0, R.accuracy), ("format", 0.5, R.format_strict), ("rm", 2.0, rm)]
    out = R.score_batch(rewards, [GOOD, "abc", GOOD], [_info(PROBLEM), _info(rm_only), _info(PROBLEM)])
    assert out[0] == ({"accuracy": 1.0, "format": 1.0, "rm": float(len(GOOD))}, 1.0 + 0.5 + 2.0 * len(GOOD))
    assert out[1] == ({"rm": 3.0}, 6.0)  # no accuracy component (and no reference answer needed)
    assert calls == [[PROBLEM.id, "open-1", PROBLEM.id]]
    reasoning = Problem("r", PROBLEM.question, PROBLEM.answer, {"rewards": ["accuracy"]})
    assert R.score_batch(rewards, [GOOD], [_info(reasoning)]) == [({"accuracy": 1.0}, 1.0)]
    assert len(calls) == 1  # the reward model is not called for prompts it does not apply to
    assert R.applies("rm", PROBLEM) and not R.applies("accuracy", rm_only)


def test_reward_applicability_errors_name_the_problem():
    typo = Problem("general.jsonl-3", "q", "", {"rewards": ["RM"], "source": "general.jsonl:3"})
    with pytest.raises(UserError, match=r"general.jsonl:3.*names 'RM', which is no reward"):
        R.score_batch([("accuracy", 1.0, R.accuracy)], ["x"], [_info(typo)])
    no_answer = Problem("p", "q", "", {"source": "data.jsonl:7"})
    with pytest.raises(UserError, match=r"data.jsonl:7.*no reference answer but the accuracy reward applies"):
        R.score_batch([("accuracy", 1.0, R.accuracy)], ["x"], [_info(no_answer)])
    assert R.build(R.RewardConfig(accuracy=0.0, format=1.0))  # a recipe of rule rewards alone still builds


def _jsonl(tmp_path, rows, name="general.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_rewards_field_and_open_prompts(tmp_path):
    path = _jsonl(tmp_path, [{"question": "Explain tides.", "rewards": ["rm"]}, {"question": "What is 2+2?", "answer": 4},
                             {"question": "Say hi.", "rewards": ["rm", "format"], "answer": ""}])
    t = get_task(TaskConfig(name=f"jsonl:{path}", eval_fraction=0.0))
    by_line = {p.meta["line"]: p for p in t.problems("train")}
    assert by_line[1].answer == "" and by_line[1].meta["rewards"] == ["rm"]
    assert "rewards" not in by_line[2].meta and by_line[2].answer == "4"  # None: every reward applies
    default = get_task(TaskConfig(name=f"jsonl:{path}", eval_fraction=0.0, rewards="accuracy,format"))
    assert {p.meta["line"]: p.meta["rewards"] for p in default.problems("train")} == {
        1: ["rm"], 2: ["accuracy", "format"], 3: ["rm", "format"]}
    bad = _jsonl(tmp_path, [{"question": "Explain tides."}], "bad.jsonl")
    with pytest.raises(UserError, match=r"bad.jsonl:1: missing field 'answer'.*a \"rewards\" list without \"accuracy\""):
        get_task(TaskConfig(name=f"jsonl:{bad}"))
    assert get_task(TaskConfig(name=f"jsonl:{bad}", rewards="rm", eval_fraction=0.0)).problems("train")[0].answer == ""
    typed = _jsonl(tmp_path, [{"question": "q", "rewards": "rm"}], "typed.jsonl")
    with pytest.raises(UserError, match=r"typed.jsonl:1: field 'rewards' must be a list of reward names"):
        get_task(TaskConfig(name=f"jsonl:{typed}"))


def test_mix_weights_eval_split_and_verifier(tmp_path):
    general = _jsonl(tmp_path, [{"question": f"Open question {i}?", "rewards": ["rm"]} for i in range(8)]
                     + [{"question": "What is 3 + 4?", "answer": 7}])
    cfg = TaskConfig(name=f"mix:arithmetic+jsonl:{general}", digits="2,1", ops="*", num_train=30, num_eval=5,
                     rewards="accuracy,format", mix_weights="3,1", eval_fraction=0.0)
    mix = get_task(cfg)
    train = mix.problems("train")
    arith = [p for p in train if p.id.startswith("arithmetic")]
    assert len(arith) == 30 and len(train) == 40  # 3:1, every arithmetic problem once, the 9 general ones cycled
    assert all(p.meta["rewards"] == ["accuracy", "format"] for p in arith)
    assert {p.meta["rewards"] == ["rm"] for p in train if p.id.startswith("general")} == {True, False}
    # held-out: only problems with a verifiable answer (here every eval problem is arithmetic)
    assert [p.id for p in mix.problems("eval")] == [p.id for p in get_task(TaskConfig(
        name="arithmetic", digits="2,1", ops="*", num_train=30, num_eval=5)).problems("eval")]
    p = arith[0]
    assert mix.score(f"<think>.</think> <answer>{p.answer}</answer>", p) == 1.0
    assert mix.examples()[0][0].startswith("What is")  # the arithmetic part's worked examples come first
    even = get_task(TaskConfig(name=f"mix:arithmetic+jsonl:{general}", digits="2,1", ops="*", num_train=30, num_eval=5,
                               rewards="accuracy", eval_fraction=0.0))
    assert len(even.problems("train")) == 39  # no weights: the parts side by side


def test_mix_config_errors(tmp_path):
    with pytest.raises(UserError, match=r"task.name = 'mix:arithmetic\+nope': unknown task 'nope' in the mix"):
        TaskConfig(name="mix:arithmetic+nope")
    with pytest.raises(UserError, match="names a task twice"):
        TaskConfig(name="mix:arithmetic+arithmetic")
    with pytest.raises(UserError, match=r"task.mix_weights = '1': must be 2 non-negative numbers"):
        TaskConfig(name="mix:arithmetic+countdown", mix_weights="1")
    with pytest.raises(UserError, match="task.mix_weights"):
        TaskConfig(mix_weights="0,0")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    rows = [{"question": "q1", "answer": 1}, {"question": "q2", "answer": 2}]
    with pytest.raises(UserError, match="problem id 'x.jsonl-1' occurs in both"):
        get_task(TaskConfig(name=f"mix:jsonl:{_jsonl(a, rows, 'x.jsonl')}+jsonl:{_jsonl(b, rows, 'x.jsonl')}"))


# ---------------------------------------------------------------- a reward never stops a run


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


def _score(rewards, texts, timeout=5.0):
    stats = {}
    out = R.score_batch(rewards, texts, [_info(PROBLEM) for _ in texts], timeout=timeout, stats=stats)
    return [p for p, _ in out], [t for _, t in out], stats


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
    _score([("mine", 1.0, R._inline(where))], ["a"], timeout=5.0)  # the built-ins' mark
    _score([("mine", 1.0, lambda *a: where(*a))], ["a"], timeout=0.0)  # 0 = no limit: no worker either
    assert threads == ["thinkrl-reward", "MainThread", "MainThread"]
    built = R.build(R.RewardConfig(accuracy=1.0, format=1.0, format_soft=1.0, tag_count=1.0, overlong=1.0, language=1.0,
                                   length_kimi=1.0, length_cosine=1.0, length_l1=1.0))
    assert all(getattr(fn, "inline", False) for _, _, fn in built)
    with pytest.raises(UserError, match="rewards.timeout must be >= 0"):
        R.RewardConfig(timeout=-1)


def test_a_hanging_reward_does_not_hold_up_the_interpreters_exit(tmp_path):
    code = ("import time, tiny_rewards\nfrom tests.test_rewards import R, _info, PROBLEM\n"
            "print(R.score_batch([('hang', 1.0, tiny_rewards.hang)], ['x'], [_info(PROBLEM)], timeout=0.1))\n")
    root = Path(__file__).resolve().parent.parent
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "tests"), str(root)])})
    assert out.returncode == 0, out.stderr
    assert "[({'hang': 0.0}, 0.0)]" in out.stdout and time.perf_counter() - t < 30


def test_custom_rewards_import_only_the_module_the_recipe_names(tmp_path, monkeypatch):
    (tmp_path / "named_rw.py").write_text("def f(completion, reference, info):\n    return 1.0\n")
    (tmp_path / "unnamed_rw.py").write_text("raise SystemExit('imported although no recipe names it')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = R.build(R.RewardConfig(accuracy=0.0, custom=["named_rw:f"], custom_weights=[1.0]))
    assert [n for n, _, _ in built] == ["f"]
    assert "named_rw" in sys.modules and "unnamed_rw" not in sys.modules
