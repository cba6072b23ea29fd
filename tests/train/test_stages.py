"""The R1 stages around RL: sampling into SFT data, distillation, and the whole pipeline on tiny models."""

import json

import pytest
import torch

from thinkrl import config as C
from thinkrl.data.chat import read_chat_jsonl
from thinkrl.engine import Completion, Engine, SamplingParams
from thinkrl.errors import UserError
from thinkrl.evaluate import Scored
from thinkrl.models import load_model, save_pretrained, tiny_model
from thinkrl.tasks.base import Problem
from thinkrl.train import distill as distill_mod
from thinkrl.train import pipeline
from thinkrl.train.sample import sample, select
from thinkrl.tasks import get_task


def _scored(text, n_tokens, correct=True, formatted=True, finish="eos"):
    c = Completion(0, 0, list(range(n_tokens)), [0.0] * n_tokens, [1.0] * n_tokens, finish, text)
    return Scored(Problem("p", "q", "1"), c, "1", correct, formatted)


def test_select_filters_dedups_and_prefers_shortest():
    cfg = C.SampleConfig(keep=2, prefer="shortest")
    group = [
        _scored("<think>long long way</think><answer>1</answer>", 30),
        _scored("<think>short</think> <answer>1</answer>", 10),
        _scored("<think>short</think>\n\n<answer>1</answer>", 11),  # the same text up to white space
        _scored("<think>wrong</think><answer>2</answer>", 5, correct=False),
        _scored("no tags", 5, formatted=False),
        _scored("<think>cut", 48, finish="length"),
        _scored("<think>思考 计算 中</think><answer>1</answer>", 8),
    ]
    kept, why = select(group, cfg)
    assert [len(s.completion.token_ids) for s in kept] == [10, 30]
    assert why == {"accepted": 2, "duplicate": 1, "incorrect": 1, "format": 1, "truncated": 1, "language": 1}
    kept, _ = select(group, C.SampleConfig(keep=0, require_correct=False, min_language=0.0))
    assert len(kept) == 4  # every distinct formatted, untruncated one


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama", seed=5, layers=4)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


TASK = {"task.name": "arithmetic", "task.template": "raw", "task.digits": "1,1", "task.ops": "+", "task.num_eval": 10,
        "task.shots": 1}
# a random model rarely ends a completion: stop at any digit or letter so that some are not truncated
STOPS = "[" + ", ".join(f'"{c}"' for c in "0123456789abcdefghijklmnopqrstuvwxyz") + "]"
LOOSE = {"require_correct": "false", "require_format": "false", "min_language": 0, "sampling.max_new_tokens": 12,
         "sampling.stop": STOPS, "samples": 2, "limit": 6, "keep": 0}


def _load(cls, **over):
    return C.load(cls, None, [f"{k}={v}" for k, v in over.items()])


def test_sample_writes_sft_ready_data_and_stats(model_dir, tmp_path):
    cfg = _load(C.SampleConfig, **{"model.name": str(model_dir), "out": str(tmp_path / "d.jsonl"), **TASK, **LOOSE})
    path, stats = sample(cfg)
    conversations = read_chat_jsonl(path)  # thinkrl sft reads what thinkrl sample writes
    assert len(conversations) == stats["kept"] > 0
    assert stats["samples"] == 12 and sum(stats["verdicts"].values()) == 12
    assert conversations[0][0]["role"] == "user" and len(conversations[0]) == 2  # data_shots = 0: no worked example
    assert json.loads((tmp_path / "d.stats.json").read_text())["kept"] == stats["kept"]
    strict = _load(C.SampleConfig, **{"model.name": str(model_dir), "out": str(tmp_path / "s.jsonl"), **TASK,
                                      **{**LOOSE, "require_correct": "true"}})
    _, stats = sample(strict)  # a random model is never right: nothing kept, the reason counted
    assert stats["kept"] == 0 and stats["verdicts"].get("incorrect", 0) + stats["verdicts"].get("truncated", 0) == 12


