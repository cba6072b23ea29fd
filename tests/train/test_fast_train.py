"""Training fast path (issue 6), the CPU-testable half: the chunked LM head gives the plain path's
log-probs, entropy and gradients without keeping [B, T, vocab] logits for the backward; length-bucketed
micro-batches give the same loss and gradients with less padding."""

import copy
import random

import pytest
import torch

import thinkrl.train.rl as rl
from thinkrl.train import batching
from thinkrl import config as C
from thinkrl.engine import Completion
from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem
from thinkrl.train.forward import chunked_logprobs, completion_logprobs, token_logprobs
from recording import RecordingSGD


def padding_tokens(rollouts, micros: list[list[int]]) -> tuple[int, int]:
    """(padding, real) completion tokens of micro-batches right-padded to their longest row: the
    compute that length bucketing saves."""
    lengths = [[len(rollouts[i].completion.token_ids) for i in m] for m in micros]
    real = sum(sum(x) for x in lengths)
    return sum(len(x) * max(x) for x in lengths if x) - real, real


# ---------------------------------------------------------------- chunked log-probs


@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 64])
@pytest.mark.parametrize("with_entropy", [True, False])
def test_chunked_logprobs_equal_plain_values_and_gradients(chunk, with_entropy):
    """B=3, T=5 with padding: 10 real tokens, so chunks of 3 and 7 leave a ragged last chunk."""
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(3, 5, 16, requires_grad=True)
    targets = torch.randint(0, 50, (3, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.float)
    weights = torch.randn(3, 5)

    def run(fn):
        head.zero_grad()
        hidden.grad = None
        logp, ent = fn()
        loss = (logp * weights * mask).sum() + ((ent * mask).sum() if with_entropy else 0.0)
        loss.backward()
        return logp, ent, hidden.grad.clone(), head.weight.grad.clone()

    plain = run(lambda: token_logprobs(head(hidden), targets, 0.7, with_entropy))
    chunked = run(lambda: chunked_logprobs(hidden, head, targets, 0.7, with_entropy, chunk, mask))
    assert torch.allclose(chunked[0] * mask, plain[0] * mask, atol=1e-5)
    assert torch.equal(chunked[0][mask == 0], torch.zeros(5))  # padding: 0, never computed
    if with_entropy:
        assert torch.allclose(chunked[1] * mask, plain[1] * mask, atol=1e-5)
        assert torch.equal(chunked[1][mask == 0], torch.zeros(5))
    else:
        assert chunked[1] is None
    assert torch.allclose(chunked[2], plain[2], atol=1e-5)  # d/d hidden
    assert torch.allclose(chunked[3], plain[3], atol=1e-5)  # d/d head weight
    assert chunked[2][mask == 0].abs().max() == 0  # no gradient reaches padding positions


def test_chunked_logprobs_keep_no_full_vocab_logits_for_the_backward():
    """What autograd saves for the backward, in elements of vocab-sized rows: the plain path keeps
    several [B, T, V] tensors; the chunked one at most one chunk's (its checkpointed chunks save only
    their hidden-state inputs; without the checkpoint it would keep 7 x B x T x V)."""
    torch.manual_seed(0)
    vocab, chunk = 1000, 4
    head = torch.nn.Linear(8, vocab, bias=False)
    hidden = torch.randn(2, 16, 8, requires_grad=True)
    targets = torch.randint(0, vocab, (2, 16))

    def saved_vocab_elements(fn):
        sizes = []

        def pack(t):
            if t.dim() and t.shape[-1] == vocab:
                sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logp, ent = fn()
        (logp.sum() + ent.sum()).backward()  # the recomputation in the backward works
        return sum(sizes)

    assert saved_vocab_elements(lambda: token_logprobs(head(hidden), targets, 1.0, True)) >= 2 * 16 * vocab
    assert saved_vocab_elements(lambda: chunked_logprobs(hidden, head, targets, 1.0, True, chunk)) <= chunk * vocab


def test_chunked_logprobs_without_gradient_and_bad_chunk():
    head = torch.nn.Linear(4, 9).requires_grad_(False)
    hidden, targets = torch.randn(2, 3, 4), torch.randint(0, 9, (2, 3))
    with torch.no_grad():
        logp, ent = chunked_logprobs(hidden, head, targets, 1.0, True, 2)
    plain, plain_ent = token_logprobs(head(hidden), targets, 1.0, True)
    assert torch.allclose(logp, plain, atol=1e-6) and torch.allclose(ent, plain_ent, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunked_logprobs(hidden, head, targets, 1.0, True, 0)


PROMPTS = [[5, 9, 13, 21, 8, 40], [7, 3], [60, 61, 62, 63]]
ROWS = [0, 0, 1, 2, 1]
COMPS = [[30, 31, 32, 33, 34, 35, 36], [40], [41, 42, 43], [44, 45, 46, 47, 48], [49, 50]]


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 5, 1000])
def test_completion_logprobs_chunked_equal_plain(tiny, detach, chunk):
    """Both forward paths, every tiny architecture; 18 real tokens of 35 padded, chunks dividing
    and not dividing that: the same log-probs, entropy and parameter gradients as the full logits."""
    model, _ = tiny
    model.train()
    torch.manual_seed(1)
    weights = torch.randn(len(COMPS), max(map(len, COMPS)))

    def run(logprob_chunk):
        model.zero_grad(set_to_none=True)
        logp, ent, mask = completion_logprobs(model, PROMPTS, ROWS, COMPS, temperature=0.7, detach_prompt=detach,
                                              with_entropy=True, logprob_chunk=logprob_chunk)
        ((logp * weights + 0.1 * ent) * mask).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return logp.detach(), ent.detach(), mask, grads

    plain, chunked = run(0), run(chunk)
    mask = plain[2]
    assert torch.equal(chunked[2], mask) and int(mask.sum()) == sum(map(len, COMPS))
    assert torch.allclose(chunked[0] * mask, plain[0] * mask, atol=1e-5)
    assert torch.allclose(chunked[1] * mask, plain[1] * mask, atol=1e-5)
    assert plain[3].keys() == chunked[3].keys() and len(plain[3]) > 5
    for name, g in plain[3].items():
        assert torch.allclose(chunked[3][name], g, atol=1e-5, rtol=1e-4), name


