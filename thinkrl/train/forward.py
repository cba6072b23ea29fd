"""The training forward: per-token log-probs (and entropy) of completions under the current model.

Two paths, one contract: `completion_logprobs(...) -> (logp [B, T], entropy [B, T] | None, mask [B, T])`
for B completions right-padded to T tokens.

- Full (any architecture, exact gradient): one HF forward over [left-padded prompt | completion].
- Detached prompt (llama family, `detach_prompt=True`): the prompt, minus its last token, is
  encoded once per distinct prompt without gradient; the completion (with the prompt's last token,
  so the first completion token's log-prob keeps its gradient) attends to those cached keys and
  values. Log-probs are exactly the full path's; the gradient leaves out the paths through the
  prompt's own keys and values. On a CPU, where training is compute-bound and one-shot prompts
  are several times longer than the completions, this is what makes an RL step affordable
  (ANCHORS.md: 14 ms per trained token). It is a documented approximation, off by default on GPU
  recipes.

Chunked head (`logprob_chunk > 0`, algo.logprob_chunk): both paths stop at the final hidden states
and `chunked_logprobs` applies the LM head, log_softmax, gather and entropy a few thousand tokens at
a time, each chunk under activation checkpointing, and only at real (unpadded) tokens. The
`[B, T, vocab]` fp32 logits (4.6 GiB for 8 x 1024 tokens of a 151k vocabulary) never exist at once,
in the forward or the backward; values and gradients are the plain path's up to float rounding.

Packed (`pack=True`, algo.pack; llama family, full path): padding-free. The micro-batch's rows,
each [prompt | completion], are laid end to end in one row with position ids restarting at 0 for
each; HF's attention mask builder reads the restarts and keeps attention within each row (a
block-diagonal causal mask). No pad token is computed; values and gradients are the padded
path's up to float rounding. It pays off when lengths differ a lot and attention is a small part
of the cost: with SDPA (no varlen flash-attention) the attention still runs over the whole packed
row with most of it masked. The head then always runs through `chunked_logprobs` (one chunk when
logprob_chunk is 0), so logp and entropy are 0 at padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from thinkrl.engine.runner import decoder_layers, head_shape, llama_family, pad, positions_from_mask, project_qkv


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool):
    """log_softmax(logits / T) at the targets, and optionally the entropy of that distribution.

    logits [B, T, V], targets [B, T] -> logp [B, T] (fp32), entropy [B, T] or None.
    """
    logp_all = torch.log_softmax(logits.float() / (temperature if temperature > 0 else 1.0), dim=-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return logp, entropy


def _head_chunk(lm_head, h: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool):
    """token_logprobs of one chunk of tokens, h [n, H] -> (logp [n], entropy [n] or None): the unit
    that activation checkpointing recomputes in the backward, so its [n, V] logits live only there."""
    return token_logprobs(lm_head(h), targets, temperature, with_entropy)


def chunked_logprobs(hidden: torch.Tensor, lm_head, targets: torch.Tensor, temperature: float, with_entropy: bool,
                     chunk_tokens: int, mask: torch.Tensor | None = None):
    """token_logprobs(lm_head(hidden), ...) without ever holding the [B, T, V] logits.

    hidden [B, T, H] final hidden states, targets [B, T]; mask [B, T] (optional) the real tokens.
    The head runs on `chunk_tokens` tokens at a time; with gradient on, each chunk is checkpointed
    (recomputed in the backward), so one chunk's logits are alive in the backward too. Only masked
    tokens are computed (padding costs no head FLOPs); elsewhere logp and entropy are 0, which
    keeps exp(logp - old) finite at padding. Returns (logp [B, T] fp32, entropy [B, T] or None).
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    b, t, _ = hidden.shape
    keep = (torch.ones(b, t, dtype=torch.bool, device=hidden.device) if mask is None else mask.bool()).reshape(-1)
    index = keep.nonzero().squeeze(-1)  # flat positions of the real tokens
    h, y = hidden.reshape(b * t, -1)[index], targets.reshape(-1)[index]
    grad = torch.is_grad_enabled() and (h.requires_grad or any(p.requires_grad for p in lm_head.parameters()))
    logps, ents = [], []
    for start in range(0, h.shape[0], chunk_tokens):
        args = (lm_head, h[start : start + chunk_tokens], y[start : start + chunk_tokens], temperature, with_entropy)
        lp, ent = checkpoint(_head_chunk, *args, use_reentrant=False) if grad else _head_chunk(*args)
        logps.append(lp)
        ents.append(ent)
    return _scatter(logps, index, b, t, hidden), (_scatter(ents, index, b, t, hidden) if with_entropy else None)


def _scatter(parts: list[torch.Tensor], index: torch.Tensor, b: int, t: int, like: torch.Tensor) -> torch.Tensor:
    """Per-chunk values at flat positions `index` back into a zero [B, T] fp32 tensor (differentiable)."""
    out = torch.zeros(b * t, dtype=torch.float32, device=like.device)
    if parts:
        out = out.index_put((index,), torch.cat(parts))
    return out.view(b, t)


