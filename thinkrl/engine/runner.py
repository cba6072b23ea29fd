"""Model runners: one forward step of a batch against a KV cache. The engine's only view of the model.

Every runner keeps the same contract (GraphRunner, in graph_runner.py, too):
- `prefill(ids [P, T], attn [P, T], n)`: encode left-padded prompts once, give each prompt n rows
  of cache (the group shares one prompt encoding), return next-token logits [P * n, V].
- `decode(tokens [B])`: append one token per row, return logits [B, V].
- `keep(rows [B'])`: drop finished rows so they stop costing compute.

`KVRunner` serves thinkrl's own decoder (thinkrl.model: the llama family): a preallocated cache read
only up to the filled columns, GQA-aware, no per-step concatenation; its attention is the model's
own, in Prefill and Decode mode. `HFRunner` serves any other causal LM through its HF forward and
DynamicCache: slower, always correct.
"""

from __future__ import annotations

import torch

from thinkrl.model import Decode, Prefill, is_own, padded_causal_mask
from thinkrl.model.inputs import positions_from_mask


def make_runner(model, batch: int, max_len: int):
    """The eager runner of a model: KVRunner for thinkrl's decoder, HFRunner otherwise."""
    return KVRunner(model, batch, max_len) if is_own(model) else HFRunner(model)


class KVRunner:
    def __init__(self, model, batch: int, max_len: int):
        self.model = model
        param = next(model.parameters())
        self.cache = model.new_cache(batch, max_len)  # k, v [L, B, Hkv, S, D]
        self.valid = torch.zeros(batch, max_len, dtype=torch.bool, device=param.device)  # [B, S] real tokens
        self.pos = torch.zeros(batch, dtype=torch.long, device=param.device)  # [B] next position id
        self.t = 0  # columns filled so far (all rows move together; left padding aligns them)

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor, n: int) -> torch.Tensor:
        """Append left-padded tokens [P, T] after the columns already filled; each of the P rows
        stands for n cache rows. A first call with one row and n = batch writes a prefix shared by
        every row; a second call adds each prompt's own suffix."""
        t0, t = self.t, ids.shape[1]
        attn = attn.bool()
        positions = self.pos[::n, None] + positions_from_mask(attn)  # continue after what the rows hold
        mask = padded_causal_mask(attn, self.valid[::n, :t0])  # [P, 1, T, t0 + T]
        h = self.model.hidden(ids, positions, Prefill(mask, self.cache, start=t0, fanout=n))
        self.valid[:, t0 : t0 + t] = attn.repeat_interleave(n, dim=0)
        self.pos[:] = (positions[:, -1] + 1).repeat_interleave(n)
        self.t = t0 + t
        logits = self.model.lm_head(h[:, -1])  # [P, V]: only the last position is needed
        return logits.repeat_interleave(n, dim=0)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """One token per row [B] -> next-token logits [B, V]."""
        self.valid[:, self.t] = True
        col = torch.tensor([self.t], device=tokens.device)
        meta = Decode(self.cache, col, self.t + 1, ~self.valid[:, None, None, : self.t + 1])
        h = self.model.hidden(tokens[:, None], self.pos[:, None], meta)
        self.t += 1
        self.pos += 1
        return self.model.lm_head(h[:, -1])

    def keep(self, rows: torch.Tensor) -> None:
        self.cache = self.cache.rows(rows)
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
