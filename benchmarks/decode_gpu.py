"""Decode tokens/s of the eager runner (KVRunner) against GraphRunner (CUDA graphs), same engine.

    python benchmarks/decode_gpu.py            # GPU: Qwen2.5-0.5B shape, bf16, batch 64 and 256, 128 + 512 tokens
    python benchmarks/decode_gpu.py --tiny     # CPU check of the script: a tiny shape, fp32, a few tokens

The model is a Qwen2Config built here with random weights (nothing is downloaded); prompts are
random token ids of --prompt tokens each (distinct, so nothing is shared); sampling at temperature
1 with end-of-sequence ignored, so every row makes exactly --new tokens. tokens/s = rows x new
tokens / wall time of Engine.generate, prefill included. Each runner runs once untimed first (the
graph runner captures its graphs there; that time is printed), then --repeats times; the best run
is reported, with the peak GPU memory. As a sanity check, the share of rows whose first 8 tokens
agree between the two runners is printed (same seeds; bf16 rounding may flip a few).
"""

from __future__ import annotations

import argparse
import time

import torch

from thinkrl.engine import Engine, SamplingParams
from thinkrl.model import adopt


class NoText:
    """Enough of a tokenizer for the engine: a pad id, and no text (only token ids are timed)."""

    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True) -> str:
        return ""


def qwen_config(tiny: bool):
    """Qwen2.5-0.5B's shape (494M parameters), or a tiny one for a CPU check."""
    from transformers import Qwen2Config

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=128, vocab_size=1000)
    else:
        shape = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                     intermediate_size=4864, vocab_size=151936)
    return Qwen2Config(**shape, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True)


def build_model(tiny: bool, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(qwen_config(tiny), dtype=dtype)
    return adopt(model).eval()  # run by thinkrl.model's decoder, as thinkrl runs it


def run(engine: Engine, prompts, new: int) -> tuple[float, list[list[int]]]:
    """Seconds for one generate call, and the completions' token ids."""
    params = SamplingParams(temperature=1.0, max_new_tokens=new, ignore_eos=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params, n=1, seeds=list(range(len(prompts))))
    dt = time.perf_counter() - t0
    assert all(len(c.token_ids) == new for c in outs)
    return dt, [c.token_ids for c in outs]


def bench(model, runner: str, prompts, new: int, repeats: int) -> dict:
    engine = Engine(model, NoText(), [model.config.vocab_size - 1], max_batch=len(prompts), runner=runner)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    first, ids = run(engine, prompts, new)
    best = min(run(engine, prompts, new)[0] for _ in range(repeats))
    graphs = len(engine._graph.graphs) if engine._graph is not None else 0
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    engine.release()
    return dict(first=first, best=best, ids=ids, graphs=graphs, peak=peak)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="a tiny model shape and short run (checks the script on CPU)")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="default 64 256 (tiny: 4 8)")
    ap.add_argument("--prompt", type=int, default=None, help="prompt tokens per row; default 128 (tiny: 16)")
    ap.add_argument("--new", type=int, default=None, help="new tokens per row; default 512 (tiny: 16)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    batches = args.batch or ([4, 8] if args.tiny else [64, 256])
    prompt_len, new = args.prompt or (16 if args.tiny else 128), args.new or (16 if args.tiny else 512)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and not args.tiny else torch.float32
    model = build_model(args.tiny, device, dtype)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"{name}, torch {torch.__version__}, {params:.0f}M params, {dtype}, prompt {prompt_len} + {new} new tokens",
          flush=True)
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        prompts = torch.randint(1, model.config.vocab_size - 1, (b, prompt_len), generator=gen).tolist()
        res = {r: bench(model, r, prompts, new, args.repeats) for r in ("eager", "graph")}
        agree = sum(a[:8] == g[:8] for a, g in zip(res["eager"]["ids"], res["graph"]["ids"])) / b
        rate = {r: b * new / res[r]["best"] for r in res}
        print(f"batch {b:4d}: eager {rate['eager']:9.0f} tok/s ({1e3 * res['eager']['best'] / new:6.2f} ms/step, "
              f"peak {res['eager']['peak']:.1f} GiB) | graph {rate['graph']:9.0f} tok/s "
              f"({1e3 * res['graph']['best'] / new:6.2f} ms/step, peak {res['graph']['peak']:.1f} GiB, first call "
              f"{res['graph']['first']:.1f} s with {res['graph']['graphs']} graphs captured) | "
              f"{rate['graph'] / rate['eager']:.1f}x | first 8 tokens agree in {agree:.0%} of rows", flush=True)


if __name__ == "__main__":
    main()