def _chunkable(model) -> bool:
    """Is the model's head a plain linear map of the last hidden state? Models that scale or
    soft-cap their logits (Gemma 2, Cohere) keep the exact full-logits path."""
    cfg = model.config
    return not (getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None))


def completion_logprobs(
    model,
    prompts: list[list[int]],
    prompt_of_row: list[int],
    completions: list[list[int]],
    *,
    temperature: float,
    detach_prompt: bool = False,
    with_entropy: bool = False,
    pad_id: int = 0,
    logprob_chunk: int = 0,
    pack: bool = False,
):
    """Log-probs of each row's completion given its prompt (prompts[prompt_of_row[r]]).

    Returns (logp [B, T], entropy [B, T] or None, mask [B, T] float) with T the longest completion.
    logprob_chunk > 0: the head runs in chunks of that many tokens (`chunked_logprobs`), and logp and
    entropy are 0 at padding (mask 0) instead of the log-prob of the pad token; 0: the full logits.
    pack: the padding-free forward (`packable`: llama family, no detach_prompt; else the padded one).
    """
    packed = pack and packable(model, detach_prompt)
    if packed or (logprob_chunk > 0 and _chunkable(model)):  # packable models are chunkable
        hidden, targets, mask = completion_hidden(model, prompts, prompt_of_row, completions,
                                                  detach_prompt=detach_prompt, pad_id=pad_id, pack=packed)
        chunk = logprob_chunk or max(1, int(mask.sum()))
        logp, entropy = chunked_logprobs(hidden, model.get_output_embeddings(), targets, temperature, with_entropy,
                                         chunk, mask)
        return logp, entropy, mask
    logits, targets, mask = completion_logits(model, prompts, prompt_of_row, completions, detach_prompt=detach_prompt,
                                              pad_id=pad_id)
    logp, entropy = token_logprobs(logits, targets, temperature, with_entropy)
    return logp, entropy, mask


def packable(model, detach_prompt: bool = False) -> bool:
    """Can this model run the packed forward? The llama family (whose HF attention honours restarting
    position ids, tested) on the full path; detach_prompt has its own prefix cache instead."""
    return not detach_prompt and llama_family(model) and _chunkable(model)


def completion_hidden(model, prompts, prompt_of_row, completions, *, detach_prompt: bool = False, pad_id: int = 0,
                      pack: bool = False):
    """The final hidden states that predict each completion token: (hidden [B, T, H], targets [B, T], mask [B, T]).

    completion_logits without the LM head, for callers that apply it themselves (chunked).
    pack (callers check `packable` first): the padding-free forward, hidden states 0 at padding."""
    if pack:
        return _packed_hidden(model, prompts, prompt_of_row, completions, pad_id)
    if detach_prompt and llama_family(model):
        return _detached_prompt_hidden(model, prompts, prompt_of_row, completions, pad_id)
    return _full_hidden(model, prompts, prompt_of_row, completions, pad_id)


def completion_logits(model, prompts, prompt_of_row, completions, *, detach_prompt: bool = False, pad_id: int = 0):
    """The logits that predict each completion token: (logits [B, T, V], targets [B, T], mask [B, T] float).

    For losses that need the whole distribution (token-level distillation), not only the
    log-prob of the sampled token."""
    if detach_prompt and llama_family(model):
        return _detached_prompt_forward(model, prompts, prompt_of_row, completions, pad_id)
    return _full_forward(model, prompts, prompt_of_row, completions, pad_id)


def _full_inputs(model, prompts, prompt_of_row, completions, pad_id):
    """(ids, attention mask, position ids) of [left-padded prompt | right-padded completion], completion ids and mask."""
    dev = next(model.parameters()).device
    p_ids, p_mask = pad([prompts[i] for i in prompt_of_row], pad_id, left=True)  # [B, Tp]
    c_ids, c_mask = pad(completions, pad_id, left=False)  # [B, Tc]
    ids = torch.cat([p_ids, c_ids], 1).to(dev)
    attn = torch.cat([p_mask, c_mask], 1).to(dev)
    inputs = dict(input_ids=ids, attention_mask=attn.long(), position_ids=positions_from_mask(attn))
    return inputs, c_ids.to(dev), c_mask.to(dev).float()


def _full_forward(model, prompts, prompt_of_row, completions, pad_id):
    inputs, c_ids, c_mask = _full_inputs(model, prompts, prompt_of_row, completions, pad_id)
    out = model(**inputs, logits_to_keep=c_ids.shape[1] + 1)
    logits = out.logits[:, :-1]  # position Tp-1+j predicts completion token j
    return logits, c_ids, c_mask


