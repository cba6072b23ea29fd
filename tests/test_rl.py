"""The RL loop on tiny models: the update moves probabilities the right way, runs resume exactly,
and a run writes everything a user expects."""

import json

import pytest
import torch

import thinkrl.train.rl as rl
from thinkrl import config as C
from thinkrl.algos import policy_loss
from thinkrl.cli import main
from thinkrl.engine import Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.models import eos_token_ids, load_model, save_pretrained, tiny_model
from thinkrl.train.forward import completion_logprobs


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_advantage_sign_moves_the_sampled_tokens_probability(sign, detach):
    model, tok = tiny_model("llama", seed=3)
    prompts = [tok.encode("What is 3 * 4?"), tok.encode("hi")]
    outs = Engine(model, tok, eos_token_ids(model, tok)).generate(prompts, SamplingParams(max_new_tokens=10), n=2, seeds=[1, 2])
    rows, comps = [c.prompt_index for c in outs], [c.token_ids for c in outs]
    old = torch.nn.utils.rnn.pad_sequence([torch.tensor(c.logprobs) for c in outs], batch_first=True)

    def total_logp():
        with torch.no_grad():
            lp, _, mask = completion_logprobs(model, prompts, rows, comps, temperature=1.0, detach_prompt=detach)
        return float((lp * mask).sum())

    before = total_logp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    lp, _, mask = completion_logprobs(model, prompts, rows, comps, temperature=1.0, detach_prompt=detach)
    assert torch.allclose(lp * mask, old, atol=1e-4)  # the training forward reproduces the sampling log-probs
    loss, _ = policy_loss(lp, old, torch.full((4,), sign), mask)
    loss.backward()
    opt.step()
    after = total_logp()
    assert (after - before) * sign > 0


def test_detached_prompt_gradient_covers_completion_path(tiny_llama):
    """Same log-probs as the full forward; gradients differ only by the prompt's K/V path."""
    model, tok = tiny_llama
    prompts = [tok.encode("abc"), tok.encode("a longer prompt")]
    comps = [[70, 71, 72], [80, 81]]
    full, _, m1 = completion_logprobs(model, prompts, [0, 1], comps, temperature=0.7)
    det, _, m2 = completion_logprobs(model, prompts, [0, 1], comps, temperature=0.7, detach_prompt=True)
    assert torch.equal(m1, m2)
    assert torch.allclose(full * m1, det * m2, atol=1e-5)
    (det * m2).sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0


def _cfg(model_dir, out_dir, **over):
    base = {
        "model.name": str(model_dir), "out_dir": str(out_dir), "task.name": "arithmetic", "task.template": "raw",
        "task.digits": "1,1", "task.ops": "+", "task.num_eval": 20, "task.shots": 1, "steps": 4, "prompts_per_step": 2,
        "group_size": 4, "sampling.max_new_tokens": 8, "eval.limit": 4, "eval.sampling.max_new_tokens": 8,
        "save_every": 2, "optim.lr": 1e-3, "algo.micro_batch_size": 3, "algo.mini_batches": 2, "algo.epochs": 2,
        "rewards.format_soft": 0.5, "rewards.tag_count": 0.5, "sample_every": 1,
        "rewards.custom": "tiny_rewards:odd_first_char", "rewards.custom_weights": "1.0",
    }
    base.update(over)
    return C.load(C.RLConfig, None, [f"{k}={v}" for k, v in base.items()])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def _steps(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "tokens_per_second/", "eval/seconds"))} for r in rows]


