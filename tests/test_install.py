"""The package outside its checkout: a wheel built from the source, installed (not editable) into a
fresh venv, runs `thinkrl rl` with the default recipe in an empty folder and writes its run there.

Slow (a wheel, a venv, the embedded model, one RL step, a saved model: about a minute on 2 cores),
so deselected by default; run it with `pytest -m slow tests/test_install.py`. The venv gets the
dependencies (torch, transformers, ...) from this interpreter's site-packages through a .pth file,
so nothing is downloaded; thinkrl itself comes only from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import thinkrl

CHECKOUT = Path(thinkrl.__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY_RUN = ["--set", "steps=1", "--set", "prompts_per_step=2", "--set", "group_size=2", "--set", "sampling.max_new_tokens=16",
            "--set", "eval.limit=0", "--set", "task.num_train=8", "--set", "task.num_eval=4", "--set", "sample_every=1"]


def _run(cmd: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(the venv's bin folder, a clean environment) with thinkrl installed from a freshly built wheel."""
    if not (CHECKOUT / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    root = tmp_path_factory.mktemp("install")
    src = root / "src"  # a copy, so the build writes no build/ or egg-info into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, src / name)
    shutil.copytree(CHECKOUT / "recipes", src / "recipes")
    shutil.copytree(CHECKOUT / "thinkrl", src / "thinkrl", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", src], root, env)
    (wheel,) = (root / "dist").glob("thinkrl-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], root, env)
    (purelib,) = (venv / "lib").glob("python3*/site-packages")
    (purelib / "_parent_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")  # torch & co., after the venv's own
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps", "--no-index", wheel], root, env)
    return venv / "bin", env | {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def test_the_wheel_carries_the_recipes_and_their_data(installed, tmp_path):
    bin_, env = installed
    code = ("import json, thinkrl; from thinkrl import config as C; from thinkrl.data.packaged import recipe_names; "
            "from thinkrl.tasks import get_task; t = get_task(C.load(C.RLConfig, 'search_jsonl').task); "
            "print(json.dumps([thinkrl.__file__, recipe_names(), len(t.problems('train'))]))")
    where, names, n_train = json.loads(_run([bin_ / "python", "-c", code], tmp_path, env).stdout)
    assert Path(where).resolve().is_relative_to((bin_.parent / "lib").resolve())  # the wheel's copy, not the checkout
    assert names == sorted(p.stem for p in (CHECKOUT / "recipes").glob("*.toml"))
    assert n_train == 28  # recipes/data/brindle_questions.jsonl, read from the package
    assert _run([bin_ / "thinkrl", "--version"], tmp_path, env).stdout.strip() == f"thinkrl {thinkrl.__version__}"
    meta = _run([bin_ / "python", "-c", "import importlib.metadata as m; print(m.version('thinkrl'))"], tmp_path, env)
    assert meta.stdout.strip() == thinkrl.__version__  # the wheel's version is the package's (pyproject: dynamic)
    assert not list(tmp_path.iterdir())


def test_thinkrl_rl_runs_the_default_recipe_in_an_empty_folder(installed, tmp_path):
    bin_, env = installed
    out = _run([bin_ / "thinkrl", "rl", *TINY_RUN], tmp_path, env)
    assert "final model: runs/r1_zero/final" in out.stdout
    run = tmp_path / "runs" / "r1_zero"
    assert (run / "config.toml").is_file() and (run / "final" / "config.json").is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("step") == 1 for m in metrics)
    assert 'digits = [2, 1]' in (run / "config.toml").read_text()  # r1_zero.toml, not the bare defaults
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
