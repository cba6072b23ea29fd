import math

import torch

from thinkrl.engine.sampling import SamplingParams, sample, stream_keys, uniforms


def test_uniforms_are_deterministic_in_range_and_spread():
    keys = stream_keys(torch.arange(5000), torch.zeros(5000, dtype=torch.long))
    u = uniforms(keys, 3)
    assert torch.equal(u, uniforms(keys, 3))
    assert not torch.equal(u, uniforms(keys, 4))
    assert u.min() >= 0 and u.max() < 1
    # roughly uniform: each tenth holds about 500 of 5000
    counts = torch.histc(u.float(), bins=10, min=0, max=1)
    assert counts.min() > 400 and counts.max() < 600
    assert len(set(keys.tolist())) == 5000  # different seeds, different streams


def test_sample_index_changes_the_stream():
    a = stream_keys(torch.tensor([7, 7]), torch.tensor([0, 1]))
    assert a[0] != a[1]


def test_greedy_and_logprob_of_greedy():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    tok, lp = sample(logits, SamplingParams(temperature=0), torch.rand(2, dtype=torch.float64))
    assert tok.tolist() == [1, 0]
    assert torch.allclose(lp, torch.log_softmax(logits, -1)[[0, 1], [1, 0]])


def test_inverse_cdf_picks_by_cumulative_mass():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]])).repeat(4, 1)
    u = torch.tensor([0.1, 0.25, 0.69, 0.71], dtype=torch.float64)
    tok, lp = sample(logits, SamplingParams(temperature=1.0), u)
    assert tok.tolist() == [0, 1, 1, 2]
    assert torch.allclose(lp, torch.log(torch.tensor([0.2, 0.5, 0.5, 0.3])), atol=1e-6)


def test_temperature_logprob_is_of_the_tempered_distribution():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    tok, lp = sample(logits, SamplingParams(temperature=0.5), torch.tensor([0.5], dtype=torch.float64))
    assert math.isclose(lp.item(), torch.log_softmax(logits / 0.5, -1)[0, tok].item(), rel_tol=1e-6)


def test_top_k_and_top_p_restrict_the_support():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])
    logits = probs.log().repeat(2000, 1)
    u = uniforms(stream_keys(torch.arange(2000), torch.zeros(2000, dtype=torch.long)), 0)
    tok, _ = sample(logits, SamplingParams(top_k=2), u)
    assert set(tok.tolist()) == {1, 3}
    tok, _ = sample(logits, SamplingParams(top_p=0.8), u)  # 0.4 + 0.3 = 0.7 < 0.8, so 0.15 joins
    assert set(tok.tolist()) == {1, 3, 4}
    tok, _ = sample(logits, SamplingParams(top_p=0.01), u)
    assert set(tok.tolist()) == {1}


def test_empirical_frequencies_match_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 20000
    u = uniforms(stream_keys(torch.arange(n), torch.zeros(n, dtype=torch.long)), 1)
    tok, _ = sample(probs.log().repeat(n, 1), SamplingParams(), u)
    freq = torch.bincount(tok, minlength=4).float() / n
    assert torch.allclose(freq, probs, atol=0.015)


def test_zero_probability_tokens_are_never_drawn():
    logits = torch.tensor([[0.0, float("-inf"), 0.0, float("-inf")]]).repeat(1000, 1)
    u = uniforms(stream_keys(torch.arange(1000), torch.zeros(1000, dtype=torch.long)), 0)
    tok, _ = sample(logits, SamplingParams(), u)
    assert set(tok.tolist()) == {0, 2}


def test_top_p_beyond_the_candidate_shortlist_falls_back_to_the_full_sort():
    # near-uniform over 5,000 tokens: top-p 0.5 needs about 2,500 of them, more than the shortlist holds
    logits = (-torch.arange(5000, dtype=torch.float32) * 1e-4).repeat(3000, 1)
    probs = torch.softmax(logits[0], -1)
    keep = int((probs.cumsum(-1) - probs < 0.5).sum())  # tokens 0..keep-1 may be drawn
    u = uniforms(stream_keys(torch.arange(3000), torch.zeros(3000, dtype=torch.long)), 0)
    tok, _ = sample(logits, SamplingParams(top_p=0.5), u)
    assert keep > 1024
    assert tok.max().item() < keep and tok.max().item() > 1024
