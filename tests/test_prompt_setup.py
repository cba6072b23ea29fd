"""thinkrl.prompt_setup: a trained model remembers how it was prompted (thinkrl_prompt.json beside
its weights), and generate, chat and eval ask it the same way unless a flag says otherwise."""

import json

import pytest

import thinkrl.train.rl as rl
from thinkrl import config as C, prompt_setup
from thinkrl.chat import prompt_messages, user_message
from thinkrl.cli import main, resolve
from thinkrl.errors import UserError
from thinkrl.evaluate import encode_problems, encode_prompt
from thinkrl.models import load_model, save_pretrained, tiny_model
from thinkrl.prompts import R1_ZERO_SYSTEM
from thinkrl.tasks import get_task

TASK = {"task.name": "arithmetic", "task.template": "r1_zero", "task.digits": "1,1", "task.ops": "+",
        "task.num_eval": 20, "task.num_train": 40, "task.shots": 1}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def run(base_dir, tmp_path_factory):
    """A two-step RL run with the R1-Zero template and one worked example turn, a checkpoint each step."""
    out = tmp_path_factory.mktemp("run") / "rl"
    over = {**TASK, "model.name": str(base_dir), "out_dir": str(out), "steps": 2, "prompts_per_step": 2,
            "group_size": 2, "sampling.max_new_tokens": 6, "sampling.stop": "</answer>", "eval.limit": 4,
            "eval.sampling.max_new_tokens": 7, "eval.sampling.temperature": 0, "save_every": 1}
    cfg = C.load(C.RLConfig, None, [f"{k}={v}" for k, v in over.items()])
    return cfg, rl.train(cfg, show_progress=False)


def test_every_checkpoint_and_final_hold_the_setup_it_trained_with(run):
    cfg, final = run
    folders = [final, *sorted((final.parent / "checkpoints").iterdir())]
    assert len(folders) == 3
    for folder in folders:
        setup = json.loads((folder / prompt_setup.FILE).read_text())
        assert setup["stage"] == "rl" and setup["task"] == "arithmetic" and setup["template"] == "r1_zero"
        assert setup["system"] == R1_ZERO_SYSTEM
        assert [m["role"] for m in setup["examples"]] == ["user", "assistant"]
        assert setup["examples"][1]["content"].startswith("<think>")
        assert setup["sampling"] == {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 7, "stop": []}
        assert setup["rollout_sampling"]["stop"] == ["</answer>"]
        assert setup["task_config"]["digits"] == "1,1" and setup["task_config"]["shots"] == 1
    load_model(final)  # plain loading is unaffected by the extra file


def test_generate_asks_a_problem_token_for_token_as_training_and_eval_did(run, capsys):
    cfg, final = run
    gen = resolve("generate", None, [f"model.name={final}"], show=print)
    assert "using the prompt set-up" in capsys.readouterr().out
    assert gen.shots == 1 and gen.template == "r1_zero" and gen.sampling.temperature == 0 and gen.sampling.max_new_tokens == 7
    ev = resolve("eval", None, [f"model.name={final}"])
    assert ev.task == cfg.task and ev.sampling == cfg.eval.sampling  # the run's held-out evaluation, not gsm8k
    _, tok = load_model(final)
    task = get_task(cfg.task)
    problems = task.problems("eval")[:4]
    trained = encode_problems(tok, task, problems, cfg.task.template, cfg.task.shots)
    evaluated = encode_problems(tok, get_task(ev.task), problems, ev.task.template, ev.task.shots)
    asked = [encode_prompt(tok, prompt_messages(gen, [user_message(gen, p.question)])) for p in problems]
    assert asked == trained == evaluated


def test_flags_override_the_setup_and_none_ignores_it(run):
    _, final = run
    gen = resolve("generate", None, [f"model.name={final}", "sampling.temperature=0.7", "shots=0"])
    assert gen.sampling.temperature == 0.7 and gen.sampling.max_new_tokens == 7  # the rest still from the file
    assert [m["role"] for m in prompt_messages(gen, [{"role": "user", "content": "q"}])] == ["system", "user"]
    ev = resolve("eval", None, [f"model.name={final}", "task.name=gsm8k", "limit=3"])
    assert ev.task.name == "gsm8k" and ev.task.shots == 1 and ev.limit == 3
    plain = C.load(C.GenerateConfig, None, [f"model.name={final}", "prompt_setup=none"])
    assert resolve("generate", None, [f"model.name={final}", "prompt_setup=none"]) == plain
    assert plain.shots == 0 and plain.sampling.temperature == 0.6


