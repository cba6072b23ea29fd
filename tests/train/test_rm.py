"""Reward models: the Bradley-Terry loss by hand, a tiny `thinkrl rm` run that learns an easy
preference, its folder in plain transformers, the `pairs` command line, and the reward model as
the reward `rm` of an RL run on a mixed task. (The pair files themselves: tests/data/test_pairs.py.)"""

import json
import math
import random

import pytest
import torch

import thinkrl.train.rl as rl
from thinkrl import config as C
from thinkrl.algos import bradley_terry_loss
from thinkrl.errors import UserError
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.data.chat import conversation
from thinkrl.rewards.model import answer_part, load_reward_model, score_conversations
from thinkrl.data.pairs import load_pairs
from thinkrl.train import rm


def _nls(x: float) -> float:  # -log sigmoid(x)
    return math.log1p(math.exp(-x))


# ---------------------------------------------------------------- the loss


def test_bradley_terry_loss_by_hand():
    chosen, rejected = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    loss, m = bradley_terry_loss(chosen, rejected)
    assert float(loss) == pytest.approx((_nls(1.0) + _nls(0.0) + _nls(-2.0)) / 3, abs=1e-6)
    assert m["accuracy"] == pytest.approx(1 / 3)  # a tie is not a win
    assert m["margin"] == pytest.approx((1.0 + 0.0 - 2.0) / 3)
    loss, _ = bradley_terry_loss(chosen, rejected, margin=torch.tensor([0.5, 0.0, 0.0]))
    assert float(loss) == pytest.approx((_nls(0.5) + _nls(0.0) + _nls(-2.0)) / 3, abs=1e-6)
    loss, _ = bradley_terry_loss(chosen, rejected, normalizer=6.0)  # micro-batch of a 6-pair batch
    assert float(loss) == pytest.approx((_nls(1.0) + _nls(0.0) + _nls(-2.0)) / 6, abs=1e-6)


def test_bradley_terry_gradient_pushes_chosen_up_and_rejected_down():
    chosen, rejected = torch.tensor([0.3], requires_grad=True), torch.tensor([0.1], requires_grad=True)
    loss, _ = bradley_terry_loss(chosen, rejected)
    loss.backward()
    expected = -(1 - 1 / (1 + math.exp(-0.2)))  # d/dc -log sigmoid(c - r) = -(1 - sigmoid(c - r))
    assert float(chosen.grad) == pytest.approx(expected, abs=1e-6)
    assert float(rejected.grad) == pytest.approx(-expected, abs=1e-6)
    assert math.isfinite(float(bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))[0]))  # no log(0)
    with pytest.raises(ValueError, match=r"\[B\]"):
        bradley_terry_loss(torch.zeros(2, 1), torch.zeros(2, 1))


# ---------------------------------------------------------------- what the reward model reads


def test_answer_part():
    assert answer_part("<think>a</think> <answer> 42 </answer>") == "42"
    assert answer_part("<think>a</think><answer>1</answer> then <answer>2</answer>") == "2"
    assert answer_part("<think>long reasoning</think> Sleep at regular hours.") == "Sleep at regular hours."
    assert answer_part("just text") == "just text"


# ---------------------------------------------------------------- a tiny run


