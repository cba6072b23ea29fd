"""No surprises in a run: rewards that fail score 0 and are counted, non-finite updates are skipped
and stop the run after optim.max_skipped_updates in a row with the last checkpoint intact, no
network connection is opened, and no model output is ever evaluated as code."""

import ast
import hashlib
import json
import socket
from pathlib import Path

import pytest
import torch
from test_rl import _cfg, model_dir  # noqa: F401 - the tiny RL run's config and model fixture

import thinkrl
import thinkrl.train.rl as rl
import thinkrl.train.sft as sft
from thinkrl.train import ppo_update
from thinkrl import config as C
from thinkrl.cli import main
from thinkrl.errors import UserError
from thinkrl.train.checkpoint import checkpoint_dirs
from thinkrl.train.optim import SkipGuard


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- rewards that fail


def test_failing_rewards_do_not_stop_an_rl_run(model_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    final = rl.train(_cfg(model_dir, run, steps=2, **{
        "eval.limit": 0, "rewards.timeout": 0.2,
        "rewards.custom": "tiny_rewards:boom,tiny_rewards:hang,tiny_rewards:not_a_number,tiny_rewards:odd_first_char",
        "rewards.custom_weights": "1,1,1,1"}), show_progress=False)
    assert (final / "model.safetensors").is_file()
    rows = [r for r in _rows(run) if "reward/mean" in r]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:  # 8 completions a step (2 prompts x 4)
        assert r["reward/boom/errors"] == 8 and r["reward/not_a_number/errors"] == 8 and r["reward/errors"] == 16
        assert r["reward/hang/timeouts"] == 8 and r["reward/timeouts"] == 8  # 2 timed out, 6 not tried
        assert r["reward/boom/mean"] == 0.0 and r["reward/hang/mean"] == 0.0
        assert "reward/odd_first_char/mean" in r and "reward/format_soft/mean" in r  # the others are still scored
        assert "reward/odd_first_char/errors" not in r
    assert any(r["reward/odd_first_char/mean"] > 0 for r in rows)
    err = capsys.readouterr().err
    assert "reward 'boom' failed on 8 of 8 completions, scored 0 there: ValueError: boom: this reward has a bug" in err
    assert "reward 'not_a_number' failed on 8 of 8 completions, scored 0 there: ValueError: returned nan" in err
    assert "reward 'hang' did not return within 0.2 s on 8 of 8 completions" in err


# ---------------------------------------------------------------- non-finite losses and gradients


def test_skip_guard_leaves_weights_and_optimizer_state_untouched(capsys):
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1)
    guard = SkipGuard(3, "the test model")

    def step(grad, loss=0.0):
        w.grad = torch.tensor(grad)
        ok = guard.step(opt, w.grad.norm(), loss, where="step 9")
        opt.zero_grad(set_to_none=True)
        return ok

    assert step([1.0, 1.0, 1.0])
    before = (w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items()})
    assert not step([float("nan"), 1.0, 1.0])
    assert not step([1.0, 1.0, 1.0], loss=float("inf"))  # a non-finite loss skips even with finite gradients
    assert torch.equal(w, before[0]) and all(torch.equal(opt.state[w][k], v) for k, v in before[1].items())
    assert "step 9: non-finite gradient norm (nan) in the update of the test model: skipped, 1 in a row; the run stops at 3" \
        in capsys.readouterr().err
    assert step([1.0, 1.0, 1.0]) and guard.in_a_row == 0 and guard.skipped == 2  # a good step resets the count
    assert not step([float("inf")] * 3) and not step([float("inf")] * 3)
    with pytest.raises(UserError, match=r"3 updates of the test model in a row had a non-finite loss or gradient.*"
                                        r"last checkpoint is intact\. Lower optim.lr, check the rewards"):
        step([float("inf")] * 3)
    never = SkipGuard(0)
    assert not any(never.step(opt, torch.tensor(float("nan"))) for _ in range(20))
    with pytest.raises(UserError, match="optim.max_skipped_updates must be >= 0"):
        C.OptimConfig(max_skipped_updates=-1)


def _poison_from(monkeypatch, module, loss_name: str, first_bad_step: int):
    """Make `module.loss_name` return a NaN loss from RL step `first_bad_step` on (0-based, as update sees it)."""
    state = {"bad": False}
    for update_name in ("update", "update_critic"):
        original_update = getattr(rl, update_name)

        def update(cfg, step, *args, _original=original_update, **kwargs):
            state["bad"] = step >= first_bad_step
            return _original(cfg, step, *args, **kwargs)

        monkeypatch.setattr(rl, update_name, update)
    original_loss = getattr(module, loss_name)

    def loss(*args, **kwargs):
        value, metrics = original_loss(*args, **kwargs)
        return (value * float("nan") if state["bad"] else value), metrics

    monkeypatch.setattr(module, loss_name, loss)


