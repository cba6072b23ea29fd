"""`thinkrl distill`: a student learns from a teacher's correct reasoning traces (DeepSeek-R1 distillation).

Three steps, each an existing stage: rejection-sample the teacher (`thinkrl sample`: correct,
formatted, readable, deduplicated), SFT the student on those traces (`thinkrl sft`, optionally
with a token-level KL to the teacher when both share a tokenizer), and evaluate teacher, student
before and student after on the same held-out problems. The student can be made smaller than its
base by keeping `student_layers` evenly spaced decoder layers (`shrink`), the way a small model is
carved out of a larger one without a separate pretraining.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from thinkrl.config import DistillConfig, save as save_config
from thinkrl.errors import UserError
from thinkrl.model import keep_layers
from thinkrl.models import load_model, save_pretrained
from thinkrl.report import finish
from thinkrl.train.heldout import heldout_eval


def keep_indices(total: int, keep: int) -> list[int]:
    """`keep` evenly spaced layer indices of `total`, always the first and the last."""
    if not 1 <= keep <= total:
        raise UserError(f"student_layers must be between 1 and the model's {total} layers, got {keep}")
    if keep == 1:
        return [0]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def shrink(model, keep: int):
    """The model with only `keep` evenly spaced decoder layers, the first and the last among them (in place)."""
    return keep_layers(model, keep_indices(len(model.model.layers), keep))


def distill(cfg: DistillConfig) -> tuple[Path, dict]:
    """Run the three steps; returns (the student's final folder, the report)."""
    from thinkrl.train.sft import train as sft_train
    from thinkrl.train.sample import sample

    started = time.perf_counter()
    out = Path(cfg.out_dir)
    # checked before anything is written: an earlier run's data, student and report stay as they are
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"out_dir {out} already holds a run (distill does not resume): set out_dir elsewhere")
    if cfg.data and not Path(cfg.data).is_file():
        raise UserError(f"data {cfg.data} not found (key data)")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.toml")
    if cfg.data:
        data = Path(cfg.data)
    else:
        data, stats = sample(dataclasses.replace(cfg.sample, model=cfg.teacher, out=str(out / "teacher_data.jsonl")))
        print(f"teacher traces: kept {stats['kept']} of {stats['samples']} ({stats['verdicts']})", flush=True)

    student = cfg.student.name
    if cfg.student_layers:
        model, tok = load_model(student)
        before = len(model.model.layers)
        student = str(save_pretrained(shrink(model, cfg.student_layers), tok, out / "student_init"))
        print(f"student: {cfg.student_layers} of {before} layers of {cfg.student.name} -> {student}", flush=True)
    sft_cfg = dataclasses.replace(
        cfg.sft, model=dataclasses.replace(cfg.student, name=student), data=str(data), out_dir=str(out / "student"),
        teacher=cfg.teacher.name if cfg.sft.kl_coef else cfg.sft.teacher,
    )
    final = sft_train(sft_cfg)

    report = {"teacher": cfg.teacher.name, "student_init": student, "student_final": str(final), "data": str(data)}
    for name, path in (("teacher", cfg.teacher.name), ("student_before", student), ("student_after", final)):
        report[name + "_eval"] = heldout_eval(path, cfg.student, cfg.sample.task, cfg.eval, cfg.seed)
        print(f"{name}: held-out accuracy {report[name + '_eval']['pass@1']:.3f}", flush=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    finish(out, "distill", time.perf_counter() - started)  # the summary, and report.html
    return final, report
