from pathlib import Path

import pytest

from thinkrl import config as C
from thinkrl.errors import UserError

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.toml"))


def test_defaults_and_overrides():
    cfg = C.load(C.EvalConfig, None, ["sampling.temperature=0.7", "samples=4", "task.name=arithmetic", "sampling.stop=</answer>,END"])
    assert cfg.sampling.temperature == 0.7 and cfg.samples == 4 and cfg.task.name == "arithmetic"
    assert cfg.sampling.stop == ["</answer>", "END"]
    assert cfg.sampling.top_p == 0.95  # untouched default of the entry point
    assert C.load(C.EvalConfig, None, ['sampling.stop=["a,b", "c"]']).sampling.stop == ["a,b", "c"]


def test_recipe_then_overrides(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('limit = 7\n[sampling]\ntemperature = 0.2\n[task]\nname = "countdown"\n')
    cfg = C.load(C.EvalConfig, recipe, ["limit=9"])
    assert cfg.limit == 9 and cfg.sampling.temperature == 0.2 and cfg.task.name == "countdown"
    assert cfg.sampling.max_new_tokens == 512


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(UserError, match=r"unknown config key 'sampling.temprature'.*did you mean 'sampling.temperature'"):
        C.load(C.EvalConfig, None, ["sampling.temprature=0.5"])
    with pytest.raises(UserError, match=r"'smaples'.*'samples'"):
        C.load(C.EvalConfig, None, ["smaples=3"])


def test_unknown_key_in_recipe_names_the_file(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text("[sampling]\nmax_tokens = 5\n")
    with pytest.raises(UserError, match=r"bad.toml.*'sampling.max_tokens'.*max_new_tokens"):
        C.load(C.EvalConfig, recipe)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("samples=three", "must be an integer"),
        ("sampling.temperature=hot", "must be a number"),
        ("sampling.ignore_eos=maybe", "true or false"),
        ("sampling=3", "is a section"),
        ("samples.x=3", "is a value, not a section"),
        ("noequals", "key=value"),
        ("sampling.temperature=-1", "temperature must be >= 0"),
        ("samples=0", "samples must be >= 1"),
    ],
)
def test_bad_values_are_user_errors(override, pattern):
    with pytest.raises(UserError, match=pattern):
        C.load(C.EvalConfig, None, [override])


def test_bad_recipe_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        C.load(C.EvalConfig, tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("limit = = 3\n")
    with pytest.raises(UserError, match="broken.toml:1: not valid TOML"):
        C.load(C.EvalConfig, broken)
    wrong_type = tmp_path / "type.toml"
    wrong_type.write_text('limit = "ten"\n')
    with pytest.raises(UserError, match="type.toml.*'limit' must be an integer"):
        C.load(C.EvalConfig, wrong_type)


def test_toml_round_trip(tmp_path):
    cfg = C.load(C.EvalConfig, None, ["sampling.stop=</answer>", "task.name=countdown", "limit=3", 'model.name=a "quoted" path'])
    path = C.save(cfg, tmp_path / "config.toml")
    assert C.load(C.EvalConfig, path) == cfg


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_shipped_recipes_load(recipe):
    from thinkrl.cli import COMMANDS

    loaded = []
    for cmd in COMMANDS.values():
        try:
            loaded.append(C.load(cmd.config, recipe))
        except UserError:
            pass
    assert loaded, f"{recipe.name} loads for no subcommand"


def test_list_values_are_toml_lists_and_old_comma_strings_still_load(tmp_path):
    new, old = tmp_path / "new.toml", tmp_path / "old.toml"
    new.write_text('relabel_budgets = [24, 48, 80]\n[task]\ndigits = [2, 1]\nmix_weights = [3, 0.5]\nrewards = ["accuracy", "format"]\n')
    old.write_text('relabel_budgets = "24,48,80"\n[task]\ndigits = "2,1"\nmix_weights = "3,0.5"\nrewards = "accuracy,format"\n')
    cfg = C.load(C.SampleConfig, new)
    assert cfg == C.load(C.SampleConfig, old)
    assert (cfg.relabel_budgets, cfg.task.digits, cfg.task.mix_weights, cfg.task.rewards) == ("24,48,80", "2,1", "3,0.5", "accuracy,format")
    written = C.to_toml(cfg)
    assert "relabel_budgets = [24, 48, 80]" in written and 'rewards = ["accuracy", "format"]' in written
    assert "digits = [2, 1]" in written and "mix_weights = [3, 0.5]" in written and "think_budgets = []" in written
    assert C.load(C.SampleConfig, C.save(cfg, tmp_path / "back.toml")) == cfg
    assert C.load(C.EvalConfig, None, ["task.think_budgets=[16, 32]"]).task.think_budgets == "16,32"
    assert C.load(C.EvalConfig, None, ["task.think_budgets=16,32"]).task.think_budgets == "16,32"


@pytest.mark.parametrize("value, pattern", [
    ('["2", "1"]', r"key 'task.digits' must be a list of integers, e.g. digits = \[2, 1\]"),
    ("[true]", "must be a list of integers"),
    ("3", "must be a list of integers"),
])
def test_a_bad_list_value_names_the_key_and_the_form(tmp_path, value, pattern):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[task]\ndigits = {value}\n")
    with pytest.raises(UserError, match=r"r.toml: .*" + pattern):
        C.load(C.EvalConfig, recipe)


def test_a_pipeline_stage_without_its_own_task_takes_the_top_level_one(tmp_path):
    recipe = tmp_path / "p.toml"
    recipe.write_text('[task]\nname = "countdown"\n[reasoning_rl.task]\nname = "arithmetic"\n')
    cfg = C.load(C.PipelineConfig, recipe)
    assert cfg.cold_start_data.task.name == cfg.all_rl.task.name == "countdown"
    assert cfg.reasoning_rl.task.name == "arithmetic"
