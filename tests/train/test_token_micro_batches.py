"""Micro-batches sized by a token budget (algo.micro_batch_tokens), and update loops that read
nothing back from the device per micro-batch (thinkrl.train.device_metrics): the same gradients
and the same metrics as the row-count split with per-micro-batch reads."""

import copy
import math

import pytest
import torch

from conftest import tiny_model
from thinkrl import config as C
from thinkrl.dist import Group
from thinkrl.engine import Completion
from thinkrl.errors import UserError
from thinkrl.models import save_pretrained
from thinkrl.tasks import Problem
from thinkrl.train import batching, ppo_update, rl
from thinkrl.train.critic import load_critic, value_head
from thinkrl.train.forward import completion_logprobs
from thinkrl.train.rollout import Rollout
from recording import RecordingSGD


def _rollout(prompt, tokens, logprobs=None, finish="eos"):
    c = Completion(0, 0, tokens, logprobs or [0.0] * len(tokens), [1] * len(tokens), finish, "")
    return Rollout(Problem("p", "q", "a"), prompt, c, {}, 0.0)


def _padded(rollouts, micro):
    return len(micro) * max(batching.row_tokens(rollouts[i]) for i in micro)


def test_token_budget_hand_counted():
    # prompt 2 + completions 1, 8, 2, 7, 3, 6 -> rows of 3, 10, 4, 9, 5, 8 tokens
    rollouts = [_rollout([1, 2], [5] * n) for n in (1, 8, 2, 7, 3, 6)]
    rows = list(range(6))
    # in order: 3 + 10 pads to 2 x 10 = 20 > 16, 10 + 4 to 20, 4 + 9 to 18; 5 + 8 to 16 fits
    assert batching.micro_batches(rollouts, rows, 99, tokens=16) == [[0], [1], [2], [3], [4, 5]]
    # sorted by length: 3, 4, 5 (3 x 5 = 15), then 8 (4 x 8 = 32), 9 (2 x 9 = 18), 10
    assert batching.micro_batches(rollouts, rows, 99, bucket_by_length=True, tokens=16) == [[0, 2, 4], [5], [3], [1]]
    assert batching.micro_batches(rollouts, rows, 99, tokens=8) == [[i] for i in rows]  # longer rows run alone
    assert batching.micro_batches(rollouts, rows, 2) == [[0, 1], [2, 3], [4, 5]]  # 0 = off: rows as before
    for micro in batching.micro_batches(rollouts, rows, 99, bucket_by_length=True, tokens=20):
        assert len(micro) == 1 or _padded(rollouts, micro) <= 20


def test_token_budget_ranks_agree_on_the_pass_count():
    lengths = [30, 2, 3, 25, 4, 5, 6, 28, 7, 1, 2]
    rollouts = [_rollout([1], [5] * n) for n in lengths]
    rows = [3, 0, 10, 7, 1, 9, 2, 4, 8, 6, 5]
    for world in (1, 2, 3):
        for bucket in (False, True):
            plans = [batching.rank_micro_batches(rollouts, rows, 4, bucket, Group(r, world), tokens=32)
                     for r in range(world)]
            assert len({len(p) for p in plans}) == 1  # every rank the same forwards and backwards
            real = sorted(i for p in plans for micro, ghost in p if not ghost for i in micro)
            assert real == sorted(rows)  # every row once, on one rank
            for p in plans:
                assert all(len(m) == 1 or _padded(rollouts, m) <= 32 for m, _ in p)
    # rank 0 holds rows of 31 and 2 tokens (two passes), rank 1 two of 2 (one): rank 1 adds a ghost pass
    rollouts = [_rollout([1], [5] * n) for n in (30, 1, 1, 1)]
    plans = [batching.rank_micro_batches(rollouts, [0, 1, 2, 3], 4, False, Group(r, 2), tokens=32) for r in range(2)]
    assert plans == [[([0], False), ([2], False)], [([1, 3], False), ([0], True)]]


def test_micro_batch_tokens_is_validated():
    with pytest.raises(UserError, match="algo.micro_batch_tokens"):
        C.AlgoConfig(micro_batch_tokens=-1)


