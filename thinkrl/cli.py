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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from thinkrl import config as C
from thinkrl.errors import UserError


@dataclass
class Command:
    help: str
    config: type
    run: Callable  # (cfg, args) -> int
    flags: dict[str, tuple[str, type, str]]  # --flag -> (dotted key, type, help)
    default_recipe: str | None = None
    extra: Callable[[argparse.ArgumentParser], None] | None = None  # positional args beyond the recipe
    switches: dict[str, tuple[str, str]] | None = None  # --flag -> (boolean key set to true, help)


# ---------------------------------------------------------------- eval


def run_eval(cfg: C.EvalConfig, args) -> int:
    from tqdm import tqdm

    from thinkrl.evaluate import encode_problems, load_engine, run_eval as evaluate
    from thinkrl.tasks import get_task

    task = get_task(cfg.task)
    problems = task.problems(cfg.split)
    if cfg.limit:
        problems = problems[: cfg.limit]
    if not problems:
        raise UserError(f"task '{cfg.task.name}' split '{cfg.split}' has no problems")
    engine = load_engine(cfg.model, cfg.batch_size)  # a bad model fails here, before anything is written
    prompts = encode_problems(engine.tokenizer, task, problems, cfg.task.template, cfg.task.shots,
                              cfg.sampling.max_new_tokens, engine.context)  # so does a prompt too long for it
    out = Path(cfg.out) if cfg.out else Path("runs") / f"eval-{_slug(cfg.task.name)}-{time.strftime('%Y%m%d-%H%M%S')}" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    C.save(cfg, out.with_name(out.stem + ".config.toml"))
    bar = tqdm(total=len(problems) * cfg.samples, desc=f"eval {cfg.task.name}", unit="sample", dynamic_ncols=True)
    seen = {"n": 0, "correct": 0, "tokens": 0}

    def on_batch(batch):
        seen["n"] += len(batch)
        seen["correct"] += sum(s.correct for s in batch)
        seen["tokens"] += sum(len(s.completion.token_ids) for s in batch)
        bar.set_postfix(acc=f"{seen['correct'] / seen['n']:.3f}", tok=f"{seen['tokens'] / seen['n']:.0f}")
        bar.update(len(batch))

    metrics, scored = evaluate(
        engine, task, problems, template=cfg.task.template, shots=cfg.task.shots, params=cfg.sampling,
        samples=cfg.samples, batch_size=cfg.batch_size, seed=cfg.seed, on_batch=on_batch, prompts=prompts,
    )
    bar.close()
    result = {"model": cfg.model.name, "task": cfg.task.name, "split": cfg.split,
              "sampling": _describe_sampling(cfg.sampling), **metrics}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with open(out.with_name(out.stem + ".completions.jsonl"), "w", encoding="utf-8") as f:
        for s in scored:
            row = {"id": s.problem.id, "sample": s.completion.sample_index, "reference": s.problem.answer,
                   "extracted": s.answer, "correct": s.correct, "formatted": s.formatted,
                   "finish_reason": s.completion.finish_reason, "tokens": len(s.completion.token_ids), "text": s.completion.text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    _print_table(result)
    print(f"wrote {out}")
    return 0


def _describe_sampling(sp) -> str:
    """One line saying how completions were drawn, so a sampled figure is never read as greedy."""
    if sp.temperature == 0:
        how = "greedy"
    else:
        how = f"temperature {sp.temperature:g}, top-p {sp.top_p:g}" + (f", top-k {sp.top_k}" if sp.top_k else "")
        how += " (greedy: --set sampling.temperature=0)"
    return f"{how}, at most {sp.max_new_tokens} new tokens" + (f", stop {sp.stop}" if sp.stop else "")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(name.split(":", 1)[-1]).stem or name)


def _print_table(result: dict) -> None:
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


# ---------------------------------------------------------------- generate and chat


