"""Data-parallel RL on torchrun + FSDP2 (gloo, CPU): two processes end where one process ends."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thinkrl.dist import Group
from thinkrl.dist.launch import without_nproc
from thinkrl.models import save_pretrained, tiny_model

REPO = Path(__file__).resolve().parents[2]
TIMING = ("time/", "tokens_per_second/", "eval/seconds")


def recipe(model_dir: Path, steps: int = 3) -> str:
    return f"""steps = {steps}
prompts_per_step = 4
group_size = 4
seed = 0
sample_every = 1
save_every = 2

[model]
name = "{model_dir}"
device = "cpu"

[task]
name = "arithmetic"
digits = "1,1"
ops = "+"
num_eval = 6
template = "raw"

[sampling]
temperature = 1.0
max_new_tokens = 8

[rewards]
accuracy = 1.0
language = 0.5  # varies with a random model's bytes: the groups carry a signal

[algo]
micro_batch_size = 3
mini_batches = 2
epochs = 2

[optim]
lr = 1e-3

[eval]
limit = 5
every = 2

[eval.sampling]
temperature = 0.0
max_new_tokens = 8
"""


def thinkrl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "thinkrl", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def assert_same_training(a: dict, b: dict, where: str = "") -> None:
    """Weights of two runs that differ only in how floating-point sums were split: Adam moves a
    weight by ~lr whatever its gradient's size, so the few weights whose gradient is float noise
    may differ by a few percent of lr (1e-3 here; seen up to 1.5e-5); the rest agree to ~1e-8."""
    for k in a:
        assert torch.allclose(a[k], b[k], atol=5e-5, rtol=0), (where, k)
        assert float((a[k] - b[k]).abs().mean()) < 1e-7, (where, k)


def test_group_shares_and_rows_cover_everything_once():
    for world in (1, 2, 3):
        shares = [list(Group(r, world).share(10)) for r in range(world)]
        assert sum(shares, []) == list(range(10))
        rows = [Group(r, world).rows([5, 1, 4, 2, 3]) for r in range(world)]
        assert sorted(sum(rows, [])) == [1, 2, 3, 4, 5]
    assert without_nproc(["rl", "--nproc", "2", "r.toml", "--nproc=3", "--steps", "2"]) == ["rl", "r.toml", "--steps", "2"]


def test_two_gloo_processes_end_with_one_process_weights_and_metrics(tmp_path):
    """Same recipe, seed and global batch (4 prompts x 4): `--nproc 2` (each rank samples 2 prompt
    groups, FSDP2 shards the model, gradients summed over ranks) against one process."""
    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    (tmp_path / "recipe.toml").write_text(recipe(model_dir))
    thinkrl("rl", "recipe.toml", "--out-dir", "one", cwd=tmp_path)
    two = thinkrl("rl", "recipe.toml", "--out-dir", "two", "--nproc", "2", cwd=tmp_path)
    assert two.stdout.count("final model:") == 1  # rank 0 prints
    a, b = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("one", "two"))
    start = load_file(model_dir / "model.safetensors")
    assert sorted(a) == sorted(b)
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 1e-4  # it trained
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-6, rtol=0), k
    ma, mb = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in ma] == [r["step"] for r in mb] and len(ma) >= 5
    for x, y in zip(ma, mb):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-000002", "step-000003"]


def test_token_budget_micro_batches_on_two_gloo_processes_match_one_process(tmp_path):
    """algo.micro_batch_tokens with length bucketing: each rank cuts its rows by the budget and the
    ranks' pass counts differ with their rows' lengths (ghost passes fill in, every rank computing
    every rank's count); the run ends with the weights and metrics of one process's row-count split."""
    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    (tmp_path / "recipe.toml").write_text(recipe(model_dir, steps=2))
    thinkrl("rl", "recipe.toml", "--out-dir", "one", "--set", "eval.limit=0", cwd=tmp_path)
    thinkrl("rl", "recipe.toml", "--out-dir", "two", "--nproc", "2", "--set", "eval.limit=0", "--set",
            "algo.micro_batch_tokens=40", "--set", "algo.bucket_by_length=true", cwd=tmp_path)
    a, b = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("one", "two"))
    assert_same_training(a, b)
    ma, mb = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in ma] == [r["step"] for r in mb] == [1, 2]
    for x, y in zip(ma, mb):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k)


def test_a_rank_sigkilled_stops_the_job_and_it_resumes_to_identical_weights(tmp_path):
    """benchmarks/kill_test.py --nproc 2 in small: one rank of two SIGKILLed (torchrun ends the
    other within seconds), resumed from the newest checkpoint, ends bit-identical to a run never killed."""
    from bench_modules import load_benchmark

    s = load_benchmark("kill_test").run(kills=2, steps=3, save_every=1, eval_every=2, seed=1, work=tmp_path,
                                        phases=("generate", "update", "checkpoint"), verbose=False, nproc=2)
    assert s["kills"] == 2 and s["resumes"] >= 1 and not s["bad_resume"], s
    assert s["weights_moved"] and not s["differing_tensors"] and s["tensors"] > 0
    assert s["metrics_equal"] and s["samples_equal"] and not s["leftovers_at_end"]
    assert s["hangs"] == 0 and s["stop_s"] < 60


def test_sft_on_two_gloo_processes_ends_with_one_process_weights(tmp_path):
    """SFT, batches of 7 examples in micro-batches of 2 (ranks hold 4 and 3: the lighter one runs a
    zero-loss pass to keep FSDP2's collectives in step), held-out loss and task eval sharded too."""
    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    rows = [{"messages": [{"role": "user", "content": f"{i % 7}+{i % 5}?"},
                          {"role": "assistant", "content": f"<answer>{i % 7 + i % 5}</answer>"}]} for i in range(24)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "sft.toml").write_text(f"""data = "d.jsonl"
epochs = 2
batch_size = 7
micro_batch_size = 2
eval_fraction = 0.2
save_every = 2
[model]
name = "{model_dir}"
device = "cpu"
[optim]
lr = 3e-3
[task]
name = "arithmetic"
digits = "1,1"
ops = "+"
template = "raw"
num_eval = 10
[eval]
limit = 5
[eval.sampling]
max_new_tokens = 6
""")
    thinkrl("sft", "sft.toml", "--out-dir", "one", cwd=tmp_path)
    thinkrl("sft", "sft.toml", "--out-dir", "two", "--nproc", "2", cwd=tmp_path)
    a, b = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("one", "two"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-6, rtol=0), k
    ma, mb = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert len(ma) == len(mb) and any("eval/loss" in r for r in ma) and any("eval/pass@1" in r for r in ma)
    for x, y in zip(ma, mb):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k)


def test_resume_across_one_and_several_processes_is_refused_in_one_line(tmp_path):
    from thinkrl.errors import UserError
    from thinkrl.train.resume import _same_kind

    _same_kind({"world_size": 2}, 3, tmp_path)  # several to several: goes on (and says so)
    _same_kind({}, 1, tmp_path)  # a checkpoint from before world_size was recorded: one process
    with pytest.raises(UserError, match="written by 1 process.*this run has 2.*resume with one process"):
        _same_kind({}, 2, tmp_path)
    with pytest.raises(UserError, match="written by 2 process.*resume with torchrun"):
        _same_kind({"world_size": 2}, 1, tmp_path)


def test_lora_on_two_gloo_processes_ends_with_one_process_adapter(tmp_path):
    """LoRA under FSDP2: frozen base and trainable adapters sharded together, the engine's copy
    carries the adapters, checkpoints hold the adapter; a KL term's reference is the base (adapters off)."""
    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    (tmp_path / "recipe.toml").write_text(recipe(model_dir, steps=2) + "\n[lora]\nr = 4\n")
    overrides = ["--set", "algo.kl_coef=0.05", "--set", "optim.lr=1e-2"]
    thinkrl("rl", "recipe.toml", "--out-dir", "one", *overrides, cwd=tmp_path)
    thinkrl("rl", "recipe.toml", "--out-dir", "two", "--nproc", "2", *overrides, cwd=tmp_path)
    a, b = (load_file(tmp_path / run / "final" / "adapter" / "adapter_model.safetensors") for run in ("one", "two"))
    assert sorted(a) == sorted(b) and a
    assert max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k) > 0  # the adapters trained
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-6, rtol=0), k
    assert (tmp_path / "two" / "checkpoints" / "step-000002" / "adapter_model.safetensors").is_file()
    ma, mb = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    for x, y in zip(ma, mb):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k)