def _update_rollouts(model):
    """2 prompts x 4 completions of mixed lengths, old log-probs near the model's own, one cut at the budget."""
    prompts = [[5, 9, 13, 21, 8], [7, 3, 11]]
    gen = torch.Generator().manual_seed(3)
    out = []
    for i, n in enumerate([9, 1, 6, 2, 3, 8, 1, 7]):
        tokens = torch.randint(4, 100, (n,), generator=gen).tolist()
        with torch.no_grad():
            lp, _, _ = completion_logprobs(model, [prompts[i // 4]], [0], [tokens], temperature=1.0)
        old = (lp[0] + 0.3 * torch.randn(n, generator=gen)).tolist()
        out.append(_rollout(prompts[i // 4], tokens, old, "length" if i == 5 else "eos"))
    return out


def _same_grads(a, b):
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b):
        assert sum(g is not None for g in step_a) > 3
        for x, y in zip(step_a, step_b):
            assert (x is None) == (y is None)
            if x is not None:  # float rounding of sums in another grouping, relative to the tensor's scale
                assert (x - y).abs().max() <= 1e-5 * x.abs().max() + 1e-6


def _cfg(**algo):
    return C.RLConfig(algo=C.AlgoConfig(mini_batches=2, epochs=2, entropy_coef=0.01, mask_truncated=True, **algo),
                      optim=C.OptimConfig(lr=1.0, grad_clip=0.0),
                      sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9))


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean"])
@pytest.mark.parametrize("detach", [False, True])
def test_token_budget_update_same_gradients_and_metrics_as_rows(tiny_llama, aggregation, detach):
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])

    def run(**algo):
        m = copy.deepcopy(model)
        opt = RecordingSGD(m.parameters())
        metrics = rl.update(_cfg(aggregation=aggregation, detach_prompt=detach, **algo), 0, m, None, opt,
                            torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts, advantages, pad_id=0)
        return opt.grads, metrics

    rows, rows_metrics = run(micro_batch_size=2)
    for bucket in (False, True):
        tokens, tokens_metrics = run(micro_batch_tokens=24, bucket_by_length=bucket)
        _same_grads(rows, tokens)
        assert rows_metrics.keys() == tokens_metrics.keys()
        for k, v in rows_metrics.items():
            assert math.isclose(v, tokens_metrics[k], rel_tol=1e-5, abs_tol=1e-6), k


def test_update_metrics_equal_per_micro_batch_host_reads(tiny_llama, monkeypatch):
    """The metrics summed on the device equal the token-weighted means of each micro-batch's metrics
    read as floats (how the loop computed them before), to 1e-6."""
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    calls = []
    original = rl.policy_loss

    def recording(*args, **kwargs):
        loss, m = original(*args, **kwargs)
        calls.append(({k: float(v) for k, v in m.items()}, float(args[3].sum())))
        return loss, m

    monkeypatch.setattr(rl, "policy_loss", recording)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = rl.update(_cfg(micro_batch_size=3), 0, model, None, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
                    rollouts, advantages, pad_id=0)
    weight = sum(w for _, w in calls)
    assert len(calls) >= 8 and weight > 0
    for k in calls[0][0]:
        if k != "pg_loss":
            assert math.isclose(out[k], sum(m[k] * w for m, w in calls) / weight, rel_tol=1e-6, abs_tol=1e-7), k


class HostReads:
    """Counts the Python-level reads of tensor values (float(), .item(), .tolist(), bool())."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in ("__float__", "item", "tolist", "__bool__"):
            original = getattr(torch.Tensor, name)

            def counted(t, *a, _original=original, **k):
                self.count += 1
                return _original(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("detach", [False, True])
def test_update_reads_the_device_once_per_optimizer_step_not_per_micro_batch(tiny_llama, monkeypatch, detach):
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    counts = {}
    for size in (1, 4):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        with monkeypatch.context() as patch:
            reads = HostReads(patch)
            rl.update(_cfg(micro_batch_size=size, detach_prompt=detach), 0, model, None, opt,
                      torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts, advantages, pad_id=0)
        counts[size] = reads.count
    # 4 optimizer steps: the loss and the gradient norm of each, one transfer of every metric, and
    # the 2 epochs' row permutations (host tensors, `minibatches`); none per micro-batch
    assert counts[1] == counts[4] == 4 * 2 + 1 + 2, counts


def test_critic_token_budget_same_gradients_and_reads(tmp_path, monkeypatch):
    model, tok = tiny_model("llama", seed=5)
    folder = save_pretrained(model, tok, tmp_path / "tiny")
    rollouts = _update_rollouts(model)
    gen = torch.Generator().manual_seed(4)
    returns, old = torch.randn(8, 9, generator=gen), 0.1 * torch.randn(8, 9, generator=gen)
    critic_model = load_critic(folder)
    torch.nn.init.normal_(value_head(critic_model).weight, std=0.3)

    def run(**algo):
        m = copy.deepcopy(critic_model)
        opt = RecordingSGD(m.parameters())
        critic = ppo_update.Critic(m, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0))
        with monkeypatch.context() as patch:
            reads = HostReads(patch)
            metrics = ppo_update.update_critic(_cfg(**algo), 0, critic, rollouts, returns, old, pad_id=0)
        return opt.grads, metrics, reads.count

    rows, rows_metrics, rows_reads = run(micro_batch_size=1)
    tokens, tokens_metrics, tokens_reads = run(micro_batch_tokens=30, bucket_by_length=True)
    _same_grads(rows, tokens)
    for k, v in rows_metrics.items():
        assert math.isclose(v, tokens_metrics[k], rel_tol=1e-5, abs_tol=1e-6), k
    assert rows_reads == tokens_reads == 4 * 2 + 1 + 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (non-blocking copies from pinned staging)")
def test_update_on_cuda_matches_cpu(tiny_llama):
    """The non-blocking inputs (thinkrl.model.inputs.to_device) and the metrics summed on the device
    give the CPU's update on a GPU: same metrics and gradients to float tolerance."""
    from thinkrl.model.inputs import to_device

    x = torch.arange(10)
    assert torch.equal(to_device(x, "cuda").cpu(), x)
    model, _ = tiny_llama
    rollouts = _update_rollouts(model)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.8, -0.2, 0.4, -0.6])
    out = {}
    for device in ("cpu", "cuda"):
        m = copy.deepcopy(model).to(device)
        opt = RecordingSGD(m.parameters())
        metrics = rl.update(_cfg(micro_batch_tokens=24, detach_prompt=True, logprob_chunk=5), 0, m, None, opt,
                            torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), rollouts, advantages, pad_id=0)
        out[device] = ([[g if g is None else g.cpu() for g in step] for step in opt.grads], metrics)
    for step_cpu, step_cuda in zip(*(out[d][0] for d in ("cpu", "cuda"))):  # another device's kernels: looser
        for x, y in zip(step_cpu, step_cuda):
            assert (x is None) == (y is None) and (x is None or (x - y).abs().max() <= 1e-4 * x.abs().max() + 1e-5)
    for k, v in out["cpu"][1].items():
        assert math.isclose(v, out["cuda"][1][k], rel_tol=1e-4, abs_tol=1e-5), k
