"""thinkrl.rewards: building the rewards a config asks for, which apply to which prompt, custom rewards."""

import json
import sys

import pytest

from reward_cases import GOOD, INFO, PROBLEM, _info
from thinkrl import rewards as R
from thinkrl.errors import UserError
from thinkrl.tasks import Problem, TaskConfig, get_task


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


def test_custom_rewards_import_only_the_module_the_recipe_names(tmp_path, monkeypatch):
    (tmp_path / "named_rw.py").write_text("def f(completion, reference, info):\n    return 1.0\n")
    (tmp_path / "unnamed_rw.py").write_text("raise SystemExit('imported although no recipe names it')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = R.build(R.RewardConfig(accuracy=0.0, custom=["named_rw:f"], custom_weights=[1.0]))
    assert [n for n, _, _ in built] == ["f"]
    assert "named_rw" in sys.modules and "unnamed_rw" not in sys.modules
