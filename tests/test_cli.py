"""The command line as a user meets it: a run that writes its results, and bad input that gets one line."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert "temperature 0.6" in capsys.readouterr().out
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


def test_generate_shows_answer(model_dir, capsys):
    assert main(["generate", "--model", str(model_dir), "--max-new-tokens", "5", "hello"]) == 0
    assert "[answer]" in capsys.readouterr().out


def test_generate_think_budget_asks_for_that_length(model_dir, monkeypatch, capsys):
    from thinkrl import chat

    seen = []
    monkeypatch.setattr(chat, "_answer", lambda engine, cfg, history, seed: seen.append(history) or _Done())
    assert main(["generate", "--model", str(model_dir), "--think-budget", "32", "What is 2 + 3?"]) == 0
    assert seen[0][-1]["content"] == "What is 2 + 3?\nThink for 32 tokens."
    assert main(["generate", "--think-budget", "-1", "hi"]) == 2


class _Done:
    text, token_ids, finish_reason = "<think>a</think> <answer>5</answer>", [1, 2], "stop"


def test_print_config(capsys):
    assert main(["eval", "--print-config", "--set", "sampling.top_k=5"]) == 0
    assert "top_k = 5" in capsys.readouterr().out


def _bad_jsonl(tmp_path):
    p = tmp_path / "data.jsonl"
    p.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "oops"\n')
    return p


def _no_field(tmp_path):
    p = tmp_path / "nofield.jsonl"
    p.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    return p


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (lambda t, m: ["eval", "--model", str(t / "missing")], "not found"),
        (lambda t, m: ["eval", "--model", "Qwen/Qwen2.5-0.5B"], "hub id"),
        (lambda t, m: ["eval", "--set", "sampling.temprature=1"], "did you mean 'sampling.temperature'"),
        (lambda t, m: ["eval", str(t / "nope.toml")], "nope.toml not found"),
        (lambda t, m: ["eval", "--model", str(m), "--task", f"jsonl:{t / 'absent.jsonl'}"], "absent.jsonl"),
        (lambda t, m: ["eval", "--model", str(m), "--task", f"jsonl:{_bad_jsonl(t)}"], r"data.jsonl:2"),
        (lambda t, m: ["eval", "--model", str(m), "--task", f"jsonl:{_no_field(t)}"], r"nofield.jsonl:1.*question"),
        (lambda t, m: ["eval", "--task", "gsm9k"], "gsm9k"),
        (lambda t, m: ["eval", "--limit", "ten"], "must be an integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, pattern, tmp_path, model_dir, capsys):
    rc = main(argv(tmp_path, model_dir))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert __import__("re").search(pattern, err), err


def test_real_binary_bad_input_has_no_traceback(tmp_path):
    exe = shutil.which("thinkrl") or str(Path(sys.executable).parent / "thinkrl")
    cmd = [exe] if Path(exe).exists() else [sys.executable, "-m", "thinkrl.cli"]
    run = subprocess.run(cmd + ["eval", "--model", "meta-llama/Llama-3-8B"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_chat_keeps_a_conversation_and_resets(model_dir, monkeypatch, capsys):
    lines = iter(["hello", "and again", "/reset", "", "fresh start", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    seen = []
    from thinkrl import chat

    original = chat._answer

    def spy(engine, cfg, history, seed):
        seen.append([m["content"] for m in history if m["role"] == "user"])
        return original(engine, cfg, history, seed)

    monkeypatch.setattr(chat, "_answer", spy)
    assert main(["chat", "--model", str(model_dir), "--max-new-tokens", "4"]) == 0
    assert seen == [["hello"], ["hello", "and again"], ["fresh start"]]
    assert capsys.readouterr().out.count("[answer]") == 3


def test_default_recipe_is_found_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["rl", "--print-config"]) == 0
    assert 'digits = [2, 1]' in capsys.readouterr().out  # recipes/r1_zero.toml, not the bare defaults


def test_python_dash_m_thinkrl_is_the_cli(tmp_path):
    """`python -m thinkrl` runs the same CLI: a bad model name is one line and exit 2."""
    run = subprocess.run([sys.executable, "-m", "thinkrl", "eval", "--model", "meta-llama/Llama-3-8B"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("thinkrl eval: error:") and len(run.stderr.strip().splitlines()) == 1
