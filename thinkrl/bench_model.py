"""The benchmark's model and workload, shared by `thinkrl bench` (thinkrl.bench) and its TRL child
process (thinkrl.bench_trl): the shapes, the random-weight model built from one, its random prompt
ids, and the peak-memory reading both sides report. It imports nothing of thinkrl, so the bench
config (thinkrl.config), the bench and the TRL side can all use it without importing each other.

Shapes: `qwen2.5-0.5b` is the anchor's model (ANCHORS.md: 494M parameters, vocabulary 151,936),
the default on CUDA; `small`, the default on CPU, keeps the anchor's workload on a model a CPU
steps through in seconds; `tiny` is for tests.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shape:
    """A model's dimensions and the workload it is benchmarked with by default."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    prompt_tokens: int
    new_tokens: int
    prompts: int
    group_size: int


SHAPES = {
    # Qwen2.5-0.5B's configuration (tied embeddings, qkv bias), the TRL anchor's workload
    "qwen2.5-0.5b": Shape(896, 24, 14, 2, 4864, 151936, prompt_tokens=128, new_tokens=512, prompts=8, group_size=8),
    # the same workload on a model a 2-core CPU runs in seconds
    "small": Shape(64, 2, 4, 2, 128, 1024, prompt_tokens=128, new_tokens=512, prompts=8, group_size=8),
    # tests: a step in well under a second
    "tiny": Shape(32, 1, 2, 1, 64, 256, prompt_tokens=8, new_tokens=16, prompts=2, group_size=4),
}


@dataclass(frozen=True)
class Workload:
    """What a run does, the shape's defaults overridden by the config's non-zero keys."""

    shape_name: str
    shape: Shape
    prompt_tokens: int
    new_tokens: int
    prompts: int
    group_size: int
    device: str
    dtype: torch.dtype


def build_model(w: Workload, seed: int):
    """A random-weight Qwen2 causal LM of the workload's shape, built on its device (no hub)."""
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    s = w.shape
    config = Qwen2Config(
        vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, tie_word_embeddings=True, rope_theta=1e6,
        max_position_embeddings=max(4096, w.prompt_tokens + w.new_tokens),
        bos_token_id=s.vocab - 3, eos_token_id=s.vocab - 2, pad_token_id=s.vocab - 1,
    )
    torch.manual_seed(seed)
    with torch.device(w.device):  # initialised in place: a 0.5B model built on CPU and copied takes seconds
        model = AutoModelForCausalLM.from_config(config, dtype=w.dtype)
    model.generation_config = GenerationConfig(bos_token_id=s.vocab - 3, eos_token_id=s.vocab - 2, pad_token_id=s.vocab - 1)
    return model.eval()


class IdsOnly:
    """The engine's tokenizer, for a benchmark that speaks token ids: a pad id, and no text.

    The engine decodes text only for stop strings (none here) and `Completion.text`, which the
    random reward ignores; real decoding of 64 x 512 ids would only add noise to the timing."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return ""


def random_prompts(w: Workload, count: int, seed: int) -> list[list[int]]:
    """`count` prompts of w.prompt_tokens random ids, none of them a special token (the last 3 ids)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, w.shape.vocab - 3, (count, w.prompt_tokens), generator=gen).tolist()


def peak_memory(device: str) -> tuple[float, str]:
    """(GiB, what was measured): allocator peak on a GPU, peak resident set of this process on CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, "torch.cuda.max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak RSS of the process (resource.getrusage)"