def test_ppo_on_two_gloo_processes_ends_with_one_process_policy_and_critic_and_resumes(tmp_path):
    """PPO: the critic sharded like the policy, its values computed in shares and gathered, its
    update split by rows; checkpoints hold its full weights and its sharded optimizer state, and a
    2-process run resumed from its step-2 checkpoint ends where the uninterrupted one did."""
    import shutil

    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    (tmp_path / "recipe.toml").write_text(recipe(model_dir).replace("[algo]\n", "[algo]\nalgorithm = \"ppo\"\n"))
    overrides = ["--set", "optim.critic_lr=1e-3", "--set", "algo.kl_coef=0.05", "--set", "algo.kl_in_reward=true"]
    thinkrl("rl", "recipe.toml", "--out-dir", "one", *overrides, cwd=tmp_path)
    thinkrl("rl", "recipe.toml", "--out-dir", "two", "--nproc", "2", *overrides, cwd=tmp_path)
    shutil.copytree(tmp_path / "two", tmp_path / "again")
    for gone in ("checkpoints/step-000003", "final", "critic"):
        shutil.rmtree(tmp_path / "again" / gone)
    thinkrl("rl", "recipe.toml", "--out-dir", "again", "--nproc", "2", "--resume", *overrides, cwd=tmp_path)
    for part in ("final", "critic"):
        a, b, c = (load_file(tmp_path / run / part / "model.safetensors") for run in ("one", "two", "again"))
        assert sorted(a) == sorted(b) == sorted(c)
        assert_same_training(a, b, part)
        assert all(torch.equal(b[k], c[k]) for k in b), part
    start = load_file(model_dir / "model.safetensors")
    critic = load_file(tmp_path / "two" / "critic" / "model.safetensors")
    assert max(float((critic[k] - start[k]).abs().max()) for k in start if k in critic) > 1e-4  # the critic trained
    ckpt = tmp_path / "two" / "checkpoints" / "step-000002"
    assert (ckpt / "critic.safetensors").is_file() and (ckpt / "sharded").is_dir()
    ma, mb = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert any("critic/value_loss" in r for r in ma)
    for x, y in zip(ma, mb):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k)
    assert metrics(tmp_path / "again") == mb