def test_sample_relabels_each_kept_completion_with_the_budget_it_met(model_dir, tmp_path):
    from thinkrl.tasks.budget import nearest_budget

    assert [nearest_budget(n, [24, 48, 80]) for n in (1, 36, 37, 63, 64, 65, 500)] == [24, 24, 48, 48, 48, 80, 80]
    over = {"model.name": str(model_dir), "out": str(tmp_path / "d.jsonl"), **TASK, **LOOSE,
            "relabel_budgets": "2,4,8", "samples": 4}
    path, stats = sample(_load(C.SampleConfig, **over))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows and sum(stats["relabeled"].values()) == len(rows)
    for row in rows:
        want = nearest_budget(row["tokens"], [2, 4, 8])
        assert row["messages"][-2]["content"].endswith(f"\nThink for {want} tokens.")
    assert len({r["messages"][-2]["content"][-18:] for r in rows}) > 1  # lengths differ, so do the budgets
    with pytest.raises(UserError, match="relabel_budgets"):
        _load(C.SampleConfig, **{**over, "relabel_budgets": "2,x"})
    with pytest.raises(UserError, match="leave task.think_budgets empty"):
        _load(C.SampleConfig, **{**over, "task.think_budgets": "2,4"})
    # written solutions are measured with the model's tokenizer (a byte tokenizer here: one token a byte)
    written = {"model.name": str(model_dir), "out": str(tmp_path / "w.jsonl"), "source": "solutions", "limit": 6,
               "task.name": "arithmetic", "task.digits": "2,1", "task.ops": "*", "task.num_eval": 10,
               "task.solution_style": "mixed", "relabel_budgets": "30,60,90"}
    path, stats = sample(_load(C.SampleConfig, **written))
    for row in (json.loads(line) for line in path.read_text().splitlines()):
        response = row["messages"][-1]["content"]
        assert row["tokens"] == len(response.encode())
        assert row["messages"][-2]["content"].endswith(f"Think for {nearest_budget(row['tokens'], [30, 60, 90])} tokens.")
    assert len([b for b, n in stats["relabeled"].items() if n]) >= 2


def test_every_solution_style_writes_each_problem_at_each_length_and_budget(model_dir, tmp_path):
    """solution_style = "every" + relabel_budgets: each question comes with one row per distinct
    written length, each asking for the budget nearest that length, so within a question the
    budget alone tells the lengths apart (what an L1 cold start needs)."""
    from collections import defaultdict

    written = {"model.name": str(model_dir), "out": str(tmp_path / "e.jsonl"), "source": "solutions", "limit": 8,
               "task.name": "arithmetic", "task.digits": "2,1", "task.ops": "*", "task.num_eval": 10,
               "task.solution_style": "every", "relabel_budgets": "20,45,80"}
    path, stats = sample(_load(C.SampleConfig, **written))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_question = defaultdict(list)
    for row in rows:
        question = row["messages"][-2]["content"].split("\nThink for ")[0]
        by_question[question].append(row)
    assert len(by_question) == 8 and stats["prompts"] == 8 and stats["samples"] == 24
    for question, group in by_question.items():
        texts = [r["messages"][-1]["content"] for r in group]
        assert len(set(texts)) == len(texts)  # a short form equal to the worked one is written once
        assert len(group) >= 2 and any("Check:" in t for t in texts), question
        assert sorted(r["tokens"] for r in group) == [r["tokens"] for r in group]  # short, worked, checked
    assert stats["kept"] == len(rows) and sum(stats["relabeled"].values()) == len(rows)
    with pytest.raises(UserError, match="task.solution_style"):
        C.load(C.SampleConfig, None, ["task.solution_style=every:2"])


@pytest.mark.parametrize("name,template", [("arithmetic", "r1_zero"), ("countdown", "r1_zero"), ("arithmetic", "boxed"),
                                           ("gsm8k", "r1_zero")])
