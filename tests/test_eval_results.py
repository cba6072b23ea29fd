"""thinkrl.eval_results: what `thinkrl eval` writes (results JSON, completions JSONL, resolved config)
and prints, and that the written config reproduces the run."""

import json

import pytest

from thinkrl.cli import main
from thinkrl.models import save_pretrained, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama")
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def test_eval_writes_results_config_and_completions(model_dir, tmp_path, capsys):
    out = tmp_path / "res" / "r.json"
    rc = main(["eval", "--model", str(model_dir), "--task", "arithmetic", "--limit", "3", "--samples", "2",
               "--out", str(out), "--set", "sampling.max_new_tokens=8", "--set", "batch_size=4"])
    assert rc == 0
    result = json.loads(out.read_text())
    for key in ["n", "pass@1", "pass@2", "maj@2", "format_rate", "mean_response_tokens",
                "correct/mean_response_tokens", "incorrect/mean_response_tokens", "incorrect/format_rate"]:
        assert key in result
    assert result["n"] == 3 and result["completions"] == 6
    assert 0 < result["mean_response_tokens"] <= 8
    # eval samples at DeepSeek-R1's 0.6 unless told; the results and the table say so
    assert result["sampling"] == ("temperature 0.6, top-p 0.95 (greedy: --set sampling.temperature=0), "
                                  "at most 8 new tokens")
    printed = capsys.readouterr().out
    assert "temperature 0.6" in printed
    # each rate with its standard error and 95% interval, in the JSON and on its row of the table
    assert result["pass@1_ci_low"] <= result["pass@1"] <= result["pass@1_ci_high"] and "maj@2_stderr" in result
    assert "95% CI [" in next(line for line in printed.splitlines() if line.strip().startswith("pass@1 "))
    # per-problem outcomes, which thinkrl compare pairs
    assert [p["samples"] for p in result["problems"]] == [2, 2, 2] and result["seeds"] == [0]
    assert sum(p["correct"] for p in result["problems"]) == result["correct/count"]
    rows = [json.loads(line) for line in (tmp_path / "res" / "r.completions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"id", "text", "correct", "extracted", "reference"} <= set(rows[0])
    config = (tmp_path / "res" / "r.config.toml").read_text()
    assert 'name = "arithmetic"' in config and "max_new_tokens = 8" in config
    # the written config is a recipe that reproduces the run
    out2 = tmp_path / "again.json"
    assert main(["eval", str(tmp_path / "res" / "r.config.toml"), "--out", str(out2)]) == 0
    assert [json.loads(x)["text"] for x in out2.with_name("again.completions.jsonl").read_text().splitlines()] == [r["text"] for r in rows]
    out3 = tmp_path / "greedy.json"
    assert main(["eval", str(tmp_path / "res" / "r.config.toml"), "--out", str(out3), "--set", "sampling.temperature=0"]) == 0
    assert json.loads(out3.read_text())["sampling"] == "greedy, at most 8 new tokens"


def test_eval_over_seeds_reports_the_spread_and_each_seed(model_dir, tmp_path, capsys):
    args = ["eval", "--model", str(model_dir), "--task", "arithmetic", "--limit", "3", "--set", "sampling.max_new_tokens=6"]
    assert main([*args, "--out", str(tmp_path / "one.json")]) == 0
    assert main([*args, "--out", str(tmp_path / "three.json"), "--seeds", "3"]) == 0
    one, three = (json.loads((tmp_path / f"{x}.json").read_text()) for x in ("one", "three"))
    assert three["seeds"] == [0, 1, 2] and three["n"] == 3 and three["completions"] == 9
    assert [s["seed"] for s in three["per_seed"]] == [0, 1, 2]
    assert three["per_seed"][0]["pass@1"] == one["pass@1"]  # seed 0 of three is the one-seed run
    assert three["pass@1"] == pytest.approx(sum(s["pass@1"] for s in three["per_seed"]) / 3)
    assert {"pass@1_seed_std", "pass@1_seed_min", "pass@1_seed_max", "pass@1_ci_low"} <= set(three)
    assert [p["samples"] for p in three["problems"]] == [3, 3, 3]
    assert "seed 2: pass@1" in capsys.readouterr().out
