"""Model runners: one forward step of a batch against a KV cache. The engine's only view of the model.

Every runner keeps the same contract (GraphRunner, in graph_runner.py, too):
- `prefill(ids [P, T], attn [P, T], n)`: encode left-padded prompts once, give each prompt n rows
  of cache (the group shares one prompt encoding), return next-token logits [P * n, V].
- `decode(tokens [B])`: append one token per row, return logits [B, V].
- `keep(rows [B'])`: drop finished rows so they stop costing compute.

`KVRunner` serves the llama family (llama, mistral, qwen2, qwen3): it calls the HF model's own
modules and weights (the same nn.Module that training updates) but owns the attention step, over a
preallocated cache read only up to the filled columns, GQA-aware (no repeat of the KV heads), with
no per-step concatenation. `HFRunner` serves any other causal LM through its HF forward and
DynamicCache: slower, always correct.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KV_FAMILY = {"llama", "mistral", "qwen2", "qwen3"}


def llama_family(model) -> bool:
    """Is this a model whose layers our own attention code drives (KVRunner, GraphRunner, the
    detached-prompt and packed training forwards)? The HF llama layout: q/k/v/o projections, RoPE."""
    return getattr(model.config, "model_type", None) in KV_FAMILY


def pad(seqs: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [N, T] and a bool mask [N, T] of real tokens for sequences padded to the longest one.

    Left padding puts every row's last token in the last column (prompts); right padding puts
    every row's first token in column 0 (completions).
    """
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for r, s in enumerate(seqs):
        if s:
            cols = slice(width - len(s), width) if left else slice(0, len(s))
            ids[r, cols] = torch.tensor(s, dtype=torch.long)
            mask[r, cols] = True
    return ids, mask


def positions_from_mask(attn: torch.Tensor) -> torch.Tensor:
    """Position ids for left-padded rows: 0 at each row's first real token. [P, T] -> [P, T]."""
    return (attn.long().cumsum(-1) - 1).clamp_(min=0)


def supports_prefix(model) -> bool:
    """Can this model's runner extend a prefilled cache (shared prompt prefixes)?"""
    return llama_family(model)


def make_runner(model, batch: int, max_len: int, kind: str = "eager"):
    """kind "eager": KVRunner for the llama family, HFRunner otherwise; "graph": GraphRunner (llama family)."""
    if kind == "graph":
        from thinkrl.engine.graph_runner import GraphRunner  # it builds on this module

        return GraphRunner(model, batch, max_len)
    if llama_family(model):
        return KVRunner(model, batch, max_len)
    return HFRunner(model)


def _rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotary embedding as the HF llama family applies it. q/k [B, H, T, D], cos/sin [B, T, D]."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def project_qkv(attn, x: torch.Tensor, cos, sin, n_heads: int, n_kv: int, head_dim: int):
    """q [B, H, T, D], k and v [B, Hkv, T, D] of an HF llama-family attention module for x [B, T, hidden]."""
    b, t, _ = x.shape
    q = attn.q_proj(x).view(b, t, n_heads, head_dim)
    k = attn.k_proj(x).view(b, t, n_kv, head_dim)
    v = attn.v_proj(x).view(b, t, n_kv, head_dim)
    if hasattr(attn, "q_norm"):  # qwen3 normalises q and k per head before rotary
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = _rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q, k, v.transpose(1, 2)


def decoder_layers(base, h: torch.Tensor, positions: torch.Tensor, attend) -> torch.Tensor:
    """The llama-family decoder stack with the attention step supplied by the caller.

    base: the HF inner model (embed_tokens, layers, norm, rotary_emb); h [B, T, hidden] embedded
    tokens; positions [B, T]; attend(i, layer, x, cos, sin) -> [B, T, hidden]. Returns the final
    normed hidden states. Norms and MLPs are the HF modules themselves.
    """
    cos, sin = base.rotary_emb(h, positions)
    for i, layer in enumerate(base.layers):
        h = h + attend(i, layer, layer.input_layernorm(h), cos, sin)
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return base.norm(h)


def head_shape(config) -> tuple[int, int, int]:
    """(query heads, KV heads, head dim) of a llama-family config."""
    n_heads = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    return n_heads, n_kv, head_dim