def test_sample_from_written_solutions_needs_no_model(tmp_path, name, template):
    over = {"task.name": name, "task.template": template, "limit": 20, "source": "solutions",
            "model.name": str(tmp_path / "no-such-model"), "out": str(tmp_path / "d.jsonl")}
    if name == "arithmetic":
        over.update({"task.digits": "2,1", "task.ops": "*"})
    if name != "gsm8k":
        over["task.num_eval"] = 10
    path, stats = sample(_load(C.SampleConfig, **over))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert stats["kept"] == len(rows) == 20 and stats["verdicts"] == {"accepted": 20}
    assert stats["sampled"]["pass@1"] == 1.0 and "tokens" not in rows[0]
    task = get_task(C.load(C.SampleConfig, None, [f"{k}={v}" for k, v in over.items()]).task)
    problems = task.problems("train")[:20]
    for row, p in zip(rows, problems):
        assert row["messages"][-2]["content"].startswith(p.question) and task.score(row["messages"][-1]["content"], p) == 1.0
    if name == "arithmetic" and template == "r1_zero":  # the computation, step by step, as the think part
        a, b = problems[0].meta["numbers"]
        assert rows[0]["messages"][-1]["content"].startswith(f"<think>{a} * {b} = ")


def test_shrink_keeps_evenly_spaced_layers_and_a_working_cache(hf_twin):
    assert distill_mod.keep_indices(30, 4) == [0, 10, 19, 29]
    assert distill_mod.keep_indices(4, 2) == [0, 3]
    with pytest.raises(UserError, match="student_layers"):
        distill_mod.keep_indices(4, 5)
    model, tok = tiny_model("qwen3", seed=1, layers=4)
    small = distill_mod.shrink(model, 2)
    assert small.config.num_hidden_layers == 2 and len(small.config.layer_types) == 2
    prompt = tok.encode("3 + 4 =")
    hf = hf_twin(small).generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, eos_token_id=None)[0, len(prompt):]
    ours = Engine(small, tok, []).generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=8))[0]
    assert ours.token_ids == hf.tolist()


def test_distill_writes_a_student_and_a_report(model_dir, tmp_path):
    cfg = _load(C.DistillConfig, **{"teacher.name": str(model_dir), "student.name": str(model_dir), "student_layers": 2,
                                    "out_dir": str(tmp_path / "d"), **{f"sample.{k}": v for k, v in {**TASK, **LOOSE}.items()},
                                    "sft.epochs": 1, "sft.batch_size": 4, "sft.kl_coef": 0.5, "eval.limit": 3,
                                    "eval.sampling.max_new_tokens": 4})
    final, report = distill_mod.distill(cfg)
    student, _ = load_model(final)
    assert student.config.num_hidden_layers == 2
    assert {"teacher_eval", "student_before_eval", "student_after_eval"} <= set(report)
    assert json.loads((tmp_path / "d" / "report.json").read_text())["student_after_eval"]["n"] == 3


def _pipeline_cfg(model_dir, out, **over):
    sets = {"model.name": str(model_dir), "out_dir": str(out), **{f"task.{k[5:]}": v for k, v in TASK.items()},
            "eval.limit": 3, "eval.sampling.max_new_tokens": 4}
    for stage in ("cold_start_data", "rejection_data"):
        sets.update({f"{stage}.{k}": v for k, v in {**TASK, **LOOSE}.items()})
    for stage in ("cold_start_sft", "rejection_sft"):
        sets.update({f"{stage}.epochs": 1, f"{stage}.batch_size": 4, f"{stage}.save_every": 1})
    for stage in ("reasoning_rl", "all_rl"):
        sets.update({f"{stage}.{k}": v for k, v in TASK.items()})
        sets.update({f"{stage}.steps": 2, f"{stage}.prompts_per_step": 2, f"{stage}.group_size": 2,
                     f"{stage}.sampling.max_new_tokens": 4, f"{stage}.eval.limit": 0, f"{stage}.save_every": 1,
                     f"{stage}.rewards.custom": "tiny_rewards:odd_first_char", f"{stage}.rewards.custom_weights": "1.0"})
    sets.update(over)
    return _load(C.PipelineConfig, **sets)


