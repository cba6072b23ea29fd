"""thinkrl merge: the weighted average by hand, architecture checks, a folder plain transformers loads."""

import pytest
import torch

from thinkrl import cli
from thinkrl import config as C
from thinkrl.errors import UserError
from thinkrl.models import load_model, save_pretrained, tiny_model
from thinkrl.train.merge import merge


def test_merge_is_the_weighted_average(tmp_path):
    a = save_pretrained(*tiny_model("llama", seed=1), tmp_path / "a")
    b = save_pretrained(*tiny_model("llama", seed=2), tmp_path / "b")
    out = merge(C.load(C.MergeConfig, None, [f"models={a},{b}", "weights=0.25,0.75", f"out={tmp_path / 'm'}"]))
    ma, mb, mm = load_model(a)[0], load_model(b)[0], load_model(out)[0]
    w = "model.layers.0.mlp.up_proj.weight"
    expected = 0.25 * ma.state_dict()[w] + 0.75 * mb.state_dict()[w]
    assert torch.allclose(mm.state_dict()[w], expected, atol=1e-7)
    assert not torch.allclose(mm.state_dict()[w], ma.state_dict()[w])
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)


def test_merge_refuses_mismatched_models_and_bad_weights(tmp_path, capsys):
    a = save_pretrained(*tiny_model("llama", seed=1), tmp_path / "a")
    c = save_pretrained(*tiny_model("llama", seed=1, hidden=32), tmp_path / "c")
    with pytest.raises(UserError, match="has shape"):
        merge(C.MergeConfig(models=[str(a), str(c)], out=str(tmp_path / "x")))
    with pytest.raises(UserError, match="sum to 1"):
        C.load(C.MergeConfig, None, [f"models={a},{a}", "weights=0.5,0.6"])
    assert cli.main(["merge", "--models", str(a)]) == 2
    assert "two or more models" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
