"""Multi-turn rollouts: a call's result is inserted as tokens the model did not sample, the row's
KV cache holds them, decoding goes on; without a call nothing changes; tool tokens carry no loss."""

import time

import pytest
import torch

from thinkrl import config as C
from thinkrl.engine import Completion, Engine, SamplingParams
from thinkrl.engine import engine as engine_mod
from thinkrl.models import eos_token_ids
from thinkrl.tasks.base import Problem
from thinkrl.tools import ToolCall, Toolbox, call_metrics
from thinkrl.train import rl
from thinkrl.train.batching import sampled_mask
from thinkrl.train.rollout import Rollout
from recording import RecordingSGD

PROMPTS = ["hello there", "a", "what is 2+2? answer:"]


def box(**tools) -> Toolbox:
    return Toolbox(tools or {"calc": lambda text: str(eval(text, {}))}, max_calls=2, result_max_tokens=8,
                   call_timeout_s=2.0)


def call_at(monkeypatch, *lengths):
    """Rows 'call' calc(6 * 7) when their completion reaches one of `lengths` tokens (the detection
    is patched: a random model writes no tags)."""
    def ended(self, res, start, env, finished):
        return len(res.token_ids) in lengths and not finished and res.turns <= env.max_steps

    monkeypatch.setattr(Engine, "_turn_ended", ended)
    monkeypatch.setattr(Toolbox, "find_call", lambda self, text: ("calc", "6 * 7", ""))


def generate(model, tok, tools=None, **kw):
    params = SamplingParams(temperature=1.0, max_new_tokens=kw.pop("max_new_tokens", 24), ignore_eos=True)
    engine = Engine(model, tok, eos_token_ids(model, tok), runner="eager")
    return engine.generate([tok.encode(p) for p in PROMPTS], params, n=2, seeds=[1, 2, 3], tools=tools)


def test_without_a_call_the_tokens_are_unchanged(tiny):
    model, tok = tiny
    plain = generate(model, tok)
    with_tools = generate(model, tok, box())
    assert [c.token_ids for c in with_tools] == [c.token_ids for c in plain]
    assert all(c.mask == [1] * len(c.token_ids) and not c.calls for c in with_tools)


def test_a_call_inserts_its_result_and_decoding_goes_on_from_it(tiny, monkeypatch, hf_twin):
    """Row 0 'calls' after its 4th token (the detection is patched: a random model writes no tags);
    its result tokens follow with mask 0 and log-prob 0, and every later sampled token's log-prob is
    what a forward over the whole transcript gives: the KV cache holds the inserted tokens."""
    model, tok = tiny
    call_at(monkeypatch, 4)
    outs = generate(model, tok, box(), max_new_tokens=30)
    result = tok.encode("<result>42</result>", add_special_tokens=False)
    for c in outs:
        assert len(c.token_ids) == 30  # the budget counts inserted tokens too
        assert c.token_ids[4 : 4 + len(result)] == result
        assert c.mask == [1] * 4 + [0] * len(result) + [1] * (30 - 4 - len(result))
        assert all(lp == 0.0 for lp, m in zip(c.logprobs, c.mask) if m == 0)
        assert [(x.name, x.call, x.result, x.error) for x in c.calls] == [("calc", "6 * 7", "42", "")]
    twin = hf_twin(model)
    for c in outs:
        prompt = tok.encode(PROMPTS[c.prompt_index])
        with torch.no_grad():
            logits = twin(torch.tensor([prompt + c.token_ids])).logits[0, len(prompt) - 1 : -1]
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
        sampled = torch.tensor(c.mask, dtype=torch.bool)
        assert torch.allclose(ref[sampled], torch.tensor(c.logprobs)[sampled], atol=1e-4)
    m = call_metrics(outs)
    assert m["tools/calls_per_completion"] == 1.0 and m["tools/call_frac"] == 1.0
    assert m["tools/result_tokens"] == len(result)


def test_call_detection_reads_the_closing_tag(tiny_llama):
    model, tok = tiny_llama
    engine = Engine(model, tok, [])
    tools = box()
    env = tools.env()
    ids = tok.encode("I will compute. <calc>1 + 2</calc>", add_special_tokens=False)
    assert engine._hit_stop(ids, list(env.stops)) and not engine._hit_stop(ids[:-1], list(env.stops))
    assert not engine._hit_stop(ids, list(env.stops), start=len(ids) - 3)  # the tag began before the turn
    call = env.step(tok.decode(ids)).call
    assert (call.name, call.call, call.result, call.error) == ("calc", "1 + 2", "3", "")
    assert env.step("</calc> alone").call is None and env.encode(env.step("</calc> alone"), tok) == []
    assert tools.find_call("text </calc>") is None
    # a token that closes the tag and starts the result tag ("><"): the rest of the tag follows it
    assert tools.find_call("<calc>2*3</calc><") == ("calc", "2*3", "<")
    inserted = tok.decode(env.encode(env.step("<calc>2*3</calc><"), tok))
    assert inserted == "result>6</result>"