def _messages(cfg: C.GenerateConfig, history: list[dict]) -> list[dict]:
    from thinkrl.prompts import R1_ZERO_SYSTEM

    if cfg.template not in ("r1_zero", "raw"):
        raise UserError(f"template must be r1_zero or raw for generate/chat, got '{cfg.template}'")
    system = cfg.system or (R1_ZERO_SYSTEM if cfg.template == "r1_zero" else "")
    return ([{"role": "system", "content": system}] if system else []) + history


def _answer(engine, cfg: C.GenerateConfig, history: list[dict], seed: int):
    from thinkrl.evaluate import encode_prompt

    ids = encode_prompt(engine.tokenizer, _messages(cfg, history))
    return engine.generate([ids], cfg.sampling, n=1, seeds=[seed])[0]


def _show(completion) -> None:
    from thinkrl.prompts import split_response

    thinking, answer = split_response(completion.text)
    if answer is None:  # not in the <think>/<answer> format: show the whole response as the answer
        thinking, answer = None, completion.text.strip()
    if thinking:
        print(f"[thinking]\n{thinking}\n")
    print(f"[answer]\n{answer}")
    print(f"({len(completion.token_ids)} tokens, finished by {completion.finish_reason})", file=sys.stderr)


def run_generate(cfg: C.GenerateConfig, args) -> int:
    prompt = " ".join(args.prompt) if args.prompt else ""
    if prompt == "-" or (not prompt and not sys.stdin.isatty()):
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise UserError("generate needs a prompt: thinkrl generate \"What is 17 + 25?\" (or '-' to read stdin)")
    from thinkrl.evaluate import load_engine

    from thinkrl.prompts import BUDGET_INSTRUCTION

    if cfg.think_budget:  # the instruction an L1-trained model learned (task.think_budgets)
        prompt = f"{prompt.strip()}\n{BUDGET_INSTRUCTION.format(n=cfg.think_budget)}"
    engine = load_engine(cfg.model, 1)
    _show(_answer(engine, cfg, [{"role": "user", "content": prompt.strip()}], cfg.seed))
    return 0


def run_chat(cfg: C.GenerateConfig, args) -> int:
    from thinkrl.evaluate import load_engine

    engine = load_engine(cfg.model, 1)
    history: list[dict] = []
    print(f"thinkrl chat with {cfg.model.name}. /reset clears the conversation, /quit (or Ctrl-D) leaves.")
    turn = 0
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print()
            return 0
        if line.strip() in ("/quit", "/exit"):
            return 0
        if line.strip() == "/reset":
            history = []
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line.strip()})
        completion = _answer(engine, cfg, history, cfg.seed + turn)
        _show(completion)
        from thinkrl.prompts import split_response

        # keep only the answer in the history, as R1 does across turns: earlier thinking is not fed back
        answer = split_response(completion.text)[1]
        history.append({"role": "assistant", "content": answer if answer is not None else completion.text.strip()})
        turn += 1


def run_rl(cfg: C.RLConfig, args) -> int:
    from thinkrl.train.rl import train

    final = train(cfg)
    print(f"final model: {final}")
    return 0


