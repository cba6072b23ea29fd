"""Bad input, clear errors: every way of getting the input wrong that a user meets, through the real CLI.

Each case of CASES runs `thinkrl.cli.main(argv)` in-process against a scratch folder holding a tiny
model, broken model folders, good and bad data files, recipes and earlier runs. Every case must
exit with code 2 and print exactly one line to stderr, `thinkrl <command>: error: ...`, with no
traceback; the line must name the offending thing (a file, `file:line`, a config key); and no
file that was on disk before may change, nor any new file appear (an error comes before any write).

What was observed is also the documentation: `docs/bad_inputs.md` is the table of every case (the
command, the exit code, the message, the scratch folder written `<tmp>`), and the test fails when
the file differs from what the CLI prints now. `THINKRL_WRITE_DOCS=1 pytest tests/test_bad_inputs.py`
rewrites it.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import os
import shlex
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

import thinkrl
from thinkrl.cli import main
from thinkrl.models import save_pretrained, tiny_model

REPO = Path(thinkrl.__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad_inputs.md"


@dataclass(frozen=True)
class Case:
    name: str  # what is wrong, as the doc's first column says it
    argv: tuple[str, ...]  # after `thinkrl`; "{w}" stands for the scratch folder
    names: tuple[str, ...]  # substrings the (normalised) message must hold: the file, file:line or key

    def args(self, world: Path) -> list[str]:
        return [a.replace("{w}", str(world)) for a in self.argv]


def case(name: str, argv: str, *names: str) -> Case:
    return Case(name, tuple(shlex.split(argv)), names)


M = "--model {w}/model"
CHAT = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
PAIR = '{"prompt": "q", "chosen": "a", "rejected": "b"}\n'

# name -> bytes of the files of the scratch folder (besides the models and runs built in `world`)
FILES: dict[str, bytes] = {
    "data/good.jsonl": b'{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": "4"}\n',
    "data/empty.jsonl": b"",
    "data/bad_prompt.json": b'{"template": "r1_zero", "examples": ',  # a model's thinkrl_prompt.json, cut short
    "data/bad_json.jsonl": b'{"question": "1+1?", "answer": "2"}\n{"question": "2+2?"\n',
    "data/latin1.jsonl": '{"question": "1+1?", "answer": "2"}\n{"question": "caf\xe9?", "answer": "2"}\n'.encode("latin-1"),
    "data/binary.jsonl": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "data/no_field.jsonl": b'{"prompt": "1+1?", "answer": "2"}\n',
    "data/wrong_type.jsonl": b'{"question": ["1+1?"], "answer": "2"}\n',
    "data/empty_prompt.jsonl": b'{"question": "1+1?", "answer": "2"}\n{"question": "   ", "answer": "2"}\n',
    "data/empty_alias.jsonl": b'{"question": "Who founded Saltreach?", "answer": ["Ilse Varrow", ""]}\n',
    "data/article_only.jsonl": b'{"question": "Which ship?", "answer": "Grey Heron"}\n{"question": "Which one?", "answer": "The"}\n',
    "data/too_long.jsonl": (json.dumps({"question": "x" * 2100, "answer": "2"}) + "\n").encode(),
    "data/chat_blank.jsonl": b"\n\n",
    "data/chat_bad_json.jsonl": (CHAT + '{"messages": [}\n').encode(),
    "data/chat_latin1.jsonl": CHAT.encode() + '{"messages": [{"role": "user", "content": "\xe9t\xe9"}]}\n'.encode("latin-1"),
    "data/chat_no_messages.jsonl": b'{"conversation": [{"role": "user", "content": "hi"}]}\n',
    "data/chat_wrong_type.jsonl": b'{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}\n',
    "data/chat_no_assistant.jsonl": b'{"messages": [{"role": "user", "content": "hi"}]}\n',
    "data/chat_too_long.jsonl": (json.dumps({"messages": [{"role": "user", "content": "x" * 2100},
                                                          {"role": "assistant", "content": "y"}]}) + "\n").encode(),
    "data/pairs_no_chosen.jsonl": b'{"prompt": "q", "rejected": "b"}\n',
    "data/pairs_latin1.jsonl": (PAIR + '{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n').encode("latin-1"),
    "data/pairs_empty_prompt.jsonl": b'{"prompt": "", "chosen": "a", "rejected": "b"}\n',
    "data/pairs_wrong_type.jsonl": b'{"prompt": "q", "chosen": 3, "rejected": "b"}\n',
    "data/pairs_same.jsonl": b'{"prompt": "q", "chosen": "a", "rejected": "a"}\n',
    "recipes/unknown_key.toml": b"limt = 3\n",
    "recipes/unknown_nested.toml": b"[sampling]\ntemprature = 0.7\n",
    "recipes/wrong_type.toml": b'samples = "four"\n',
    "recipes/syntax.toml": b"limit = 3\n[sampling\ntemperature = 0.7\n",
    "recipes/latin1.toml": "# r\xe9glages\nlimit = 3\n".encode("latin-1"),
    "recipes/section_as_value.toml": b"sampling = 0.7\n",
    "runs/sft_done/metrics.jsonl": b'{"step": 1, "train/nll": 2.0}\n',
    "runs/sft_done/config.toml": b'data = "data/chat.jsonl"\n',
    "runs/sft_interrupted/metrics.jsonl": b'{"step": 1, "train/nll": 2.0}\n',
    "runs/rl_done/metrics.jsonl": b'{"step": 1, "reward/mean": 0.5}\n',
    "runs/rm_done/metrics.jsonl": b'{"step": 1, "train/loss": 0.6}\n',
    "runs/dpo_done/metrics.jsonl": b'{"step": 1, "train/loss": 0.6}\n',
    "runs/pipeline_done/config.toml": b'out_dir = "runs/pipeline_done"\n',
    "runs/distill_done/report.json": b'{"student_after_eval": {"pass@1": 0.28}}\n',
    "results/three.json": json.dumps({"problems": [{"id": f"p{i}", "correct": 1, "samples": 1} for i in range(3)]}).encode(),
    "results/two.json": json.dumps({"problems": [{"id": f"p{i}", "correct": 0, "samples": 1} for i in range(2)]}).encode(),
}

CASES = [
    # ---- data files
    case("data file missing", f"eval {M} --task jsonl:{{w}}/data/absent.jsonl", "<tmp>/data/absent.jsonl"),
    case("data file empty", f"eval {M} --task jsonl:{{w}}/data/empty.jsonl", "<tmp>/data/empty.jsonl"),
    case("malformed JSONL line", f"eval {M} --task jsonl:{{w}}/data/bad_json.jsonl", "<tmp>/data/bad_json.jsonl:2", "JSON"),
    case("latin-1 bytes in a data file", f"eval {M} --task jsonl:{{w}}/data/latin1.jsonl", "<tmp>/data/latin1.jsonl:2", "UTF-8"),
    case("binary data file", f"eval {M} --task jsonl:{{w}}/data/binary.jsonl", "<tmp>/data/binary.jsonl:1", "UTF-8"),
    case("required field missing", f"eval {M} --task jsonl:{{w}}/data/no_field.jsonl", "<tmp>/data/no_field.jsonl:1", "'question'",
         "task.prompt_field"),
    case("field of the wrong type", f"eval {M} --task jsonl:{{w}}/data/wrong_type.jsonl", "<tmp>/data/wrong_type.jsonl:1", "'question'"),
    case("empty prompt", f"eval {M} --task jsonl:{{w}}/data/empty_prompt.jsonl", "<tmp>/data/empty_prompt.jsonl:2", "empty"),
    case("empty alias in an answer list", f"eval {M} --task jsonl:{{w}}/data/empty_alias.jsonl --set task.answer_type=text",
         "<tmp>/data/empty_alias.jsonl:1", "'answer' item 2"),
    case("text answer that normalises to nothing", f"eval {M} --task jsonl:{{w}}/data/article_only.jsonl --set task.answer_type=text",
         "<tmp>/data/article_only.jsonl:2", "task.answer_type"),
    case("unknown answer type", f"eval {M} --task jsonl:{{w}}/data/good.jsonl --set task.answer_type=txt", "task.answer_type"),
    case("search corpus missing", f"eval {M} --task jsonl:{{w}}/data/good.jsonl --set tools.search.corpus={{w}}/data/absent.jsonl",
         "<tmp>/data/absent.jsonl"),
    case("prompt longer than the model's context (eval)",
         f"eval {M} --task jsonl:{{w}}/data/too_long.jsonl --set task.eval_fraction=1 --out {{w}}/runs/eval/r.json",
         "<tmp>/data/too_long.jsonl:1", "context"),
    case("prompt longer than the model's context (sample)",
         f"sample {M} --task jsonl:{{w}}/data/too_long.jsonl --set split=eval --set task.eval_fraction=1 --out {{w}}/data/x.jsonl",
         "<tmp>/data/too_long.jsonl:1", "context"),
    case("SFT data file missing", f"sft {M} --data {{w}}/data/absent.jsonl --out-dir {{w}}/runs/new", "<tmp>/data/absent.jsonl"),
    case("SFT data with blank lines only", f"sft {M} --data {{w}}/data/chat_blank.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_blank.jsonl"),
    case("SFT malformed line", f"sft {M} --data {{w}}/data/chat_bad_json.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_bad_json.jsonl:2", "JSON"),
    case("SFT data not UTF-8", f"sft {M} --data {{w}}/data/chat_latin1.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_latin1.jsonl:2", "UTF-8"),
    case("SFT line without 'messages'", f"sft {M} --data {{w}}/data/chat_no_messages.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_no_messages.jsonl:1", "'messages'"),
    case("SFT message content not a string", f"sft {M} --data {{w}}/data/chat_wrong_type.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_wrong_type.jsonl:1", "messages[0]", "'content'"),
    case("SFT conversation without an assistant turn", f"sft {M} --data {{w}}/data/chat_no_assistant.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_no_assistant.jsonl:1", "assistant"),
    case("SFT example longer than the model's context",
         f"sft {M} --data {{w}}/data/chat_too_long.jsonl --set max_len=4096 --out-dir {{w}}/runs/new",
         "<tmp>/data/chat_too_long.jsonl", "context 2048"),
    case("preference pair without 'chosen'", f"rm {M} --data {{w}}/data/pairs_no_chosen.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/pairs_no_chosen.jsonl:1", "'chosen'"),
    case("preference data not UTF-8", f"rm {M} --data {{w}}/data/pairs_latin1.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/pairs_latin1.jsonl:2", "UTF-8"),
    case("preference pair with an empty prompt", f"rm {M} --data {{w}}/data/pairs_empty_prompt.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/pairs_empty_prompt.jsonl:1", "'prompt'"),
    case("preference pair of the wrong type", f"dpo {M} --data {{w}}/data/pairs_wrong_type.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/pairs_wrong_type.jsonl:1", "'chosen'"),
    case("preference pair preferring nothing", f"dpo {M} --data {{w}}/data/pairs_same.jsonl --out-dir {{w}}/runs/new",
         "<tmp>/data/pairs_same.jsonl:1", "same"),
    case("distill data missing", f"distill --teacher {{w}}/model --student {{w}}/model --set data={{w}}/data/absent.jsonl "
         "--out-dir {w}/runs/new", "<tmp>/data/absent.jsonl", "key data"),
    # ---- configs
    case("recipe: unknown key", "eval {w}/recipes/unknown_key.toml", "<tmp>/recipes/unknown_key.toml", "'limt'", "'limit'"),
    case("recipe: unknown nested key", "eval {w}/recipes/unknown_nested.toml", "<tmp>/recipes/unknown_nested.toml",
         "'sampling.temprature'", "'sampling.temperature'"),
    case("--set: a section the command does not have", "eval --set algo.clip_high=0.28", "'algo'"),
    case("--set: unknown key in a section", "rl --set algo.clip_hihg=0.28", "'algo.clip_hihg'", "'algo.clip_high'"),
    case("recipe: value of the wrong type", "eval {w}/recipes/wrong_type.toml", "<tmp>/recipes/wrong_type.toml", "'samples'"),
    case("flag: value of the wrong type", "eval --limit ten", "'limit'", "integer"),
    case("recipe: TOML syntax error", "eval {w}/recipes/syntax.toml", "<tmp>/recipes/syntax.toml:2", "TOML"),
    case("recipe: not UTF-8", "eval {w}/recipes/latin1.toml", "<tmp>/recipes/latin1.toml:1", "UTF-8"),
    case("recipe: file does not exist", "eval {w}/recipes/absent.toml", "<tmp>/recipes/absent.toml"),
    case("recipe: a section given a value", "eval {w}/recipes/section_as_value.toml", "<tmp>/recipes/section_as_value.toml",
         "'sampling'"),
    case("group_size 1 with group-std scaling", "rl --set group_size=1 --print-config", "group_size", "algo.scale"),
    case("more mini-batches than completions", "rl --set prompts_per_step=2 --set group_size=2 --set algo.mini_batches=8 "
         "--print-config", "algo.mini_batches"),
    case("negative learning rate", "sft --set optim.lr=-1e-5 --print-config", "optim.lr"),
    case("negative held-out eval limit", "rl --set eval.limit=-5 --print-config", "eval.limit"),
    case("zero held-out eval samples", "sft --set eval.samples=0 --print-config", "eval.samples"),
    case("negative eval limit", "eval --limit -3", "limit"),
    case("eval over zero seeds", "eval --seeds 0", "seeds"),
    case("compare: results on other problems", "compare {w}/results/three.json {w}/results/two.json",
         "<tmp>/results/three.json", "<tmp>/results/two.json", "'p2'"),
    case("compare: results file missing", "compare {w}/results/three.json {w}/results/absent.json",
         "<tmp>/results/absent.json"),
    case("KL penalty in the reward without a critic", "rl --set algo.kl_in_reward=true --print-config", "algo.kl_in_reward"),
    case("pipeline stages out of order", "pipeline --set stages=reasoning_rl,cold_start_sft --print-config", "stages"),
    case("merge weights do not match the models", f"merge --models {{w}}/model,{{w}}/model --weights 0.5 --out {{w}}/runs/new",
         "weights"),
    case("unknown task", "eval --task gsm9k", "task.name", "gsm9k"),
    case("unknown split", f"eval {M} --task arithmetic --set split=test", "'test'"),
    case("unknown language for the readability filter", "sample --set language_target=xx --print-config", "language_target"),
    case("--set without '='", "eval --set sampling.temperature", "'sampling.temperature'", "key=value"),
    case("--set without a key", "eval --set =0.7", "'=0.7'", "key=value"),
    case("--set on a section", "eval --set sampling=0.7", "'sampling'"),
    case("--set list that does not parse", "eval --set sampling.stop=[oops", "'sampling.stop'"),
    case("misspelt flag", "eval --modle x", "--modle", "--model"),
    case("flag without its value", "eval --limit", "--limit"),
    # ---- models
    case("model folder missing", "eval --model {w}/no_model", "<tmp>/no_model"),
    case("model folder without config.json", "eval --model {w}/no_config", "<tmp>/no_config", "config.json"),
    case("unsupported architecture", "eval --model {w}/unknown_arch --task arithmetic", "<tmp>/unknown_arch/config.json", "florbnet"),
    case("config.json not JSON", "eval --model {w}/broken_config --task arithmetic", "<tmp>/broken_config/config.json:1"),
    case("model folder without weights", "eval --model {w}/no_weights --task arithmetic", "<tmp>/no_weights", "weights"),
    case("model folder without a tokenizer", "eval --model {w}/no_tokenizer --task arithmetic", "<tmp>/no_tokenizer", "tokenizer"),
    case("a hub id", 'generate --model Qwen/Qwen2.5-0.5B "What is 17 + 25?"', "'Qwen/Qwen2.5-0.5B'", "never downloads"),
    case("a file given as the model", "eval --model {w}/data/good.jsonl", "<tmp>/data/good.jsonl", "not a folder"),
    # ---- runs
    case("--resume without a checkpoint", f"sft {M} --data {{w}}/data/chat_blank.jsonl --out-dir {{w}}/runs/sft_interrupted --resume",
         "<tmp>/runs/sft_interrupted/checkpoints"),
    case("--resume of a run that never started", f"rl {M} --out-dir {{w}}/runs/absent --resume", "<tmp>/runs/absent/checkpoints"),
    case("out_dir already holds a run (sft)", f"sft {M} --data {{w}}/data/chat_blank.jsonl --out-dir {{w}}/runs/sft_done",
         "<tmp>/runs/sft_done", "--resume"),
    case("out_dir already holds a run (rl)", f"rl {M} --out-dir {{w}}/runs/rl_done", "<tmp>/runs/rl_done"),
    case("out_dir already holds a run (rm)", f"rm {M} --data {{w}}/data/pairs_same.jsonl --out-dir {{w}}/runs/rm_done",
         "<tmp>/runs/rm_done"),
    case("out_dir already holds a run (dpo)", f"dpo {M} --data {{w}}/data/pairs_same.jsonl --out-dir {{w}}/runs/dpo_done",
         "<tmp>/runs/dpo_done"),
    case("out_dir already holds a run (pipeline)", "pipeline --out-dir {w}/runs/pipeline_done", "<tmp>/runs/pipeline_done"),
    case("out_dir already holds a run (distill)", "distill --teacher {w}/model --student {w}/model --out-dir {w}/runs/distill_done",
         "<tmp>/runs/distill_done"),
    case("merge onto an existing model", "merge --models {w}/model,{w}/model --out {w}/model", "<tmp>/model", "already exists"),
    case("prompt set-up file not JSON", f"generate {M} --set prompt_setup={{w}}/data/bad_prompt.json hi",
         "<tmp>/data/bad_prompt.json", "prompt_setup"),
    case("prompt set-up file missing", f"eval {M} --set prompt_setup={{w}}/data/absent_prompt.json",
         "<tmp>/data/absent_prompt.json", "prompt_setup"),
]


# ---------------------------------------------------------------- the scratch folder


def _build_world(root: Path) -> None:
    model, tok = tiny_model("llama")
    good = save_pretrained(model, tok, root / "model")
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "no_config").mkdir()
    (root / "no_config" / "model.safetensors").write_bytes(b"not weights")
    (root / "unknown_arch").mkdir()
    (root / "unknown_arch" / "config.json").write_text(json.dumps({"model_type": "florbnet", "hidden_size": 8}))
    (root / "broken_config").mkdir()
    (root / "broken_config" / "config.json").write_text('{model_type: "llama"}\n')
    shutil.copytree(good, root / "no_weights")
    (root / "no_weights" / "model.safetensors").unlink()
    (root / "no_tokenizer").mkdir()
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(good / f, root / "no_tokenizer" / f)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root: (mtime_ns, sha256 of its bytes)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def normalise(text: str, world: Path) -> str:
    return text.replace(str(world), "<tmp>").replace(str(REPO), "<repo>")


@dataclass
class Observed:
    rc: int | None
    err: str  # stderr, normalised
    crash: str  # a traceback that escaped main(), else ""
    changed: list[str]  # files that appeared, vanished or changed


def _run(argv: list[str], world: Path) -> Observed:
    before = snapshot(world)
    err, out = io.StringIO(), io.StringIO()
    rc, crash = None, ""
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse exits; the console script would turn this into the same exit code
            rc = e.code
        except Exception:  # noqa: BLE001 - a crash is what this test reports
            crash = traceback.format_exc()
    after = snapshot(world)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return Observed(rc, normalise(err.getvalue(), world), crash, changed)


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict[str, Observed]:
    """Every case run once, in the scratch folder as working directory (a stray relative write shows)."""
    world = tmp_path_factory.mktemp("bad_inputs")
    _build_world(world)
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(world)
        for c in CASES:
            results[c.name] = _run(c.args(world), world)
    return results


# ---------------------------------------------------------------- the checks


def test_cases_are_distinct_and_many():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.argv for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_line(c: Case, observed):
    o = observed[c.name]
    assert not o.crash, o.crash
    lines = o.err.strip().splitlines()
    assert o.rc == 2, (o.rc, o.err)
    assert len(lines) == 1, o.err
    assert lines[0].startswith(f"thinkrl {c.argv[0]}: error: "), lines[0]
    assert "Traceback" not in o.err
    for name in c.names:
        assert name in lines[0], f"{name!r} not in: {lines[0]}"
    assert not o.changed, f"files changed on disk: {o.changed}"


def _cell(text: str) -> str:
    """Text as a markdown table cell in a code span (so <tmp> and * show as they are)."""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render(observed: dict[str, Observed]) -> str:
    rows = []
    for c in CASES:
        o = observed[c.name]
        command = ("thinkrl " + shlex.join(c.args(Path("__TMP__")))).replace("__TMP__", "<tmp>")
        rows.append(f"| {c.name} | {_cell(command)} | {o.rc} | {_cell(o.err.strip())} |")
    return "\n".join([
        "# Bad input, clear errors",
        "",
        "<!-- Generated by tests/test_bad_inputs.py from what the CLI printed; do not edit by hand. -->",
        "<!-- Regenerate: THINKRL_WRITE_DOCS=1 pytest tests/test_bad_inputs.py -->",
        "",
        "Every way of getting the input wrong listed here ends the same way: exit code 2, one line on",
        "stderr (`thinkrl <command>: error: ...`, no traceback) naming the file, `file:line` or config key",
        "at fault and what to do, and no file already on disk changed. The table is generated by",
        "`tests/test_bad_inputs.py`, which runs each command against a scratch folder (written `<tmp>`",
        "below) and fails when this file differs from what the CLI prints; regenerate it with",
        "`THINKRL_WRITE_DOCS=1 pytest tests/test_bad_inputs.py`.",
        "",
        "| case | command | exit code | message |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def test_docs_table_matches_what_the_cli_prints(observed):
    bad = [c.name for c in CASES if observed[c.name].rc != 2 or observed[c.name].crash]
    assert not bad, f"fix these cases before (re)writing the doc: {bad}"
    text = render(observed)
    if os.environ.get("THINKRL_WRITE_DOCS") == "1":
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text, encoding="utf-8")
    current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    diff = "".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(DOC), "observed"))
    if current != text:
        pytest.fail(f"{DOC} is out of date; regenerate: THINKRL_WRITE_DOCS=1 pytest tests/test_bad_inputs.py\n{diff}")


def test_a_line_holding_a_unicode_line_separator_is_one_line(tmp_path):
    """JSON strings may hold U+2028 / U+0085 raw (json.dumps(ensure_ascii=False) writes them so); the
    readers split at newlines only, so such a line is read whole instead of failing as two bad ones."""
    from thinkrl.tasks import jsonl
    from thinkrl.train.rm import load_pairs
    from thinkrl.train.sft import read_chat_jsonl

    text = "one\u2028two\u0085three"
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"question": text, "answer": "1"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [p.question for p in jsonl.load(problems)] == [text]
    chat = tmp_path / "c.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]},
                               ensure_ascii=False) + "\r\n", encoding="utf-8")
    assert read_chat_jsonl(chat)[0][0]["content"] == text
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": text, "chosen": "a", "rejected": "b"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_pairs(pairs)[0].chosen[0]["content"] == text