def test_nan_loss_skips_updates_then_stops_the_run_leaving_the_last_checkpoint_intact(model_dir, tmp_path,  # noqa: F811
                                                                                       monkeypatch, capsys):
    run = tmp_path / "run"
    written = {}
    original_save = rl.save_checkpoint

    def save(run_dir, step, *args, **kwargs):
        path = original_save(run_dir, step, *args, **kwargs)
        written[step] = _hashes(path)
        return path

    monkeypatch.setattr(rl, "save_checkpoint", save)
    _poison_from(monkeypatch, rl, "policy_loss", first_bad_step=2)  # steps 3.. (as logged) have a NaN loss
    # 4 optimizer updates a step (2 epochs x 2 mini-batches): step 3 skips 4 (and writes no checkpoint),
    # step 4 the 5th and 6th -> stop
    with pytest.raises(UserError, match=r"^6 updates of the policy in a row had a non-finite loss or gradient "
                                        r"\(the last step 4, loss \(nan\)\), so the run stopped"):
        rl.train(_cfg(model_dir, run, steps=6, save_every=1, keep_checkpoints=2,
                      **{"eval.limit": 0, "optim.max_skipped_updates": 6}), show_progress=False)
    rows = [r for r in _rows(run) if "reward/mean" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]  # the stopping step logs nothing and writes nothing
    assert "skipped_updates" not in rows[1] and rows[2]["skipped_updates"] == 4
    err = capsys.readouterr().err
    assert err.count("non-finite loss (nan) in the update of the policy: skipped") == 6
    assert "step 4: non-finite loss (nan) in the update of the policy: skipped, 6 in a row; the run stops at 6" in err
    assert "step 3: no checkpoint written: the last 4 updates of the policy were skipped" in err
    dirs = checkpoint_dirs(run)
    assert [d.name for d in dirs] == ["step-000001", "step-000002"] and sorted(written) == [1, 2]
    assert _hashes(dirs[-1]) == written[2]  # the last checkpoint before the NaNs: byte for byte
    assert not (run / "final").exists()
    state = torch.load(dirs[-1] / "trainer_state.pt", weights_only=False)["optimizer"]["state"]
    assert all(torch.isfinite(v).all() for s in state.values() for v in s.values())


def test_nan_critic_loss_stops_a_ppo_run(model_dir, tmp_path, monkeypatch):  # noqa: F811
    _poison_from(monkeypatch, ppo_update, "value_loss", first_bad_step=0)
    cfg = _cfg(model_dir, tmp_path / "run", steps=3, **{
        "eval.limit": 0, "algo.algorithm": "ppo", "algo.detach_prompt": "true", "optim.max_skipped_updates": 3})
    with pytest.raises(UserError, match="3 updates of the critic in a row had a non-finite loss"):
        rl.train(cfg, show_progress=False)
    assert not checkpoint_dirs(tmp_path / "run") and not (tmp_path / "run" / "final").exists()


def test_nan_loss_stops_sft_before_its_checkpoint(tmp_path, monkeypatch, model_dir):  # noqa: F811
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{i}+1?"},
                                                     {"role": "assistant", "content": f"{i + 1}"}]}) + "\n"
                            for i in range(8)))
    original = sft.batch_loss
    monkeypatch.setattr(sft, "batch_loss", lambda *a, **k: (lambda lm: (lm[0] * float("nan"), lm[1]))(original(*a, **k)))
    cfg = C.load(C.SFTConfig, None, [f"model.name={model_dir}", f"data={data}", f"out_dir={tmp_path / 'run'}",
                                     "batch_size=2", "micro_batch_size=2", "epochs=2", "save_every=2",
                                     "eval_fraction=0", "eval.limit=0", "optim.max_skipped_updates=2"])
    with pytest.raises(UserError, match="2 updates of the model in a row had a non-finite loss"):
        sft.train(cfg, show_progress=False)
    rows = _rows(tmp_path / "run")
    assert [r["skipped_updates"] for r in rows if "skipped_updates" in r] == [1.0]
    assert not checkpoint_dirs(tmp_path / "run")


# ---------------------------------------------------------------- no network, no eval of model output


def test_a_run_and_an_eval_open_no_network_connection(model_dir, tmp_path, monkeypatch):  # noqa: F811
    attempts = []

    def refuse(what):
        def blocked(*args, **kwargs):
            attempts.append((what, args[:2]))
            raise OSError(f"network blocked by the test: {what}{args[:2]}")
        return blocked

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(sock, address, _real=real_connect):  # local IPC (AF_UNIX) is not the network
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return refuse("connect")(address)
        return _real(sock, address)

    def connect_ex(sock, address, _real=real_connect_ex):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return refuse("connect_ex")(address)
        return _real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    run = tmp_path / "run"
    sets = {"model.name": model_dir, "out_dir": run, "task.name": "arithmetic", "task.template": "raw",
            "task.digits": "1,1", "task.ops": "+", "task.num_eval": 10, "steps": 2, "prompts_per_step": 2,
            "group_size": 2, "sampling.max_new_tokens": 6, "eval.limit": 2, "eval.sampling.max_new_tokens": 6,
            "rewards.format_soft": 0.5, "algo.micro_batch_size": 4}
    assert main(["rl", *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]) == 0
    assert main(["eval", "--model", str(run / "final"), "--task", "arithmetic", "--limit", "2", "--samples", "2",
                 "--out", str(tmp_path / "eval.json"), "--set", "sampling.max_new_tokens=6"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 2
    assert attempts == []  # not even one that a library caught and shrugged off


def _calls_to_builtin(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines of calls to the builtins `names` (`eval(...)`, `builtins.exec(...)`); a method `x.eval()` is no such call."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id in names) or (
                    isinstance(f, ast.Attribute) and f.attr in names and isinstance(f.value, ast.Name)
                    and f.value.id in ("builtins", "__builtins__")):
                lines.append(node.lineno)
    return lines


def test_no_module_calls_eval_or_exec():
    assert _calls_to_builtin(ast.parse("model.eval()\nx = eval('1')\nimport builtins\nbuiltins.exec('y=1')"),
                             {"eval", "exec"}) == [2, 4]  # the scan itself finds what it looks for
    root = Path(thinkrl.__file__).parent
    found = {str(p.relative_to(root)): lines for p in sorted(root.rglob("*.py"))
             if (lines := _calls_to_builtin(ast.parse(p.read_text(encoding="utf-8")), {"eval", "exec", "compile"}))}
    assert found == {}
