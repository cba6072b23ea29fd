"""`[lora]` in the training stages (thinkrl.train.adapters) on tiny models: the optimizer holds only
the adapters, checkpoints only the adapter and resume exactly, final/ is the merged model in plain
transformers with the adapter beside it in plain peft. (The adapters themselves: tests/model/test_lora_adapters.py.)"""

import dataclasses
import json

import pytest
import torch

import thinkrl.train.rl as rl
import thinkrl.train.sft as sft
from thinkrl import config as C
from thinkrl.errors import UserError
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.train import dpo, rm
from thinkrl.train.checkpoint import STATE_FILE, load_trainer_state
from thinkrl.train.critic import WEIGHTS_FILE

LORA = {"lora.r": 4, "lora.alpha": 8}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def _rl_cfg(model_dir, out_dir, **over):
    base = {"model.name": str(model_dir), "out_dir": str(out_dir), "task.name": "arithmetic", "task.template": "raw",
            "task.digits": "1,1", "task.ops": "+", "task.num_eval": 20, "task.shots": 1, "steps": 3,
            "prompts_per_step": 2, "group_size": 4, "sampling.max_new_tokens": 8, "eval.limit": 4,
            "eval.sampling.max_new_tokens": 8, "save_every": 1, "optim.lr": 1e-2, "algo.micro_batch_size": 4,
            "algo.mini_batches": 2, "algo.kl_coef": 0.05, "rewards.format_soft": 0.5,
            "rewards.custom": "tiny_rewards:odd_first_char", "rewards.custom_weights": "1.0", **LORA}
    base.update(over)
    return C.load(C.RLConfig, None, [f"{k}={v}" for k, v in base.items()])


def _rows(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "tokens_per_second/", "eval/seconds"))} for r in rows]


def _crash_after(module, monkeypatch, at: int):
    original = module.save_checkpoint

    def crash(run_dir, step, *args, **kwargs):
        path = original(run_dir, step, *args, **kwargs)
        if step == at:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(module, "save_checkpoint", crash)


def _same_files(a, b, names):
    from safetensors.torch import load_file

    for name in names:
        sa, sb = load_file(str(a / name)), load_file(str(b / name))
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), name


