"""An optimizer for gradient tests: shared by the update tests (imported as `from recording import ...`,
as bench_modules is: pytest puts tests/ on the path)."""

import torch


class RecordingSGD(torch.optim.SGD):
    """Records each optimizer step's accumulated gradient (one clone a parameter, None where it has
    none) and leaves the weights alone, so every mini-batch of two runs starts from the same model."""

    def __init__(self, params):
        self.params_list = list(params)
        super().__init__(self.params_list, lr=1.0)
        self.grads = []

    def step(self, closure=None):
        self.grads.append([p.grad.clone() if p.grad is not None else None for p in self.params_list])
