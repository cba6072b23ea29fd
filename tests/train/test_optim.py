"""The shared optimizer: fp32 master weights for a bf16 model (MasterAdamW), picked by `adamw`, and
the one optimizer step every loop ends an update with."""

import io

import pytest
import torch

from thinkrl import config as C
from thinkrl.train.optim import MasterAdamW, SkipGuard, adamw, optimizer_step

GRAD = torch.tensor([0.5, -0.25, 1.0, -2.0])


def _run(param: torch.Tensor, steps: int, optimizer=None, lr: float = 1e-4):
    opt = optimizer or adamw([param], C.OptimConfig(lr=lr, weight_decay=0.0), steps)[0]
    for _ in range(steps):
        param.grad = GRAD.to(param.device, param.dtype)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return opt


def test_adamw_gives_bf16_models_fp32_master_weights():
    assert type(adamw([torch.nn.Parameter(torch.ones(2))], C.OptimConfig(), 10)[0]) is torch.optim.AdamW
    assert type(adamw([torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))], C.OptimConfig(), 10)[0]) is MasterAdamW


def test_master_weights_keep_updates_that_bf16_rounds_away():
    """200 AdamW steps of lr 1e-4 on weights near 1 (bf16 spacing there: 2**-8 below 1, 2**-7 above):
    pure bf16 rounds every step away; the masters follow fp32 AdamW to the last bit."""
    start = torch.tensor([1.0, 1.0, 1.0, 1.0])
    fp32 = torch.nn.Parameter(start.clone())
    _run(fp32, 200)
    assert (fp32.detach() - start).abs().min() > 0.015  # fp32 moved ~lr x steps = 0.02

    pure = torch.nn.Parameter(start.to(torch.bfloat16))
    opt = torch.optim.AdamW([pure], lr=1e-4, weight_decay=0.0)
    _run(pure, 200, opt)
    assert torch.equal(pure.detach().float(), start)  # nothing moved

    mixed = torch.nn.Parameter(start.to(torch.bfloat16))
    opt = _run(mixed, 200)
    assert torch.equal(opt.masters()[0], fp32.detach())
    assert torch.equal(mixed.detach(), fp32.detach().to(torch.bfloat16))  # the model holds the rounded masters
    assert mixed.grad is None and opt.masters()[0].grad is None  # no gradient kept between steps


def test_master_weights_resume_exactly_from_state_dict():
    """10 steps straight vs 4 steps, a save through torch.save, a fresh optimizer, 6 more: bit-identical
    masters and model weights (a checkpoint of the bf16 model alone would lose the masters' bits)."""
    straight = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt_a = _run(straight, 10)

    first = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt_b = _run(first, 4)
    buffer = io.BytesIO()
    torch.save(opt_b.state_dict(), buffer)
    resumed = torch.nn.Parameter(first.detach().clone())  # the checkpoint's bf16 weights
    opt_c = adamw([resumed], C.OptimConfig(lr=1e-4, weight_decay=0.0), 10)[0]
    buffer.seek(0)
    opt_c.load_state_dict(torch.load(buffer, weights_only=False))
    _run(resumed, 6, opt_c)
    assert torch.equal(opt_c.masters()[0], opt_a.masters()[0])
    assert torch.equal(resumed.detach(), straight.detach())
    assert opt_c.state_dict()["state"][0]["step"] == 10


def test_skipped_step_leaves_masters_and_weights():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = _run(p, 3)
    before = (p.detach().clone(), opt.masters()[0].clone())
    p.grad = torch.full((4,), float("nan"), dtype=torch.bfloat16)
    assert not SkipGuard(0).step(opt, torch.tensor(float("nan")))
    opt.zero_grad(set_to_none=True)
    assert p.grad is None and torch.equal(p.detach(), before[0]) and torch.equal(opt.masters()[0], before[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the fused kernel)")
def test_master_weights_on_cuda_use_the_fused_kernel_and_match_cpu():
    cpu = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    gpu = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16, device="cuda"))
    opt_cpu, opt_gpu = _run(cpu, 50), _run(gpu, 50)
    assert opt_gpu.defaults["fused"] is True and gpu.dtype == torch.bfloat16
    assert torch.allclose(opt_gpu.masters()[0].cpu(), opt_cpu.masters()[0], atol=1e-6)


def test_optimizer_step_clips_steps_schedules_and_zeroes():
    param = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    param.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])  # norm 5, clipped to 1
    norm, stepped = optimizer_step([param], opt, sched, SkipGuard(0), grad_clip=1.0, loss=0.1, where="step 1")
    assert (norm, stepped) == (5.0, True) and param.grad is None
    assert torch.allclose(param.detach(), torch.tensor([-0.6, -0.8, 0.0, 0.0]))
    assert sched.get_last_lr() == [0.5]
    param.grad = torch.tensor([1.0, 0.0, 0.0, 0.0])
    before = param.detach().clone()
    norm, stepped = optimizer_step([param], opt, sched, SkipGuard(0), grad_clip=0.0, loss=float("nan"), where="step 2")
    assert (norm, stepped) == (1.0, False) and param.grad is None  # skipped: weights kept, gradients still zeroed
    assert torch.equal(param.detach(), before) and sched.get_last_lr() == [0.25]  # the schedule moves on regardless
