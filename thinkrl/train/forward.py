"""The training forward: per-token log-probs (and entropy) of completions under the current model.

One contract: `completion_logprobs(...) -> (logp [B, T], entropy [B, T] | None, mask [B, T])` for B
completions right-padded to T tokens. `completion_hidden` gives the final hidden states that
predict each completion token; the LM head (here) or a value head (thinkrl.train.critic) goes on
top. Every path is thinkrl.model's decoder with one attention metadata; a model it does not run
(thinkrl.model.supports) takes HF's own forward over [prompt | completion], the full logits.

- Padded (default): one forward over [left-padded prompt | right-padded completion].
- Detached prompt (`detach_prompt=True`): the prompt, minus its last token, is encoded once per
  distinct prompt without gradient into a KV cache; the completion (with the prompt's last token,
  so the first completion token's log-prob keeps its gradient) attends to it. Log-probs are exactly
  the padded path's; the gradient leaves out the paths through the prompt's own keys and values.
  On a CPU, where training is compute-bound and one-shot prompts are several times longer than the
  completions, this is what makes an RL step affordable (ANCHORS.md: 14 ms per trained token). A
  documented approximation, off by default on GPU recipes.
- Packed (`pack=True`, algo.pack): padding-free. The micro-batch's rows, each [prompt | completion],
  are laid end to end in one row; attention runs causally within each row (thinkrl.model's Packed
  mode), so no pad token is computed at all. Values and gradients are the padded path's up to float
  rounding. The head then always runs through `chunked_logprobs` (one chunk when logprob_chunk is 0),
  so logp and entropy are 0 at padding.

Chunked head (`logprob_chunk > 0`, algo.logprob_chunk): `chunked_logprobs` applies the LM head,
log_softmax, gather and entropy a few thousand tokens at a time, each chunk under activation
checkpointing, and only at real (unpadded) tokens. The `[B, T, vocab]` fp32 logits (4.6 GiB for
8 x 1024 tokens of a 151k vocabulary) never exist at once, in the forward or the backward; values and
gradients are the plain path's up to float rounding.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from thinkrl.model import Packed, Prefill, is_own, padded_causal_mask
from thinkrl.model.inputs import pad, positions_from_mask, to_device


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
                     chunk_tokens: int, mask: torch.Tensor | None = None, index: torch.Tensor | None = None):
    """token_logprobs(lm_head(hidden), ...) without ever holding the [B, T, V] logits.

    hidden [B, T, H] final hidden states, targets [B, T]; mask [B, T] (optional) the real tokens.
    The head runs on `chunk_tokens` tokens at a time; with gradient on, each chunk is checkpointed
    (recomputed in the backward), so one chunk's logits are alive in the backward too. Only masked
    tokens are computed (padding costs no head FLOPs); elsewhere logp and entropy are 0, which
    keeps exp(logp - old) finite at padding. Returns (logp [B, T] fp32, entropy [B, T] or None).
    index: the flat positions of mask's real tokens when the caller knows them on the host
    (`real_positions`): finding them on the device (nonzero) would wait for the GPU.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    b, t, _ = hidden.shape
    if index is None:
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


def real_positions(lengths: list[int], width: int, device) -> torch.Tensor:
    """Flat positions in a [len(lengths), width] tensor of each row's first lengths[r] columns."""
    flat = [r * width + j for r, n in enumerate(lengths) for j in range(n)]
    return to_device(torch.tensor(flat, dtype=torch.long), device)


