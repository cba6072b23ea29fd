"""The exponential-race sampler (sampling.race, method "race"): its distribution, its per-seed
determinism whatever the batch, no host reads, greedy as before, and the engine with it."""

import pytest
import torch

import thinkrl.config as C
import thinkrl.engine.sampling as sampling
from thinkrl.engine import Engine
from thinkrl.engine.sampling import (SamplingParams, draw, method_for, race, race_log_uniforms, sample, stream_keys,
                                     uniforms)
from thinkrl.errors import UserError
from thinkrl.models import eos_token_ids

CHI2_999 = {2: 13.82, 3: 16.27, 6: 22.46, 15: 37.70}  # the chi-square 99.9% quantile by degrees of freedom


def keys_of(n: int, seed0: int = 0) -> torch.Tensor:
    return stream_keys(torch.arange(seed0, seed0 + n), torch.zeros(n, dtype=torch.long))


def chi2(tokens: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic of the drawn tokens against probs (over the tokens with mass) and its degrees of freedom."""
    support = probs > 0
    counts = torch.bincount(tokens, minlength=len(probs)).double()
    assert counts[~support].sum() == 0  # nothing outside the support is ever drawn
    expected = probs[support].double() * len(tokens)
    return float(((counts[support] - expected) ** 2 / expected).sum()), int(support.sum()) - 1


def race_tokens(logits_row: torch.Tensor, params: SamplingParams, keys: torch.Tensor, step=0) -> torch.Tensor:
    return race(logits_row.repeat(len(keys), 1), params, keys, step)[0]


PROBS = torch.tensor([0.02, 0.3, 0.08, 0.25, 0.05, 0.2, 0.1])


@pytest.mark.parametrize("block", [256, 3])  # 256: one block; 3: the block level races too (and pads 7 to 9)
@pytest.mark.parametrize("case", ["plain", "temperature", "top_k", "top_p", "top_k_top_p"])
def test_race_draws_the_softmax_over_many_streams(case, block, monkeypatch):
    """Chi-square of draws (20,000 keys at one step, and one key over 1,000 steps) against
    the target distribution: the tempered softmax restricted and renormalised as top-k/top-p say."""
    monkeypatch.setattr(sampling, "RACE_BLOCK", block)
    logits = PROBS.log()
    p = {"plain": PROBS, "temperature": torch.softmax(logits / 0.6, -1)}.get(case)
    params = {
        "plain": SamplingParams(), "temperature": SamplingParams(temperature=0.6),
        "top_k": SamplingParams(top_k=3), "top_p": SamplingParams(top_p=0.6),
        "top_k_top_p": SamplingParams(temperature=2.0, top_k=4, top_p=0.7),
    }[case]
    if p is None:  # the support by hand: top-3 = {1, 3, 5}; top-p 0.6 = {1, 3, 5} (0.3 + 0.25 < 0.6)
        tempered = torch.softmax(logits / params.temperature, -1)
        keep = {"top_k": [1, 3, 5], "top_p": [1, 3, 5]}.get(case)
        if keep is None:  # T=2 top-4 = {1, 3, 5, 6}; mass before 5 is (t1 + t3) / sum(top-4) < 0.7, before 6 >= 0.7
            top4 = tempered[[1, 3, 5, 6]]
            assert (top4[:2].sum() / top4.sum()) < 0.7 <= (top4[:3].sum() / top4.sum())
            keep = [1, 3, 5]
        p = torch.zeros(7)
        p[keep] = tempered[keep] / tempered[keep].sum()
    n = 20000
    across_keys = race_tokens(logits, params, keys_of(n), step=5)
    key = keys_of(1, 99)
    across_steps = torch.cat([race(logits[None], params, key, s)[0] for s in range(1000)])
    for tokens in (across_keys, across_steps):
        stat, df = chi2(tokens, p)
        assert stat < CHI2_999[df], (case, stat, df)


def test_mass_spread_over_blocks_of_unequal_size():
    """A real vocabulary's shape: 1,000 tokens (four blocks, the last one short), mass on a few tokens
    in different blocks and on many small ones: chi-square of 20,000 draws over the tokens with mass."""
    logits = torch.full((1000,), float("-inf"))
    logits[[3, 255, 256, 700, 999]] = torch.tensor([0.25, 0.1, 0.3, 0.05, 0.1]).log()
    logits[500:600] = torch.tensor(0.002).log()  # 100 tokens holding 0.2 together
    probs = torch.softmax(logits, -1)
    tokens = race_tokens(logits, SamplingParams(), keys_of(20000, 3), step=1)
    grouped = torch.where((tokens >= 500) & (tokens < 600), torch.full_like(tokens, 500), tokens)
    p = probs.clone()
    p[500], p[501:600] = probs[500:600].sum(), 0
    stat, df = chi2(grouped, p)
    assert df == 5 and stat < 20.52


def test_successive_steps_and_neighbouring_tokens_are_independent():
    """Pairs (token at step 0, token at step 1) of 20,000 keys: the joint is the product (chi-square, 15 df),
    and the exponentials of one row are uncorrelated across token ids and have mean and variance 1."""
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    keys = keys_of(20000, 7)
    a, b = (race_tokens(probs.log(), SamplingParams(), keys, s) for s in (0, 1))
    stat, df = chi2(a * 4 + b, torch.outer(probs, probs).flatten())
    assert df == 15 and stat < CHI2_999[15]
    e = -race_log_uniforms(keys[:200], 3, torch.arange(1000)).double()  # [200, 1000] exponentials
    assert torch.isfinite(e).all() and e.min() > 0
    assert abs(e.mean() - 1) < 0.01 and abs(e.var() - 1) < 0.03
    for other in (e[:, 1:], -race_log_uniforms(keys[:200], 4, torch.arange(1000)).double()[:, :-1],  # next token, next step
                  -race_log_uniforms(keys[:200], 3, torch.arange(1000), sampling.BLOCK_SALT).double()[:, :-1],  # block noise
                  -race_log_uniforms(keys[1:201], 3, torch.arange(1000)).double()[:, :-1]):  # next row
        assert abs(torch.corrcoef(torch.stack([e[:, :-1].flatten(), other.flatten()]))[0, 1]) < 0.01


def test_same_key_same_token_whatever_the_batch_and_its_order():
    """A row's token depends on its key, the step and its logits only: alone, among others, permuted,
    with top-p by the host's shortlist or by the graph's full sort."""
    torch.manual_seed(0)
    logits = torch.randn(12, 3000) * 3
    keys = keys_of(12, 40)
    for params in (SamplingParams(), SamplingParams(temperature=0.7, top_k=40), SamplingParams(top_p=0.9)):
        full = race(logits, params, keys, 4)[0]
        perm = torch.randperm(12)
        assert torch.equal(race(logits[perm], params, keys[perm], 4)[0], full[perm])
        for r in (0, 5, 11):
            assert race(logits[r : r + 1], params, keys[r : r + 1], 4)[0].item() == full[r].item()
        assert torch.equal(race(logits, params, keys, 4, shortlist=False)[0], full)
        assert torch.equal(race(logits, params, keys, torch.tensor([4]))[0], full)  # step as a device tensor
        assert torch.equal(race(logits, params, keys, 4)[0], full)  # deterministic
        assert not torch.equal(race(logits, params, keys, 5)[0], full)  # and the step matters


def test_logprob_is_of_the_tempered_distribution_and_greedy_is_unchanged():
    torch.manual_seed(1)
    logits, keys = torch.randn(64, 500) * 2, keys_of(64)
    for params in (SamplingParams(temperature=0.7), SamplingParams(temperature=1.3, top_k=10, top_p=0.8)):
        tok, lp = race(logits, params, keys, 2)
        assert torch.allclose(lp, torch.log_softmax(logits / params.temperature, -1).gather(-1, tok[:, None])[:, 0])
    greedy = SamplingParams(temperature=0, method="race")
    ref = sample(logits, SamplingParams(temperature=0), uniforms(keys, 2))
    for got in (race(logits, greedy, keys, 2), draw(logits, greedy, keys, 2)):
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_race_reads_nothing_on_the_host(monkeypatch):
    """What a CUDA graph needs: no .item(), bool(), int(), float(), tolist() on a tensor (shortlist=False)."""
    def refuse(*_):
        raise AssertionError("a host read inside the race")
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    logits, keys, step = torch.randn(8, 300), keys_of(8), torch.tensor([3])
    for params in (SamplingParams(), SamplingParams(top_p=0.9), SamplingParams(temperature=0.5, top_k=7, top_p=0.8)):
        tok, lp = race(logits, params, keys, step, shortlist=False)
        assert tok.shape == (8,) and lp.shape == (8,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="sync debug mode needs a GPU")
def test_race_does_not_synchronise_on_cuda():
    logits, keys, step = torch.randn(8, 3000, device="cuda"), keys_of(8).cuda(), torch.tensor([3], device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for params in (SamplingParams(), SamplingParams(top_p=0.9), SamplingParams(top_k=7)):
            race(logits, params, keys, step, shortlist=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_method_is_validated_and_auto_follows_the_device():
    with pytest.raises(UserError, match="sampling.method"):
        SamplingParams(method="gumbel")
    with pytest.raises(UserError, match="sampling.method must be one of auto, cdf, race, got 'gumbel'"):
        C.load(C.RLConfig, None, ["sampling.method=gumbel"])
    assert C.load(C.RLConfig, None, ["sampling.method=race"]).sampling.method == "race"
    assert method_for(SamplingParams(), torch.device("cpu")) == "cdf"
    assert method_for(SamplingParams(), torch.device("cuda")) == "race"
    assert method_for(SamplingParams(method="race"), torch.device("cpu")) == "race"
    assert method_for(SamplingParams(method="cdf"), torch.device("cuda")) == "cdf"


@pytest.mark.parametrize("runner", ["eager", "graph"])  # graph: the static-shape step, eagerly on CPU
def test_engine_generates_with_the_race_deterministically_per_seed(tiny_llama, runner):
    model, tok = tiny_llama
    engine = Engine(model, tok, eos_token_ids(model, tok), runner=runner)
    p = tok.encode("seeded")
    params = SamplingParams(max_new_tokens=16, method="race")
    alone = engine.generate([p], params, n=2, seeds=[42])
    again = engine.generate([p], params, n=2, seeds=[42])
    crowded = engine.generate([tok.encode("another, longer prompt here"), p], params, n=2, seeds=[1, 42])
    assert [c.token_ids for c in alone] == [c.token_ids for c in again] == [c.token_ids for c in crowded[2:]]
    assert alone[0].token_ids != alone[1].token_ids
    cdf = engine.generate([p], SamplingParams(max_new_tokens=16, method="cdf"), n=2, seeds=[42])
    assert [c.token_ids for c in cdf] != [c.token_ids for c in alone]  # another draw of the same distribution
    eager = Engine(model, tok, eos_token_ids(model, tok), runner="eager").generate([p], params, n=2, seeds=[42])
    assert [c.token_ids for c in eager] == [c.token_ids for c in alone]
    for a, b in zip(eager, alone):
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
