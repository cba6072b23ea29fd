"""thinkrl dpo on a tiny model: it starts at log 2 (policy = reference) and lowers the held-out
log-ratio of rejected to chosen responses."""

import json
import math

import pytest

from thinkrl import config as C
from thinkrl.errors import UserError
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.train import dpo


def _pairs(path, n=30):
    rows = []
    for i in range(n):
        q = f"What is {i % 9} + {i % 4}?"
        rows.append({"prompt": q, "chosen": f"<answer>{i % 9 + i % 4}</answer>",
                     "rejected": f"Let me think about this for a long while, {i} times over. <answer>{i}</answer>"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dpo_lowers_the_rejected_vs_chosen_log_ratio_on_held_out_pairs(tmp_path):
    model, tok = tiny_model("llama", seed=2)
    folder = save_pretrained(model, tok, tmp_path / "m")
    cfg = C.load(C.DPOConfig, None, [f"model.name={folder}", f"data={_pairs(tmp_path / 'p.jsonl')}",
                                     f"out_dir={tmp_path / 'run'}", "epochs=4", "batch_size=8", "optim.lr=1e-3",
                                     "eval_fraction=0.2", "detach_prompt=true"])
    dpo.train(cfg, show_progress=False)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    start, end = results["start"], results["end"]
    assert start["eval/loss"] == pytest.approx(math.log(2), abs=1e-5)  # the policy is its own reference
    assert end["eval/logratio"] < start["eval/logratio"] - 1.0
    assert end["eval/loss"] < start["eval/loss"] and end["eval/accuracy"] > 0.8
    with pytest.raises(UserError, match="already holds a run"):
        dpo.train(cfg, show_progress=False)


def test_dpo_config_errors():
    with pytest.raises(UserError, match="beta"):
        C.load(C.DPOConfig, None, ["beta=0"])
    with pytest.raises(UserError, match="no preference data"):
        dpo.train(C.DPOConfig(), show_progress=False)
