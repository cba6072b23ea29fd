"""Run set-up: a fresh run starts at step 0 with an empty log; a resumed one gets its checkpoint's
optimizer, scheduler and RNG states and a log cut back to the checkpoint's step."""

import json
import random

import torch

from thinkrl import config as C
from thinkrl.train.checkpoint import STATE_FILE, rng_state
from thinkrl.train.resume import resume_run


def _optimizer():
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([param], lr=1.0)
    return param, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))


def test_a_fresh_run_starts_at_step_zero_and_writes_its_config(tmp_path):
    cfg = C.SFTConfig(out_dir=str(tmp_path / "run"), seed=7)
    _, opt, sched = _optimizer()
    saved, logger = resume_run(cfg, None, opt, sched)
    logger.log(1, {"loss": 1.0})
    logger.close()
    assert saved == {"step": 0}
    assert C.load(C.SFTConfig, tmp_path / "run" / "config.toml").seed == 7
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1]


def test_a_resumed_run_restores_the_checkpoints_state_and_cuts_the_log(tmp_path, capsys):
    run = tmp_path / "run"
    param, opt, sched = _optimizer()
    param.grad = torch.ones(2)
    opt.step()
    sched.step()
    random.seed(3)
    ckpt = run / "checkpoints" / "step-000002"
    ckpt.mkdir(parents=True)
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": 2, "position": 9,
                "rng": rng_state()}, ckpt / STATE_FILE)
    expected = random.random()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3)))

    _, opt2, sched2 = _optimizer()
    saved, logger = resume_run(C.SFTConfig(out_dir=str(run)), ckpt, opt2, sched2)
    logger.close()
    assert (saved["step"], saved["position"]) == (2, 9)  # the loop reads its own keys
    assert sched2.get_last_lr() == sched.get_last_lr() and random.random() == expected
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert f"resuming from {ckpt} (step 2)" in capsys.readouterr().out
