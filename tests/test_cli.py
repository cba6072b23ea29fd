"""The command line as a user meets it: flags, --print-config, the default recipe, and bad input that gets one line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from thinkrl.cli import main
from thinkrl.models import save_pretrained, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama")
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def test_print_config(capsys):
    assert main(["eval", "--print-config", "--set", "sampling.top_k=5"]) == 0
    assert "top_k = 5" in capsys.readouterr().out


def _bad_jsonl(tmp_path):
    p = tmp_path / "data.jsonl"
    p.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "oops"\n')
    return p


def _no_field(tmp_path):
    p = tmp_path / "nofield.jsonl"
    p.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    return p


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (lambda t, m: ["eval", "--model", str(t / "missing")], "not found"),
        (lambda t, m: ["eval", "--model", "Qwen/Qwen2.5-0.5B"], "hub id"),
        (lambda t, m: ["eval", "--set", "sampling.temprature=1"], "did you mean 'sampling.temperature'"),
        (lambda t, m: ["eval", str(t / "nope.toml")], "nope.toml not found"),
        (lambda t, m: ["eval", "--model", str(m), "--task", f"jsonl:{t / 'absent.jsonl'}"], "absent.jsonl"),
        (lambda t, m: ["eval", "--model", str(m), "--task", f"jsonl:{_bad_jsonl(t)}"], r"data.jsonl:2"),
        (lambda t, m: ["eval", "--model", str(m), "--task", f"jsonl:{_no_field(t)}"], r"nofield.jsonl:1.*question"),
        (lambda t, m: ["eval", "--task", "gsm9k"], "gsm9k"),
        (lambda t, m: ["eval", "--limit", "ten"], "must be an integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, pattern, tmp_path, model_dir, capsys):
    rc = main(argv(tmp_path, model_dir))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert __import__("re").search(pattern, err), err


def test_real_binary_bad_input_has_no_traceback(tmp_path):
    exe = shutil.which("thinkrl") or str(Path(sys.executable).parent / "thinkrl")
    cmd = [exe] if Path(exe).exists() else [sys.executable, "-m", "thinkrl.cli"]
    run = subprocess.run(cmd + ["eval", "--model", "meta-llama/Llama-3-8B"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_default_recipe_is_found_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["rl", "--print-config"]) == 0
    assert 'digits = [2, 1]' in capsys.readouterr().out  # recipes/r1_zero.toml, not the bare defaults


def test_python_dash_m_thinkrl_is_the_cli(tmp_path):
    """`python -m thinkrl` runs the same CLI: a bad model name is one line and exit 2."""
    run = subprocess.run([sys.executable, "-m", "thinkrl", "eval", "--model", "meta-llama/Llama-3-8B"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("thinkrl eval: error:") and len(run.stderr.strip().splitlines()) == 1


def test_version_and_plain_metavars(capsys):
    from thinkrl import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"thinkrl {__version__}"
    with pytest.raises(SystemExit):
        main(["rl", "--help"])
    usage = capsys.readouterr().out
    assert "--model MODEL" in usage and "--task TASK" in usage and "--steps N" in usage and "--out-dir DIR" in usage
    assert "FLAG_" not in usage


def test_every_command_help_reads_plainly(capsys):
    """Every flag's placeholder is a plain word (MODEL, TASK, N, X, DIR, PATH, ...) or a list of one
    (N,N,...), never an argparse dest such as FLAG_MODEL__NAME; the top level names COMMAND."""
    import re

    from thinkrl.cli import COMMANDS

    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "usage: thinkrl [-h] [--version] COMMAND ..." in top and "{rl," not in top
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        usage = capsys.readouterr().out
        placeholders = re.findall(r"\[--[a-z-]+ ([^\]]+)\]", usage.split("\n\n")[0])
        assert placeholders, name
        for p in placeholders:
            assert re.fullmatch(r"[A-Z]+(=[A-Z]+)?|([A-Z]+),\2,\.\.\.", p), (name, p)
    with pytest.raises(SystemExit):
        main(["merge", "--help"])
    assert "--models MODEL,MODEL,..." in capsys.readouterr().out


def test_the_version_is_the_packages():
    import tomllib
    from pathlib import Path

    import thinkrl

    project = tomllib.loads((Path(thinkrl.__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]  # the wheel's version is thinkrl.__version__
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "thinkrl.__version__"}