def run_sft(cfg: C.SFTConfig, args) -> int:
    from thinkrl.train.sft import train

    final = train(cfg)
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
            "--model": ("model.name", str, "local HF folder or embedded name"),
            "--task": ("task.name", str, "gsm8k | aime2025 | arithmetic | countdown | jsonl:PATH"),
            "--steps": ("steps", int, "RL steps"),
            "--out-dir": ("out_dir", str, "where the run writes everything"),
        },
        default_recipe="recipes/r1_zero.toml",
        switches={"--resume": ("resume", "continue from the newest checkpoint in out_dir")},
    ),
    "sft": Command(
        help="supervised fine-tuning on chat JSONL (cold start, rejection-sampled data), loss on assistant tokens",
        config=C.SFTConfig,
        run=run_sft,
        flags={
            "--model": ("model.name", str, "local HF folder or embedded name"),
            "--data": ("data", str, "chat JSONL, one {\"messages\": [...]} per line"),
            "--epochs": ("epochs", int, "passes over the data"),
            "--out-dir": ("out_dir", str, "where the run writes everything"),
        },
        switches={"--resume": ("resume", "continue from the newest checkpoint in out_dir")},
    ),
    "sample": Command(
        help="k completions per prompt, keep the correct/formatted/readable ones as SFT data (cold start, rejection sampling)",
        config=C.SampleConfig,
        run=run_sample,
        flags={
            "--model": ("model.name", str, "the model to sample (base, teacher or RL checkpoint)"),
            "--task": ("task.name", str, "gsm8k | arithmetic | countdown | jsonl:PATH"),
            "--limit": ("limit", int, "first N prompts of the split"),
            "--samples": ("samples", int, "completions per prompt (k)"),
            "--out": ("out", str, "chat JSONL to write"),
        },
    ),
    "rm": Command(
        help="train a scalar reward model on preference pairs (Bradley-Terry); held-out pairwise accuracy",
        config=C.RMConfig,
        run=run_rm,
        flags={
            "--model": ("model.name", str, "the causal LM it starts from (local HF folder or embedded name)"),
            "--data": ("data", str, "preference JSONL: {\"prompt\", \"chosen\", \"rejected\"} per line"),
            "--epochs": ("epochs", int, "passes over the pairs"),
            "--out-dir": ("out_dir", str, "where the run writes everything"),
        },
        switches={"--resume": ("resume", "continue from the newest checkpoint in out_dir")},
    ),
    "dpo": Command(
        help="direct preference optimisation on chosen/rejected pairs (e.g. shortest correct vs longer: long2short)",
        config=C.DPOConfig,
        run=run_dpo,
        flags={
            "--model": ("model.name", str, "the starting model (also the reference)"),
            "--data": ("data", str, "preference JSONL (thinkrl rm's format)"),
            "--out-dir": ("out_dir", str, "where the run writes everything"),
        },
    ),
    "merge": Command(
        help="weighted average of checkpoints of one architecture (long2short by merging)",
        config=C.MergeConfig,
        run=run_merge,
        flags={
            "--models": ("models", str, "comma-separated model folders"),
            "--weights": ("weights", str, "comma-separated weights summing to 1 (default: equal)"),
            "--out": ("out", str, "folder to write"),
        },
    ),
    "distill": Command(
        help="distillation: rejection-sample a teacher's correct traces, SFT a (smaller) student on them",
        config=C.DistillConfig,
        run=run_distill,
        flags={
            "--teacher": ("teacher.name", str, "the teacher model (e.g. an RL checkpoint)"),
            "--student": ("student.name", str, "the student's base model"),
            "--student-layers": ("student_layers", int, "keep this many decoder layers of the student"),
            "--out-dir": ("out_dir", str, "where the run writes everything"),
        },
    ),
    "pipeline": Command(
        help="the DeepSeek-R1 recipe: cold start -> reasoning RL -> rejection sampling + SFT -> RL for all scenarios",
        config=C.PipelineConfig,
        run=run_pipeline,
        flags={
            "--model": ("model.name", str, "the base model"),
            "--out-dir": ("out_dir", str, "where the pipeline writes every stage"),
        },
        default_recipe="recipes/r1.toml",
        switches={"--resume": ("resume", "skip finished stages, resume the interrupted one")},
    ),
    "eval": Command(
        help="evaluate a model on a task: pass@k, maj@k, format rate, lengths",
        config=C.EvalConfig,
        run=run_eval,
        flags={
            "--model": ("model.name", str, "local HF folder or embedded name (smollm2-135m-instruct)"),
            "--task": ("task.name", str, "gsm8k | aime2025 | arithmetic | countdown | jsonl:PATH"),
            "--limit": ("limit", int, "first N problems of the split"),
            "--samples": ("samples", int, "completions per problem (K)"),
            "--out": ("out", str, "results JSON path"),
            "--seed": ("seed", int, "request seed base"),
            "--think-budgets": ("task.think_budgets", str, "L1 budgets, e.g. 16,32,64: every problem at each, "
                                "accuracy and length reported per budget"),
        },
    ),
    "generate": Command(
        help="answer one prompt, showing thinking and answer apart",
        config=C.GenerateConfig,
        run=run_generate,
        flags={
            "--model": ("model.name", str, "local HF folder or embedded name"),
            "--temperature": ("sampling.temperature", float, "0 = greedy"),
            "--max-new-tokens": ("sampling.max_new_tokens", int, "token budget of the answer"),
            "--seed": ("seed", int, "sampling seed"),
            "--think-budget": ("think_budget", int, "ask an L1-trained model to think for N tokens"),
        },
        extra=lambda p: p.add_argument("prompt", nargs="*", help="the prompt ('-' or none reads stdin)"),
    ),
    "bench": Command(
        help="speed of a GRPO step (rollout tokens/s, update tokens/s, MFU, peak memory) or of decoding, "
             "on the TRL anchor's settings; --vs-trl runs TRL's GRPOTrainer beside it",
        config=C.BenchConfig,
        run=run_bench,
        flags={
            "--mode": ("mode", str, "train (GRPO steps) | decode (generation only)"),
            "--shape": ("shape", str, "auto | qwen2.5-0.5b (CUDA default) | small (CPU default) | tiny"),
            "--batch": ("batch", int, "decode mode: rows decoded together (64, 256)"),
            "--device": ("device", str, "auto | cpu | cuda | cuda:N"),
            "--steps": ("steps", int, "timed steps (runs in decode mode)"),
            "--warmup": ("warmup", int, "untimed steps first"),
            "--peak-tflops": ("peak_tflops", float, "MFU denominator (default: by GPU name; none on CPU)"),
            "--out": ("out", str, "JSON results file"),
        },
        switches={"--vs-trl": ("vs_trl", "also run TRL's GRPOTrainer on the same configuration and print the ratios")},
    ),
    "chat": Command(
        help="interactive chat (the same settings as generate)",
        config=C.GenerateConfig,
        run=run_chat,
        flags={
            "--model": ("model.name", str, "local HF folder or embedded name"),
            "--temperature": ("sampling.temperature", float, "0 = greedy"),
            "--max-new-tokens": ("sampling.max_new_tokens", int, "token budget of each answer"),
        },
    ),
}


