"""Log-probs of a chat example's assistant tokens: the forward `thinkrl sft` trains on and `thinkrl
dpo` sums into sequence log-probs (examples from thinkrl.data.chat.tokenize)."""

from __future__ import annotations

import torch

from thinkrl.data.chat import Example
from thinkrl.train.forward import completion_logits, token_logprobs


def assistant_logprobs(model, examples: list[Example], detach_prompt: bool, pad_id: int):
    """(logp [B, T] of each completion token, mask [B, T] of the assistant's tokens, logits [B, T, V])."""
    logits, targets, pad_mask = completion_logits(model, [e.prompt for e in examples], list(range(len(examples))),
                                                  [e.completion for e in examples], detach_prompt=detach_prompt, pad_id=pad_id)
    mask = torch.zeros_like(pad_mask)
    for r, e in enumerate(examples):
        mask[r, : len(e.mask)] = torch.tensor(e.mask, device=mask.device)
    logp, _ = token_logprobs(logits, targets, 1.0, with_entropy=False)
    return logp, mask, logits
