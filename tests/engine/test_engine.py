"""The engine against a plain forward pass, HF generate, and its own contract."""

import pytest
import torch

import thinkrl.engine.engine as engine_mod
import thinkrl.engine.runner as runner_mod
from thinkrl.engine import Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.model import is_own
from thinkrl.models import eos_token_ids

from conftest import _hf_twin


def forward_logprobs(model, prompt, completion, temperature):
    """The log-probs HF's own forward gives the completion (the reference for thinkrl's decoder too)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = (model if not is_own(model) else _hf_twin(model))(ids).logits[0].float()
    t = temperature if temperature > 0 else 1.0
    lp = torch.log_softmax(logits / t, -1)[len(prompt) - 1 : -1]
    return lp.gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


PROMPTS = ["hello there", "a", "what is 2+2? answer:", "The quick brown fox jumps"]


def make(model, tok, max_batch=64, runner="auto"):
    return Engine(model, tok, eos_token_ids(model, tok), max_batch=max_batch, runner=runner)


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_logprobs_match_forward(tiny, temperature):
    model, tok = tiny
    engine = make(model, tok, max_batch=5)  # 4 prompts x 3 samples in chunks: exercises chunking too
    prompts = [tok.encode(p) for p in PROMPTS]
    outs = engine.generate(prompts, SamplingParams(temperature=temperature, max_new_tokens=24), n=3, seeds=[1, 2, 3, 4])
    assert [(c.prompt_index, c.sample_index) for c in outs] == [(i, j) for i in range(4) for j in range(3)]
    for c in outs:
        ref = forward_logprobs(model, prompts[c.prompt_index], c.token_ids, temperature)
        assert torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)
        assert c.mask == [1] * len(c.token_ids)


def test_generic_hf_runner_matches_forward(tiny_llama, hf_twin):
    model, tok = hf_twin(tiny_llama[0]), tiny_llama[1]  # an HF-run model: the DynamicCache fallback
    assert isinstance(runner_mod.make_runner(model, 1, 8), runner_mod.HFRunner)
    engine = make(model, tok)
    prompts = [tok.encode(p) for p in PROMPTS]
    outs = engine.generate(prompts, SamplingParams(max_new_tokens=16), n=2, seeds=[5, 6, 7, 8])
    for c in outs:
        ref = forward_logprobs(model, prompts[c.prompt_index], c.token_ids, 1.0)
        assert torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)


def test_greedy_equals_hf_generate(tiny, hf_twin):
    model, tok = tiny
    prompt = tok.encode("greedy decoding test")
    ours = make(model, tok).generate([prompt], SamplingParams(temperature=0, max_new_tokens=20, ignore_eos=True), seeds=[0])[0]
    with torch.no_grad():
        ref = hf_twin(model).generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=20, min_new_tokens=20,
                             pad_token_id=tok.pad_token_id)
    assert ours.token_ids == ref[0, len(prompt):].tolist()


@pytest.mark.parametrize("runner", ["auto", "graph"])  # auto: the eager runner on CPU
def test_same_seed_same_output_regardless_of_batch(tiny_llama, runner):
    model, tok = tiny_llama
    engine = make(model, tok, runner=runner)
    p = tok.encode("seeded")
    params = SamplingParams(max_new_tokens=20)
    alone = engine.generate([p], params, n=2, seeds=[42])
    again = engine.generate([p], params, n=2, seeds=[42])
    crowded = engine.generate([tok.encode("another, longer prompt here"), p], params, n=2, seeds=[1, 42])
    assert [c.token_ids for c in alone] == [c.token_ids for c in again] == [c.token_ids for c in crowded[2:]]
    other = engine.generate([p], params, n=2, seeds=[43])
    assert [c.token_ids for c in other] != [c.token_ids for c in alone]
    assert alone[0].token_ids != alone[1].token_ids  # the samples of a group differ


def test_finish_reasons_eos_stop_length(tiny_llama):
    model, tok = tiny_llama
    prompt = tok.encode("finish reasons")
    params = SamplingParams(temperature=0, max_new_tokens=30, ignore_eos=True)
    full = make(model, tok).generate([prompt], params, seeds=[0])[0]
    assert full.finish_reason == "length" and len(full.token_ids) == 30
    # eos: declare the 5th greedy token an end-of-sequence token
    eos_tok = full.token_ids[4]
    first = full.token_ids.index(eos_tok)
    out = Engine(model, tok, [eos_tok]).generate([prompt], SamplingParams(temperature=0, max_new_tokens=30), seeds=[0])[0]
    assert out.finish_reason == "eos" and out.token_ids == full.token_ids[: first + 1]
    # stop string: a piece of the greedy text
    text = tok.decode(full.token_ids[:20])
    stop = text[8:11]
    out = make(model, tok).generate([prompt], SamplingParams(temperature=0, max_new_tokens=30, stop=[stop]), seeds=[0])[0]
    assert out.finish_reason == "stop"
    assert out.text.endswith(stop) and out.text.count(stop) == 1
    assert full.token_ids[: len(out.token_ids)] == out.token_ids


def test_rows_that_finish_early_leave_without_changing_the_others(tiny_llama):
    model, tok = tiny_llama
    prompts = [tok.encode(p) for p in PROMPTS]
    params = SamplingParams(max_new_tokens=25, ignore_eos=True)
    reference = make(model, tok).generate(prompts, params, n=4, seeds=[1, 2, 3, 4])
    # many eos ids: rows end at different steps, the batch compacts several times
    eos_ids = sorted({c.token_ids[3] for c in reference[:8]})
    outs = Engine(model, tok, eos_ids).generate(prompts, SamplingParams(max_new_tokens=25), n=4, seeds=[1, 2, 3, 4])
    assert any(c.finish_reason == "eos" for c in outs) and any(c.finish_reason == "length" for c in outs)
    for a, b in zip(outs, reference):
        assert a.token_ids == b.token_ids[: len(a.token_ids)]


def test_prompt_too_long_is_a_user_error(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(UserError, match="context"):
        make(model, tok).generate([[5] * 2000], SamplingParams(max_new_tokens=100), seeds=[0])


def test_shared_prompt_prefix_is_encoded_once_and_changes_nothing(tiny, monkeypatch):
    model, tok = tiny
    system = "You are a careful assistant. Think first, then answer. "
    prompts = [tok.encode(system + q) for q in ("What is 2+2?", "Name a color.", "x")]
    calls = []
    original = runner_mod.KVRunner.prefill

    def spy(self, ids, attn, n):
        calls.append(tuple(ids.shape))
        return original(self, ids, attn, n)

    monkeypatch.setattr(runner_mod.KVRunner, "prefill", spy)
    params = SamplingParams(max_new_tokens=12)
    outs = make(model, tok).generate(prompts, params, n=2, seeds=[1, 2, 3])
    assert calls[0] == (1, len(tok.encode(system)))  # the shared prefix, once, then the suffixes
    for c in outs:
        ref = forward_logprobs(model, prompts[c.prompt_index], c.token_ids, 1.0)
        assert torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)
    # and the same completions as encoding each prompt on its own
    monkeypatch.setattr(engine_mod, "MIN_SHARED_PREFIX", 10**9)
    alone = make(model, tok).generate(prompts, params, n=2, seeds=[1, 2, 3])
    assert [c.token_ids for c in alone] == [c.token_ids for c in outs]
