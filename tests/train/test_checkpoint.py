"""Crash safety: what a kill at any moment can leave behind never breaks --resume or the logs,
and a real run SIGKILLed twice and resumed ends exactly like one never killed."""

import json

import pytest
import torch

from bench_modules import load_benchmark
from thinkrl.errors import UserError
from thinkrl.models import tiny_model
from thinkrl.train import checkpoint as ck
from thinkrl.train.logger import RunLogger, read_metrics


def _save(run, step, model, tok, keep=2):
    return ck.save_checkpoint(run, step, model, tok, {"step": step, "position": 0}, keep=keep)


def test_newest_complete_checkpoint_wins_over_what_a_killed_save_left(tmp_path):
    model, tok = tiny_model("llama", seed=1)
    for step in (1, 2, 3):
        _save(tmp_path, step, model, tok)
    root = tmp_path / "checkpoints"
    assert [p.name for p in ck.checkpoint_dirs(tmp_path)] == ["step-000002", "step-000003"]  # keep = 2
    # a save of step 4 killed before its rename, and a delete of step 1 killed half-way
    half = root / ".step-000004.tmp-abc123"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\x00" * 10)
    (half / ck.STATE_FILE).write_bytes(b"torn")
    deleting = root / ".step-000001.del"
    deleting.mkdir()
    (deleting / ck.STATE_FILE).write_bytes(b"old")
    assert ck.checkpoint_to_resume(tmp_path, resume=True).name == "step-000003"
    assert ck.load_trainer_state(ck.latest_checkpoint(tmp_path))["step"] == 3
    _save(tmp_path, 4, model, tok)  # the next save clears what the killed ones left
    assert sorted(p.name for p in root.iterdir()) == ["step-000003", "step-000004"]


def test_resume_without_a_checkpoint_says_how_to_start_again(tmp_path):
    RunLogger(tmp_path, tensorboard=False).log(1, {"reward/mean": 0.5})  # killed before its first checkpoint
    with pytest.raises(UserError, match="before its first checkpoint.*start it afresh"):
        ck.checkpoint_to_resume(tmp_path, resume=True)
    with pytest.raises(UserError, match="pass --resume"):
        ck.checkpoint_to_resume(tmp_path, resume=False)


def test_resume_cut_drops_later_steps_and_a_torn_line(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    for step in (0, 1, 2, 3):
        log.log(step, {"x": float(step)})
    log.samples(2, [{"text": "a"}, {"text": "b"}])
    log.samples(3, [{"text": "c"}])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "x": 4.')  # a kill in the middle of a write
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2, 3]  # readers skip the torn line
    RunLogger(tmp_path, resume_step=2, tensorboard=False).log(3, {"x": 30.0})
    assert [(r["step"], r["x"]) for r in read_metrics(tmp_path)] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]
    assert [json.loads(x)["text"] for x in (tmp_path / "samples.jsonl").read_text().splitlines()] == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "samples.jsonl"]  # no temp file left


def _kill_test():
    return load_benchmark("kill_test")


def test_sigkilled_run_resumes_to_identical_weights_and_metrics(tmp_path):
    """benchmarks/kill_test.py in small: 2 SIGKILLs aimed at the checkpoint write and the update."""
    s = _kill_test().run(kills=2, steps=4, save_every=1, eval_every=2, seed=1, work=tmp_path,
                         phases=("checkpoint", "update"), verbose=False)
    assert s["kills"] == 2 and s["resumes"] + s["fresh_starts"] >= 2
    assert not s["bad_resume"], s["bad_resume"]
    assert not s["differing_tensors"] and s["tensors"] > 0
    assert s["metrics_equal"] and not s["duplicated"] and not s["missing"] and s["samples_equal"]
    assert not s["leftovers_at_end"]
    ref = torch.load(tmp_path / "killed" / "checkpoints" / "step-000004" / ck.STATE_FILE, weights_only=False)
    assert ref["step"] == 4


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="the Python tool's sandbox needs root")
def test_sigkilled_run_with_tool_calls_resumes_to_identical_weights_and_metrics(tmp_path):
    """The same with multi-turn rollouts: every completion calls the Python tool (sandboxed), kills
    aimed at generation (tool calls in flight) and the checkpoint write; nothing sandboxed survives."""
    s = _kill_test().run(kills=2, steps=3, save_every=1, eval_every=2, seed=1, work=tmp_path,
                         phases=("generate", "checkpoint"), verbose=False, tools=True)
    assert s["kills"] == 2 and s["resumes"] >= 1 and s["tool_calls"] > 0
    assert not s["bad_resume"], s["bad_resume"]
    assert not s["differing_tensors"] and s["tensors"] > 0
    assert s["metrics_equal"] and s["samples_equal"] and not s["leftovers_at_end"]
    assert s["sandbox_survivors"] == 0