def test_pipeline_runs_every_stage_and_resumes_stage_by_stage(model_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent.parent))  # tests/tiny_rewards.py
    out = tmp_path / "r1"
    real = pipeline.run_stage

    def die_in_reasoning_rl(stage, stage_cfg, show):
        if stage == "reasoning_rl":
            raise KeyboardInterrupt
        return real(stage, stage_cfg, show)

    monkeypatch.setattr(pipeline, "run_stage", die_in_reasoning_rl)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(_pipeline_cfg(model_dir, out), show_progress=False)
    assert (out / "2-cold_start_sft" / "done.json").is_file() and not (out / "3-reasoning_rl" / "done.json").exists()
    with pytest.raises(UserError, match="--resume"):
        pipeline.run(_pipeline_cfg(model_dir, out), show_progress=False)

    ran = []
    monkeypatch.setattr(pipeline, "run_stage", lambda s, c, show: ran.append(s) or real(s, c, show))
    result = pipeline.run(_pipeline_cfg(model_dir, out, resume="true"), show_progress=False)
    assert ran == ["reasoning_rl", "rejection_data", "rejection_sft", "all_rl"]  # finished stages skipped
    assert [r["stage"] for r in result["stages"]] == ["base", "cold_start_sft", "reasoning_rl", "rejection_sft", "all_rl"]
    assert (out / "report.md").read_text().count("\n") == 7
    # the wiring: rejection data sampled from the RL model, rejection SFT from the base (as R1)
    assert C.load(C.SampleConfig, out / "4-rejection_data" / "data.config.toml").model.name == str(out / "3-reasoning_rl" / "final")
    assert C.load(C.SFTConfig, out / "5-rejection_sft" / "config.toml").model.name == str(model_dir)
    assert C.load(C.RLConfig, out / "6-all_rl" / "config.toml").model.name == str(out / "5-rejection_sft" / "final")


def test_pipeline_stages_without_their_own_task_take_the_top_level_one(tmp_path):
    """A recipe names its task once: [rejection_data] (no task table) and the absent all_rl sample
    and train on the top-level [task], --set task.* included; a stage with its own table keeps it.
    (Before, they silently got TaskConfig's default, GSM8K.)"""
    recipe = tmp_path / "p.toml"
    recipe.write_text('[task]\nname = "arithmetic"\ndigits = "2,1"\nops = "*"\n\n[rejection_data]\nlimit = 5\n\n'
                      '[reasoning_rl.task]\nname = "countdown"\n')
    cfg = C.load(C.PipelineConfig, recipe, ["task.num_eval=30"])
    for stage in ("rejection_data", "all_rl", "cold_start_sft"):
        task = getattr(cfg, stage).task
        assert (task.name, task.digits, task.ops, task.num_eval) == ("arithmetic", "2,1", "*", 30), stage
    assert cfg.rejection_data.limit == 5 and cfg.reasoning_rl.task.name == "countdown"
    assert C.load(C.PipelineConfig, None, []).rejection_data.task.name == C.TaskConfig().name  # no [task]: defaults


def test_pipeline_config_errors():
    with pytest.raises(UserError, match="R1 order"):
        _load(C.PipelineConfig, stages="reasoning_rl,cold_start_sft")
    with pytest.raises(UserError, match="stages entry"):
        _load(C.PipelineConfig, stages="cold_start,reasoning_rl")
    cfg = _load(C.PipelineConfig, stages="cold_start_sft")
    with pytest.raises(UserError, match="cold_start_data, which is not in"):
        pipeline.wire(cfg, "cold_start_sft", {})