def test_logprob_chunk_config_is_validated():
    assert C.AlgoConfig().logprob_chunk == 0 and C.AlgoConfig().bucket_by_length is False  # off by default
    with pytest.raises(UserError, match="algo.logprob_chunk must be >= 0"):
        C.AlgoConfig(logprob_chunk=-1)


# ---------------------------------------------------------------- length-bucketed micro-batches


def _rollout(prompt: list[int], tokens: list[int], logprobs: list[float], finish: str = "eos") -> rl.Rollout:
    c = Completion(0, 0, tokens, logprobs, [1] * len(tokens), finish, "")
    return rl.Rollout(Problem("p", "q", "a"), prompt, c, {}, 0.0)


def test_bucketed_micro_batches_pad_less_hand_counted():
    lengths = [1, 8, 2, 7, 3, 6]
    rollouts = [_rollout([1], [5] * n, [0.0] * n) for n in lengths]
    plain = batching.micro_batches(rollouts, list(range(6)), 2)
    bucketed = batching.micro_batches(rollouts, list(range(6)), 2, bucket_by_length=True)
    assert plain == [[0, 1], [2, 3], [4, 5]] and bucketed == [[0, 2], [4, 5], [3, 1]]
    assert padding_tokens(rollouts, plain) == (7 + 5 + 3, 27)  # [1, 8], [2, 7], [3, 6]
    assert padding_tokens(rollouts, bucketed) == (1 + 3 + 1, 27)  # [1, 2], [3, 6], [7, 8]


def test_bucketing_padding_fraction_on_a_realistic_mix(capsys):
    """8 prompts x 8 samples of R1-Zero-like lengths (log-normal around 200 tokens, 1 in 6 cut at the
    512-token budget), micro-batches of 8: the padding share of the completion tokens trained."""
    rng = random.Random(0)
    lengths = [512 if rng.random() < 1 / 6 else min(512, max(8, int(rng.lognormvariate(5.3, 0.6)))) for _ in range(64)]
    rollouts = [_rollout([1], [5] * n, [0.0] * n) for n in lengths]
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0)).tolist()  # minibatches' shuffle
    fractions = {}
    for bucket in (False, True):
        pad, real = padding_tokens(rollouts, batching.micro_batches(rollouts, order, 8, bucket))
        fractions[bucket] = pad / (pad + real)
    with capsys.disabled():
        print(f"\npadding fraction of trained completion tokens, 64 rows, micro-batch 8: "
              f"unbucketed {fractions[False]:.1%}, bucketed {fractions[True]:.1%}")
    assert fractions[True] < 0.5 * fractions[False]


