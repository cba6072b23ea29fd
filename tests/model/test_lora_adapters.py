"""LoRA adapters on thinkrl's decoder (thinkrl.model.lora): what trains, what the engine samples,
and what plain transformers and plain peft read back of what is saved."""

import pytest
import torch

from thinkrl.engine import Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.model import lora
from thinkrl.models import eos_token_ids, load_model, save_pretrained, tiny_model
from thinkrl.train.forward import completion_logprobs

PROMPT = "what is 2+2? answer:"


def _randomize_b(model, seed=1):
    """Adapters that change the model: B is zero at init, so the adapted model equals the base."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _logprobs(model, ids):
    """Log-probs [T - 1] of ids[1:] given ids[:1], through the training forward."""
    with torch.no_grad():
        return completion_logprobs(model, [ids[:1]], [0], [ids[1:]], temperature=1.0, with_entropy=False)[0][0]


def test_only_the_adapters_get_gradients(tiny):
    model, tok = tiny
    lora.attach(model, r=4, alpha=8)
    ids = tok.encode(PROMPT)
    model.train()
    logp, _, _ = completion_logprobs(model, [ids[:3]], [0], [ids[3:]], temperature=1.0)
    logp.sum().backward()
    for name, p in model.named_parameters():
        if ".lora_" in name:
            assert p.requires_grad, name
            if "lora_B" in name:  # B = 0 at init, so only B's gradient is nonzero on the first step
                assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert lora.trainable(model) == [p for n, p in model.named_parameters() if ".lora_" in n]


def test_the_engine_samples_the_adapted_model(tiny_llama):
    model, tok = tiny_llama
    engine = Engine(model, tok, eos_token_ids(model, tok))
    params = SamplingParams(temperature=1.0, max_new_tokens=12, ignore_eos=True)
    prompt = tok.encode(PROMPT)
    before = engine.generate([prompt], params, seeds=[3])[0]
    lora.attach(model, r=4, alpha=8)
    at_init = engine.generate([prompt], params, seeds=[3])[0]  # B = 0: the same function, the same samples
    assert at_init.token_ids == before.token_ids and at_init.logprobs == pytest.approx(before.logprobs, abs=1e-6)
    _randomize_b(model)
    adapted = engine.generate([prompt], params, seeds=[3])[0]
    trained, _, _ = completion_logprobs(model, [prompt], [0], [adapted.token_ids], temperature=1.0, with_entropy=False)
    assert torch.allclose(trained[0], torch.tensor(adapted.logprobs), atol=1e-4)  # sampling = training forward
    with lora.disabled(model):
        base, _, _ = completion_logprobs(model, [prompt], [0], [adapted.token_ids], temperature=1.0, with_entropy=False)
    assert (base[0] - trained[0]).abs().max() > 1e-2  # and that is not the base model


def test_disabled_runs_the_base_exactly_and_restores_training(tiny_llama):
    model, tok = tiny_llama
    ids = tok.encode(PROMPT)
    plain = _logprobs(model, ids)
    lora.attach(model, r=4, alpha=8)
    _randomize_b(model)
    adapted = _logprobs(model, ids)
    with lora.disabled(model):
        assert torch.equal(_logprobs(model, ids), plain)
    assert torch.equal(_logprobs(model, ids), adapted)
    assert all(p.requires_grad for n, p in model.named_parameters() if ".lora_" in n)
    with lora.disabled(tiny_model("llama")[0]):  # no adapters: nothing to switch off
        pass


def test_merged_final_loads_in_transformers_and_the_adapter_in_peft(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, tok = tiny
    base = save_pretrained(model, tok, tmp_path / "base")
    lora.attach(model, r=4, alpha=8, base=str(base))
    _randomize_b(model)
    ids = tok.encode(PROMPT)
    adapted = _logprobs(model, ids)
    final = save_pretrained(model, tok, tmp_path / "final", extra=lambda t: lora.save_adapter(model, t / "adapter"))
    x = torch.tensor([ids])

    def lp(m):  # log-probs of ids[1:] under a plain HF model
        with torch.no_grad():
            logits = m(input_ids=x).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None]).squeeze(-1)

    merged = AutoModelForCausalLM.from_pretrained(final).eval()  # a plain HF folder: no peft needed
    assert torch.allclose(lp(merged), adapted, atol=1e-4)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), final / "adapter").eval()
    assert torch.allclose(lp(peft_model), adapted, atol=1e-5)
    assert (lp(AutoModelForCausalLM.from_pretrained(base)) - adapted).abs().max() > 1e-2


def test_adapter_weights_reload_bit_for_bit_and_a_mismatch_is_an_error(tiny_llama, tmp_path):
    model, tok = tiny_llama
    base = save_pretrained(model, tok, tmp_path / "base")
    lora.attach(model, r=4, alpha=8, seed=1, base=str(base))
    _randomize_b(model)
    lora.save_adapter(model, tmp_path / "adapter")
    again, _ = load_model(base)
    lora.attach(again, r=4, alpha=8, seed=2)  # another init: every adapter weight must come from the file
    lora.load_adapter(again, tmp_path / "adapter")
    for (name, a), (_, b) in zip(model.named_parameters(), again.named_parameters()):
        assert torch.equal(a, b), name
    other, _ = load_model(base)
    lora.attach(other, r=4, alpha=8, targets=["q_proj"])
    with pytest.raises(UserError, match="does not fit"):
        lora.load_adapter(other, tmp_path / "adapter")
    with pytest.raises(UserError, match="target_modules"):
        lora.attach(load_model(base)[0], r=4, alpha=8, targets=["no_such_module"])


def test_merged_state_dict_has_the_plain_names_and_leaves_the_weights(tiny_llama):
    model, _ = tiny_llama
    names = set(model.state_dict())
    lora.attach(model, r=4, alpha=8)
    _randomize_b(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = lora.merged_state_dict(model)
    assert set(merged) == names
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing merged in place
    w = "model.layers.0.mlp.down_proj"
    layer = model.get_submodule(w)
    expected = layer.base_layer.weight + layer.scaling["default"] * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    assert torch.allclose(merged[w + ".weight"], expected, atol=1e-6)