def _scatter(parts: list[torch.Tensor], index: torch.Tensor, b: int, t: int, like: torch.Tensor) -> torch.Tensor:
    """Per-chunk values at flat positions `index` back into a zero [B, T] fp32 tensor (differentiable)."""
    out = torch.zeros(b * t, dtype=torch.float32, device=like.device)
    if parts:
        out = out.index_put((index,), torch.cat(parts))
    return out.view(b, t)


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
    pack: the padding-free forward. An HF-run model takes the padded path with full logits.
    """
    if not is_own(model):
        logits, targets, mask = completion_logits(model, prompts, prompt_of_row, completions, pad_id=pad_id)
        return (*token_logprobs(logits, targets, temperature, with_entropy), mask)
    hidden, targets, mask = completion_hidden(model, prompts, prompt_of_row, completions,
                                              detach_prompt=detach_prompt, pad_id=pad_id, pack=pack)
    if pack or logprob_chunk > 0:
        lengths = [len(c) for c in completions]  # mask's rows, known here: no read of the device
        index = real_positions(lengths, mask.shape[1], mask.device)
        chunk = logprob_chunk or max(1, sum(lengths))
        logp, entropy = chunked_logprobs(hidden, model.lm_head, targets, temperature, with_entropy, chunk, mask, index)
        return logp, entropy, mask
    return (*token_logprobs(model.lm_head(hidden), targets, temperature, with_entropy), mask)


def completion_logits(model, prompts, prompt_of_row, completions, *, detach_prompt: bool = False, pad_id: int = 0):
    """The logits that predict each completion token: (logits [B, T, V], targets [B, T], mask [B, T] float).

    For losses that need the whole distribution (token-level distillation), not only the
    log-prob of the sampled token."""
    if is_own(model):
        hidden, targets, mask = completion_hidden(model, prompts, prompt_of_row, completions,
                                                  detach_prompt=detach_prompt, pad_id=pad_id)
        return model.lm_head(hidden), targets, mask
    inputs, targets, mask, _ = _padded_inputs(model, prompts, prompt_of_row, completions, pad_id)
    logits = model(**inputs, logits_to_keep=targets.shape[1] + 1).logits[:, :-1]  # position Tp-1+j predicts token j
    return logits, targets, mask


def completion_hidden(model, prompts, prompt_of_row, completions, *, detach_prompt: bool = False, pad_id: int = 0,
                      pack: bool = False):
    """The final hidden states that predict each completion token: (hidden [B, T, H], targets [B, T], mask [B, T]).

    thinkrl.model's decoder (a CausalLM or the critic's ValueModel); an HF-run model gets HF's
    padded forward (its base model) whatever detach_prompt and pack say. Hidden states at
    padding are 0 on the packed path and unspecified elsewhere; mask says which are real."""
    if not is_own(model):
        inputs, targets, mask, tp = _padded_inputs(model, prompts, prompt_of_row, completions, pad_id)
        h = model.base_model(**inputs, use_cache=False).last_hidden_state
        return h[:, tp - 1 : tp - 1 + targets.shape[1]], targets, mask
    if pack:
        return _packed_hidden(model, prompts, prompt_of_row, completions, pad_id)
    if detach_prompt:
        return _detached_prompt_hidden(model, prompts, prompt_of_row, completions, pad_id)
    inputs, targets, mask, tp = _padded_inputs(model, prompts, prompt_of_row, completions, pad_id)
    valid = inputs["attention_mask"].bool()
    h = model.hidden(inputs["input_ids"], inputs["position_ids"], Prefill(padded_causal_mask(valid)))
    return h[:, tp - 1 : tp - 1 + targets.shape[1]], targets, mask


def _padded_inputs(model, prompts, prompt_of_row, completions, pad_id):
    """HF-style inputs of [left-padded prompt | right-padded completion] (ids, attention mask,
    position ids), the completion ids [B, Tc], their mask [B, Tc] float and the prompt width Tp."""
    dev = next(model.parameters()).device
    p_ids, p_mask = pad([prompts[i] for i in prompt_of_row], pad_id, left=True)  # [B, Tp]
    c_ids, c_mask = pad(completions, pad_id, left=False)  # [B, Tc]
    ids = to_device(torch.cat([p_ids, c_ids], 1), dev)
    attn = to_device(torch.cat([p_mask, c_mask], 1), dev)
    inputs = dict(input_ids=ids, attention_mask=attn.long(), position_ids=positions_from_mask(attn))
    return inputs, to_device(c_ids, dev), to_device(c_mask, dev).float(), p_ids.shape[1]


def _packed_hidden(model, prompts, prompt_of_row, completions, pad_id):
    """The padded path's states without padding: the rows laid end to end in one sequence, positions
    restarting at each row, attention within each row; then the states predicting each completion
    token gathered into [B, T, H] (0 at padding)."""
    dev = next(model.parameters()).device
    seqs = [prompts[p] + c for p, c in zip(prompt_of_row, completions)]
    ids = torch.tensor([t for s in seqs for t in s], device=dev)[None]
    positions = torch.cat([torch.arange(len(s), device=dev) for s in seqs])[None]
    h = model.hidden(ids, positions, Packed([len(s) for s in seqs]))[0]  # [N, H]
    c_ids, c_mask = pad(completions, pad_id, left=False)  # [B, Tc]
    c_ids, c_mask = c_ids.to(dev), c_mask.to(dev)
    # row r's completion token j is predicted at packed position start_r + len(prompt_r) - 1 + j
    starts = torch.tensor([0] + [len(s) for s in seqs[:-1]], device=dev).cumsum(0)
    first = starts + torch.tensor([len(prompts[p]) - 1 for p in prompt_of_row], device=dev)
    where = (first[:, None] + torch.arange(c_ids.shape[1], device=dev)[None]) * c_mask  # padding -> position 0
    hidden = h[where] * c_mask[..., None].to(h.dtype)
    return hidden, c_ids, c_mask.float()


def _detached_prompt_hidden(model, prompts, prompt_of_row, completions, pad_id):
    dev = next(model.parameters()).device
    rows = to_device(torch.tensor(prompt_of_row), dev)

    # 1. each distinct prompt but its last token, once, without gradient, into a KV cache [L, P, Hkv, Tp, D]
    pre_ids, pre_mask = pad([p[:-1] for p in prompts], pad_id, left=True)
    pre_ids, pre_mask = to_device(pre_ids, dev), to_device(pre_mask, dev)
    tp = pre_ids.shape[1]
    cache = None
    if tp > 0:
        cache = model.new_cache(len(prompts), tp)
        with torch.no_grad():
            model.hidden(pre_ids, positions_from_mask(pre_mask), Prefill(padded_causal_mask(pre_mask), cache))
        cache = cache.rows(rows)  # one cache row per completion

    # 2. [last prompt token, completion[:-1]] with gradient, attending to the cached prompt
    inputs = [[prompts[p][-1]] + c[:-1] for p, c in zip(prompt_of_row, completions)]
    x_ids, x_mask = pad(inputs, pad_id, left=False)
    c_ids, _ = pad(completions, pad_id, left=False)
    x_ids, x_mask, c_ids = to_device(x_ids, dev), to_device(x_mask, dev), to_device(c_ids, dev)
    tc = x_ids.shape[1]
    start = to_device(torch.tensor([len(prompts[p]) - 1 for p in prompt_of_row]), dev)
    positions = start[:, None] + torch.arange(tc, device=dev)[None]  # [B, Tc]
    mask = padded_causal_mask(x_mask, pre_mask[rows] if tp > 0 else None)  # [B, 1, Tc, Tp + Tc]
    h = model.hidden(x_ids, positions, Prefill(mask, cache, start=tp, write=False))
    lengths = to_device(torch.tensor([len(c) for c in completions]), dev)
    real = torch.arange(tc, device=dev)[None] < lengths[:, None]  # an empty completion predicts nothing
    return h, c_ids, real.float()
