"""An update's metrics kept on the device and read back once a step.

On a GPU every `float(t)` / `t.item()` waits until all the work queued before it has run, so one
per metric per micro-batch (the update loops once had ~8) turns a queue of small kernels into a
stop-and-go and dominates small updates. Here the per-micro-batch metrics (0-d tensors from
thinkrl.algos) are summed, weighted by their token counts, in one fp64 tensor on the device, and
`read` brings everything a step logs back in one transfer.
"""

from __future__ import annotations

import torch


class TokenWeighted:
    """Sum over micro-batches of metric x token weight, and of the weights, on the device."""

    def __init__(self, device):
        self.device = device
        self.keys: list[str] | None = None  # fixed by the first micro-batch: every call of a step logs the same
        self.total: torch.Tensor | None = None  # [len(keys)] fp64
        self.weight = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, metrics: dict, weight: torch.Tensor) -> None:
        """metrics: name -> 0-d tensor (or number); weight: this micro-batch's trained-token count, 0-d."""
        if self.keys is None:
            self.keys = list(metrics)
        w = weight.to(torch.float64)
        row = torch.stack([torch.as_tensor(metrics[k], dtype=torch.float64, device=self.device) for k in self.keys]) * w
        self.total = row if self.total is None else self.total + row
        self.weight = self.weight + w

    def tensors(self) -> dict[str, torch.Tensor]:
        """name -> weighted sum (0-d), and "__weight" -> the weights' sum; nothing read yet."""
        out = {"__weight": self.weight}
        if self.total is not None:
            out.update({k: self.total[i] for i, k in enumerate(self.keys)})
        return out


def read(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    """name -> float of 0-d tensors, in one host transfer (one wait for the device)."""
    if not tensors:
        return {}
    values = torch.stack([t.to(torch.float64).reshape(()) for t in tensors.values()]).tolist()
    return dict(zip(tensors, values))
