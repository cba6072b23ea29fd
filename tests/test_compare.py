"""`thinkrl compare`: the paired difference of two results on the same problems, and the results
JSON's per-problem outcomes it reads (written by thinkrl.eval_results)."""

import json

import pytest

from thinkrl.cli import main
from thinkrl.compare import compare, load_outcomes
from thinkrl.engine import Completion
from thinkrl.eval_results import write_json
from thinkrl.evaluate import Scored, summarize
from thinkrl.tasks.base import Problem, Task


def _results(path, outcomes, samples=1, refs=None):
    rows = [{"id": f"p{i}", "reference": (refs or {}).get(i, str(i)), "correct": c, "samples": samples}
            for i, c in enumerate(outcomes)]
    path.write_text(json.dumps({"task": "t", "pass@1": 0.0, "problems": rows}))
    return path


def test_compare_a_clear_gain(tmp_path, capsys):
    # 40 problems: A right on 10; B right on those and 12 more -> B - A = 12/40, discordant 12 vs 0
    a = _results(tmp_path / "a.json", [1] * 10 + [0] * 30)
    b = _results(tmp_path / "b.json", [1] * 22 + [0] * 18)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "c.json").read_text())
    assert r["n"] == 40 and r["difference"] == pytest.approx(0.3) and r["a_pass@1"] == 0.25
    assert (r["b_only_correct"], r["a_only_correct"]) == (12, 0) and r["mcnemar_p"] == pytest.approx(2 / 2**12)
    assert 0 < r["ci_low"] < 0.3 < r["ci_high"] and r["distinguishable"]
    assert "B is better than A beyond noise" in out and "p = 0.0004883" in out
    assert compare(a, b) == compare(a, b)  # seeded: the same interval every time


def test_compare_a_gain_within_noise(tmp_path, capsys):
    # 20 problems, discordant 3 vs 1: p = 0.625, the interval includes 0
    a = _results(tmp_path / "a.json", [1, 0, 0, 0] + [1] * 6 + [0] * 10)
    b = _results(tmp_path / "b.json", [0, 1, 1, 1] + [1] * 6 + [0] * 10)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "p = 0.625" in out and "not distinguishable from noise (the interval includes 0)" in out


def test_compare_fractions_has_no_mcnemar(tmp_path):
    a = _results(tmp_path / "a.json", [1, 2, 0, 4], samples=4)
    b = _results(tmp_path / "b.json", [2, 2, 1, 4], samples=4)
    r = compare(a, b, resamples=200)
    assert r["difference"] == pytest.approx(0.125) and "mcnemar_p" not in r


def test_compare_problems_must_be_the_same(tmp_path, capsys):
    a = _results(tmp_path / "a.json", [1, 0, 1])
    b = _results(tmp_path / "b.json", [1, 0])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not on the same problems" in err and "'p2' only in" in err
    c = _results(tmp_path / "c.json", [1, 0, 1], refs={1: "99"})  # one id, another question
    assert main(["compare", str(a), str(c)]) == 2
    assert "different problems under one id" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["compare", str(a), str(tmp_path / "bad.json")]) == 2
    assert "not a results JSON" in capsys.readouterr().err


def _scored(pid, answer, correct):
    return Scored(Problem(pid, "q", answer), Completion(0, 0, token_ids=[1, 2], text="wait"), answer, correct, True)


def test_results_json_round_trip_and_older_results(tmp_path):
    # two seeds' runs of 2 problems x 2 samples, one after another: outcomes pooled per problem
    scored = [_scored("x", "1", True), _scored("x", "1", False), _scored("y", "2", False), _scored("y", "2", False),
              _scored("x", "1", True), _scored("x", "1", True), _scored("y", "2", True), _scored("y", "2", False)]
    metrics = summarize(scored, 2, Task(), seeds=2)
    assert metrics["n"] == 2 and metrics["pass@1"] == pytest.approx(0.5)
    out = tmp_path / "r.json"
    written = write_json(out, {"model": "m"}, metrics, scored, [0, 1])
    assert json.loads(out.read_text()) == written and written["seeds"] == [0, 1]
    assert load_outcomes(out) == [{"id": "x", "reference": "1", "correct": 3, "samples": 4},
                                  {"id": "y", "reference": "2", "correct": 1, "samples": 4}]
    rows = [json.loads(x) for x in out.with_name("r.completions.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 0, 0, 0, 1, 1, 1, 1]
    # a results JSON written before "problems": read from the completions JSONL beside it
    old = json.loads(out.read_text())
    del old["problems"]
    out.write_text(json.dumps(old))
    assert load_outcomes(out) == [{"id": "x", "reference": "1", "correct": 3, "samples": 4},
                                  {"id": "y", "reference": "2", "correct": 1, "samples": 4}]
