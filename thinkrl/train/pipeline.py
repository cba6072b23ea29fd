"""`thinkrl pipeline`: the DeepSeek-R1 recipe, one stage after the other.

    base --cold_start_data (sample: readable, correct traces)--> data0
    base --cold_start_sft (data0)--> m1 --reasoning_rl (rule rewards)--> m2
    m2 --rejection_data (sample the RL model)--> data1
    base (as R1) or m2 --rejection_sft (data1)--> m3 --all_rl (rule + reward-model rewards)--> m4

Each stage is an existing entry point (`sample`, `sft`, `rl`) run with the recipe's section for
it; the pipeline only fills in the wiring: which model a stage starts from, which data it reads,
where it writes (`<out_dir>/<n>-<stage>/`). A finished stage leaves `done.json` naming its output,
so `--resume` skips it; an interrupted training stage resumes from its own last checkpoint. At
the end every model (the base and each trained stage's) is evaluated on the same held-out
problems and `report.json` / `report.md` compare them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from thinkrl.config import PIPELINE_STAGES, PipelineConfig, save as save_config
from thinkrl.errors import UserError
from thinkrl.models import EMBEDDED
from thinkrl.report import finish
from thinkrl.train.checkpoint import latest_checkpoint
from thinkrl.train.heldout import heldout_eval

DONE = "done.json"


def stage_dir(cfg: PipelineConfig, stage: str) -> Path:
    return Path(cfg.out_dir) / f"{PIPELINE_STAGES.index(stage) + 1}-{stage}"


def wire(cfg: PipelineConfig, stage: str, outputs: dict[str, str]):
    """The stage's config with its inputs and output filled in from earlier stages' outputs."""
    base = cfg.model.name
    model = lambda name: dataclasses.replace(cfg.model, name=name)  # noqa: E731
    here = stage_dir(cfg, stage)
    latest = outputs.get("reasoning_rl") or outputs.get("cold_start_sft") or base
    if stage == "cold_start_data":
        return dataclasses.replace(cfg.cold_start_data, model=model(cfg.cold_start_model or base), out=str(here / "data.jsonl"))
    if stage == "cold_start_sft":
        return dataclasses.replace(cfg.cold_start_sft, model=model(base), data=_need(outputs, "cold_start_data", stage),
                                   out_dir=str(here))
    if stage == "reasoning_rl":
        return dataclasses.replace(cfg.reasoning_rl, model=model(outputs.get("cold_start_sft", base)), out_dir=str(here))
    if stage == "rejection_data":
        return dataclasses.replace(cfg.rejection_data, model=model(latest), out=str(here / "data.jsonl"))
    if stage == "rejection_sft":
        start = base if cfg.rejection_sft_from == "base" else latest
        return dataclasses.replace(cfg.rejection_sft, model=model(start), data=_need(outputs, "rejection_data", stage),
                                   out_dir=str(here))
    start = outputs.get("rejection_sft") or latest
    return dataclasses.replace(cfg.all_rl, model=model(start), out_dir=str(here))


def _need(outputs: dict[str, str], stage: str, by: str) -> str:
    if stage not in outputs:
        raise UserError(f"stage {by} reads the data of stage {stage}, which is not in `stages`")
    return outputs[stage]


def run_stage(stage: str, stage_cfg, show_progress: bool) -> str:
    """Run one stage; returns its output (a data file or a model folder)."""
    if stage.endswith("_data"):
        from thinkrl.train.sample import sample

        path, stats = sample(stage_cfg)
        print(f"[{stage}] kept {stats['kept']} of {stats['samples']} samples: {stats['verdicts']}", flush=True)
        if not stats["kept"]:
            raise UserError(f"stage {stage}: no sample passed the filters, nothing to train on")
        return str(path)
    if stage.endswith("_sft"):
        from thinkrl.train.sft import train
    else:
        from thinkrl.train.rl import train
    return str(train(stage_cfg, show_progress=show_progress))


def _prepare_resume(stage_cfg, here: Path, resume: bool):
    """A training stage that left files: resume from its checkpoint, or start it afresh when it
    never reached one (nothing of value is lost: the stage's own partial logs)."""
    if not hasattr(stage_cfg, "resume") or not (here / "metrics.jsonl").exists():
        return stage_cfg
    if not resume:
        raise UserError(f"{here} holds an unfinished stage: pass --resume to continue the pipeline")
    if latest_checkpoint(here) is not None:
        return dataclasses.replace(stage_cfg, resume=True)
    shutil.rmtree(here)
    return stage_cfg


def run(cfg: PipelineConfig, show_progress: bool = True) -> dict:
    started = time.perf_counter()
    out = Path(cfg.out_dir)
    if out.exists() and any(out.iterdir()) and not cfg.resume:
        raise UserError(f"out_dir {out} already holds a pipeline: pass --resume to continue it, or set out_dir elsewhere")
    for key, name in [("cold_start_model", cfg.cold_start_model)] + [("compare", m) for m in cfg.compare]:
        if name and name not in EMBEDDED and not Path(name).is_dir():  # fail now, not an hour in
            raise UserError(f"{key}: model folder {name} not found")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.toml")
    outputs: dict[str, str] = {}
    models = [("base", cfg.model.name)]
    for stage in cfg.stages:
        here = stage_dir(cfg, stage)
        done = here / DONE
        if done.is_file():
            outputs[stage] = json.loads(done.read_text())["output"]
            print(f"[{stage}] done before: {outputs[stage]}", flush=True)
        else:
            stage_cfg = _prepare_resume(wire(cfg, stage, outputs), here, cfg.resume)
            print(f"[{stage}] starting from {stage_cfg.model.name}", flush=True)
            outputs[stage] = run_stage(stage, stage_cfg, show_progress)
            done.write_text(json.dumps({"output": outputs[stage]}) + "\n")
        if not stage.endswith("_data"):
            models.append((stage, outputs[stage]))
    result = report(cfg, models + [(f"compare-{i + 1}", m) for i, m in enumerate(cfg.compare)])
    finish(out, "pipeline", time.perf_counter() - started)  # the summary, and report.html (this invocation's time)
    return result


def report(cfg: PipelineConfig, models: list[tuple[str, str]]) -> dict:
    """Every model on the same held-out problems; cached per model in <stage>/heldout.json."""
    out = Path(cfg.out_dir)
    rows = []
    for name, path in models:
        cache = stage_dir(cfg, name) / "heldout.json" if name in PIPELINE_STAGES else out / f"{name}-heldout.json"
        if cache.is_file():
            metrics = json.loads(cache.read_text())
        else:
            metrics = heldout_eval(path, cfg.model, cfg.task, cfg.eval, cfg.seed)
            cache.write_text(json.dumps(metrics, indent=2) + "\n")
        rows.append({"stage": name, "model": path, **metrics})
        print(f"[report] {name}: held-out accuracy {metrics['pass@1']:.3f}, format {metrics['format_rate']:.3f}", flush=True)
    result = {"task": cfg.task.name, "eval_problems": rows[0]["n"], "stages": rows}
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = ["| stage | held-out accuracy | format rate | mean response tokens | truncated |", "|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['pass@1']:.3f} | {r['format_rate']:.3f} | {r['mean_response_tokens']:.1f} | "
              f"{r['truncated_rate']:.3f} |" for r in rows]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result
