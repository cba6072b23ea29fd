"""The recipes and the data files they name, shipped inside the package (`thinkrl/recipes/`,
package data), so an installed thinkrl runs them from any folder.

In a source checkout `thinkrl/recipes` is a link to the top-level `recipes/` folder (one copy of
each file); in an installed package it is a real folder. Either way a recipe is found by path or
by name, and a recipe's data path written `recipes/data/...` (relative to a checkout's root, as
every recipe writes it) is found in the package when the working directory has no such file.
"""

from __future__ import annotations

from pathlib import Path

from thinkrl.errors import UserError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"  # thinkrl/recipes
PREFIX = "recipes"  # how recipes name their own folder: "recipes/data/general_prompts.jsonl"


def recipe_names() -> list[str]:
    """The packaged recipes by name ("r1_zero" for recipes/r1_zero.toml), sorted."""
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def _packaged(path: Path, suffix: str = "") -> Path | None:
    """The packaged file a relative `path` names: `recipes/X` -> RECIPES/X; a bare name `X` (no
    folder) -> RECIPES/X + suffix (when X lacks it). None when the package has no such file."""
    if path.is_absolute():
        return None
    parts = path.parts
    if len(parts) > 1 and parts[0] == PREFIX:
        candidate = RECIPES.joinpath(*parts[1:])
    elif len(parts) == 1 and suffix:
        candidate = RECIPES / (parts[0] if parts[0].endswith(suffix) else parts[0] + suffix)
    else:
        return None
    return candidate if candidate.is_file() else None


def find_recipe(ref: str | Path) -> Path:
    """The recipe file `ref` names: a file at that path (from the working directory) first; else a
    packaged recipe by name ("r1_zero", "r1_zero.toml") or by its checkout path
    ("recipes/r1_zero.toml", from any folder). A UserError otherwise, listing the packaged names
    when `ref` looks like one (a bare name, or recipes/...)."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    found = _packaged(path, ".toml")
    if found is not None:
        return found
    if path.is_absolute() or (len(path.parts) > 1 and path.parts[0] != PREFIX):
        raise UserError(f"recipe {ref} not found: no such file")
    raise UserError(f"recipe {ref} not found: give the path of a TOML file or the name of a packaged recipe "
                    f"({', '.join(recipe_names())})")


def data_file(path: str | Path) -> Path:
    """A data file a recipe names: `path` when it exists (or is not under `recipes/`), else the
    packaged file at `recipes/...`, else `path` unchanged (so an error names what the user wrote)."""
    path = Path(path)
    if path.exists():
        return path
    return _packaged(path) or path