def _full_hidden(model, prompts, prompt_of_row, completions, pad_id):
    """_full_forward's positions, as final hidden states: the base model's output, no head."""
    inputs, c_ids, c_mask = _full_inputs(model, prompts, prompt_of_row, completions, pad_id)
    h = model.base_model(**inputs, use_cache=False).last_hidden_state
    tc = c_ids.shape[1]
    return h[:, -tc - 1 : -1], c_ids, c_mask  # position Tp-1+j predicts completion token j


def _packed_hidden(model, prompts, prompt_of_row, completions, pad_id):
    """_full_hidden without padding: the rows laid end to end in one sequence, positions restarting
    at each row (HF builds the block-diagonal causal mask from the restarts when attention_mask is
    None), then the states predicting each completion token gathered into [B, T, H]."""
    dev = next(model.parameters()).device
    seqs = [prompts[p] + c for p, c in zip(prompt_of_row, completions)]
    ids = torch.tensor([t for s in seqs for t in s], device=dev)[None]
    positions = torch.cat([torch.arange(len(s), device=dev) for s in seqs])[None]
    h = model.base_model(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state[0]  # [N, H]
    c_ids, c_mask = pad(completions, pad_id, left=False)  # [B, Tc]
    c_ids, c_mask = c_ids.to(dev), c_mask.to(dev)
    # row r's completion token j is predicted at packed position start_r + len(prompt_r) - 1 + j
    starts = torch.tensor([0] + [len(s) for s in seqs[:-1]], device=dev).cumsum(0)
    first = starts + torch.tensor([len(prompts[p]) - 1 for p in prompt_of_row], device=dev)
    where = (first[:, None] + torch.arange(c_ids.shape[1], device=dev)[None]) * c_mask  # padding -> position 0
    hidden = h[where] * c_mask[..., None].to(h.dtype)
    return hidden, c_ids, c_mask.float()


def _detached_prompt_forward(model, prompts, prompt_of_row, completions, pad_id):
    h, c_ids, mask = _detached_prompt_hidden(model, prompts, prompt_of_row, completions, pad_id)
    return model.lm_head(h), c_ids, mask


def _detached_prompt_hidden(model, prompts, prompt_of_row, completions, pad_id):
    base = model.model
    dev = next(model.parameters()).device
    n_heads, n_kv, head_dim = head_shape(model.config)
    rows = torch.tensor(prompt_of_row, device=dev)

    # 1. each distinct prompt but its last token, once, without gradient: per-layer K/V [P, Hkv, Tp, D]
    heads = [p[:-1] for p in prompts]
    prefix_k, prefix_v = [], []
    tp = max(len(h) for h in heads)
    pre_ids, pre_mask = pad(heads, pad_id, left=True)
    pre_ids, pre_mask = pre_ids.to(dev), pre_mask.to(dev)
    if tp > 0:
        causal = torch.ones(tp, tp, dtype=torch.bool, device=dev).tril()
        mask = ((causal & pre_mask[:, None, :]) | torch.eye(tp, dtype=torch.bool, device=dev))[:, None]

        def attend_prefix(i, layer, x, cos, sin):
            q, k, v = project_qkv(layer.self_attn, x, cos, sin, n_heads, n_kv, head_dim)
            prefix_k.append(k)
            prefix_v.append(v)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=layer.self_attn.scaling, enable_gqa=True)
            return layer.self_attn.o_proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))

        with torch.no_grad():
            decoder_layers(base, base.embed_tokens(pre_ids), positions_from_mask(pre_mask), attend_prefix)

    # 2. [last prompt token, completion[:-1]] with gradient, attending to the cached prefix
    inputs = [[prompts[p][-1]] + c[:-1] for p, c in zip(prompt_of_row, completions)]
    x_ids, x_mask = pad(inputs, pad_id, left=False)
    c_ids, _ = pad(completions, pad_id, left=False)
    x_ids, x_mask, c_ids = x_ids.to(dev), x_mask.to(dev), c_ids.to(dev)
    tc = x_ids.shape[1]
    start = torch.tensor([len(prompts[p]) - 1 for p in prompt_of_row], device=dev)
    positions = start[:, None] + torch.arange(tc, device=dev)[None]  # [B, Tc]
    causal = torch.ones(tc, tc, dtype=torch.bool, device=dev).tril()[None].expand(len(inputs), tc, tc)
    key_valid = pre_mask[rows][:, None, :].expand(-1, tc, -1)  # [B, Tc, Tp] the prompt's real tokens
    mask = torch.cat([key_valid, causal], dim=-1)[:, None]  # [B, 1, Tc, Tp + Tc]

    def attend(i, layer, x, cos, sin):
        q, k, v = project_qkv(layer.self_attn, x, cos, sin, n_heads, n_kv, head_dim)
        if prefix_k:
            k = torch.cat([prefix_k[i][rows], k], dim=2)
            v = torch.cat([prefix_v[i][rows], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=layer.self_attn.scaling, enable_gqa=True)
        return layer.self_attn.o_proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))

    h = decoder_layers(base, base.embed_tokens(x_ids), positions, attend)
    return h, c_ids, x_mask.float()
