"""The one attention step of thinkrl's decoder, in three modes chosen by the metadata it is given.

`attention(i, q, k, v, scale, meta)` is called by every layer (i: its index) with the new tokens'
queries q [B, H, T, D] and keys/values k, v [B, Hkv, T, D] (rotary already applied), and returns
[B, H, T, D]. What the new tokens may see, and where their keys and values go, is the metadata's
business, passed as an argument on every call (no module state, unlike nano-vllm's global context):

- `Packed(lengths)`: training without padding. B = 1 and the T tokens are rows laid end to end;
  each row attends causally to itself only (the block-diagonal mask is never built: one causal
  attention per row).
- `Prefill(mask, cache, start, fanout, write)`: T new tokens per row attend, under `mask`, to the
  cache's columns [0, start) and to themselves; with `write` their keys and values are stored at
  columns [start, start + T). `fanout` n: each of the B input rows stands for n consecutive cache
  rows (a prompt encoded once for its group of samples). With no cache this is the plain padded
  forward (training, prompt encoding).
- `Decode(cache, col, window, hidden)`: one new token per row (T = 1), written at column `col` (a
  device tensor, so a CUDA graph replays the step for any column), attending to columns [0, window)
  minus the `hidden` ones. Static shapes only: the CUDA-graph decode step is this mode.

Grouped-query attention never repeats the KV heads: SDPA's enable_gqa, or in Decode the H / Hkv
query heads of a KV head as rows of one matmul (HF's head order), so K and V are read once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


class KVCache:
    """Keys and values of every layer for B rows and S columns: k, v [L, B, Hkv, S, D]."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor):
        self.k, self.v = k, v

    @classmethod
    def empty(cls, layers: int, rows: int, kv_heads: int, length: int, head_dim: int, dtype, device) -> "KVCache":
        k = torch.zeros((layers, rows, kv_heads, length, head_dim), dtype=dtype, device=device)
        return cls(k, torch.zeros_like(k))

    def rows(self, index: torch.Tensor) -> "KVCache":
        """A new cache holding rows `index` [B'] (a copy): row b' is row index[b'] of this one."""
        return KVCache(self.k[:, index], self.v[:, index])


@dataclass
class Packed:
    lengths: list[int]  # tokens of each row, in order; they add up to T


@dataclass
class Prefill:
    mask: torch.Tensor  # [B, 1, T, start + T] bool: True where a new token may attend
    cache: KVCache | None = None
    start: int = 0  # cache columns already filled (read), and where the new tokens are written
    fanout: int = 1  # cache rows per input row
    write: bool = True


@dataclass
class Decode:
    cache: KVCache
    col: torch.Tensor  # [1] long: the column the new token is written to
    window: int  # columns read: [0, window)
    hidden: torch.Tensor  # [B, 1, 1, window] bool: True at columns not to attend to (padding, unfilled)


def attention(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, meta) -> torch.Tensor:
    """Layer i's attention of the new tokens; see the module docstring for the modes."""
    if isinstance(meta, Packed):
        return _packed(q, k, v, scale, meta.lengths)
    if isinstance(meta, Decode):
        rows = q.shape[0]
        ck, cv = meta.cache.k[i, :rows], meta.cache.v[i, :rows]  # [B, Hkv, S, D]
        ck.index_copy_(2, meta.col, k)
        cv.index_copy_(2, meta.col, v)
        return decode_attention(q, ck[:, :, : meta.window], cv[:, :, : meta.window], meta.hidden, scale)
    return _prefill(i, q, k, v, scale, meta)


def _prefill(i: int, q, k, v, scale: float, meta: Prefill) -> torch.Tensor:
    k_all, v_all = k, v
    cache, n, t0 = meta.cache, meta.fanout, meta.start
    if cache is not None:
        if t0:  # each input row reads the cache row that stands for its group
            k_all = torch.cat([cache.k[i, ::n, :, :t0], k], dim=2)
            v_all = torch.cat([cache.v[i, ::n, :, :t0], v], dim=2)
        if meta.write:
            end = t0 + k.shape[2]
            cache.k[i, :, :, t0:end] = k if n == 1 else k.repeat_interleave(n, dim=0)
            cache.v[i, :, :, t0:end] = v if n == 1 else v.repeat_interleave(n, dim=0)
    return F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=meta.mask, scale=scale, enable_gqa=True)


def _packed(q, k, v, scale: float, lengths: list[int]) -> torch.Tensor:
    """Causal attention within each row of a packed sequence. q [1, H, T, D] -> [1, H, T, D]."""
    outs, start = [], 0
    for n in lengths:
        rows = slice(start, start + n)
        outs.append(F.scaled_dot_product_attention(q[:, :, rows], k[:, :, rows], v[:, :, rows], is_causal=True,
                                                   scale=scale, enable_gqa=True))
        start += n
    return torch.cat(outs, dim=2)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hidden: torch.Tensor, scale: float) -> torch.Tensor:
    """One new token per row over a cache window. q [B, H, 1, D]; k, v [B, Hkv, W, D]; hidden
    [B, 1, 1, W] True where a column is not attended. The G = H / Hkv query heads of each KV head
    are the rows of one matmul against it; softmax in fp32."""
    b, h, _, d = q.shape
    hkv = k.shape[1]
    scores = torch.matmul(q.reshape(b, hkv, h // hkv, d), k.transpose(-1, -2)).float() * scale  # [B, Hkv, G, W]
    scores = scores.masked_fill(hidden, float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(probs, v).reshape(b, h, 1, d)


def padded_causal_mask(valid: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
    """The Prefill mask of left- or right-padded rows. valid [B, T] bool (real tokens); past [B, S]
    bool (real cache columns before them, or None). Returns [B, 1, T, S + T]: a real token sees the
    real past columns and the real tokens up to itself. A padding token sees itself alone, so no
    softmax row is empty (its output is never used)."""
    t = valid.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=valid.device).tril()
    own = (causal & valid[:, None, :]) | torch.eye(t, dtype=torch.bool, device=valid.device)  # [B, T, T]
    if past is not None:
        own = torch.cat([past[:, None, :].expand(-1, t, -1), own], dim=-1)
    return own[:, None]