class KVRunner:
    def __init__(self, model, batch: int, max_len: int):
        cfg = model.config
        self.model = model
        self.base = model.model
        self.n_heads, self.n_kv, self.head_dim = head_shape(cfg)
        param = next(model.parameters())
        shape = (len(self.base.layers), batch, self.n_kv, max_len, self.head_dim)
        self.k = torch.zeros(shape, dtype=param.dtype, device=param.device)  # [L, B, Hkv, S, D]
        self.v = torch.zeros_like(self.k)
        self.valid = torch.zeros(batch, max_len, dtype=torch.bool, device=param.device)  # [B, S] real tokens
        self.pos = torch.zeros(batch, dtype=torch.long, device=param.device)  # [B] next position id
        self.t = 0  # columns filled so far (all rows move together; left padding aligns them)

    def _attend(self, i: int, layer, x: torch.Tensor, cos, sin, mask: torch.Tensor, rows: int | None = None):
        """Self-attention of layer i for new tokens x [B, T, H]; writes their K/V at columns t..t+T."""
        attn = layer.self_attn
        b, t_new, _ = x.shape
        q, k, v = project_qkv(attn, x, cos, sin, self.n_heads, self.n_kv, self.head_dim)
        end = self.t + t_new
        if rows is None:  # decode: one cache row per batch row; attend over the filled columns only
            self.k[i, :, :, self.t : end] = k
            self.v[i, :, :, self.t : end] = v
            k_all, v_all = self.k[i, :, :, :end], self.v[i, :, :, :end]  # [B, Hkv, S, D]
        else:  # prefill: a prompt attends to the columns its group already holds, then to itself;
            # its K/V fill `rows` consecutive cache rows (its group). Row p * rows stands for group p.
            k_all = torch.cat([self.k[i, ::rows, :, : self.t], k], dim=2)
            v_all = torch.cat([self.v[i, ::rows, :, : self.t], v], dim=2)
            self.k[i, :, :, self.t : end] = k.repeat_interleave(rows, dim=0)
            self.v[i, :, :, self.t : end] = v.repeat_interleave(rows, dim=0)
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, scale=attn.scaling, enable_gqa=True)
        return attn.o_proj(out.transpose(1, 2).reshape(b, t_new, -1))

    def _layers(self, h: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, rows: int | None):
        return decoder_layers(self.base, h, positions, lambda i, layer, x, cos, sin: self._attend(i, layer, x, cos, sin, mask, rows))

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor, n: int) -> torch.Tensor:
        """Append left-padded tokens [P, T] after the columns already filled; each of the P rows
        stands for n cache rows. A first call with one row and n = batch writes a prefix shared by
        every row; a second call adds each prompt's own suffix."""
        p, t = ids.shape
        t0 = self.t
        attn = attn.bool()
        positions = self.pos[::n, None] + positions_from_mask(attn)  # continue after what the rows hold
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        # a padded query sees only itself, so no softmax row is all -inf (its output is never used)
        own = (causal & attn[:, None, :]) | torch.eye(t, dtype=torch.bool, device=ids.device)  # [P, T, T]
        before = self.valid[::n, None, :t0].expand(p, t, t0)  # [P, T, t0] columns already filled
        mask = torch.cat([before, own], dim=-1)[:, None]  # [P, 1, T, t0 + T]
        h = self._layers(self.base.embed_tokens(ids), positions, mask, rows=n)
        self.valid[:, t0 : t0 + t] = attn.repeat_interleave(n, dim=0)
        self.pos[:] = (positions[:, -1] + 1).repeat_interleave(n)
        self.t = t0 + t
        logits = self.model.lm_head(h[:, -1])  # [P, V]: only the last position is needed
        return logits.repeat_interleave(n, dim=0)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        self.valid[:, self.t] = True
        mask = self.valid[:, None, None, : self.t + 1]  # [B, 1, 1, S]
        h = self._layers(self.base.embed_tokens(tokens[:, None]), self.pos[:, None], mask, rows=None)
        self.t += 1
        self.pos += 1
        return self.model.lm_head(h[:, -1])

    def keep(self, rows: torch.Tensor) -> None:
        self.k, self.v = self.k[:, rows], self.v[:, rows]
        self.valid, self.pos = self.valid[rows], self.pos[rows]


class HFRunner:
    """Any HF causal LM, through its own forward and DynamicCache (the fallback path)."""

    def __init__(self, model):
        self.model = model

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor, n: int) -> torch.Tensor:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)
        positions = positions_from_mask(attn)
        out = self.model(
            input_ids=ids, attention_mask=attn.long(), position_ids=positions,
            past_key_values=self.cache, use_cache=True, logits_to_keep=1,
        )
        self.cache.batch_repeat_interleave(n)
        self.attn = attn.long().repeat_interleave(n, dim=0)
        self.pos = (positions[:, -1] + 1).repeat_interleave(n)
        return out.logits[:, -1].repeat_interleave(n, dim=0)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        self.attn = torch.cat([self.attn, torch.ones_like(self.attn[:, :1])], dim=1)
        out = self.model(
            input_ids=tokens[:, None], attention_mask=self.attn, position_ids=self.pos[:, None],
            past_key_values=self.cache, use_cache=True,
        )
        self.pos = self.pos + 1
        return out.logits[:, -1]

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.attn, self.pos = self.attn[rows], self.pos[rows]
