"""Recipes and their data ship in the package: found by name or by path from any folder."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

import pytest

import thinkrl
from thinkrl import config as C
from thinkrl.data.packaged import RECIPES, data_file, find_recipe, recipe_names
from thinkrl.errors import UserError

PACKAGE = Path(thinkrl.__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def test_packaged_recipes_are_the_checkouts_recipes():
    assert (RECIPES / "r1_zero.toml").is_file()
    assert {"r1_zero", "r1", "search_r1", "search_jsonl"} <= set(recipe_names())
    if (CHECKOUT / "recipes").is_dir():  # a source checkout: one copy of each file
        assert (CHECKOUT / "recipes").resolve() == RECIPES.resolve()


def test_a_recipe_is_found_by_name_or_path_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for ref in ("r1_zero", "r1_zero.toml", "recipes/r1_zero.toml"):
        assert find_recipe(ref).resolve() == (RECIPES / "r1_zero.toml").resolve()
    assert C.load(C.RLConfig, "r1_zero").task.digits == "2,1"
    own = tmp_path / "recipes" / "r1_zero.toml"  # a file at the path given wins over the packaged one
    own.parent.mkdir()
    own.write_text("steps = 3\n")
    assert find_recipe("recipes/r1_zero.toml") == Path("recipes/r1_zero.toml")
    assert C.load(C.RLConfig, "recipes/r1_zero.toml").steps == 3


def test_an_unknown_recipe_lists_the_packaged_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for ref in ("r1_zro", "recipes/r1_zro.toml"):
        with pytest.raises(UserError, match=rf"recipe {ref} not found: .*packaged recipe \(.*r1_zero, r1_zero_gsm8k") as err:
            find_recipe(ref)
        assert "\n" not in str(err.value)
    for ref in (tmp_path / "absent.toml", "elsewhere/r1_zero.toml"):
        with pytest.raises(UserError, match="not found: no such file$"):
            find_recipe(ref)


def test_recipe_data_is_found_in_the_package_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "recipes/data/general_prompts.jsonl"
    assert data_file(name).resolve() == (RECIPES / "data" / "general_prompts.jsonl").resolve()
    assert data_file("recipes/data/absent.jsonl") == Path("recipes/data/absent.jsonl")  # errors name what was written
    assert data_file("data/x.jsonl") == Path("data/x.jsonl")
    (tmp_path / "recipes" / "data").mkdir(parents=True)
    (tmp_path / name).write_text('{"question": "q", "answer": "1"}\n')
    assert data_file(name) == Path(name)  # the working directory's file first
    from thinkrl.tasks import get_task

    cfg = C.load(C.RLConfig, "search_jsonl")  # names recipes/data/brindle_questions.jsonl: the packaged one here
    assert len(get_task(cfg.task).problems("train")) > 20


def test_package_data_globs_cover_every_recipe_file():
    """pyproject's package-data patterns take every file of the recipes folder into the wheel."""
    pyproject = CHECKOUT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["thinkrl"]
    shipped = {p for pattern in patterns for p in glob.glob(pattern, root_dir=PACKAGE, recursive=True)}
    files = {str(p.relative_to(PACKAGE)) for p in (PACKAGE / "recipes").rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(files - shipped)
