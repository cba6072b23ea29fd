"""One policy update (thinkrl.train.rl.update) at the default recipe's shape, timed or counted.

The default recipe (recipes/r1_zero.toml) updates 4 prompts x 8 completions a step: a one-shot
prompt of ~100 tokens and completions of <= 48, micro-batches of 16, detach_prompt. This builds
such a batch synthetically (random tokens, old log-probs near the model's own) for the embedded
model (or `--model tiny`, a 2-layer random llama) and runs `update` on it:

    python benchmarks/update_step.py --count        # operator calls and host reads of one step
    python benchmarks/update_step.py --time 5       # seconds per step, the first (warm-up) left out
    python benchmarks/update_step.py --set micro_batch_tokens=2048 --time 5
    python benchmarks/update_step.py --model tiny --metrics   # one step's metrics, to compare checkouts

`--count` runs one warm-up step, then profiles one step with torch.profiler (CPU): the number of
aten operator calls, of `aten::_local_scalar_dense` (what every float()/item() of a tensor runs,
a device-to-host sync on a GPU), and the calls of Tensor.__float__/item/tolist/__bool__ counted by
patching them. PYTHONPATH chooses the checkout measured, so two trees compare with one script.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch

from thinkrl import config as C
from thinkrl.engine import Completion
from thinkrl.tasks import Problem
from thinkrl.train import rl
from thinkrl.train.forward import completion_logprobs
from thinkrl.train.optim import adamw
from thinkrl.train.rollout import Rollout


def model_of(name: str):
    if name == "tiny":
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import tiny_model  # noqa: E402

        return tiny_model("llama", seed=0)[0]
    from thinkrl.models import load_model

    return load_model(name, device="cpu", dtype=torch.float32)[0]


def rollouts_of(model, prompts: int, group: int, prompt_len: int, max_new: int, seed: int = 0) -> list[Rollout]:
    gen = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    out = []
    for p in range(prompts):
        prompt = torch.randint(10, vocab, (prompt_len + p,), generator=gen).tolist()
        for s in range(group):
            n = int(torch.randint(max_new // 3, max_new + 1, (1,), generator=gen))
            tokens = torch.randint(10, vocab, (n,), generator=gen).tolist()
            with torch.no_grad():
                lp, _, _ = completion_logprobs(model, [prompt], [0], [tokens], temperature=1.0)
            old = (lp[0] + 0.05 * torch.randn(n, generator=gen)).tolist()
            c = Completion(p, s, tokens, old, [1] * n, "length" if n == max_new else "eos", "")
            out.append(Rollout(Problem(f"p{p}", "q", "a"), prompt, c, {}, 0.0))
    return out


class HostReads:
    """Counts Tensor.__float__/item/tolist/__bool__ calls while active (the Python-level host reads)."""

    NAMES = ("__float__", "item", "tolist", "__bool__")

    def __init__(self):
        self.calls = collections.Counter()
        self.saved = {}

    def __enter__(self):
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            self.saved[name] = original

            def counted(t, *a, _name=name, _original=original, **k):
                self.calls[_name] += 1
                return _original(t, *a, **k)

            setattr(torch.Tensor, name, counted)
        return self

    def __exit__(self, *exc):
        for name, original in self.saved.items():
            setattr(torch.Tensor, name, original)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=100)
    ap.add_argument("--max-new", type=int, default=48)
    ap.add_argument("--time", type=int, default=0, help="timed steps after one warm-up")
    ap.add_argument("--count", action="store_true")
    ap.add_argument("--top", type=int, default=0, help="with --count: the most frequent top-level operators")
    ap.add_argument("--metrics", action="store_true", help="print one step's metrics as JSON (before/after checks)")
    ap.add_argument("--set", action="append", default=[], help="algo key=value (ints)")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = model_of(args.model)
    rollouts = rollouts_of(model, args.prompts, args.group, args.prompt_len, args.max_new)
    algo = {"clip_low": 0.2, "clip_high": 0.28, "micro_batch_size": 16, "detach_prompt": True}
    algo.update({k: int(v) for k, v in (s.split("=", 1) for s in args.set)})
    cfg = C.RLConfig(algo=C.AlgoConfig(**algo), optim=C.OptimConfig(lr=1e-5),
                     sampling=C.SamplingParams(temperature=1.0, max_new_tokens=args.max_new))
    optimizer, scheduler = adamw([p for p in model.parameters() if p.requires_grad], cfg.optim, 1000)
    advantages = torch.randn(len(rollouts), generator=torch.Generator().manual_seed(1))

    def step():
        return rl.update(cfg, 0, model, None, optimizer, scheduler, rollouts, advantages, pad_id=0)

    first = step()  # warm-up
    if args.metrics:
        import json

        print(json.dumps(first, sort_keys=True))
    if args.count:
        from torch.profiler import ProfilerActivity, profile

        with HostReads() as reads, profile(activities=[ProfilerActivity.CPU]) as prof:
            metrics = step()
        events = [e for e in prof.events() if e.name.startswith("aten::")]
        names = collections.Counter(e.name for e in events)
        print(f"aten operator calls (incl. nested) {len(events)}; top-level {sum(1 for e in events if e.cpu_parent is None)}; "
              f"aten::_local_scalar_dense {names['aten::_local_scalar_dense']}; aten::item {names['aten::item']}")
        print("python host reads:", dict(reads.calls), "metric keys", len(metrics))
        if args.top:
            top = collections.Counter(e.name for e in events if e.cpu_parent is None).most_common(args.top)
            print("top-level:", ", ".join(f"{n} {c}" for n, c in top))
    times = []
    for _ in range(args.time):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if times:
        print(f"update step s: {' '.join(f'{t:.3f}' for t in times)}; median {statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
