import subprocess
import sys
import textwrap

import pytest
import torch

from thinkrl.engine import Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.evaluate import encode_prompt
from thinkrl.models import eos_token_ids, load_model, resolve_model, save_pretrained, tiny_model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_checkpoint_loads_in_plain_transformers_in_another_process(tmp_path, arch):
    model, tok = tiny_model(arch)
    out = save_pretrained(model, tok, tmp_path / "ckpt")
    assert (out / "model.safetensors").is_file() and (out / "generation_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left behind
    prompt = tok.encode("check")
    expected = Engine(model, tok, eos_token_ids(model, tok)).generate(
        [prompt], SamplingParams(temperature=0, max_new_tokens=8, ignore_eos=True), seeds=[0])[0].token_ids
    script = textwrap.dedent(f"""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        m = AutoModelForCausalLM.from_pretrained({str(out)!r})
        t = AutoTokenizer.from_pretrained({str(out)!r})
        ids = torch.tensor([t.encode("check")])
        out = m.generate(ids, do_sample=False, max_new_tokens=8, min_new_tokens=8, pad_token_id=t.pad_token_id)
        print(out[0, ids.shape[1]:].tolist())
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == str(expected)


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    model, tok = tiny_model("llama", seed=1)
    save_pretrained(model, tok, tmp_path / "ckpt")
    model2, _ = tiny_model("llama", seed=2)
    save_pretrained(model2, tok, tmp_path / "ckpt")
    loaded, _ = load_model(tmp_path / "ckpt")
    assert torch.equal(loaded.model.embed_tokens.weight, model2.model.embed_tokens.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_hub_ids_and_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match=r"Qwen/Qwen2.5-0.5B.*hub id.*local folders or the embedded names"):
        resolve_model("Qwen/Qwen2.5-0.5B")
    with pytest.raises(UserError, match="not found"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


@pytest.mark.embedded
def test_embedded_model_converts_loads_and_matches_forward(embedded, hf_twin):
    model, tok = embedded
    assert model.config.model_type == "llama" and model.config.vocab_size == 49152
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert resolve_model("smollm2-135m-instruct").joinpath("model.safetensors").is_file()
    prompt = encode_prompt(tok, [{"role": "user", "content": "What is 17 + 25?"}])
    engine = Engine(model, tok, eos_token_ids(model, tok))
    twin = hf_twin(model)  # transformers' own forward over the same weights
    out = engine.generate([prompt], SamplingParams(temperature=0.8, max_new_tokens=24), n=2, seeds=[0])
    for c in out:
        ids = torch.tensor([prompt + c.token_ids])
        with torch.no_grad():
            lp = torch.log_softmax(twin(ids).logits[0, len(prompt) - 1 : -1] / 0.8, -1)
        ref = lp.gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)
    greedy = engine.generate([prompt], SamplingParams(temperature=0, max_new_tokens=24), seeds=[0])[0]
    # the weak base model's known greedy answer (ANCHORS.md): wrong, which is the point of RL
    assert greedy.text.startswith("17 + 25 = 32") and greedy.finish_reason == "eos"
