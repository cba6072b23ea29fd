"""The TRL side of `thinkrl bench --vs-trl`: TRL's GRPOTrainer on the configuration thinkrl just ran.

thinkrl.bench starts it as a child process (`python -m thinkrl.bench_trl SPEC.json`), so
its CUDA peak memory is its own and thinkrl's memory is already gone. It builds the same
random-weight model (thinkrl.bench_model.build_model, same seed), feeds the same prompt ids as text over
a word-level vocabulary whose word i is token i (so TRL's tokenizer gives back exactly those ids),
and trains with the settings of ../shared/bench/trl_grpo_anchor.py that measured the anchor
(16.8 s a step, 66.5 GiB on an H100): bf16 on CUDA, gradient checkpointing, beta 0, loss `dapo`
(token mean), temperature 1, one optimizer step per prompts x group_size batch. Completions are
forced to full length with min_new_tokens, as thinkrl's are with ignore_eos. Only trl, datasets
and transformers are needed; this module is imported only where they are.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from thinkrl.bench_model import SHAPES, Workload, build_model, peak_memory


def word_tokenizer(vocab: int):
    """A tokenizer whose word `t{i}` is id i (the last three ids: bos, eos, pad), built locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"t{i}": i for i in range(vocab - 3)}
    words.update({"<bos>": vocab - 3, "<eos>": vocab - 2, "<pad>": vocab - 1})
    tk = Tokenizer(models.WordLevel(vocab=words, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                  unk_token="<pad>")
    tok.padding_side = "left"
    return tok


def workload(spec: dict) -> Workload:
    s = SHAPES[spec["shape"]]
    return Workload(spec["shape"], s, spec["prompt_tokens"], spec["new_tokens"], spec["prompts"], spec["group_size"],
                    spec["device"], getattr(torch, spec["dtype"]))


def grpo_args(spec: dict):
    """GRPOConfig with the anchor's settings at this spec's sizes."""
    from trl import GRPOConfig

    cuda = spec["device"].startswith("cuda")
    return GRPOConfig(
        output_dir=spec["output_dir"], per_device_train_batch_size=spec["rows"], num_generations=spec["group_size"],
        max_completion_length=spec["new_tokens"], gradient_accumulation_steps=1, learning_rate=spec["lr"],
        max_grad_norm=spec["grad_clip"] or 1e9, bf16=cuda and spec["dtype"] == "bfloat16", use_cpu=not cuda,
        gradient_checkpointing=True, max_steps=spec["warmup"] + spec["steps"], logging_steps=1, report_to=[],
        save_strategy="no", temperature=1.0, beta=0.0, loss_type="dapo", dataloader_num_workers=0, seed=spec["seed"],
        generation_kwargs={"min_new_tokens": spec["new_tokens"]},
    )


def timing_callback(device: str, times: list[float], records: list[dict]):
    """A TrainerCallback recording each step's wall time (synchronised) and the logged metrics."""
    from transformers import TrainerCallback

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    class Timer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            sync()
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                records.append(dict(logs))

    return Timer()


def train(spec: dict) -> dict:
    """Run TRL's GRPOTrainer for warmup + steps steps; the figures of the timed ones."""
    import trl
    from datasets import Dataset
    from trl import GRPOTrainer

    w = workload(spec)
    model = build_model(w, spec["seed"])
    data = Dataset.from_dict({"prompt": [" ".join(f"t{i}" for i in ids) for ids in spec["prompt_ids"]]})
    rng = torch.Generator().manual_seed(spec["seed"])

    def reward(completions, **kwargs):  # random, as thinkrl's side: non-zero advantages
        return torch.rand(len(completions), generator=rng).tolist()

    times: list[float] = []
    logs: list[dict] = []
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=grpo_args(spec), train_dataset=data,
                          processing_class=word_tokenizer(w.shape.vocab))
    trainer.add_callback(timing_callback(w.device, times, logs))
    trainer.train()
    timed = times[spec["warmup"]:] or times
    step_s = sum(timed) / len(timed)
    mem, mem_source = peak_memory(w.device)
    lengths = [(x["completions/min_length"], x["completions/max_length"]) for x in logs if "completions/min_length" in x]
    return {"trl": trl.__version__, "step_s": step_s, "step_times_s": times, "peak_memory_gib": mem,
            "peak_memory_source": mem_source, "step_tokens_per_s": spec["rows"] * spec["new_tokens"] / step_s,
            "completion_tokens_min": min((a for a, _ in lengths), default=None),
            "completion_tokens_max": max((b for _, b in lengths), default=None),
            "settings": "bf16 on CUDA, gradient checkpointing, beta 0, loss dapo, temperature 1, min_new_tokens forced"}


def main(spec: dict) -> int:
    result = train(spec)
    Path(spec["result_path"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m thinkrl.bench_trl SPEC.json (thinkrl bench --vs-trl starts it)")
    sys.exit(main(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