def _adapter_and_merged_agree(final, base_dir, ids):
    """final/ in plain transformers and final/adapter on the base in plain peft: the same logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(final)(input_ids=ids).logits
        peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), final / "adapter")
        adapted = peft_model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(base_dir)(input_ids=ids).logits
    assert torch.allclose(merged, adapted, atol=1e-4)
    assert (merged - base).abs().max() > 1e-3  # it trained


def test_rl_with_lora_keeps_the_adapter_only_and_resumes_exactly(model_dir, tmp_path, monkeypatch):
    straight = rl.train(_rl_cfg(model_dir, tmp_path / "a"), show_progress=False)
    ckpt = tmp_path / "a" / "checkpoints" / "step-000003"
    assert {p.name for p in ckpt.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors", STATE_FILE}
    assert not (ckpt / "model.safetensors").exists()
    state = load_trainer_state(ckpt)["optimizer"]["state"]
    assert len(state) == 2 * 7 * 2  # lora_A and lora_B of 7 projections in 2 layers, nothing else
    assert all(s["exp_avg"].shape[0] == 4 or s["exp_avg"].shape[1] == 4 for s in state.values())  # rank 4
    rows = [r for r in _rows(tmp_path / "a") if "kl" in r]
    assert len(rows) == 3 and rows[-1]["kl"] > 0  # the reference (the base) was used, and the policy left it
    assert all(r["mismatch/max"] < 1e-4 for r in rows)  # the engine sampled the adapted model at every step
    _adapter_and_merged_agree(straight, model_dir, torch.tensor([[5, 6, 7, 8, 9, 10]]))

    _crash_after(rl, monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        rl.train(_rl_cfg(model_dir, tmp_path / "b"), show_progress=False)
    monkeypatch.undo()
    resumed = rl.train(_rl_cfg(model_dir, tmp_path / "b", resume="true"), show_progress=False)
    _same_files(straight, resumed, ["model.safetensors", "adapter/adapter_model.safetensors"])
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")


def test_ppo_with_lora_gives_the_critic_adapters_and_resumes_exactly(model_dir, tmp_path, monkeypatch):
    over = {"algo.algorithm": "ppo", "algo.kl_in_reward": "true", "optim.critic_lr": 1e-2, "eval.limit": 0, "steps": 2,
            "algo.pack": "true", "algo.gradient_checkpointing": "true"}  # the packed forward, layers recomputed
    straight = rl.train(_rl_cfg(model_dir, tmp_path / "a", **over), show_progress=False)
    from safetensors.torch import load_file

    critic_state = load_file(str(tmp_path / "a" / "checkpoints" / "step-000002" / WEIGHTS_FILE))
    assert all(".lora_" in k or k.startswith("score.") for k in critic_state) and "score.weight" in critic_state
    from transformers import AutoModelForTokenClassification

    assert AutoModelForTokenClassification.from_pretrained(tmp_path / "a" / "critic").score.weight.abs().sum() > 0

    _crash_after(rl, monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        rl.train(_rl_cfg(model_dir, tmp_path / "b", **over), show_progress=False)
    monkeypatch.undo()
    resumed = rl.train(_rl_cfg(model_dir, tmp_path / "b", resume="true", **over), show_progress=False)
    _same_files(straight, resumed, ["model.safetensors"])
    _same_files(tmp_path / "a" / "critic", tmp_path / "b" / "critic", ["model.safetensors"])
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")


def _chat(path, n=24):
    rows = [{"messages": [{"role": "user", "content": f"{i % 7}+{i % 5}?"},
                          {"role": "assistant", "content": f"<answer>{i % 7 + i % 5}</answer>"}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft_cfg(model_dir, data, out, **over):
    base = {"model.name": str(model_dir), "data": str(data), "out_dir": str(out), "epochs": 3, "batch_size": 6,
            "micro_batch_size": 4, "optim.lr": 1e-2, "eval_fraction": 0.2, "save_every": 3, **LORA}
    base.update(over)
    return C.load(C.SFTConfig, None, [f"{k}={v}" for k, v in base.items()])


def test_sft_with_lora_learns_and_resumes_exactly(model_dir, tmp_path, monkeypatch):
    data = _chat(tmp_path / "d.jsonl")
    straight = sft.train(_sft_cfg(model_dir, data, tmp_path / "a"), show_progress=False)
    held = [r["eval/loss"] for r in _rows(tmp_path / "a") if "eval/loss" in r]
    assert held[-1] < held[0]
    _crash_after(sft, monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        sft.train(_sft_cfg(model_dir, data, tmp_path / "b"), show_progress=False)
    monkeypatch.undo()
    resumed = sft.train(_sft_cfg(model_dir, data, tmp_path / "b", resume="true"), show_progress=False)
    _same_files(straight, resumed, ["model.safetensors", "adapter/adapter_model.safetensors"])
    _adapter_and_merged_agree(straight, model_dir, torch.tensor([[5, 6, 7, 8, 9, 10]]))


def test_dpo_with_lora_trains_the_adapter(model_dir, tmp_path):
    rows = [{"prompt": f"What is {i % 9} + {i % 4}?", "chosen": f"<answer>{i % 9 + i % 4}</answer>",
             "rejected": f"Let me think a long while, {i} times. <answer>{i}</answer>"} for i in range(16)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = C.load(C.DPOConfig, None, [f"model.name={model_dir}", f"data={tmp_path / 'p.jsonl'}", f"out_dir={tmp_path / 'run'}",
                                     "steps=2", "batch_size=4", "optim.lr=1e-2", "eval_fraction=0", "lora.r=4"])
    final = dpo.train(cfg, show_progress=False)
    _adapter_and_merged_agree(final, model_dir, torch.tensor([[5, 6, 7, 8, 9, 10]]))


def test_rm_with_lora_trains_the_adapter_and_the_whole_head_and_resumes_exactly(model_dir, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    rows = [{"prompt": f"What is {i % 9} + {i % 4}?", "chosen": f"<answer>{i % 9 + i % 4}</answer>",
             "rejected": f"no idea {i}"} for i in range(16)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = C.load(C.RMConfig, None, [f"model.name={model_dir}", f"data={tmp_path / 'p.jsonl'}", f"out_dir={tmp_path / 'run'}",
                                    "steps=2", "batch_size=4", "optim.lr=1e-2", "eval_fraction=0", "lora.r=4",
                                    "save_every=1"])
    final = rm.train(cfg, show_progress=False)
    _crash_after(rm, monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        rm.train(dataclasses.replace(cfg, out_dir=str(tmp_path / "b")), show_progress=False)
    monkeypatch.undo()
    resumed = rm.train(dataclasses.replace(cfg, out_dir=str(tmp_path / "b"), resume=True), show_progress=False)
    _same_files(final, resumed, ["model.safetensors", "adapter/adapter_model.safetensors"])
    assert json.loads((final / "adapter" / "adapter_config.json").read_text())["modules_to_save"] == ["score"]
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        merged = AutoModelForSequenceClassification.from_pretrained(final)(input_ids=ids).logits
        base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1,
                                                                  pad_token_id=0)
        adapted = PeftModel.from_pretrained(base, final / "adapter")(input_ids=ids).logits
    assert torch.allclose(merged, adapted, atol=1e-4)


def test_lora_config_errors(model_dir, tmp_path):
    for bad, key in (("lora.r=-1", "lora.r"), ("lora.alpha=0", "lora.alpha"), ("lora.dropout=1", "lora.dropout")):
        with pytest.raises(UserError, match=key):
            C.load(C.SFTConfig, None, [bad])
    with pytest.raises(UserError, match="target_modules"):
        sft.train(_sft_cfg(model_dir, _chat(tmp_path / "d.jsonl"), tmp_path / "x", **{"lora.target_modules": "nope"}),
                  show_progress=False)
