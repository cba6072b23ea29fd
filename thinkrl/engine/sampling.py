"""Sampling as pure tensor functions: counter-based random numbers, inverse-CDF or race draws.

Why counter-based: each sequence's random numbers at step t are a hash of (its seed, t), and in
the race also of the token id. The same seed gives the same completion whatever else is in the
batch and whatever the batch order, and no function has generator state, so the CUDA-graph
decode step (graph_runner.py) captures it.

Two ways to draw (`sampling.method`), the same distribution, different tokens for one seed:
- "cdf": one uniform per row, inverse CDF (a float64 cumulative sum over the candidates);
- "race": an exponential race (Gumbel-max): every candidate token v gets its own exponential
  E_v from a hash of (row key, step, v); the token is argmax(p_v / E_v), i.e. of logp_v - log E_v.
  It runs in two levels (blocks of token ids race by their mass, then the tokens of the winning
  block), which draw the same distribution with one pass over the probabilities (the block sums),
  no scan, and noise for V / 256 + 256 values a row instead of V.
"auto" (the default) is race on CUDA, where the float64 scan was 6% of a decode step, and cdf
elsewhere, so that seeded CPU results (tests, recorded figures) stay as they were; the race is
faster on CPU too (benchmarks/sampling_bench.py, RESULTS.md): AUTO is the one place to change
that. A seed's completions are reproducible per method (so per device under auto), not across.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

_M32 = 0xFFFFFFFF
METHODS = ("auto", "cdf", "race")


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
    method: str = "auto"  # how to draw: cdf | race | auto (race on CUDA, cdf elsewhere); see the module docstring

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
        if self.method not in METHODS:
            raise UserError(f"sampling.method must be one of {', '.join(METHODS)}, got {self.method!r}")


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer on int64 tensors (products stay below 2**63, so no overflow)."""
    x = x & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def stream_keys(seeds: torch.Tensor, sample_index: torch.Tensor) -> torch.Tensor:
    """One random stream per sequence: int64 [B] from the request seed and the sample's index in its group."""
    return _hash32(_hash32(seeds) ^ _hash32(sample_index + 0x9E3779B9))


def _steps(keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """The step as an int64 tensor shaped like keys (an int, or a one-element tensor on keys' device)."""
    return step.expand_as(keys) if torch.is_tensor(step) else torch.full_like(keys, step)


def uniforms(keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """float64 [B] in [0, 1): 48 random bits from (stream key, step).

    step is an int, or a one-element int64 tensor on keys' device: a captured CUDA graph reads the
    step from that tensor, so it advances without the host. Both give the same numbers.
    """
    h1 = _hash32(keys ^ _hash32(_steps(keys, step)))
    h2 = _hash32(h1 ^ 0x5BD1E995)
    return ((h1 >> 8) * (1 << 24) + (h2 >> 8)).to(torch.float64) / float(1 << 48)


RACE_SALT = 0x3C6EF372  # keeps the race's numbers apart from the uniforms of the same (key, step)
TOKEN_SALT, BLOCK_SALT = 0x7F4A7C15, 0x1B873593  # token ids and block numbers draw apart
RACE_BLOCK = 256  # the race runs over blocks of this many consecutive token ids, then within the winning block


def race_log_uniforms(keys: torch.Tensor, step: int | torch.Tensor, ids: torch.Tensor, salt: int = TOKEN_SALT) -> torch.Tensor:
    """log u, u uniform in (0, 1) and independent per (row, step, id): float32 [B, K]; -log u is Exp(1).

    keys [B]; step as in `uniforms`; ids [K] (the same for every row) or [B, K], below 2**31; salt
    tells token ids from block numbers. The value depends only on (key, step, id, salt), so it
    does not matter which other rows or candidates are present. u = (2m + 1) / 2**24 with m 23
    hashed bits is exact in float32 and strictly inside (0, 1): log u is finite and below 0.
    """
    return _log_uniforms(_race_base(keys, step), ids, salt)


def _race_base(keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """Each row's hash of (key, step) that its race numbers start from: int64 [B]."""
    return _hash32(keys ^ _hash32(_steps(keys, step) + RACE_SALT))


def _log_uniforms(base: torch.Tensor, ids: torch.Tensor, salt: int) -> torch.Tensor:
    """race_log_uniforms from the rows' _race_base."""
    x = base[:, None] ^ ((ids * 0x9E3779B1 + salt) & _M32)  # [B, K]: distinct ids, distinct values below 2**32
    _mix32_(x, torch.empty_like(x))  # = _hash32(x), in place
    return x.bitwise_right_shift_(8).bitwise_or_(1).to(torch.float32).mul_(1.0 / (1 << 24)).log_()


def _mix32_(x: torch.Tensor, tmp: torch.Tensor) -> None:
    """_hash32's rounds in place on values already below 2**32 (tmp: scratch of x's shape)."""
    for _ in range(2):
        x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=tmp)).mul_(0x45D9F3B).bitwise_and_(_M32)
    x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=tmp))


def _race_winner(weights: torch.Tensor, log_u: torch.Tensor) -> torch.Tensor:
    """argmax of weight / E with E = -log u: the exponential race, [B, K] -> [B] positions.
    weight / log u = -weight / E, so the winner is the argmin; a zero weight (0 / log u = -0) never wins."""
    return weights.div(log_u).argmin(-1)


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