def test_a_folder_without_the_file_behaves_as_before(base_dir, capsys):
    for command, cls in (("generate", C.GenerateConfig), ("chat", C.GenerateConfig), ("eval", C.EvalConfig)):
        assert resolve(command, None, [f"model.name={base_dir}"], show=print) == C.load(cls, None, [f"model.name={base_dir}"])
    assert capsys.readouterr().out == ""
    cfg = resolve("generate", None, [f"model.name={base_dir}"])
    assert prompt_messages(cfg, [{"role": "user", "content": "hi"}]) == [
        {"role": "system", "content": R1_ZERO_SYSTEM}, {"role": "user", "content": "hi"}]
    with pytest.raises(UserError, match="has no thinkrl_prompt.json"):
        prompt_messages(resolve("generate", None, [f"model.name={base_dir}", "shots=1"]), [])


def test_generate_through_the_cli_says_which_setup_it_uses(run, capsys):
    _, final = run
    assert main(["generate", "--model", str(final), "What is 2 + 3?"]) == 0
    out, err = capsys.readouterr()
    assert f"using the prompt set-up {final / prompt_setup.FILE} (task arithmetic, template r1_zero, 1 example turn)" in err
    assert "[answer]" in out


def test_a_broken_setup_file_is_one_line(base_dir, tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / prompt_setup.FILE).write_text("{not json")
    assert main(["generate", "--model", str(folder), "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and prompt_setup.FILE in err and "prompt_setup" in err
    assert main(["eval", "--model", str(base_dir), "--set", "prompt_setup=/no/such.json", "--print-config"]) == 2


def test_conversation_stages_record_the_turns_before_the_question():
    q = {"role": "user", "content": "What is 2 + 3?"}
    ex = [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "<think>1 + 1 = 2</think> <answer>2</answer>"}]
    setup = prompt_setup.from_conversation("sft", [{"role": "system", "content": R1_ZERO_SYSTEM}, *ex, q,
                                                   {"role": "assistant", "content": "5"}])
    assert setup["template"] == "r1_zero" and setup["examples"] == ex and "task_config" not in setup
    own = prompt_setup.from_conversation("dpo", [{"role": "system", "content": "Be brief."}, q, {"role": "assistant", "content": "5"}])
    assert own["template"] == "raw" and own["system"] == "Be brief." and own["examples"] == []
    assert prompt_setup.defaults("generate", own) == {"template": "raw", "shots": 0, "system": "Be brief."}


def test_sft_and_merge_keep_the_setup(base_dir, tmp_path):
    from thinkrl.train import merge as merge_mod
    from thinkrl.train.sft import train as sft_train

    data = tmp_path / "data.jsonl"
    ex = [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "<think>1 + 1 = 2</think> <answer>2</answer>"}]
    lines = [{"messages": [{"role": "system", "content": R1_ZERO_SYSTEM}, *ex, {"role": "user", "content": f"What is {i} + 1?"},
                           {"role": "assistant", "content": f"<think>{i} + 1 = {i + 1}</think> <answer>{i + 1}</answer>"}]}
             for i in range(4)]
    data.write_text("".join(json.dumps(x) + "\n" for x in lines))
    over = {**TASK, "model.name": str(base_dir), "data": str(data), "out_dir": str(tmp_path / "sft"), "steps": 1,
            "batch_size": 2, "eval_fraction": 0, "eval.limit": 2, "eval.sampling.max_new_tokens": 4}
    final = sft_train(C.load(C.SFTConfig, None, [f"{k}={v}" for k, v in over.items()]), show_progress=False)
    setup = prompt_setup.read(final / prompt_setup.FILE)
    assert setup["stage"] == "sft" and setup["examples"] == ex and setup["template"] == "r1_zero"
    assert setup["task_config"]["shots"] == 1 and setup["sampling"]["max_new_tokens"] == 4
    merged = merge_mod.merge(C.MergeConfig(models=[str(final), str(final)], out=str(tmp_path / "merged")))
    assert prompt_setup.read(merged / prompt_setup.FILE)["examples"] == ex
    assert merge_mod.shared_prompt([str(final), str(base_dir)]) is None


def test_a_tool_run_records_its_tools_for_generate_and_eval():
    from thinkrl.config.loader import build
    from thinkrl.tools.config import ToolConfig

    task_cfg = C.load(C.RLConfig, None, [f"{k}={v}" for k, v in TASK.items()]).task
    setup = prompt_setup.from_task("rl", task_cfg, get_task(task_cfg), C.RLConfig().eval.sampling, tools=ToolConfig(python=True))
    assert setup["tools"]["python"] is True
    for command, cls in (("generate", C.GenerateConfig), ("eval", C.EvalConfig)):
        assert build(cls, prompt_setup.defaults(command, setup)).tools.python
    assert "tools" not in prompt_setup.from_task("rl", task_cfg, get_task(task_cfg), C.RLConfig().eval.sampling,
                                                 tools=ToolConfig())