def _find_default_recipe(name: str) -> str:
    """A default recipe from the working directory, else from the project folder beside the package
    (so `thinkrl rl` works from anywhere in a source checkout); load() reports it if neither has it."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / name).is_file():
            return str(base / name)
    return name


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="thinkrl", description="RL from verifiable rewards for reasoning LMs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        p.add_argument("--recipe", "-r", default=cmd.default_recipe, help="TOML recipe (defaults, then this, then --set)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key, e.g. --set sampling.temperature=0.7 (repeatable)")
        p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
        for flag, (key, tp, text) in cmd.flags.items():
            p.add_argument(flag, dest="flag_" + key.replace(".", "__"), type=str, default=None, help=f"{text} (= --set {key}=...)")
        for flag, (key, text) in (cmd.switches or {}).items():
            p.add_argument(flag, dest="switch_" + key.replace(".", "__"), action="store_true", help=f"{text} (= --set {key}=true)")
        if cmd.extra:
            cmd.extra(p)
        else:
            p.add_argument("recipe_arg", nargs="?", default=None, metavar="RECIPE", help="TOML recipe (same as --recipe)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        return _unknown_flags(args.command, unknown)
    cmd = COMMANDS[args.command]
    try:
        overrides = list(args.overrides)
        for key, value in vars(args).items():
            if key.startswith("flag_") and value is not None:
                overrides.append(f"{key[5:].replace('__', '.')}={value}")
            if key.startswith("switch_") and value:
                overrides.append(f"{key[7:].replace('__', '.')}=true")
        recipe = getattr(args, "recipe_arg", None) or args.recipe
        if recipe and recipe == cmd.default_recipe:
            recipe = _find_default_recipe(recipe)
        cfg = C.load(cmd.config, recipe, overrides)
        if args.print_config:
            print(C.to_toml(cfg), end="")
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
