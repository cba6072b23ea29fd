"""Engine vs transformers `generate` on the same model, prompts, batch size and token count.

    python benchmarks/engine_cpu.py [--model smollm2-135m-instruct] [--batch 16 64] [--new 128]

Both sides are warmed up, then run --repeats times alternating; the best run of each is reported.
Both sides sample at temperature 1 with end-of-sequence ignored, so every row produces exactly
--new tokens; tokens/s counts new tokens only, prefill included in the time. The engine gets the
same batch as distinct rows (no shared prompts), so it gains nothing from prefix sharing here.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from thinkrl.engine import Engine, SamplingParams
from thinkrl.models import eos_token_ids, load_model, resolve_model

QUESTIONS = [
    "What is 17 + 25?", "Name three primary colors.", "Why is the sky blue?", "Write a haiku about rain.",
    "What is the capital of France?", "Explain gravity to a child.", "How many legs does a spider have?",
    "Give me a word that rhymes with cat.",
]


def prompts_for(tokenizer, batch: int) -> list[list[int]]:
    out = []
    for i in range(batch):
        msgs = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
        text = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def bench_hf(model, tokenizer, prompts, new: int) -> float:
    tokenizer.padding_side = "left"
    enc = tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            **enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new, min_new_tokens=new,
            pad_token_id=tokenizer.pad_token_id,
        )
    dt = time.perf_counter() - t0
    assert out.shape[1] - enc["input_ids"].shape[1] == new
    return len(prompts) * new / dt


def bench_engine(model, tokenizer, prompts, new: int) -> float:
    engine = Engine(model, tokenizer, eos_token_ids(model, tokenizer), max_batch=len(prompts))
    params = SamplingParams(temperature=1.0, max_new_tokens=new, ignore_eos=True)
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params, n=1, seeds=list(range(len(prompts))))
    dt = time.perf_counter() - t0
    assert all(len(c.token_ids) == new for c in outs)
    return len(prompts) * new / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each side, alternating; the best is reported")
    args = ap.parse_args()
    model, tokenizer = load_model(args.model)  # thinkrl's decoder
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model)).eval()  # the same weights, HF's code
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, model {args.model}")
    prompts_all = prompts_for(tokenizer, max(args.batch))
    print(f"prompt tokens: {min(map(len, prompts_all))}-{max(map(len, prompts_all))}, new tokens {args.new}")
    bench_hf(hf_model, tokenizer, prompts_all[:2], 4)  # warm both paths (thread pools, first-call overheads)
    bench_engine(model, tokenizer, prompts_all[:2], 4)
    for b in args.batch:
        prompts = prompts_all[:b]
        hf = ours = 0.0
        for _ in range(args.repeats):  # alternate, so slow phases of the machine hit both sides
            hf = max(hf, bench_hf(hf_model, tokenizer, prompts, args.new))
            ours = max(ours, bench_engine(model, tokenizer, prompts, args.new))
        print(f"batch {b:4d}: HF generate {hf:7.1f} tok/s | thinkrl engine {ours:7.1f} tok/s | ratio {ours / hf:.2f}x", flush=True)


if __name__ == "__main__":
    main()
