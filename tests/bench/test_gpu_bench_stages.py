"""Every stage of benchmarks/gpu_bench.sh at a tiny shape on CPU, so a broken path fails here and not
on the GPU machine: bench train through the graph runner's code (engine memory, phase peaks), with
gradient checkpointing, with the engine released before each update; the profile table; the
figures of a `thinkrl rl` run (the demo and the mismatch stage read them); the summary table against
issue 21's targets; the CUDA marker that selects the first stage's tests."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thinkrl import bench, bench_summary
from thinkrl.cli import main
from thinkrl.models import save_pretrained, tiny_model

TINY_NEW = bench.SHAPES["tiny"].new_tokens
ROOT = Path(__file__).resolve().parents[2]


def _bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--shape", "tiny", "--device", "cpu", "--warmup", "1", "--steps", "1", "--out", str(out), *args])
    assert rc == 0
    return json.loads(out.read_text())


def test_train_through_the_graph_runner_reports_what_the_engine_keeps(tmp_path, capsys):
    r = _bench(tmp_path, "--set", "runner=graph")
    e = r["engine_memory"]
    s = bench.SHAPES["tiny"]
    assert e["engine_runner"] == "graph" and e["kv_cache_shape"][0] == s.layers
    cap, kv_heads, cols, head_dim = e["kv_cache_shape"][1:]
    assert e["kv_cache_gib"] * 2**30 == 2 * s.layers * cap * kv_heads * cols * head_dim * 4  # k and v, fp32
    assert cap >= s.prompts * s.group_size and cols >= s.prompt_tokens + s.new_tokens
    assert e["runner_buffers_gib"] > 0 and e["released_allocated_gib"] is None  # freed bytes: CUDA only
    assert r["rollout_peak_gib"] is None and r["update_peak_gib"] is None  # no resettable peak on CPU
    assert r["completion_tokens_min"] == r["completion_tokens_max"] == TINY_NEW
    assert r["mismatch_max"] < 1e-4  # the graph runner's log-probs are the training forward's (fp32)
    printed = capsys.readouterr().out
    assert "engine keeps         KV cache" in printed and "phase peaks" in printed


def test_trl_settings_and_a_released_engine_run(tmp_path, monkeypatch):
    released = []
    real = bench.grpo_step

    def step(t, i, device, release_engine=False):
        out = real(t, i, device, release_engine)
        released.append(t.engine._graph is None)
        return out

    monkeypatch.setattr(bench, "grpo_step", step)
    r = _bench(tmp_path, "--set", "runner=graph", "--set", "release_engine=true", "--set", "algo.gradient_checkpointing=true")
    assert r["gradient_checkpointing"] and r["release_engine"] and "engine_memory" not in r
    assert released == [True, True]  # the update never holds the KV cache
    assert r["completion_tokens_min"] == r["completion_tokens_max"] == TINY_NEW and r["mismatch_max"] < 1e-4


def test_profile_table(tmp_path, capsys):
    r = _bench(tmp_path, "--mode", "profile", "--set", "profile_rows=5", "--set", "algo.logprob_chunk=64")
    assert r["mode"] == "profile" and r["sorted_by"] == "self CPU time" and 1 <= len(r["top"]) <= 5
    assert all(e["ms"] > 0 and e["calls"] >= 1 for e in r["top"])
    assert [e["ms"] for e in r["top"]] == sorted((e["ms"] for e in r["top"]), reverse=True)
    assert 0 < sum(e["share"] for e in r["top"]) <= 1 + 1e-9 and r["profiled_ms"] > 0
    assert "operator (self CPU time)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """A 2-step `thinkrl rl` run of a tiny model with held-out evaluations, as the mismatch and demo stages run."""
    from thinkrl import config as C
    from thinkrl.train import rl

    tmp = tmp_path_factory.mktemp("gpubench")
    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp / "tiny")
    sets = {"model.name": str(model_dir), "out_dir": str(tmp / "run"), "task.name": "arithmetic", "task.template": "raw",
            "task.digits": "1,1", "task.ops": "+", "task.num_eval": 4, "steps": 2, "prompts_per_step": 2, "group_size": 2,
            "sampling.max_new_tokens": 6, "eval.limit": 4, "eval.sampling.max_new_tokens": 6, "save_every": 0,
            "sample_every": 0}
    rl.train(C.load(C.RLConfig, None, [f"{k}={v}" for k, v in sets.items()]), show_progress=False)
    return tmp / "run"


def test_run_figures_of_a_training_run(one_step_run, tmp_path):
    out = tmp_path / "demo.json"
    assert bench_summary.main(["run", str(one_step_run), str(out)]) == 0
    r = json.loads(out.read_text())
    rows = [json.loads(x) for x in (one_step_run / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in rows if "time/step" in x]
    assert r["steps"] == 2 and r["step_s"] == pytest.approx(sum(x["time/step"] for x in steps))
    assert r["generate_s"] + r["update_s"] <= r["step_s"] + 1e-9
    assert r["mismatch_first_mean"] == steps[0]["mismatch/mean"] < 1e-4  # fp32: engine = training forward
    assert r["mismatch_max"] >= r["mismatch_first_max"]
    assert r["heldout_first_step"] == 0 and r["heldout_last_step"] == 2 and 0 <= r["heldout_last"] <= 1


def _write(folder: Path, name: str, data: dict) -> None:
    (folder / name).write_text(json.dumps(data))


def test_summary_table_against_the_targets(tmp_path, capsys):
    _write(tmp_path, "train_fast.json", {"step_s": 1.0, "rollout_s": 0.6, "update_s": 0.4, "mfu": 0.40, "peak_memory_gib": 25.0,
                                         "mismatch_mean": 0.01, "mismatch_max": 0.05, "update_peak_gib": 20.0,
                                         "trl": {"trl": "1.16.0", "step_s": 12.0, "peak_memory_gib": 7.7},
                                         "engine_memory": {"kv_cache_gib": 0.5, "runner_buffers_gib": 0.1, "graph_pool_gib": 0.2,
                                                           "released_allocated_gib": 0.7}})
    _write(tmp_path, "train_gc.json", {"step_s": 1.5, "peak_memory_gib": 7.0})
    _write(tmp_path, "train_release.json", {"step_s": 1.2, "update_peak_gib": 19.5})
    _write(tmp_path, "decode_64.json", {"tokens_per_s": 61_000.0})
    _write(tmp_path, "decode_256.json", {"tokens_per_s": 100_000.0})
    _write(tmp_path, "mismatch.json", {"mismatch_first_mean": 0.004, "mismatch_first_max": 0.2})
    _write(tmp_path, "cuda_tests.json", {"rc": 0})
    (tmp_path / "demo.json").write_text("{not json")  # a broken file reads as missing
    assert bench_summary.main(["table", str(tmp_path)]) == 0
    got = {what: (figure, met) for what, figure, _, met in bench_summary.summary_rows(tmp_path)}
    assert got["CUDA tests"] == ("passed", "yes")
    assert got["speed-up over TRL"] == ("12.0x", "yes")
    assert got["decode tokens/s, batch 64"] == ("61,000", "yes") and got["decode tokens/s, batch 256"][1] == "NO"
    assert got["update MFU, fast settings"] == ("40.0%", "yes")
    assert got["peak memory, fast settings"] == ("25.00 GiB", "NO")
    assert got["peak memory, TRL's settings"] == ("7.00 GiB", "yes")  # below TRL's 7.7
    assert got["log-prob mismatch, real model, one rollout: mean"] == ("0.0040", "yes")
    assert got["update-phase peak: kept engine / released engine"][0] == "20.00 / 19.50 GiB (step 1.000 / 1.200 s)"
    assert got["demo: held-out pass@1"] == ("n/a", "n/a") and got["profile: top entry"] == ("n/a", "n/a")
    printed = capsys.readouterr().out
    assert printed.startswith("| what | figure | target | met |") and (tmp_path / "summary.md").read_text() == printed


def test_an_empty_results_folder_gives_a_table_of_na(tmp_path):
    rows = bench_summary.summary_rows(tmp_path)
    assert rows and all(figure == "n/a" and met == "n/a" for _, figure, _, met in rows)
    assert bench_summary.main(["nonsense"]) == 2


def test_the_cuda_marker_selects_the_gpu_only_tests():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", "-m", "cuda",
                           "tests/test_bench.py", "tests/train/test_optim.py"], cwd=ROOT, capture_output=True, text=True)
    assert "test_gpu_figures" in proc.stdout and "test_master_weights_on_cuda" in proc.stdout
    assert "test_decode_mode" not in proc.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_engine_memory_on_cuda(tmp_path):
    out = tmp_path / "gpu.json"
    assert main(["bench", "--shape", "tiny", "--device", "cuda", "--warmup", "1", "--steps", "1", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    e = r["engine_memory"]
    assert e["engine_runner"] == "graph" and e["kv_cache_gib"] > 0 and e["graphs_captured"] >= 1
    assert e["released_allocated_gib"] >= e["kv_cache_gib"] * 0.99  # release() gives the cache back
    assert 0 < r["rollout_peak_gib"] <= r["peak_memory_gib"] and 0 < r["update_peak_gib"] <= r["peak_memory_gib"]


@pytest.mark.slow
def test_the_script_runs_every_stage_at_tiny_shapes(tmp_path):
    """`GPU_BENCH_TINY=1 bash benchmarks/gpu_bench.sh` on CPU (the embedded model's stages left out: a minute)."""
    env = {"PATH": "/usr/bin:/bin", "GPU_BENCH_TINY": "1", "SKIP_DEMO": "1", "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT), "RESULTS": str(tmp_path / "results"), "RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.run(["bash", "benchmarks/gpu_bench.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for name in ("cuda_tests", "train_fast", "decode_64", "decode_256", "train_gc", "profile", "train_release"):
        assert (tmp_path / "results" / f"{name}.json").is_file(), name
    assert "| speed-up over TRL |" in (tmp_path / "results" / "summary.md").read_text()
