"""`thinkrl bench` on the tiny shape: its figures exist and are positive, completions run their
full forced length even where the model wants to stop, the update really changes the weights,
decode mode works, and --vs-trl without TRL is one line and exit code 2."""

import json

import pytest
import torch

from thinkrl import bench
from thinkrl.cli import main

TINY_NEW = bench.SHAPES["tiny"].new_tokens


@pytest.fixture
def eos_loving(monkeypatch):
    """bench.build_model with +12 on the end-of-sequence logit (about 99.9% EOS a token): a
    generation that stopped at EOS would be 1 token long. Keeps the built models for inspection."""
    built = []
    real = bench.build_model

    def build(w, seed):
        model = real(w, seed)
        bias = torch.zeros(w.shape.vocab)
        bias[w.shape.vocab - 2] = 12.0
        model.lm_head.register_forward_hook(lambda module, inputs, out: out + bias.to(out))
        built.append((model, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return model

    monkeypatch.setattr(bench, "build_model", build)
    return built


def _run(tmp_path, *args):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--shape", "tiny", "--device", "cpu", "--warmup", "1", "--steps", "1", "--out", str(out), *args])
    return rc, json.loads(out.read_text())


def test_train_step_figures_forced_lengths_and_a_real_update(tmp_path, capsys, eos_loving):
    rc, r = _run(tmp_path)
    assert rc == 0
    for key in ("step_s", "rollout_s", "update_s", "rollout_tokens_per_s", "update_tokens_per_s",
                "update_tflops_per_s", "peak_memory_gib", "params"):
        assert r[key] > 0, key
    assert r["step_s"] == pytest.approx(r["rollout_s"] + r["update_s"])
    assert r["mfu"] is None and "no peak on CPU" in r["peak_tflops_source"]  # CPU: no denominator unless given
    assert r["completion_tokens_min"] == r["completion_tokens_max"] == TINY_NEW  # EOS ignored although near-certain
    assert r["mismatch_max"] < 1e-4  # fp32: the engine's log-probs are the training forward's
    printed = capsys.readouterr().out
    for label in ("step time", "rollout tokens/s", "update tokens/s", "MFU (update)", "peak memory"):
        assert label in printed
    model, before = eos_loving[0]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # 2 optimizer steps happened


def test_mfu_with_a_given_peak(tmp_path):
    rc, r = _run(tmp_path, "--peak-tflops", "0.5")
    assert rc == 0
    assert r["mfu"] == pytest.approx(r["update_tflops_per_s"] / 0.5)
    s = bench.SHAPES["tiny"]
    flops = 6 * r["params"] * s.prompts * s.group_size * (s.prompt_tokens + s.new_tokens)
    assert r["update_tflops_per_s"] == pytest.approx(flops / r["update_s"] / 1e12)


def test_decode_mode(tmp_path, capsys, eos_loving):
    rc, r = _run(tmp_path, "--mode", "decode", "--batch", "6")
    assert rc == 0
    assert r["batch"] == 6 and r["tokens_per_s"] > 0 and r["ms_per_step"] > 0 and r["peak_memory_gib"] > 0
    assert r["completion_tokens_min"] == r["completion_tokens_max"] == TINY_NEW
    assert r["tokens_per_s"] == pytest.approx(6 * TINY_NEW / r["seconds"])
    assert "decode tokens/s" in capsys.readouterr().out


def test_vs_trl_without_trl_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(bench, "trl_available", lambda: False)
    monkeypatch.setattr(bench, "build_model", lambda *a: pytest.fail("built a model before refusing"))
    assert main(["bench", "--shape", "tiny", "--device", "cpu", "--vs-trl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("thinkrl bench: error: --vs-trl needs the packages trl and datasets") and "\n" not in err


@pytest.mark.parametrize("args, words", [
    (["--mode", "decode", "--vs-trl"], "use mode = train"),
    (["--shape", "huge"], "shape must be one of"),
    (["--set", "group_size=1"], "at least 2 completions"),
    (["--set", "algo.kl_coef=0.1"], "algo.kl_coef = 0"),
])
def test_bad_bench_input(args, words, capsys):
    assert main(["bench", "--device", "cpu", "--shape", "tiny", *args]) == 2  # a later --shape wins
    assert words in capsys.readouterr().err


def test_peak_table_by_device_name(monkeypatch):
    from thinkrl.config import BenchConfig

    cfg = BenchConfig(shape="tiny")
    for name, peak in (("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.0),
                       ("NVIDIA GeForce GTX 1080", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, n=name: n)
        assert bench.peak_tflops(cfg, "cuda")[0] == peak
    assert bench.peak_tflops(BenchConfig(shape="tiny", peak_tflops=100.0), "cuda") == (100.0, "bench.peak_tflops")


def test_update_flops_counts_a_detached_prompt_once_forward():
    assert bench.update_flops(10, 2, 3, 4, detach_prompt=False) == 10 * 2 * 6 * (3 + 4)
    assert bench.update_flops(10, 2, 3, 4, detach_prompt=True) == 10 * 2 * (6 * 4 + 2 * 3)


@pytest.mark.skipif(not bench.trl_available(), reason="trl and datasets are not installed")
def test_vs_trl_runs_trl_on_the_same_configuration(tmp_path, capsys):
    rc, r = _run(tmp_path, "--vs-trl")
    assert rc == 0, r.get("trl")
    assert r["trl"]["step_s"] > 0 and r["trl"]["completion_tokens_min"] == TINY_NEW
    assert r["ratios"]["step_speedup"] == pytest.approx(r["trl"]["step_s"] / r["step_s"])
    assert "thinkrl vs TRL" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_figures(tmp_path):
    out = tmp_path / "gpu.json"
    assert main(["bench", "--shape", "tiny", "--device", "cuda", "--warmup", "1", "--steps", "1", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["gpu"] and r["dtype"] == "bfloat16" and r["peak_memory_source"] == "torch.cuda.max_memory_allocated"
    assert r["completion_tokens_min"] == r["completion_tokens_max"] == TINY_NEW
