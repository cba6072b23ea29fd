"""Model runners: one forward step of a batch against a KV cache. The engine's only view of the model.

Both runners keep the same contract, so a later CUDA-graph runner can slot in:
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


def positions_from_mask(attn: torch.Tensor) -> torch.Tensor:
    """Position ids for left-padded rows: 0 at each row's first real token. [P, T] -> [P, T]."""
    return (attn.long().cumsum(-1) - 1).clamp_(min=0)


def make_runner(model, batch: int, max_len: int):
    if getattr(model.config, "model_type", None) in KV_FAMILY:
        return KVRunner(model, batch, max_len)
    return HFRunner(model)


def _rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotary embedding as the HF llama family applies it. q/k [B, H, T, D], cos/sin [B, T, D]."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class KVRunner:
    def __init__(self, model, batch: int, max_len: int):
        cfg = model.config
        self.model = model
        self.base = model.model
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
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
        q = attn.q_proj(x).view(b, t_new, self.n_heads, self.head_dim)
        k = attn.k_proj(x).view(b, t_new, self.n_kv, self.head_dim)
        v = attn.v_proj(x).view(b, t_new, self.n_kv, self.head_dim)
        if hasattr(attn, "q_norm"):  # qwen3 normalises q and k per head before rotary
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = _rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)  # [B, H, T, D]
        v = v.transpose(1, 2)
        end = self.t + t_new
        if rows is None:  # decode: one cache row per batch row
            self.k[i, :, :, self.t : end] = k
            self.v[i, :, :, self.t : end] = v
        else:  # prefill: each prompt fills `rows` consecutive cache rows (its group)
            self.k[i, :, :, self.t : end] = k.repeat_interleave(rows, dim=0)
            self.v[i, :, :, self.t : end] = v.repeat_interleave(rows, dim=0)
            k_all, v_all = k, v
        if rows is None:
            k_all, v_all = self.k[i, :, :, :end], self.v[i, :, :, :end]  # [B, Hkv, S, D] filled columns only
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, scale=attn.scaling, enable_gqa=True)
        return attn.o_proj(out.transpose(1, 2).reshape(b, t_new, -1))

    def _layers(self, h: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, rows: int | None):
        cos, sin = self.base.rotary_emb(h, positions)
        for i, layer in enumerate(self.base.layers):
            h = h + self._attend(i, layer, layer.input_layernorm(h), cos, sin, mask, rows)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return self.base.norm(h)

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor, n: int) -> torch.Tensor:
        p, t = ids.shape
        attn = attn.bool()
        positions = positions_from_mask(attn)
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        # a padded query sees only itself, so no softmax row is all -inf (its output is never used)
        mask = (causal & attn[:, None, :]) | torch.eye(t, dtype=torch.bool, device=ids.device)
        h = self._layers(self.base.embed_tokens(ids), positions, mask[:, None], rows=n)
        self.valid[:, :t] = attn.repeat_interleave(n, dim=0)
        self.pos[:] = (positions[:, -1] + 1).repeat_interleave(n)
        self.t = t
        logits = self.model.lm_head(h[:, -1])  # [P, V]: only the last position is needed
        return logits.repeat_interleave(n, dim=0)

    @torch.no_grad()
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

    @torch.no_grad()
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

    @torch.no_grad()
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
