"""Held-out evaluation during and after training: `thinkrl eval`'s metrics on the task's eval problems.

`evaluate_heldout` runs inside a training loop (rl, sft) on the engine it already holds, logs
eval/* metrics (eval/n: the number of problems; each rate with its standard error and 95% interval
over problems, and the reflection/* metrics) with eight of its completions, question and reference
included (the run summary shows one of them before and after training), and writes
RUN/eval/step_NNNN.json in `thinkrl eval`'s format, per-problem outcomes included, so `thinkrl
compare RUN/eval/step_0000.json RUN/eval/step_0040.json` gives the run's gain with its paired
interval. `heldout_eval` loads a saved model and returns its metrics (distill, pipeline compare
models with it). Both sample with the recipe's `eval` section and seed.
"""

from __future__ import annotations

from pathlib import Path

from thinkrl.config import ModelConfig, RLEvalConfig
from thinkrl.engine import Engine
from thinkrl.dist import Group
from thinkrl.eval_results import describe_sampling, write_json
from thinkrl.evaluate import eval_metrics, load_engine, run_eval
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.base import Problem, Task
from thinkrl.train.logger import RunLogger


def _run(engine: Engine, task: Task, problems: list[Problem], task_cfg: TaskConfig, ev: RLEvalConfig, seed: int,
         tools=None, first_index: int = 0):
    """run_eval's (metrics, scored) with the task's template and shots and the eval section's sampling."""
    return run_eval(engine, task, problems, template=task_cfg.template, shots=task_cfg.shots, params=ev.sampling,
                    samples=ev.samples, batch_size=ev.batch_size, seed=seed, tools=tools, first_index=first_index,
                    reflection_phrases=ev.reflection_phrases)


def interval_keys(keys) -> tuple[str, ...]:
    """Each key followed by its _stderr, _ci_low and _ci_high."""
    return tuple(k + suffix for k in keys for suffix in ("", "_stderr", "_ci_low", "_ci_high"))


def results_file(out_dir: str | Path, step: int) -> Path:
    """Where a run's held-out evaluation at `step` is written: RUN/eval/step_NNNN.json."""
    return Path(out_dir) / "eval" / f"step_{step:04d}.json"


def evaluate_heldout(cfg, engine: Engine, task: Task, problems: list[Problem], step: int, logger: RunLogger,
                     tools=None, group: Group = Group()) -> dict:
    """eval/* metrics of the training model at `step`, logged with eight of its completions and written
    whole to RUN/eval/step_NNNN.json (results_file);
    `cfg` is a stage config with task, eval and seed (RLConfig, SFTConfig); `tools` as in its rollouts.
    Data-parallel (`group`): each rank evaluates its share of the problems; the results are gathered."""
    mine = group.share(len(problems))
    metrics, scored = _run(engine, task, problems[mine.start : mine.stop], cfg.task, cfg.eval, cfg.seed, tools,
                           mine.start)
    if group.active:
        scored = group.gather(scored)
        multi_turn = any(k.startswith("tools/") for k in metrics)  # tools or environments
        metrics = eval_metrics(scored, cfg.eval.samples, task, group.max(metrics["seconds"]), multi_turn,
                               cfg.eval.reflection_phrases)
    keys = interval_keys(("pass@1", f"maj@{cfg.eval.samples}", "format_rate"))
    keys += ("mean_response_tokens", "truncated_rate", "seconds")
    keys += tuple(k for k in metrics if k.startswith(("budget/", "tools/", "code/", "reflection/")))
    out = {f"eval/{k}": metrics[k] for k in keys}
    out["eval/n"] = metrics["n"]  # problems: the run summary's interval is over them (thinkrl.run_summary)
    logger.log(step, out)
    if group.main:
        header = {"model": cfg.model.name, "step": step, "task": cfg.task.name, "split": "eval",
                  "sampling": describe_sampling(cfg.eval.sampling)}
        path = results_file(cfg.out_dir, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, header, metrics, scored, [cfg.seed])
    logger.samples(step, [{"eval": True, "id": s.problem.id, "question": s.problem.question,
                           "reference": s.problem.answer, "answer": s.answer, "text": s.completion.text,
                           "correct": s.correct, "formatted": s.formatted} for s in scored[:8]])
    return out


def heldout_line(ev: dict) -> str:
    """The held-out accuracy with its 95% interval and the format rate, as a run prints them."""
    return (f"accuracy {ev['eval/pass@1']:.3f} (95% CI {ev['eval/pass@1_ci_low']:.3f}-{ev['eval/pass@1_ci_high']:.3f}), "
            f"format {ev['eval/format_rate']:.3f}")


def heldout_eval(model_name: str | Path, mc: ModelConfig, task_cfg: TaskConfig, ev: RLEvalConfig, seed: int) -> dict:
    """`thinkrl eval`'s metrics for one model on the task's held-out problems (ev.limit of them)."""
    task = get_task(task_cfg)
    problems = task.problems("eval")[: ev.limit or None]
    engine = load_engine(mc, ev.batch_size, name=str(model_name))
    metrics, _ = _run(engine, task, problems, task_cfg, ev, seed)
    return {k: metrics[k] for k in ("n", *interval_keys(("pass@1",)), "format_rate", "mean_response_tokens", "truncated_rate")}