def _update_rollouts(model):
    """2 prompts x 4 completions of mixed lengths (1..9 tokens), old log-probs near the model's own,
    one completion cut at the budget."""
    prompts = [[5, 9, 13, 21, 8], [7, 3, 11]]
    lengths = [9, 1, 6, 2, 3, 8, 1, 7]
    gen = torch.Generator().manual_seed(3)
    out = []
    for i, n in enumerate(lengths):
        tokens = torch.randint(4, 100, (n,), generator=gen).tolist()
        with torch.no_grad():
            lp, _, _ = completion_logprobs(model, [prompts[i // 4]], [0], [tokens], temperature=1.0)
        old = (lp[0] + 0.3 * torch.randn(n, generator=gen)).tolist()  # some ratios clip
        out.append(_rollout(prompts[i // 4], tokens, old, "length" if i == 5 else "eos"))
    return out


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_bucketed_update_same_loss_and_gradients_less_padding(tiny_llama, aggregation, monkeypatch):
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    losses, padded = [], []
    original_loss, original_logprobs = rl.policy_loss, rl.completion_logprobs

    def recording_loss(*args, **kwargs):
        loss, m = original_loss(*args, **kwargs)
        losses.append(float(loss.detach()))
        return loss, m

    def recording_logprobs(*args, **kwargs):
        logp, ent, mask = original_logprobs(*args, **kwargs)
        padded.append(mask.numel() - int(mask.sum()))
        return logp, ent, mask

    monkeypatch.setattr(rl, "policy_loss", recording_loss)
    monkeypatch.setattr(rl, "completion_logprobs", recording_logprobs)

    def run(bucket):
        losses.clear(), padded.clear()
        algo = C.AlgoConfig(micro_batch_size=2, mini_batches=2, epochs=2, aggregation=aggregation, entropy_coef=0.01,
                            mask_truncated=True, bucket_by_length=bucket)
        cfg = C.RLConfig(algo=algo, optim=C.OptimConfig(lr=1.0, grad_clip=0.0),
                         sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))
        m = copy.deepcopy(model)
        opt = RecordingSGD(m.parameters())
        metrics = rl.update(cfg, 0, m, None, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts,
                            advantages, pad_id=0)
        return sum(losses), sum(padded), opt.grads, metrics

    plain, bucketed = run(False), run(True)
    assert abs(bucketed[0] - plain[0]) < 1e-5, (plain[0], bucketed[0])  # the same total loss
    assert len(plain[2]) == len(bucketed[2]) == 4  # epochs x mini_batches optimizer steps
    for step_plain, step_bucketed in zip(plain[2], bucketed[2]):
        assert sum(g is not None for g in step_plain) > 5
        for a, b in zip(step_plain, step_bucketed):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    for key in ("grad_norm", "clip_frac_low", "clip_frac_high", "approx_kl", "entropy"):
        assert abs(plain[3][key] - bucketed[3][key]) < 1e-5, key
    # the padding the forwards actually ran on, against what micro_batches/padding_tokens predict
    keep = batching.trained_flags(C.RLConfig(algo=C.AlgoConfig(mask_truncated=True)), rollouts)
    cfg = C.RLConfig(algo=C.AlgoConfig(micro_batch_size=2, mini_batches=2, epochs=2))
    predicted = {b: sum(padding_tokens(rollouts, batching.micro_batches(rollouts, rows, 2, b))[0]
                        for rows, _ in batching.minibatches(cfg, 0, rollouts, keep)) for b in (False, True)}
    assert (plain[1], bucketed[1]) == (predicted[False], predicted[True])
    assert bucketed[1] < plain[1], (plain[1], bucketed[1])


def test_chunked_update_same_loss_and_gradients(tiny_llama):
    """algo.logprob_chunk reaches the policy update: one rl.update with chunk 3 vs 0, same gradients."""
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    grads = {}
    for chunk in (0, 3):
        algo = C.AlgoConfig(micro_batch_size=3, entropy_coef=0.01, logprob_chunk=chunk)
        cfg = C.RLConfig(algo=algo, optim=C.OptimConfig(lr=1.0, grad_clip=0.0),
                         sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))
        m = copy.deepcopy(model)
        opt = RecordingSGD(m.parameters())
        rl.update(cfg, 0, m, None, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts, advantages, 0)
        grads[chunk] = opt.grads[0]
    assert sum(g is not None for g in grads[0]) > 5
    for a, b in zip(grads[0], grads[3]):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_update(tiny_llama):
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    cfg = C.RLConfig(algo=C.AlgoConfig(micro_batch_size=4, gradient_checkpointing=True),
                     optim=C.OptimConfig(lr=1.0, grad_clip=0.0), sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))
    grads = []
    for checkpointed in (False, True):
        m = copy.deepcopy(model)
        if checkpointed:
            rl.use_gradient_checkpointing(m, cfg.algo)  # what thinkrl rl and thinkrl bench call
            assert m.is_gradient_checkpointing
        opt = RecordingSGD(m.parameters())
        rl.update(cfg, 0, m, None, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts, advantages, pad_id=0)
        grads.append(opt.grads[0])
    assert sum(g is not None for g in grads[0]) > 5
    for a, b in zip(*grads):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-6, rtol=1e-4))


# ---------------------------------------------------------------- padding-free (packed) micro-batches


@pytest.mark.parametrize("chunk", [0, 4])
def test_completion_logprobs_packed_equal_padded(tiny, chunk):
    """Every tiny architecture: the five rows laid end to end in one row of 45 tokens, no padding,
    give the padded forward's log-probs, entropy and parameter gradients. Attention leaking across
    rows, or a position not restarting, would change them."""
    model, _ = tiny
    model.train()
    torch.manual_seed(1)
    weights = torch.randn(len(COMPS), max(map(len, COMPS)))
    shapes = []
    hook = model.get_input_embeddings().register_forward_hook(lambda mod, args, out: shapes.append(tuple(args[0].shape)))

    def run(pack):
        model.zero_grad(set_to_none=True)
        shapes.clear()
        logp, ent, mask = completion_logprobs(model, PROMPTS, ROWS, COMPS, temperature=0.7, with_entropy=True,
                                              logprob_chunk=chunk, pack=pack)
        ((logp * weights + 0.1 * ent) * mask).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return logp.detach(), ent.detach(), mask, grads, list(shapes)

    try:
        padded, packed = run(False), run(True)
    finally:
        hook.remove()
    real = sum(len(PROMPTS[p]) + len(c) for p, c in zip(ROWS, COMPS))
    assert packed[4] == [(1, real)] and padded[4] == [(5, 6 + 7)]  # what the forwards ran on
    mask = padded[2]
    assert torch.equal(packed[2], mask)
    assert torch.allclose(packed[0] * mask, padded[0] * mask, atol=1e-5)
    assert torch.allclose(packed[1] * mask, padded[1] * mask, atol=1e-5)
    assert padded[3].keys() == packed[3].keys() and len(padded[3]) > 5
    for name, g in padded[3].items():
        assert torch.allclose(packed[3][name], g, atol=1e-5, rtol=1e-4), name


def test_packed_update_same_loss_and_gradients(tiny_llama):
    """algo.pack reaches the policy update (and the reference model's forward): one rl.update with
    micro-batches of 4 rows of 1..9 tokens, packed vs padded, same gradients and metrics."""
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    results = {}
    for pack in (False, True):
        algo = C.AlgoConfig(micro_batch_size=4, entropy_coef=0.01, kl_coef=0.1, pack=pack)
        cfg = C.RLConfig(algo=algo, optim=C.OptimConfig(lr=1.0, grad_clip=0.0),
                         sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))
        m = copy.deepcopy(model)
        ref = copy.deepcopy(model)
        torch.manual_seed(0)
        with torch.no_grad():
            for p in ref.parameters():
                p.add_(0.01 * torch.randn_like(p))  # a reference that differs, so the KL term has a gradient
        opt = RecordingSGD(m.parameters())
        metrics = rl.update(cfg, 0, m, ref, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts,
                            advantages, 0)
        results[pack] = (opt.grads[0], metrics)
    assert sum(g is not None for g in results[False][0]) > 5
    for a, b in zip(results[False][0], results[True][0]):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    for key in ("grad_norm", "kl", "entropy", "clip_frac_low"):
        assert abs(results[False][1][key] - results[True][1][key]) < 1e-5, key


