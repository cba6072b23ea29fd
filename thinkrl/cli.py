"""`thinkrl` command line: one subcommand per entry point.

Every subcommand takes an optional recipe (TOML) and any number of `--set key=value` overrides;
its convenience flags (`--model`, `--task`, ...) are shorthands for `--set` keys. Adding a
subcommand is one entry in COMMANDS: its config class, its shorthand flags and its run function.
A UserError anywhere prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, get_args, get_origin, get_type_hints

from thinkrl import config as C
from thinkrl.chat import run_chat, run_generate
from thinkrl.compare import run as run_compare
from thinkrl.eval_results import run_command as run_eval
from thinkrl.dist.launch import DISTRIBUTED, data_parallel, is_main_process
from thinkrl.config.loader import load, to_toml
from thinkrl.errors import UserError


@dataclass
class Command:
    help: str
    config: type
    run: Callable  # (cfg, args) -> int
    flags: dict[str, tuple[str, str]]  # --flag -> (dotted key, help); the key's field type converts the value
    default_recipe: str | None = None
    extra: Callable[[argparse.ArgumentParser], None] | None = None  # positional args beyond the recipe
    switches: dict[str, tuple[str, str]] | None = None  # --flag -> (boolean key set to true, help)


def run_rl(cfg: C.RLConfig, args) -> int:
    from thinkrl.train.rl import train

    final = train(cfg)
    if is_main_process():
        print(f"final model: {final}")
    return 0


def run_sft(cfg: C.SFTConfig, args) -> int:
    from thinkrl.train.sft import train

    final = train(cfg)
    if is_main_process():
        print(f"final model: {final}")
    return 0


def run_sample(cfg: C.SampleConfig, args) -> int:
    from tqdm import tqdm

    from thinkrl.train.sample import sample

    bars = []  # the bar appears with the first batch: bad input before it leaves stderr to the error alone

    def on_batch(batch):
        if not bars:
            bars.append(tqdm(total=(cfg.limit or None) and cfg.limit * cfg.samples, desc="sample", unit="sample", dynamic_ncols=True))
        bars[0].update(len(batch))

    path, stats = sample(cfg, on_batch=on_batch)
    for bar in bars:
        bar.close()
    print(json.dumps({k: stats[k] for k in ("prompts", "samples", "kept", "verdicts", "kept_tokens")}))
    print(f"wrote {path}")
    return 0


def run_rm(cfg: C.RMConfig, args) -> int:
    from thinkrl.train.rm import train

    final = train(cfg)
    print(f"final reward model: {final} (name it in an RL recipe: [rewards] reward_model = \"{final}\")")
    return 0


def run_distill(cfg: C.DistillConfig, args) -> int:
    from thinkrl.train.distill import distill

    final, report = distill(cfg)
    print(json.dumps({k: v for k, v in report.items() if k.endswith("_eval")}, indent=2))
    print(f"student: {final}")
    return 0


def run_pipeline(cfg: C.PipelineConfig, args) -> int:
    from thinkrl.train.pipeline import run

    run(cfg)
    print((Path(cfg.out_dir) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {Path(cfg.out_dir) / 'report.json'}")
    return 0


def run_dpo(cfg: C.DPOConfig, args) -> int:
    from thinkrl.train.dpo import train

    final = train(cfg)
    print(f"final model: {final}")
    return 0


def run_merge(cfg: C.MergeConfig, args) -> int:
    from thinkrl.train.merge import merge

    print(f"merged model: {merge(cfg)}")
    return 0


def run_report(cfg: C.ReportConfig, args) -> int:
    from thinkrl.report import finish

    return finish(Path(args.run_dir), cfg.stage or None) and 0


def run_bench(cfg: C.BenchConfig, args) -> int:
    from thinkrl.bench import run

    result = run(cfg)
    return 1 if "error" in result.get("trl", {}) else 0


COMMANDS: dict[str, Command] = {
    "rl": Command(
        help="R1-Zero reinforcement learning with the GRPO family and rule-based rewards",
        config=C.RLConfig,
        run=run_rl,
        flags={
            "--model": ("model.name", "local HF folder or embedded name"),
            "--task": ("task.name", "gsm8k | aime2025 | arithmetic | countdown | code | humaneval | jsonl:PATH"),
            "--steps": ("steps", "RL steps"),
            "--out-dir": ("out_dir", "where the run writes everything"),
        },
        default_recipe="r1_zero",
        switches={"--resume": ("resume", "continue from the newest checkpoint in out_dir")},
    ),
    "sft": Command(
        help="supervised fine-tuning on chat JSONL (cold start, rejection-sampled data), loss on assistant tokens",
        config=C.SFTConfig,
        run=run_sft,
        flags={
            "--model": ("model.name", "local HF folder or embedded name"),
            "--data": ("data", "chat JSONL, one {\"messages\": [...]} per line"),
            "--epochs": ("epochs", "passes over the data"),
            "--out-dir": ("out_dir", "where the run writes everything"),
        },
        switches={"--resume": ("resume", "continue from the newest checkpoint in out_dir")},
    ),
    "sample": Command(
        help="k completions per prompt, keep the correct/formatted/readable ones as SFT data (cold start, rejection sampling)",
        config=C.SampleConfig,
        run=run_sample,
        flags={
            "--model": ("model.name", "the model to sample (base, teacher or RL checkpoint)"),
            "--task": ("task.name", "gsm8k | arithmetic | countdown | jsonl:PATH"),
            "--limit": ("limit", "first N prompts of the split"),
            "--samples": ("samples", "completions per prompt (k)"),
            "--out": ("out", "chat JSONL to write"),
        },
    ),
    "rm": Command(
        help="train a scalar reward model on preference pairs (Bradley-Terry); held-out pairwise accuracy",
        config=C.RMConfig,
        run=run_rm,
        flags={
            "--model": ("model.name", "the causal LM it starts from (local HF folder or embedded name)"),
            "--data": ("data", "preference JSONL: {\"prompt\", \"chosen\", \"rejected\"} per line"),
            "--epochs": ("epochs", "passes over the pairs"),
            "--out-dir": ("out_dir", "where the run writes everything"),
        },
        switches={"--resume": ("resume", "continue from the newest checkpoint in out_dir")},
    ),
    "dpo": Command(
        help="direct preference optimisation on chosen/rejected pairs (e.g. shortest correct vs longer: long2short)",
        config=C.DPOConfig,
        run=run_dpo,
        flags={
            "--model": ("model.name", "the starting model (also the reference)"),
            "--data": ("data", "preference JSONL (thinkrl rm's format)"),
            "--out-dir": ("out_dir", "where the run writes everything"),
        },
    ),
    "merge": Command(
        help="weighted average of checkpoints of one architecture (long2short by merging)",
        config=C.MergeConfig,
        run=run_merge,
        flags={
            "--models": ("models", "comma-separated model folders"),
            "--weights": ("weights", "comma-separated weights summing to 1 (default: equal)"),
            "--out": ("out", "folder to write"),
        },
    ),
    "distill": Command(
        help="distillation: rejection-sample a teacher's correct traces, SFT a (smaller) student on them",
        config=C.DistillConfig,
        run=run_distill,
        flags={
            "--teacher": ("teacher.name", "the teacher model (e.g. an RL checkpoint)"),
            "--student": ("student.name", "the student's base model"),
            "--student-layers": ("student_layers", "keep this many decoder layers of the student"),
            "--out-dir": ("out_dir", "where the run writes everything"),
        },
    ),
    "pipeline": Command(
        help="the DeepSeek-R1 recipe: cold start -> reasoning RL -> rejection sampling + SFT -> RL for all scenarios",
        config=C.PipelineConfig,
        run=run_pipeline,
        flags={
            "--model": ("model.name", "the base model"),
            "--out-dir": ("out_dir", "where the pipeline writes every stage"),
        },
        default_recipe="r1",
        switches={"--resume": ("resume", "skip finished stages, resume the interrupted one")},
    ),
    "eval": Command(
        help="evaluate a model on a task: pass@k, maj@k, format rate, lengths",
        config=C.EvalConfig,
        run=run_eval,
        flags={
            "--model": ("model.name", "local HF folder or embedded name (smollm2-135m-instruct); a trained "
                        "folder's thinkrl_prompt.json sets the task, prompt and sampling (--set prompt_setup=none ignores it)"),
            "--task": ("task.name", "gsm8k | aime2025 | arithmetic | countdown | knights_knaves | code | humaneval | jsonl:PATH"),
            "--limit": ("limit", "first N problems of the split"),
            "--samples": ("samples", "completions per problem (K)"),
            "--out": ("out", "results JSON path"),
            "--seed": ("seed", "request seed base"),
            "--seeds": ("seeds", "sampling seeds (seed, seed + 1, ...): mean, spread and per-seed values of each rate"),
            "--think-budgets": ("task.think_budgets", "L1 budgets, e.g. 16,32,64: every problem at each, "
                                "accuracy and length reported per budget"),
        },
    ),
    "compare": Command(
        help="paired difference of two eval results on the same problems: bootstrap interval, McNemar's test",
        config=C.CompareConfig, run=run_compare,
        flags={"--resamples": ("resamples", "paired bootstrap resamples"), "--seed": ("seed", "bootstrap seed"),
               "--out": ("out", "also write the comparison as JSON")},
        extra=lambda p: p.add_argument("results", nargs=2, metavar="RESULTS.json", help="A, then B (thinkrl eval's JSON)"),
    ),
    "generate": Command(
        help="answer one prompt, showing thinking and answer apart",
        config=C.GenerateConfig,
        run=run_generate,
        flags={
            "--model": ("model.name", "local HF folder or embedded name; a trained folder's thinkrl_prompt.json "
                        "sets the prompt and sampling (--set prompt_setup=none ignores it)"),
            "--temperature": ("sampling.temperature", "0 = greedy"),
            "--max-new-tokens": ("sampling.max_new_tokens", "token budget of the answer"),
            "--shots": ("shots", "worked example turns before the prompt, from the model's thinkrl_prompt.json"),
            "--seed": ("seed", "sampling seed"),
            "--think-budget": ("think_budget", "ask an L1-trained model to think for N tokens"),
        },
        extra=lambda p: p.add_argument("prompt", nargs="*", help="the prompt ('-' or none reads stdin)"),
    ),
    "report": Command("(re)build a finished run's summary and report.html from its files", C.ReportConfig, run_report,
                      {"--stage": ("stage", "rl | sft | rm | dpo | distill | pipeline (default: as the run recorded it)")},
                      extra=lambda p: p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")),
    "bench": Command(
        help="speed of a GRPO step (rollout tokens/s, update tokens/s, MFU, peak memory) or of decoding, "
             "on the TRL anchor's settings; --vs-trl runs TRL's GRPOTrainer beside it",
        config=C.BenchConfig,
        run=run_bench,
        flags={
            "--mode": ("mode", "train (GRPO steps) | decode (generation only) | profile (one step's top kernels)"),
            "--shape": ("shape", "auto | qwen2.5-0.5b (CUDA default) | small (CPU default) | tiny"),
            "--batch": ("batch", "decode mode: rows decoded together (64, 256)"),
            "--device": ("device", "auto | cpu | cuda | cuda:N"),
            "--steps": ("steps", "timed steps (runs in decode mode)"),
            "--warmup": ("warmup", "untimed steps first"),
            "--peak-tflops": ("peak_tflops", "MFU denominator (default: by GPU name; none on CPU)"),
            "--out": ("out", "JSON results file"),
        },
        switches={"--vs-trl": ("vs_trl", "also run TRL's GRPOTrainer on the same configuration and print the ratios")},
    ),
    "chat": Command(
        help="interactive chat (the same settings as generate)",
        config=C.GenerateConfig,
        run=run_chat,
        flags={
            "--model": ("model.name", "local HF folder or embedded name; a trained folder's thinkrl_prompt.json "
                        "sets the prompt and sampling (--set prompt_setup=none ignores it)"),
            "--temperature": ("sampling.temperature", "0 = greedy"),
            "--max-new-tokens": ("sampling.max_new_tokens", "token budget of each answer"),
            "--shots": ("shots", "worked example turns before the conversation, from the model's thinkrl_prompt.json"),
        },
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (a flag without its value, say) as one line, like every other bad input:
    `thinkrl <cmd>: error: ...` and exit code 2, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _unknown_flags(command: str, unknown: list[str]) -> int:
    """Arguments no option of `command` takes: one line naming them, with the closest flag."""
    cmd = COMMANDS[command]
    flags = ["--recipe", "--set", "--print-config", *cmd.flags, *(cmd.switches or {})]
    first = next((a.split("=", 1)[0] for a in unknown if a.startswith("--")), "")
    close = difflib.get_close_matches(first, flags, n=1) if first else []
    hint = f"; did you mean {close[0]}?" if close else f" (see thinkrl {command} --help)"
    print(f"thinkrl {command}: error: unrecognized arguments: {' '.join(unknown)}{hint}", file=sys.stderr)
    return 2


def metavar(config: type, key: str) -> str:
    """A flag's placeholder in --help: MODEL, TASK, DIR, PATH, N or X for a number, else the key's
    name; a list reads N,N,... (X,X,... for numbers, MODEL,MODEL,... for models)."""
    name = key.rsplit(".", 1)[-1]
    if name == "name":  # task.name -> TASK; model.name, teacher.name, student.name -> MODEL
        return "TASK" if key.startswith("task.") else "MODEL"
    if name.endswith("dir"):
        return "DIR"
    for part in key.split(".")[:-1]:  # the field's type decides the rest
        config = get_type_hints(config)[part]
    kind = get_type_hints(config).get(name)
    item = getattr(config, "LIST_STRINGS", {}).get(name) or (get_args(kind)[0] if get_origin(kind) is list else None)
    if item is not None:  # a comma-separated list: models = a,b; weights = 0.5,0.5; think_budgets = 16,32
        one = {int: "N", float: "X"}.get(item, "MODEL" if name == "models" else "NAME")
        return f"{one},{one},..."
    return {int: "N", float: "X"}.get(kind, "PATH" if name in ("data", "out", "teacher", "student") else name.upper())


def build_parser() -> argparse.ArgumentParser:
    from thinkrl import __version__

    parser = _Parser(prog="thinkrl", description="RL from verifiable rewards for reasoning LMs",
                     epilog="thinkrl COMMAND --help lists a command's options. First steps: thinkrl rl (the default "
                            "recipe, R1-Zero on the embedded model), then thinkrl generate --model runs/r1_zero/final "
                            "\"What is 47 * 8?\"")
    parser.add_argument("--version", action="version", version=f"thinkrl {__version__}", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        p.add_argument("--recipe", "-r", default=cmd.default_recipe,
                       help="TOML recipe: a path, or a packaged recipe's name such as r1_zero (defaults, then this, then --set)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key, e.g. --set sampling.temperature=0.7 (repeatable)")
        p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
        for flag, (key, text) in cmd.flags.items():
            p.add_argument(flag, dest="flag_" + key.replace(".", "__"), type=str, default=None,
                           metavar=metavar(cmd.config, key), help=f"{text} (= --set {key}=...)")
        for flag, (key, text) in (cmd.switches or {}).items():
            p.add_argument(flag, dest="switch_" + key.replace(".", "__"), action="store_true", help=f"{text} (= --set {key}=true)")
        if name in DISTRIBUTED:
            p.add_argument("--nproc", type=int, default=0, metavar="N", help="data-parallel processes on this machine "
                           "(= torchrun --nproc-per-node N -m thinkrl ...)")
        if cmd.extra:
            cmd.extra(p)
        else:
            p.add_argument("recipe_arg", nargs="?", default=None, metavar="RECIPE",
                           help="TOML recipe: a path or a packaged name (same as --recipe)")
    return parser


def resolve(command: str, recipe: str | None, overrides: list[str], show: Callable[[str], None] | None = None):
    """A command's config: defaults <- recipe <- --set; for generate, chat and eval, the model
    folder's prompt set-up (thinkrl_prompt.json, thinkrl.prompt_setup) in place of the defaults,
    announced through `show`."""
    cmd = COMMANDS[command]
    cfg = load(cmd.config, recipe, overrides)
    if hasattr(cfg, "prompt_setup"):
        from thinkrl import prompt_setup

        cfg = prompt_setup.apply(cmd.config, cfg, recipe, overrides, command, show)
    return cfg


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        return _unknown_flags(args.command, unknown)
    cmd = COMMANDS[args.command]
    launch = data_parallel(args.command, getattr(args, "nproc", 0), sys.argv[1:] if argv is None else argv)
    if launch is not None:  # relaunched under torchrun (its exit status), or a stage that cannot be (2)
        return launch
    try:
        overrides = list(args.overrides)
        for key, value in vars(args).items():
            if key.startswith("flag_") and value is not None:
                overrides.append(f"{key[5:].replace('__', '.')}={value}")
            if key.startswith("switch_") and value:
                overrides.append(f"{key[7:].replace('__', '.')}=true")
        recipe = getattr(args, "recipe_arg", None) or args.recipe
        announce = lambda line: is_main_process() and print(line, file=sys.stderr)  # noqa: E731 (the prompt set-up used)
        cfg = resolve(args.command, recipe, overrides, show=announce)
        if args.print_config:
            print(to_toml(cfg), end="")
            return 0
        return cmd.run(cfg, args)
    except UserError as e:
        print(f"thinkrl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