def test_dynamic_sampling_and_a_reward_model_on_two_gloo_processes_match_one_process(tmp_path):
    """DAPO's refill decides on the gathered groups (the same draws on every rank), and a reward
    model scores each rank's share of the completions: weights and metrics as in one process."""
    from thinkrl.rewards.model import load_reward_model

    model_dir = save_pretrained(*tiny_model("llama", seed=5), tmp_path / "tiny")
    torch.manual_seed(3)
    rm, tok, _ = load_reward_model(str(model_dir), new_head=True)
    save_pretrained(rm, tok, tmp_path / "rm")
    rewards = f'reward_model = "{tmp_path / "rm"}"\nreward_model_weight = 1.0\nreward_model_input = "response"'
    text = recipe(model_dir, steps=2).replace("language = 0.5", rewards)
    (tmp_path / "recipe.toml").write_text(text.replace("[algo]\n", "[algo]\ndynamic_sampling = true\nmax_draws = 3\n"))
    thinkrl("rl", "recipe.toml", "--out-dir", "one", cwd=tmp_path)
    thinkrl("rl", "recipe.toml", "--out-dir", "two", "--nproc", "2", cwd=tmp_path)
    a, b = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("one", "two"))
    assert_same_training(a, b)
    ma, mb = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert any("dynamic/draws" in r for r in ma) and any("reward/rm/mean" in r for r in ma), sorted(ma[0])
    for x, y in zip(ma, mb):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k)


RANK_SCRIPT = """
import sys, time
from thinkrl import dist
group, _ = dist.init("cpu")
if sys.argv[1] == "stuck":  # rank 1 never joins: rank 0's collective gives up at the timeout
    if group.rank == 1:
        time.sleep(120)
    group.sum({"x": 1.0})
else:  # rank 1 fails: torchrun stops rank 0, which waits in a collective
    if group.rank == 1:
        raise ValueError("boom on rank 1")
    group.sum({"x": 1.0})
"""


@pytest.mark.parametrize("case, says", [("stuck", "Timed out waiting 5000ms"), ("raises", "boom on rank 1")])
def test_a_failing_or_stuck_rank_ends_the_job_with_its_error_never_a_hang(tmp_path, case, says):
    import time

    (tmp_path / "ranks.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "THINKRL_COLLECTIVE_TIMEOUT_S": "5"}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(tmp_path / "ranks.py"), case], env=env, capture_output=True, text=True, timeout=110)
    took = time.monotonic() - start
    assert out.returncode != 0 and took < 60, (took, out.stderr[-2000:])
    assert says in out.stderr, out.stderr[-3000:]
