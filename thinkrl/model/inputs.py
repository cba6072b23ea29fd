"""Token-id rows into the tensors a forward takes: padding and position ids."""

from __future__ import annotations

import torch


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


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """A host tensor onto `device` without waiting for the device. A plain `.to(cuda)` (and
    `torch.tensor(..., device=cuda)`) from pageable memory makes the host wait until everything
    queued on the stream has run, so every small input of a micro-batch would drain the GPU's
    queue. Staged in pinned memory (PyTorch's caching host allocator keeps the block until the
    copy's stream event completes) and copied non-blocking, the host runs ahead. Elsewhere a plain `.to`."""
    if torch.device(device).type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