def _words(rng, n):
    return " ".join("".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 4))) for _ in range(n))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=1)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """An easy preference: chosen answers end in 'thanks!', rejected ones in 'whatever.'"""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("d") / "pairs.jsonl"
    rows = [{"prompt": f"Q{i}: {_words(rng, 2)}?", "chosen": _words(rng, rng.randint(1, 3)) + " thanks!",
             "rejected": _words(rng, rng.randint(1, 3)) + " whatever."} for i in range(64)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rm_cfg(model_dir, data, out_dir, **over):
    base = {"model.name": str(model_dir), "data": str(data), "out_dir": str(out_dir), "epochs": 1, "batch_size": 8,
            "micro_batch_size": 4, "optim.lr": 1e-3, "eval_fraction": 0.25, "eval_every": 3, "save_every": 3}
    base.update(over)
    return C.load(C.RMConfig, None, [f"{k}={v}" for k, v in base.items()])


@pytest.fixture(scope="module")
def trained(tiny_dir, pairs_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("rm") / "run"
    final = rm.train(_rm_cfg(tiny_dir, pairs_file, run), show_progress=False)
    return run, final


def test_rm_learns_an_easy_preference(trained):
    run, final = trained
    results = json.loads((run / "results.json").read_text())
    assert results["eval_pairs"] == 16 and results["train_pairs"] == 48 and results["steps"] == 6
    assert results["eval_accuracy"] > 0.8, results
    assert results["end"]["eval/loss"] < results["start"]["eval/loss"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/accuracy" in r] == [0, 3, 6]
    assert {"train/loss", "train/accuracy", "train/margin", "grad_norm", "lr"} <= set(rows[1])
    assert list((run / "tb").iterdir())
    assert C.load(C.RMConfig, run / "config.toml").data.endswith("pairs.jsonl")


def test_saved_reward_model_gives_the_same_scores_in_plain_transformers(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, final = trained
    convs = [conversation("Q1: ab?", "cd thanks!"), conversation("Q2: a much longer question?", "ef gh whatever.")]
    model, tok, pad_id = load_reward_model(str(final))
    ours = score_conversations(model, tok, pad_id, convs)
    assert ours[0] > ours[1]
    hf = AutoModelForSequenceClassification.from_pretrained(final)
    hf_tok = AutoTokenizer.from_pretrained(final)
    assert hf.config.pad_token_id == pad_id == hf_tok.pad_token_id
    texts = [hf_tok.apply_chat_template(c, tokenize=False) for c in convs]
    for side in ("right", "left"):  # the score is read at the last real token either way
        hf_tok.padding_side = side
        batch = hf_tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            assert torch.allclose(hf(**batch).logits[:, 0], torch.tensor(ours), atol=1e-4), side


def test_rm_resumes_exactly(tiny_dir, pairs_file, tmp_path, monkeypatch):
    short = {"eval_every": 0, "steps": 4, "save_every": 2}
    straight = rm.train(_rm_cfg(tiny_dir, pairs_file, tmp_path / "a", **short), show_progress=False)
    original = rm.save_checkpoint

    def crash_after_step_2(run_dir, step, *args, **kwargs):
        path = original(run_dir, step, *args, **kwargs)
        if step == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(rm, "save_checkpoint", crash_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        rm.train(_rm_cfg(tiny_dir, pairs_file, tmp_path / "b", **short), show_progress=False)
    monkeypatch.setattr(rm, "save_checkpoint", original)
    with pytest.raises(UserError, match="already holds a run"):
        rm.train(_rm_cfg(tiny_dir, pairs_file, tmp_path / "b", **short), show_progress=False)
    resumed = rm.train(_rm_cfg(tiny_dir, pairs_file, tmp_path / "b", resume="true", **short), show_progress=False)
    a, _, _ = load_reward_model(str(straight))
    b, _, _ = load_reward_model(str(resumed))
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    ra, rb = (json.loads((tmp_path / x / "results.json").read_text()) for x in "ab")
    assert ra["eval_accuracy"] == rb["eval_accuracy"] and ra["eval_accuracy_start"] == rb["eval_accuracy_start"]


def test_rm_killed_after_its_last_checkpoint_logs_the_last_evaluation_once(tiny_dir, pairs_file, tmp_path, monkeypatch):
    short = {"eval_every": 0, "steps": 2, "save_every": 0}

    def killed_while_writing_final(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rm, "save_pretrained", killed_while_writing_final)
    with pytest.raises(KeyboardInterrupt):
        rm.train(_rm_cfg(tiny_dir, pairs_file, tmp_path / "run", **short), show_progress=False)
    monkeypatch.undo()
    rm.train(_rm_cfg(tiny_dir, pairs_file, tmp_path / "run", resume="true", **short), show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/accuracy" in r] == [0, 2]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["eval_accuracy"] is not None


def test_a_causal_lm_is_not_a_reward_model(tiny_dir):
    from thinkrl import rewards as R

    with pytest.raises(UserError, match="is not a reward model"):
        R.build(R.RewardConfig(reward_model=str(tiny_dir)))
    with pytest.raises(UserError, match="rewards.reward_model = 'nope/nowhere'"):
        R.build(R.RewardConfig(reward_model="nope/nowhere"))
    with pytest.raises(UserError, match="reward_model_input must be one of answer, response"):
        R.RewardConfig(reward_model_input="all")


# ---------------------------------------------------------------- pairs from eval completions


def test_pairs_from_an_eval_run_recover_the_questions(tmp_path):
    cfg = C.load(C.EvalConfig, None, ["task.name=arithmetic", "task.digits=2,1", "task.ops=*", "split=train", "task.num_train=50"])
    C.save(cfg, tmp_path / "results.config.toml")
    from thinkrl.tasks import get_task

    p0, p1 = get_task(cfg.task).problems("train")[:2]
    rows = [{"id": pid, "correct": good, "formatted": good, "finish_reason": "stop", "text": f"<answer>{n}</answer>"}
            for n, (pid, good) in enumerate([(p0.id, True), (p0.id, False), (p1.id, False)])]
    (tmp_path / "results.completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pairs.jsonl"
    assert rm.main(["pairs", str(tmp_path / "results.completions.jsonl"), "--out", str(out)]) == 0
    (pair,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert pair["prompt"] == p0.question and load_pairs(out)[0].chosen[0]["content"] == p0.question
    assert rm.main(["pairs", str(tmp_path / "nope.completions.jsonl"), "--out", str(out)]) == 2


# ---------------------------------------------------------------- the reward model in an RL run


def test_reward_model_scores_general_prompts_of_a_mixed_rl_run(trained, tiny_dir, tmp_path):
    _, final = trained
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"question": q, "rewards": ["rm"]}) + "\n"
                               for q in ("Explain tides.", "Give sleep advice.", "Describe a cat.", "Why is the sky blue?")))
    over = {"model.name": str(tiny_dir), "out_dir": str(tmp_path / "run"), "task.name": f"mix:arithmetic+jsonl:{general}",
            "task.mix_weights": "1,1", "task.rewards": "accuracy,format_soft", "task.template": "raw", "task.digits": "2,1",
            "task.ops": "+", "task.num_train": 20, "task.num_eval": 10, "task.eval_fraction": 0.25, "steps": 2,
            "prompts_per_step": 4, "group_size": 2, "sampling.max_new_tokens": 6, "eval.limit": 3,
            "eval.sampling.max_new_tokens": 4, "rewards.format_soft": 0.5, "rewards.reward_model": str(final),
            "rewards.reward_model_input": "response", "optim.lr": 1e-4, "sample_every": 1}
    rl.train(C.load(C.RLConfig, None, [f"{k}={v}" for k, v in over.items()]), show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {k for r in rows if "reward/mean" in r for k in r}
    assert {"reward/rm/mean", "reward/accuracy/mean", "reward/format_soft/mean"} <= logged
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    for s in samples:  # a general prompt gets the reward model only, an arithmetic one the rule rewards only
        if not s.get("eval"):
            keys = {k for k in s if k.startswith("reward/")}
            assert keys == ({"reward/rm"} if s["id"].startswith("general") else {"reward/accuracy", "reward/format_soft"}), s
    assert all(s["id"].startswith("arithmetic-eval") for s in samples if s.get("eval"))  # held-out: the reasoning part