def _support(logp: torch.Tensor, params: SamplingParams, shortlist: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What a draw chooses from: ([B, K] log-probs, [B, K] token ids), tokens top-p cuts at -inf;
    without top-k/top-p the whole vocabulary in order, ids None."""
    if params.top_k == 0 and params.top_p >= 1.0:
        return logp, None
    cand_logp, cand_idx = _candidates(logp, params, shortlist)  # [B, K] sorted descending
    if params.top_p < 1.0:
        # keep the smallest prefix whose mass reaches top_p of what top-k left (all of it without top-k):
        # a token stays if the mass before it is below that
        probs = cand_logp.exp()
        total = probs.sum(-1, keepdim=True) if params.top_k > 0 else 1.0
        before = probs.cumsum(-1) - probs
        cand_logp = cand_logp.masked_fill(before >= params.top_p * total, float("-inf"))
    return cand_logp, cand_idx


def _greedy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log_softmax(logits, dim=-1)
    tokens = logits.argmax(dim=-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _tokens(pos: torch.Tensor, cand_idx: torch.Tensor | None) -> torch.Tensor:
    """Token ids [B] from positions [B] in the support."""
    return pos if cand_idx is None else cand_idx.gather(-1, pos[:, None]).squeeze(-1)


def sample(
    logits: torch.Tensor, params: SamplingParams, u: torch.Tensor, shortlist: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row by inverse CDF. logits [B, V], u [B] uniforms -> (tokens [B] int64, logprobs [B] fp32).

    The log-probability returned is that of the tempered distribution log_softmax(logits / T)
    (T = 1 for greedy), before top-k/top-p truncation: it is exactly what a training forward pass
    recomputes from the same logits, so a PPO ratio starts at 1. top-k/top-p only restrict which
    tokens can be drawn.

    shortlist=False makes it tensor-only (no value is read on the host, so a CUDA graph can capture
    it): top-p without top-k then sorts the whole vocabulary; the draw is the same.
    """
    logits = logits.float()
    if params.temperature == 0:
        return _greedy(logits)
    logp = torch.log_softmax(logits / params.temperature, dim=-1)  # [B, V]
    cand_logp, cand_idx = _support(logp, params, shortlist)
    tokens = _tokens(_pick(cand_logp.exp(), u.to(logp.device)), cand_idx)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _race_pick(logp: torch.Tensor, keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """The exponential race over a vocabulary: [B, V] log-probabilities (-inf outside the support) -> [B] token ids.

    Run in two levels, which draw the same distribution: blocks of RACE_BLOCK token ids race with
    their probability mass, then the winning block's tokens race. The hashed noise is
    [B, V / RACE_BLOCK + RACE_BLOCK] values instead of [B, V]: the big tensor is read once, by
    the exp and the block sums (the exp written into a buffer padded to whole blocks with zeros).
    """
    rows, vocab = logp.shape
    nb = -(-vocab // RACE_BLOCK)
    probs = torch.empty(rows, nb * RACE_BLOCK, device=logp.device)
    torch.exp(logp, out=probs[:, :vocab])
    probs[:, vocab:].zero_()
    blocks = probs.view(rows, nb, RACE_BLOCK)
    mass = blocks.sum(-1)  # [B, nb] each block's probability
    block_ids = torch.arange(nb, device=logp.device)
    base = _race_base(keys, step)  # [B]
    won = _race_winner(mass, _log_uniforms(base, block_ids, BLOCK_SALT))  # [B]
    inside = blocks.gather(1, won[:, None, None].expand(rows, 1, RACE_BLOCK)).squeeze(1)  # [B, RACE_BLOCK]
    ids = won[:, None] * RACE_BLOCK + torch.arange(RACE_BLOCK, device=logp.device)  # [B, RACE_BLOCK]
    return _tokens(_race_winner(inside, _log_uniforms(base, ids, TOKEN_SALT)), ids)


def race(
    logits: torch.Tensor, params: SamplingParams, keys: torch.Tensor, step: int | torch.Tensor, shortlist: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row by an exponential race: argmax over the support of logp_v - log E_v.

    P(v wins) = p_v / sum of the support's p (E_v / p_v is exponential with rate p_v, and the
    smallest of independent exponentials is v's with that probability). keys [B] (stream_keys),
    step as in `uniforms`; returns what `sample` returns, with the same log-probability, greedy
    identical. top-k/top-p: the race runs over the vocabulary with the tokens they cut at -inf, so
    the draw depends on the support, not on how it was found (shortlist or full sort).
    Tensor-only: no value is read on the host unless shortlist (top-p's host check).
    """
    logits = logits.float()
    if params.temperature == 0:
        return _greedy(logits)
    logp = torch.log_softmax(logits / params.temperature, dim=-1)  # [B, V]
    cand_logp, cand_idx = _support(logp, params, shortlist)
    if cand_idx is not None:  # back to vocabulary order
        cand_logp = torch.full_like(logp, float("-inf")).scatter_(1, cand_idx, cand_logp)
    tokens = _race_pick(cand_logp, keys.to(logp.device), step)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


AUTO = {"cuda": "race"}  # device type -> what method "auto" means there; cdf where absent


def method_for(params: SamplingParams, device: torch.device) -> str:
    """The draw `params.method` means on `device`: auto is race on CUDA, cdf elsewhere."""
    if params.method != "auto":
        return params.method
    return AUTO.get(device.type, "cdf")


def draw(
    logits: torch.Tensor, params: SamplingParams, keys: torch.Tensor, step: int | torch.Tensor, shortlist: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row by params.method: what the engine and the graph runner call. keys [B]
    (stream_keys), step an int or a one-element device tensor; see `sample` for the rest."""
    if method_for(params, logits.device) == "race":
        return race(logits, params, keys, step, shortlist)
    return sample(logits, params, uniforms(keys, step), shortlist)