def test_pack_config_and_fallback(tiny_llama, hf_twin):
    model, _ = tiny_llama
    assert C.AlgoConfig().pack is False
    with pytest.raises(UserError, match="algo.pack and algo.detach_prompt"):
        C.AlgoConfig(pack=True, detach_prompt=True)
    # a model thinkrl's decoder does not run (here transformers' own class) takes HF's padded forward
    ours = completion_logprobs(model, PROMPTS, ROWS, COMPS, temperature=0.7, pack=True)
    theirs = completion_logprobs(hf_twin(model), PROMPTS, ROWS, COMPS, temperature=0.7, pack=True, logprob_chunk=4)
    mask = ours[2]
    assert torch.equal(theirs[2], mask) and torch.allclose(ours[0] * mask, theirs[0] * mask, atol=1e-5)


def test_rl_update_of_a_bf16_model_moves_it(tiny_llama):
    """One rl.update of a bf16 tiny model at lr 1e-5: with masters the model changes, and every
    weight is its master rounded to bf16."""
    from thinkrl.train.optim import MasterAdamW, adamw

    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    model = model.to(torch.bfloat16)
    cfg = C.RLConfig(algo=C.AlgoConfig(micro_batch_size=4), optim=C.OptimConfig(lr=1e-5),
                     sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt, sched = adamw(model.parameters(), cfg.optim, 1)
    rl.update(cfg, 0, model, None, opt, sched, rollouts, torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6]), 0)
    assert isinstance(opt, MasterAdamW)
    changed = sum(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())
    assert changed > 5
    for p, m in zip(opt.model_params, opt.masters()):
        assert p.dtype == torch.bfloat16 and torch.equal(p.detach(), m.to(torch.bfloat16))