def test_tool_errors_timeouts_and_parallel_calls():
    def slow(text):
        time.sleep(float(text))
        return "done"

    tools = Toolbox({"slow": slow, "calc": lambda t: str(eval(t, {}))}, call_timeout_s=0.5)
    t0 = time.perf_counter()
    out = tools.run([("slow", "0.3"), ("slow", "0.3"), ("slow", "0.3"), ("slow", "5"), ("calc", "1/0")])
    assert time.perf_counter() - t0 < 1.5  # side by side, and the hanging one is not waited for
    assert [c.result for c in out[:3]] == ["done"] * 3 and not any(c.error for c in out[:3])
    assert out[3].error == "timeout" and out[4].error.startswith("ZeroDivisionError")
    assert tools.result_text(out[4]).startswith("<result>error: ZeroDivisionError")


def _rollouts(model, tok, old_inserted: float):
    """Two rollouts whose middle tokens are a tool result (mask 0), with `old_inserted` as their
    recorded log-prob: anything there must not move the update."""
    prompt = tok.encode("q")
    rows = []
    for i, n in enumerate((7, 9)):
        ids = list(range(40 + i, 40 + i + n))
        mask = [1, 1, 0, 0, 0] + [1] * (n - 5)
        logps = [-1.0 if m else old_inserted for m in mask]
        rows.append(Rollout(Problem(f"p{i}", "q", "a"), prompt, Completion(0, i, ids, logps, mask, "eos", "x"), {}, 0.0))
    return rows


def test_tool_tokens_get_no_gradient_and_no_ratio(tiny_llama):
    model, tok = tiny_llama
    cfg = C.RLConfig(algo=C.AlgoConfig(micro_batch_size=2), optim=C.OptimConfig(lr=1.0, grad_clip=0.0),
                     sampling=C.SamplingParams(temperature=1.0, max_new_tokens=9), group_size=2, prompts_per_step=1)
    grads, metrics = [], []
    for old in (0.0, -30.0):  # a ratio taken at an inserted token would differ by e^30
        opt = RecordingSGD(model.parameters())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        metrics.append(rl.update(cfg, 0, model, None, opt, sched, _rollouts(model, tok, old), torch.tensor([1.0, -1.0]), 0))
        grads.append(torch.cat([g.flatten() for g in opt.grads[0] if g is not None]))
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])
    assert metrics[0]["clip_frac_low"] == metrics[1]["clip_frac_low"] and metrics[0]["entropy"] == metrics[1]["entropy"]
    mask = sampled_mask(_rollouts(model, tok, 0.0), [0, 1], 9, "cpu")
    assert mask.tolist() == [[1, 1, 0, 0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1, 1, 1, 1]]


def test_inserted_tokens_count_only_sampled_ones_in_the_token_mean():
    from thinkrl.train.batching import minibatches

    cfg = C.RLConfig(group_size=2, prompts_per_step=1)
    rows = _rollouts(None, type("T", (), {"encode": lambda self, s: [1]})(), 0.0)
    ((_, normalizer),) = list(minibatches(cfg, 0, rows, [True, True]))
    assert normalizer == (7 - 3) + (9 - 3)


def test_a_completion_records_its_calls_in_order():
    c = Completion(0, 0)
    c.calls.append(ToolCall("calc", "1+1", "2"))
    assert engine_mod.Completion(0, 0).calls == [] and c.calls[0].result == "2"


def test_the_graph_runner_serves_tool_calls_as_the_eager_one_does(tiny, monkeypatch):
    """The CUDA-graph runner's static-shape steps (run eagerly on CPU) with a call inserted at
    different lengths per row give the eager runner's completions, calls and masks."""
    model, tok = tiny
    second = 3 + len(tok.encode("<result>42</result>", add_special_tokens=False)) + 4
    call_at(monkeypatch, 3, second)
    params = SamplingParams(temperature=1.0, max_new_tokens=second + 24, ignore_eos=True)
    prompts = [tok.encode(p) for p in PROMPTS]
    outs = {kind: Engine(model, tok, eos_token_ids(model, tok), runner=kind).generate(prompts, params, n=2,
                                                                                      seeds=[1, 2, 3], tools=box())
            for kind in ("eager", "graph")}
    assert all(len(c.calls) == 2 for c in outs["graph"])
    assert [(c.token_ids, c.mask, c.text, [x.result for x in c.calls]) for c in outs["graph"]] == \
        [(c.token_ids, c.mask, c.text, [x.result for x in c.calls]) for c in outs["eager"]]
    for g, e in zip(outs["graph"], outs["eager"]):
        assert torch.allclose(torch.tensor(g.logprobs), torch.tensor(e.logprobs), atol=1e-5)
