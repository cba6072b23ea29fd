"""GraphRunner (static shapes, CUDA graphs on a GPU) against KVRunner, HF generate and itself.

On CPU the static-shape code runs eagerly, so these tests check its masking, windows, bucket
padding, compaction and on-device sampling loop; the last test (GPU only) checks that replaying
the captured graphs gives what running the same steps eagerly gives.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import thinkrl.engine.graph_runner as gr
from thinkrl.engine import Engine, SamplingParams
from thinkrl.engine.runner import KVRunner
from thinkrl.model.attention import decode_attention
from thinkrl.model.inputs import pad
from thinkrl.engine.sampling import sample, stream_keys, uniforms
from thinkrl.errors import UserError
from thinkrl.models import eos_token_ids, tiny_model

SYSTEM = "You are a careful assistant. Think first, then answer. "  # a shared prefix longer than 16 tokens
PROMPTS = ["hello there", "a", "what is 2+2? answer:", "The quick brown fox jumps"]
SETTINGS = [
    SamplingParams(temperature=0, max_new_tokens=30),
    SamplingParams(temperature=1.0, max_new_tokens=30),
    SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=30),
    SamplingParams(temperature=0.7, top_k=5, max_new_tokens=30),
]


@pytest.fixture
def small_windows(monkeypatch):
    """Windows of 8 columns, so a short completion crosses several (each its own static shape)."""
    monkeypatch.setattr(gr, "WINDOW", 8)


def engine(model, tok, runner, eos=None, max_batch=64):
    return Engine(model, tok, eos if eos is not None else eos_token_ids(model, tok), max_batch=max_batch, runner=runner)


def eos_ending_some_rows(completions) -> list[int]:
    """Token ids that, made end-of-sequence, end some completions early and leave two or more to run to the end."""
    eos: set[int] = set()
    for c in completions:
        candidate = eos | {c.token_ids[4]}
        if sum(not candidate & set(x.token_ids) for x in completions) >= 2:
            eos = candidate
    return sorted(eos)


def test_buckets_and_windows():
    assert [gr.bucket_for(r) for r in (1, 2, 8, 9, 100, 256, 257)] == [1, 8, 8, 16, 128, 256, 512]
    assert [gr.window_for(c, 640) for c in (1, 128, 129, 600)] == [128, 128, 256, 640]


def test_tensor_only_sampling_draws_what_the_host_path_draws():
    """The graph's sampling (step as a device tensor, top-p by a full sort) against the engine's."""
    keys = stream_keys(torch.arange(400), torch.zeros(400, dtype=torch.long))
    assert torch.equal(uniforms(keys, torch.tensor([7])), uniforms(keys, 7))
    torch.manual_seed(0)
    peaked = torch.randn(400, 3000) * 4  # the best 1,024 tokens hold top_p: the host path takes its shortlist
    flat = -torch.arange(3000, dtype=torch.float32).repeat(400, 1) * 1e-4  # they do not: the host path sorts too
    for logits in (peaked, flat):
        for params in (SamplingParams(top_p=0.9), SamplingParams(top_p=0.5, temperature=0.7), SamplingParams(top_k=50)):
            u = uniforms(keys, 3)
            host, graph = sample(logits, params, u), sample(logits, params, u, shortlist=False)
            assert torch.equal(host[0], graph[0]) and torch.allclose(host[1], graph[1])


def test_decode_attention_equals_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 6, 1, 8), torch.randn(3, 2, 10, 8), torch.randn(3, 2, 10, 8)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, :4] = False  # left padding
    mask[1, 7:] = False  # columns not filled yet
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], scale=0.3, enable_gqa=True)
    assert torch.allclose(decode_attention(q, k, v, ~mask[:, None, None, :], 0.3), ref, atol=1e-5)


def test_runner_logits_match_kvrunner_through_windows_and_compaction(tiny, small_windows):
    """Prefill (shared prefix, then suffixes of different lengths, n = 4 rows each) and decode with
    rows leaving: 12 rows in a bucket of 16, then 9 (dead padding), 6 (compacted into 8), 1."""
    model, tok = tiny
    prompts = [tok.encode(SYSTEM + p) for p in PROMPTS[:3]]
    shared = len(tok.encode(SYSTEM)) - 1
    ids, attn = pad([p[shared:] for p in prompts], tok.pad_token_id, left=True)
    prefix = torch.tensor([prompts[0][:shared]])
    max_len = shared + ids.shape[1] + 20
    runners = [KVRunner(model, 12, max_len), gr.GraphRunner(model, 12, max_len)]
    logits = []
    for r in runners:
        r.prefill(prefix, torch.ones_like(prefix, dtype=torch.bool), 12)
        logits.append(r.prefill(ids, attn, 4))
    assert torch.allclose(logits[0], logits[1], atol=1e-5)
    drops = {4: [0, 1, 2, 4, 5, 7, 9, 10, 11], 9: [0, 2, 3, 5, 6, 8], 14: [4]}  # indices into the live rows
    buckets = []
    for step in range(20):
        tokens = logits[0].argmax(-1)
        if step in drops:
            rows = torch.tensor(drops[step])
            for r in runners:
                r.keep(rows)
            tokens = tokens[rows]
        logits = [r.decode(tokens) for r in runners]
        assert torch.allclose(logits[0], logits[1], atol=1e-4), step
        buckets.append(runners[1].b)
    assert buckets[0] == 16 and buckets[5] == 16 and buckets[10] == 8 and buckets[-1] == 1


@pytest.mark.parametrize("params", SETTINGS, ids=["greedy", "t1", "top_p", "top_k"])
def test_engine_graph_equals_eager_rows_ending_apart(tiny, params, small_windows, monkeypatch):
    """Same completions, finish reasons and log-probs: prompts of different lengths sharing a system
    prefix, 3 samples each, rows ending at different steps (many eos ids), the host reading back
    every 3 steps (so rows finish between reads and the batch compacts behind the GPU)."""
    monkeypatch.setattr(gr, "READ_EVERY", 3)
    compactions = []
    original = gr.GraphRunner._compact
    monkeypatch.setattr(gr.GraphRunner, "_compact", lambda self: (compactions.append(self.n), original(self)))
    model, tok = tiny
    prompts = [tok.encode(SYSTEM + p) for p in PROMPTS]
    seeds = [1, 2, 3, 4]
    full = dataclasses.replace(params, ignore_eos=True)
    eos = eos_ending_some_rows(engine(model, tok, "eager").generate(prompts, full, n=3, seeds=seeds))
    ours = engine(model, tok, "graph", eos).generate(prompts, params, n=3, seeds=seeds)
    theirs = engine(model, tok, "eager", eos).generate(prompts, params, n=3, seeds=seeds)
    assert {c.finish_reason for c in ours} == {"eos", "length"}
    assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]
    assert [c.finish_reason for c in ours] == [c.finish_reason for c in theirs]
    for a, b in zip(ours, theirs):
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
        assert a.mask == [1] * len(a.token_ids)
    assert compactions  # the live rows moved into a smaller bucket at least once


def test_steps_are_idempotent_as_capture_needs(tiny_llama, small_windows, monkeypatch):
    """Capturing a step first runs it WARMUP times for real, then replays it: running every step
    WARMUP + 1 times must change nothing."""
    original = gr.GraphRunner._step_fn

    def repeated(self, b, w, setting):
        step = original(self, b, w, setting)
        return lambda: [step() for _ in range(gr.WARMUP + 1)]

    model, tok = tiny_llama
    prompts = [tok.encode(SYSTEM + p) for p in PROMPTS]
    params = SamplingParams(max_new_tokens=25)
    once = engine(model, tok, "graph").generate(prompts, params, n=2, seeds=[1, 2, 3, 4])
    monkeypatch.setattr(gr.GraphRunner, "_step_fn", repeated)
    thrice = engine(model, tok, "graph").generate(prompts, params, n=2, seeds=[1, 2, 3, 4])
    assert [c.token_ids for c in once] == [c.token_ids for c in thrice]
    assert [c.logprobs for c in once] == [c.logprobs for c in thrice]


def test_a_failed_capture_warns_and_decodes_eagerly(tiny_llama, monkeypatch):
    model, tok = tiny_llama
    prompt = tok.encode("capture")
    params = SamplingParams(temperature=0, max_new_tokens=12, ignore_eos=True)
    expected = engine(model, tok, "eager").generate([prompt], params, seeds=[0])[0].token_ids

    def refuse(step, pool, stream):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(gr, "capture", refuse)
    runner = gr.GraphRunner(model, 1, len(prompt) + 12)
    runner.use_graphs = True  # as on a GPU
    ids = torch.tensor([prompt])
    out = []
    with pytest.warns(UserWarning, match="capture failed"):
        runner.decode_all(runner.prefill(ids, torch.ones_like(ids, dtype=torch.bool), 1), stream_keys(
            torch.tensor([0]), torch.tensor([0])), params, lambda r, step, t, lp: out.append(t) or step == 11)
    assert out == expected and not runner.use_graphs


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_equals_hf_generate(arch, small_windows, hf_twin):
    model, tok = tiny_model(arch, seed=0)
    prompt = tok.encode("greedy decoding test")
    params = SamplingParams(temperature=0, max_new_tokens=40, ignore_eos=True)
    ours = engine(model, tok, "graph").generate([prompt], params, seeds=[0])[0]
    with torch.no_grad():
        ref = hf_twin(model).generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=40, min_new_tokens=40,
                             pad_token_id=tok.pad_token_id)
    assert ours.token_ids == ref[0, len(prompt):].tolist()
    assert ours.finish_reason == "length"


def test_stop_strings_and_token_counts_match_eager(tiny_llama):
    model, tok = tiny_llama
    prompt = tok.encode("finish reasons")
    full = engine(model, tok, "eager").generate([prompt], SamplingParams(temperature=0, max_new_tokens=30,
                                                                         ignore_eos=True), seeds=[0])[0]
    params = SamplingParams(temperature=0, max_new_tokens=30, stop=[tok.decode(full.token_ids[:20])[8:11]])
    counts = {"graph": [], "eager": []}
    outs = {k: engine(model, tok, k).generate([prompt, tok.encode("x")], params, n=2, seeds=[0, 1],
                                              on_tokens=counts[k].append) for k in counts}
    assert outs["graph"][0].finish_reason == "stop"
    assert [(c.token_ids, c.text, c.finish_reason) for c in outs["graph"]] == \
        [(c.token_ids, c.text, c.finish_reason) for c in outs["eager"]]
    assert counts["graph"] == counts["eager"]
    assert sum(counts["graph"]) == sum(len(c.token_ids) for c in outs["graph"])


def test_runner_is_kept_across_calls_and_rebuilt_when_it_cannot_serve(tiny_llama):
    model, tok = tiny_llama
    eng = engine(model, tok, "graph")
    params = SamplingParams(max_new_tokens=8)
    eng.generate([tok.encode("one")], params, n=2, seeds=[0])
    first = eng._graph
    eng.generate([tok.encode("two")], params, n=3, seeds=[0])  # 3 rows still fit the bucket of 8
    assert eng._graph is first
    eng.generate([tok.encode("three")], params, n=9, seeds=[0])  # 9 rows do not
    assert eng._graph is not first and eng._graph.cap == 16
    second = eng._graph
    with torch.no_grad():  # a replaced weight tensor: graphs would read the old address
        model.lm_head.weight.data = model.lm_head.weight.data.clone()
    eng.generate([tok.encode("four")], params, n=2, seeds=[0])
    assert eng._graph is not second
    eng.release()
    assert eng._graph is None


def test_runner_selection(tiny_llama, hf_twin):
    model, tok = tiny_llama
    assert engine(model, tok, "auto").runner == "eager"  # CPU: the eager runners, as before
    assert engine(model, tok, "graph").runner == "graph"
    with pytest.raises(UserError, match="auto, eager, graph"):
        engine(model, tok, "fast")
    hf = hf_twin(model)  # a model thinkrl's decoder does not run
    with pytest.raises(UserError, match="llama family"):
        engine(hf, tok, "graph")
    assert engine(hf, tok, "auto").runner == "eager"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("params", SETTINGS, ids=["greedy", "t1", "top_p", "top_k"])
def test_graph_replay_equals_eager_on_cuda(params, small_windows, monkeypatch):
    monkeypatch.setattr(gr, "READ_EVERY", 3)
    model, tok = tiny_model("qwen2", seed=0)
    model.cuda()
    prompts = [tok.encode(SYSTEM + p) for p in PROMPTS]
    ids, attn = pad(prompts, tok.pad_token_id, left=True)
    ids, attn = ids.cuda(), attn.cuda()
    keys = stream_keys(torch.tensor([1, 2, 3, 4]).repeat_interleave(3), torch.arange(3).repeat(4)).cuda()
    got = {}
    for graphs in (True, False):
        runner = gr.GraphRunner(model, 12, ids.shape[1] + params.max_new_tokens, graphs=graphs)
        assert runner.use_graphs == graphs
        out = [[] for _ in range(12)]

        def record(row, step, token, logp, out=out):
            out[row].append((token, logp))
            return step + 1 == params.max_new_tokens or (row % 3 == 0 and step == 5 + row)  # rows end apart

        runner.decode_all(runner.prefill(ids, attn, 3), keys, params, record)
        got[graphs] = out
        if graphs:
            assert len(runner.graphs) > 1  # several windows (and buckets) captured
    for a, b in zip(got[True], got[False]):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert torch.allclose(torch.tensor([lp for _, lp in a]), torch.tensor([lp for _, lp in b]), atol=1e-4)
    # and the engine on CUDA picks the graph runner and agrees with the eager one
    eng = Engine(model, tok, eos_token_ids(model, tok))
    assert eng.runner == "graph"
    ours = eng.generate(prompts, params, n=3, seeds=[1, 2, 3, 4])
    theirs = engine(model, tok, "eager").generate(prompts, params, n=3, seeds=[1, 2, 3, 4])
    assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]
