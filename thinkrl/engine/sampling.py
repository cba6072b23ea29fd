"""Sampling as pure tensor functions: counter-based random numbers and inverse-CDF sampling.

Why counter-based: each sequence's random number at step t is a hash of (its seed, t). The same
seed gives the same completion whatever else is in the batch, whatever the batch order, on CPU or
GPU, and the function has no generator state, so the CUDA-graph decode step (graph_runner.py) captures it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

_M32 = 0xFFFFFFFF


@dataclass
class SamplingParams:
    """How to sample. temperature 0 is greedy. top_k 0 and top_p 1 switch those filters off.

    stop: strings that end a completion (the text keeps the stop string; the ids keep the token
    that completed it). ignore_eos keeps sampling past end-of-sequence tokens (benchmarks only).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False

    def __post_init__(self):
        from thinkrl.errors import UserError

        if self.temperature < 0:
            raise UserError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise UserError(f"sampling.top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise UserError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer on int64 tensors (products stay below 2**63, so no overflow)."""
    x = x & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def stream_keys(seeds: torch.Tensor, sample_index: torch.Tensor) -> torch.Tensor:
    """One random stream per sequence: int64 [B] from the request seed and the sample's index in its group."""
    return _hash32(_hash32(seeds) ^ _hash32(sample_index + 0x9E3779B9))


def uniforms(keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """float64 [B] in [0, 1): 48 random bits from (stream key, step).

    step is an int, or a one-element int64 tensor on keys' device: a captured CUDA graph reads the
    step from that tensor, so it advances without the host. Both give the same numbers.
    """
    steps = step.expand_as(keys) if torch.is_tensor(step) else torch.full_like(keys, step)
    h1 = _hash32(keys ^ _hash32(steps))
    h2 = _hash32(h1 ^ 0x5BD1E995)
    return ((h1 >> 8) * (1 << 24) + (h2 >> 8)).to(torch.float64) / float(1 << 48)


def _pick(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: the first index whose cumulative probability exceeds u * total. [B, V], [B] -> [B]."""
    cdf = probs.to(torch.float64).cumsum(-1)  # [B, V]
    target = (u * cdf[:, -1]).unsqueeze(-1)  # [B, 1]
    idx = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return idx.clamp_(max=probs.shape[-1] - 1)


TOP_P_CANDIDATES = 1024  # top-p looks at this many best tokens first; a full sort only if they hold too little mass


def _candidates(logp: torch.Tensor, params: SamplingParams, shortlist: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens top-k/top-p may draw from, best first: [B, V] -> ([B, K] logprobs, [B, K] ids).

    Sorting the whole vocabulary costs as much as a decode step on CPU; the top 1,024 tokens hold
    the top-p mass almost always, and when they do not for some row, the full sort gives the
    exact answer. Deciding that needs the host; shortlist=False (inside a CUDA graph) always sorts.
    """
    vocab = logp.shape[-1]
    if params.top_k > 0:
        return logp.topk(min(params.top_k, vocab), dim=-1)
    if shortlist:
        cand_logp, cand_idx = logp.topk(min(TOP_P_CANDIDATES, vocab), dim=-1)
        if bool((cand_logp.exp().sum(-1) >= params.top_p).all()):
            return cand_logp, cand_idx
    return logp.sort(dim=-1, descending=True)


def sample(
    logits: torch.Tensor, params: SamplingParams, u: torch.Tensor, shortlist: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row. logits [B, V], u [B] uniforms -> (tokens [B] int64, logprobs [B] fp32).

    The log-probability returned is that of the tempered distribution log_softmax(logits / T)
    (T = 1 for greedy), before top-k/top-p truncation: it is exactly what a training forward pass
    recomputes from the same logits, so a PPO ratio starts at 1. top-k/top-p only restrict which
    tokens can be drawn.

    shortlist=False makes it tensor-only (no value is read on the host, so a CUDA graph can capture
    it): top-p without top-k then sorts the whole vocabulary; the draw is the same.
    """
    logits = logits.float()
    if params.temperature == 0:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logits.argmax(dim=-1)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
    logp = torch.log_softmax(logits / params.temperature, dim=-1)  # [B, V]
    if params.top_k == 0 and params.top_p >= 1.0:
        tokens = _pick(logp.exp(), u.to(logp.device))
    else:
        cand_logp, cand_idx = _candidates(logp, params, shortlist)  # [B, K] sorted descending
        probs = cand_logp.exp()
        if params.top_p < 1.0:
            # keep the smallest prefix whose mass reaches top_p of what top-k left (all of it without top-k):
            # a token stays if the mass before it is below that
            total = probs.sum(-1, keepdim=True) if params.top_k > 0 else 1.0
            before = probs.cumsum(-1) - probs
            probs = probs.masked_fill(before >= params.top_p * total, 0.0)
        tokens = cand_idx.gather(-1, _pick(probs, u.to(logp.device))[:, None]).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
