"""SFT: the losses by hand, batching, and a tiny-model run that learns its data, resumes exactly
and writes what a user expects. (Chat data and its masks: tests/data/test_chat.py.)"""

import json
import math

import pytest
import torch

import thinkrl.train.sft as sft
from thinkrl import config as C
from thinkrl.algos.sft import distill_kl, sft_loss
from thinkrl.data.chat import read_chat_jsonl, tokenize
from thinkrl.errors import UserError
from thinkrl.models import load_model, save_pretrained, tiny_model


def test_sft_loss_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    loss, m = sft_loss(logp, mask)
    # -(ln .5 + ln .25 + ln .1) / 3 = (0.6931 + 1.3863 + 2.3026) / 3 = 1.4607
    assert float(loss) == pytest.approx(1.4607, abs=1e-4)
    assert m["tokens"] == 3
    loss, _ = sft_loss(logp, mask, normalizer=6.0)  # the batch has 6 tokens in all: half the weight
    assert float(loss) == pytest.approx(1.4607 / 2, abs=1e-4)


def test_distill_kl_by_hand():
    teacher = torch.log(torch.tensor([[[0.5, 0.5]]]))
    student = torch.log(torch.tensor([[[0.25, 0.75]]]))
    loss, m = distill_kl(student, teacher, torch.ones(1, 1))
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 (0.6931 - 0.4055) = 0.1438
    assert float(loss) == pytest.approx(0.1438, abs=1e-4)
    same, _ = distill_kl(teacher, teacher, torch.ones(1, 1))
    assert float(same) == pytest.approx(0.0, abs=1e-7)
    # temperature 2 softens both and multiplies by 4
    t2, _ = distill_kl(student, teacher, torch.ones(1, 1), temperature=2.0)
    s2 = torch.softmax(student / 2, -1)[0, 0]
    p2 = torch.softmax(teacher / 2, -1)[0, 0]
    assert float(t2) == pytest.approx(4 * float((p2 * (p2.log() - s2.log())).sum()), rel=1e-5)


