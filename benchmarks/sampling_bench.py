"""Time one sampling step by each method (sampling.method cdf and race) at real vocabulary sizes.

    python benchmarks/sampling_bench.py [--device cpu] [--vocab 49152 151936] [--batch 8 64 256] [--repeats 7] [--threads N]

One step is `sampling.draw` on [batch, vocab] float32 logits (log-softmax, the draw, the gather
of the log-prob) at the default rollout settings (temperature 1, no top-k/top-p), or with
--top-p. The methods alternate within each repeat so that a busy machine slows both alike; the
median of --repeats runs is printed, with the range, and the ratio race / cdf. 49,152 is the
embedded model's vocabulary (SmolLM2), 151,936 Qwen2.5's. This decides `auto` per device.
--engine MODEL times whole rollouts instead: Engine.generate on that model (--batch rows of one
chat prompt each, --new tokens, temperature 1, end-of-sequence ignored) with each method,
alternating; the best tokens/s of --repeats runs is printed, and the ratio.
--threads sets torch's CPU threads (default: torch's own); on a CPU shared with other jobs one
thread gives steadier figures, as a busy core stalls every multi-threaded kernel.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from thinkrl.engine.sampling import SamplingParams, draw, stream_keys

METHODS = ("cdf", "race")


def time_once(logits, params, keys, step: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    draw(logits, params, keys, step, shortlist=device.type != "cuda")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_engine(model_name: str, batches: list[int], new: int, repeats: int) -> None:
    from thinkrl.engine import Engine
    from thinkrl.models import eos_token_ids, load_model

    model, tok = load_model(model_name)
    engine = Engine(model, tok, eos_token_ids(model, tok), max_batch=max(batches))
    text = tok.apply_chat_template([{"role": "user", "content": "What is 17 + 25? Think step by step."}],
                                   add_generation_prompt=True, tokenize=False)
    prompt = tok(text, add_special_tokens=False)["input_ids"]
    print(f"{'batch':>5} | {'cdf tok/s':>9} | {'race tok/s':>10} | race/cdf   ({model_name}, {new} new tokens, vocab {model.config.vocab_size})")
    for b in batches:
        best = {m: 0.0 for m in METHODS}
        for rep in range(repeats + 1):  # the first round warms up
            for m in METHODS:
                params = SamplingParams(temperature=1.0, max_new_tokens=new, ignore_eos=True, method=m)
                t0 = time.perf_counter()
                engine.generate([prompt] * b, params, seeds=list(range(b)))
                if rep:
                    best[m] = max(best[m], b * new / (time.perf_counter() - t0))
        print(f"{b:>5} | {best['cdf']:9.1f} | {best['race']:10.1f} | {best['race'] / best['cdf']:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vocab", type=int, nargs="+", default=[49152, 151936])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 64, 256])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--engine", default="", help="a model name: time Engine.generate with each method instead")
    ap.add_argument("--new", type=int, default=64)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.engine:
        return bench_engine(args.engine, args.batch, args.new, args.repeats)
    dev = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {dev}, top_p {args.top_p}")
    print(f"{'vocab':>7} {'batch':>5} | {'cdf ms (min-max)':>22} | {'race ms (min-max)':>22} | race/cdf")
    torch.manual_seed(0)
    with torch.inference_mode():
        for vocab in args.vocab:
            for batch in args.batch:
                logits = (torch.randn(batch, vocab) * 3).to(dev)
                keys = stream_keys(torch.arange(batch), torch.zeros(batch, dtype=torch.long)).to(dev)
                params = {m: SamplingParams(top_p=args.top_p, method=m) for m in METHODS}
                times: dict[str, list[float]] = {m: [] for m in METHODS}
                for rep in range(args.repeats + 1):  # the first round warms up
                    for m in METHODS:
                        t = time_once(logits, params[m], keys, rep, dev)
                        if rep:
                            times[m].append(t * 1e3)
                med = {m: statistics.median(times[m]) for m in METHODS}
                cells = [f"{med[m]:8.2f} ({min(times[m]):.2f}-{max(times[m]):.2f})" for m in METHODS]
                print(f"{vocab:>7} {batch:>5} | {cells[0]:>22} | {cells[1]:>22} | {med['race'] / med['cdf']:.2f}", flush=True)


if __name__ == "__main__":
    main()