def test_interrupted_and_resumed_run_ends_with_the_same_weights(model_dir, tmp_path, monkeypatch):
    straight = rl.train(_cfg(model_dir, tmp_path / "a"), show_progress=False)

    original = rl.save_checkpoint

    def crash_after_step_2(run_dir, step, *args, **kwargs):
        path = original(run_dir, step, *args, **kwargs)
        if step == 2:
            raise KeyboardInterrupt  # killed right after the step-2 checkpoint
        return path

    monkeypatch.setattr(rl, "save_checkpoint", crash_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        rl.train(_cfg(model_dir, tmp_path / "b"), show_progress=False)
    monkeypatch.setattr(rl, "save_checkpoint", original)
    with pytest.raises(UserError, match="already holds a run"):
        rl.train(_cfg(model_dir, tmp_path / "b"), show_progress=False)

    def crash_in_final_save(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the last checkpoint (and the final evaluation), before final/

    monkeypatch.setattr(rl, "save_pretrained", crash_in_final_save)
    with pytest.raises(KeyboardInterrupt):
        rl.train(_cfg(model_dir, tmp_path / "b", resume="true"), show_progress=False)
    monkeypatch.undo()
    resumed = rl.train(_cfg(model_dir, tmp_path / "b", resume="true"), show_progress=False)

    a, _ = load_model(straight)
    b, _ = load_model(resumed)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    assert _steps(tmp_path / "a") == _steps(tmp_path / "b")  # no step duplicated or missing
    initial, _ = load_model(model_dir)
    assert not torch.equal(initial.model.embed_tokens.weight, a.model.embed_tokens.weight)  # it did train


def test_a_run_writes_what_a_user_expects(model_dir, tmp_path):
    run = tmp_path / "run"
    final = rl.train(_cfg(model_dir, run, steps=2, **{"algo.dynamic_sampling": "true", "algo.kl_coef": 0.05,
                                                       "algo.aggregation": "seq_mean_token_sum_norm", "algo.scale": "none",
                                                       "algo.estimator": "rloo", "rewards.overlong": 0.5,
                                                       "algo.dual_clip": 3.0, "algo.entropy_coef": 0.01}),
                     show_progress=False)
    assert (final / "model.safetensors").is_file()
    for name in ("config.toml", "metrics.jsonl", "samples.jsonl", "curves.png"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())  # TensorBoard event file
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "reward/mean" in r]
    assert [r["step"] for r in train_rows] == [1, 2]
    for key in ("reward/accuracy/mean", "reward/format_soft/mean", "reward/tag_count/std", "reward/overlong/mean",
                "groups/zero_std_frac", "response/len_mean", "response/truncated_frac", "entropy", "kl", "clip_frac_low",
                "clip_frac_high", "grad_norm", "lr", "time/generate", "time/update", "tokens_per_second/generate",
                "dynamic/draws", "mismatch/max"):
        assert key in train_rows[0], key
    assert train_rows[0]["mismatch/max"] < 1e-4
    evals = [r for r in rows if "eval/pass@1" in r]
    assert [r["step"] for r in evals] == [0, 2]
    assert {"eval/pass@1_stderr", "eval/pass@1_ci_low", "eval/pass@1_ci_high", "eval/reflection/rate"} <= set(evals[0])
    assert "reflection/count_mean" in train_rows[0]
    # each held-out evaluation in thinkrl eval's format, so the run's gain has a paired interval
    start, end = json.loads((run / "eval" / "step_0000.json").read_text()), run / "eval" / "step_0002.json"
    assert start["step"] == 0 and start["pass@1"] == evals[0]["eval/pass@1"] and len(start["problems"]) == 4
    assert main(["compare", str(run / "eval" / "step_0000.json"), str(end)]) == 0
    assert C.load(C.RLConfig, run / "config.toml").algo.kl_coef == 0.05


def test_custom_reward_is_loaded_by_name(model_dir, tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text("def short(completion, reference, info):\n    return -info['tokens'] / 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    rl.train(_cfg(model_dir, run, steps=1, **{"rewards.custom": "my_rewards:short,tiny_rewards:odd_first_char",
                                               "rewards.custom_weights": "1.0,1.0", "eval.limit": 0}), show_progress=False)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert row["reward/short/mean"] < 0
    with pytest.raises(UserError, match="no function 'nope'"):
        rl.train(_cfg(model_dir, tmp_path / "r2", **{"rewards.custom": "my_rewards:nope", "rewards.custom_weights": "1"}))


def test_group_size_one_with_group_std_is_a_config_error():
    with pytest.raises(UserError, match="group_size"):
        C.load(C.RLConfig, None, ["group_size=1"])


def test_length_warmup_turns_the_length_rewards_on_at_its_step(model_dir, tmp_path):
    """Kimi k1.5's warm-up: rewards.length_warmup_steps = 2 trains steps 1-2 without length_kimi and
    length_cosine (not scored, not in the total), then with them; the other rewards throughout."""
    from thinkrl.rewards import RewardConfig, active, build

    rewards = build(RewardConfig(accuracy=1.0, length_kimi=0.2, length_cosine=0.5, length_warmup_steps=2))
    assert [r[0] for r in active(rewards, RewardConfig(length_warmup_steps=2), 1)] == ["accuracy"]
    assert active(rewards, RewardConfig(length_warmup_steps=2), 2) == rewards
    with pytest.raises(UserError, match="rewards.length_warmup_steps must be >= 0"):
        RewardConfig(length_warmup_steps=-1)

    run = tmp_path / "run"
    rl.train(_cfg(model_dir, run, steps=3, **{"rewards.length_kimi": 0.5, "rewards.length_warmup_steps": 2,
                                               "eval.limit": 0}), show_progress=False)
    rows = [r for r in _steps(run) if "reward/mean" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert ["reward/length_kimi/mean" in r for r in rows] == [False, False, True]
    assert all("reward/tag_count/mean" in r for r in rows)