def test_epoch_batches_cover_every_example_once_and_bucket_by_length():
    lengths = [((i * 37) % 101) + 1 for i in range(200)]
    batches = sft.epoch_batches(lengths, 8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert batches == sft.epoch_batches(lengths, 8, seed=1, epoch=0)
    assert batches != sft.epoch_batches(lengths, 8, seed=1, epoch=1)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 20  # random batches of 8 from 1..101 spread ~78 tokens


def _data(path, n=24):
    rows = []
    for i in range(n):
        a, b = i % 7, i % 5
        rows.append({"messages": [{"role": "user", "content": f"{a}+{b}?"},
                                  {"role": "assistant", "content": f"<answer>{a + b}</answer>"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def _cfg(model_dir, data, out, **over):
    base = {"model.name": str(model_dir), "data": str(data), "out_dir": str(out), "epochs": 3, "batch_size": 6,
            "micro_batch_size": 4, "optim.lr": 3e-3, "eval_fraction": 0.2, "save_every": 3,
            "task.name": "arithmetic", "task.template": "raw", "task.digits": "1,1", "task.ops": "+",
            "task.num_eval": 10, "eval.limit": 4, "eval.sampling.max_new_tokens": 6}
    base.update(over)
    return C.load(C.SFTConfig, None, [f"{k}={v}" for k, v in base.items()])


def test_sft_learns_its_data_and_writes_a_run(model_dir, tmp_path):
    data = _data(tmp_path / "d.jsonl")
    final = sft.train(_cfg(model_dir, data, tmp_path / "run", epochs=6), show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_nll = [r["train/nll"] for r in rows if "train/nll" in r]
    assert train_nll[-1] < 0.5 * train_nll[0]
    held = [r["eval/loss"] for r in rows if "eval/loss" in r]
    assert len(held) == 2 and held[-1] < held[0]
    assert any("eval/pass@1" in r for r in rows)  # the task evaluation ran
    assert (tmp_path / "run" / "config.toml").is_file() and (tmp_path / "run" / "curves.png").is_file()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(final)  # plain transformers loads it


def test_interrupted_and_resumed_sft_ends_with_the_same_weights(model_dir, tmp_path, monkeypatch):
    data = _data(tmp_path / "d.jsonl")
    straight = sft.train(_cfg(model_dir, data, tmp_path / "a", **{"detach_prompt": "true"}), show_progress=False)
    original = sft.save_checkpoint

    def crash_after_step_3(run_dir, step, *args, **kwargs):
        path = original(run_dir, step, *args, **kwargs)
        if step == 3:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(sft, "save_checkpoint", crash_after_step_3)
    with pytest.raises(KeyboardInterrupt):
        sft.train(_cfg(model_dir, data, tmp_path / "b", **{"detach_prompt": "true"}), show_progress=False)
    monkeypatch.setattr(sft, "save_checkpoint", original)
    resumed = sft.train(_cfg(model_dir, data, tmp_path / "b", resume="true", **{"detach_prompt": "true"}),
                        show_progress=False)
    a, _ = load_model(straight)
    b, _ = load_model(resumed)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name


def test_a_kill_after_the_last_checkpoint_logs_the_last_evaluation_once(model_dir, tmp_path, monkeypatch):
    data = _data(tmp_path / "d.jsonl")

    def killed_while_writing_final(*args, **kwargs):
        raise KeyboardInterrupt  # after the last checkpoint, while the final model is written

    monkeypatch.setattr(sft, "save_pretrained", killed_while_writing_final)
    with pytest.raises(KeyboardInterrupt):
        sft.train(_cfg(model_dir, data, tmp_path / "run"), show_progress=False)
    monkeypatch.undo()
    sft.train(_cfg(model_dir, data, tmp_path / "run", resume="true"), show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if "eval/loss" in r]
    assert len(evals) == 2 and evals[0] == 0 and evals[1] == max(r["step"] for r in rows)  # the end not repeated


def test_distillation_kl_pulls_the_student_to_the_teacher(model_dir, tmp_path):
    teacher_model, tok = tiny_model("llama", seed=9)
    teacher = save_pretrained(teacher_model, tok, tmp_path / "teacher")
    data = _data(tmp_path / "d.jsonl")
    examples = [tokenize(tok, m) for m in read_chat_jsonl(data)]

    def kl_to_teacher(folder):
        student = load_model(folder)[0]
        with torch.no_grad():
            args = ([e.prompt for e in examples], list(range(len(examples))), [e.completion for e in examples])
            s_logits, _, mask = sft.completion_logits(student, *args)
            t_logits, _, _ = sft.completion_logits(teacher_model, *args)
        return float(distill_kl(s_logits, t_logits, mask)[0])

    plain = sft.train(_cfg(model_dir, data, tmp_path / "plain", **{"eval.limit": 0}), show_progress=False)
    cfg = _cfg(model_dir, data, tmp_path / "kd", teacher=str(teacher), kl_coef=1.0, **{"eval.limit": 0})
    distilled = sft.train(cfg, show_progress=False)
    logged = [json.loads(x) for x in (tmp_path / "kd" / "metrics.jsonl").read_text().splitlines()]
    assert sum("train/kl" in r for r in logged) == cfg.epochs * math.ceil(20 / 6)
    assert kl_to_teacher(distilled) < 0.8 * kl_to_teacher(plain)


def test_config_errors():
    with pytest.raises(UserError, match="teacher"):
        sft.train(C.load(C.SFTConfig, None, ["kl_coef=0.5", "data=x.jsonl"]), show_progress=False)
    with pytest.raises(UserError, match="eval_fraction"):
        C.load(C.SFTConfig, None, ["eval_fraction=1.5"])
    with pytest.raises(UserError, match="no training data"):
        sft.train(C.SFTConfig(), show_progress=False)
