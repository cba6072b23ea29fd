"""The task registry: `TaskConfig` (the `[task]` table of a recipe) and `get_task(cfg) -> Task`.

Task names: `gsm8k`, `aime2025`, `arithmetic`, `countdown`, `lookup`, `guess` (a conversation:
thinkrl/tasks/guess.py), `knights_knaves` (logic puzzles), `code` and `humaneval` (code run in
the sandbox against tests: thinkrl/tasks/code.py), `jsonl:PATH`, and `mix:A+B+...` of
those (thinkrl/tasks/mix.py: one RL batch of reasoning and general prompts). Every field has a
default and a simple type (str, int, float, bool) because recipes set them from TOML and
`--set task.x=...` strings are converted by the field's type. Knobs of a task that is not selected
are ignored, but still validated, so a typo'd value fails early wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar

from thinkrl.errors import UserError
from thinkrl.tasks.arithmetic import SOLUTION_STYLES, style_cycle
from thinkrl.tasks.base import SPLITS, Problem, Task, check_split
from thinkrl.tasks.budget import Budgeted, parse_budgets
from thinkrl.tasks.lookup import PASSAGE_STYLES, parse_hops

NAMES = ("gsm8k", "aime2025", "arithmetic", "countdown", "lookup", "guess", "knights_knaves", "code", "humaneval",
         "jsonl:PATH", "mix:A+B")
ARITHMETIC_OPS = "+-*"

__all__ = ["NAMES", "SPLITS", "Problem", "Task", "TaskConfig", "check_split", "get_task"]


@dataclass
class TaskConfig:
    """Which task to train/evaluate on, how prompts look, and the knobs of each task."""

    # list values kept as comma strings here; recipes write TOML lists (thinkrl.config.loader)
    LIST_STRINGS: ClassVar[dict[str, type]] = {"digits": int, "mix_weights": float, "rewards": str, "think_budgets": int, "hops": int}

    name: str = "gsm8k"  # gsm8k | aime2025 | arithmetic | countdown | lookup | guess | knights_knaves | code | humaneval | jsonl:PATH | mix:A+B (e.g. mix:arithmetic+jsonl:PATH)
    template: str = "r1_zero"  # prompt template: r1_zero | boxed | raw (see thinkrl.prompts)
    shots: int = 0  # worked examples (from the train side) put before the question
    seed: int = 0  # seeds generated tasks (arithmetic, countdown, lookup) and the jsonl train/eval split
    # gsm8k
    eval_size: int = 319  # gsm8k: held-out eval problems (at most 319; train is always 1,000)
    # generated tasks (arithmetic, countdown, lookup, code)
    num_train: int = 10_000  # train problems to generate (fewer if the problem space is small)
    num_eval: int = 500  # eval problems to generate (fewer if the problem space is small)
    # arithmetic
    operands: int = 2  # numbers per question
    min_digits: int = 1  # fewest digits per number
    max_digits: int = 3  # most digits per number
    digits: str = ""  # exact digits per operand, e.g. "2,1" for 54 * 8; overrides operands/min/max_digits
    ops: str = "+-*"  # operators to draw from, a subset of "+-*"
    solution_style: str = "worked"  # written solutions and examples: worked | short | checked | python (a tool call) | mixed | e.g. "checked:6,worked:3,short:1"
    # countdown
    numbers: int = 3  # how many numbers each puzzle gives
    max_number: int = 100  # numbers are drawn from 1..max_number
    target_max: int = 1000  # targets are integers in 1..target_max
    # guess (a conversation; its secret is drawn from 1..max_number)
    max_guesses: int = 7  # model turns a game may take
    # lookup (its corpus: Lookup.corpus_path(), for [tools] search.corpus = "task")
    lookup_entities: int = 1000  # people in the generated world (organisations and cities: a tenth each)
    hops: str = "1,2"  # lookup questions to ask: 1 (single-hop), 2 (two-hop through a bridge entity), or both
    lookup_passages: str = "cards"  # lookup corpus: cards (one passage per entity) | facts (one per fact, worded like its question)
    # knights_knaves (thinkrl/tasks/knights_knaves.py)
    people: int = 2  # inhabitants per puzzle, 2 to 8 (all-correct chance level: 1 / 2^people)
    statement_kinds: str = "is,both,either,same,diff,if"  # what inhabitants may say (the module docstring shows each)
    knights_worked: str = "check"  # example turns' thinking: check (each statement against the solution) | derive (roles pinned one statement at a time)
    # code tasks (code, humaneval): each completion's code and tests run as one sandbox execution
    code_timeout: float = 5.0  # seconds (wall and CPU) one execution may take before it is a timeout
    code_workers: int = 4  # sandbox executions run at once
    # jsonl:PATH
    prompt_field: str = "question"  # JSON key holding the question text
    answer_field: str = "answer"  # JSON key holding the reference answer (string, number, or a list of accepted aliases)
    answer_type: str = "math"  # how answers are judged: math (equivalence) | text (normalised exact match: case, punctuation, articles)
    eval_fraction: float = 0.1  # share of the file held out as eval (seeded shuffle; 0..1)
    # which rewards apply, and mixes
    rewards: str = ""  # reward names for problems whose data lists none, e.g. "accuracy,format"; "" = all rewards
    mix_weights: str = ""  # mix:A+B: share of train prompts per part, e.g. "3,1"; "" = in proportion to part sizes
    # L1 thinking budgets: "16,32,64" asks each prompt to "Think for N tokens." (thinkrl.tasks.budget)
    think_budgets: str = ""  # train: one budget per problem; eval: every problem at every budget

    def __post_init__(self) -> None:
        _check_types(self)
        _check_values(self)


def _check_types(cfg: TaskConfig) -> None:
    """Each field holds its default's type (an int is fine for a float; a bool is not an int)."""
    for f in fields(cfg):
        value, want = getattr(cfg, f.name), type(f.default)
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise UserError(f"task.{f.name} must be {want.__name__}, got {value!r} ({type(value).__name__})")


def _fail(key: str, value: object, what: str) -> None:
    raise UserError(f"task.{key} = {value!r}: {what}")


def _check_values(cfg: TaskConfig) -> None:
    """Ranges and choices, each error naming its key and what to do."""
    from thinkrl.prompts import TEMPLATES  # noqa: PLC0415 - prompts imports tasks.base: no cycle at call time
    from thinkrl.tasks.jsonl import ANSWER_TYPES  # noqa: PLC0415 - load on use

    for part in mix_parts(cfg.name) if cfg.name.startswith("mix:") else [cfg.name]:
        if part not in NAMES[:-2] and not (part.startswith("jsonl:") and part[6:].strip()):
            _fail("name", cfg.name, f"unknown task{f' {part!r} in the mix' if part != cfg.name else ''}; choose one of {', '.join(NAMES)}")
    if cfg.name.startswith("mix:"):
        parts = mix_parts(cfg.name)
        if len(set(parts)) != len(parts):
            _fail("name", cfg.name, "names a task twice; each part of a mix once")
        if cfg.mix_weights and len(_weights(cfg.mix_weights) or []) != len(parts):
            _fail("mix_weights", cfg.mix_weights, f"must be {len(parts)} non-negative numbers, one per part of {cfg.name}, not all 0")
    if cfg.mix_weights and _weights(cfg.mix_weights) is None:
        _fail("mix_weights", cfg.mix_weights, "must be comma-separated non-negative numbers, not all 0, e.g. '3,1'")
    if cfg.think_budgets and parse_budgets(cfg.think_budgets) is None:
        _fail("think_budgets", cfg.think_budgets, "must be comma-separated positive token counts, e.g. '16,32,64'")
    if cfg.rewards and not all(n.strip() for n in cfg.rewards.split(",")):
        _fail("rewards", cfg.rewards, "must be comma-separated reward names, e.g. 'accuracy,format' (empty = all)")
    if style_cycle(cfg.solution_style) is None:
        _fail("solution_style", cfg.solution_style, f"choose one of {', '.join(SOLUTION_STYLES)}, or weights like 'checked:6,worked:3,short:1'")
    if cfg.template not in TEMPLATES:
        _fail("template", cfg.template, f"unknown template; choose one of {', '.join(TEMPLATES)}")
    checks = [
        ("shots", cfg.shots >= 0, "must be 0 or more"),
        ("eval_size", 1 <= cfg.eval_size <= 319, "must be between 1 and 319 (gsm8k holds out 319)"),
        ("num_train", cfg.num_train >= 0, "must be 0 or more"),
        ("num_eval", cfg.num_eval >= 1, "must be 1 or more"),
        ("operands", 2 <= cfg.operands <= 10, "must be between 2 and 10"),
        ("min_digits", 1 <= cfg.min_digits <= 18, "must be between 1 and 18"),
        ("max_digits", cfg.min_digits <= cfg.max_digits <= 18, "must be between task.min_digits and 18"),
        ("digits", _valid_digits(cfg.digits), "must be empty or comma-separated digit counts (1-18), one per operand, e.g. '2,1'"),
        ("ops", bool(cfg.ops) and set(cfg.ops) <= set(ARITHMETIC_OPS), "must be a non-empty subset of '+-*'"),
        ("numbers", 2 <= cfg.numbers <= 6, "must be between 2 and 6"),
        ("max_number", 1 <= cfg.max_number <= 10_000, "must be between 1 and 10000"),
        ("target_max", cfg.target_max >= 1, "must be 1 or more"),
        ("max_guesses", 1 <= cfg.max_guesses <= 100, "must be between 1 and 100"),
        ("code_timeout", 0 < cfg.code_timeout <= 600, "must be between 0 and 600 seconds (not 0)"),
        ("code_workers", 1 <= cfg.code_workers <= 64, "must be between 1 and 64"),
        ("lookup_entities", 10 <= cfg.lookup_entities <= 1_000_000, "must be between 10 and 1000000"),
        ("hops", parse_hops(cfg.hops) is not None, "must be 1, 2 or '1,2' (single-hop, two-hop, both)"),
        ("lookup_passages", cfg.lookup_passages in PASSAGE_STYLES, f"choose one of {', '.join(PASSAGE_STYLES)}"),
        ("people", 2 <= cfg.people <= 8, "must be between 2 and 8"),
        ("statement_kinds", _valid_kinds(cfg.statement_kinds), "must be comma-separated kinds from is,both,either,same,diff,if"),
        ("knights_worked", _valid_worked(cfg.knights_worked), "choose check or derive"),
        ("prompt_field", bool(cfg.prompt_field.strip()), "must name a JSON field"),
        ("answer_field", bool(cfg.answer_field.strip()), "must name a JSON field"),
        ("answer_type", cfg.answer_type in ANSWER_TYPES, "choose math (equivalence) or text (normalised exact match)"),
        ("eval_fraction", 0.0 <= cfg.eval_fraction <= 1.0, "must be between 0 and 1"),
    ]
    for key, ok, what in checks:
        if not ok:
            _fail(key, getattr(cfg, key), what)


def _valid_digits(text: str) -> bool:
    if not text:
        return True
    parts = text.split(",")
    return 2 <= len(parts) <= 10 and all(p.strip().isdigit() and 1 <= int(p) <= 18 for p in parts)


def _valid_kinds(text: str) -> bool:
    from thinkrl.tasks.knights_knaves import STATEMENT_KINDS  # noqa: PLC0415 - load on use

    kinds = [k.strip() for k in text.split(",")]
    return bool(text.strip()) and all(k in STATEMENT_KINDS for k in kinds)


def _valid_worked(style: str) -> bool:
    from thinkrl.tasks.knights_knaves import WORKED_STYLES  # noqa: PLC0415 - load on use

    return style in WORKED_STYLES


def mix_parts(name: str) -> list[str]:
    """'mix:arithmetic+jsonl:a.jsonl' -> ['arithmetic', 'jsonl:a.jsonl'] (a path must not hold '+')."""
    return [p.strip() for p in name[len("mix:") :].split("+")]


def _weights(text: str) -> list[float] | None:
    """'3, 1' -> [3.0, 1.0]; None unless non-negative numbers, not all 0."""
    try:
        ws = [float(x) for x in text.split(",")]
    except ValueError:
        return None
    return ws if all(w >= 0 and w == w for w in ws) and sum(ws) > 0 else None


def reward_names(cfg: TaskConfig) -> list[str] | None:
    """task.rewards as a list; None (all rewards apply) when empty."""
    return [n.strip() for n in cfg.rewards.split(",")] if cfg.rewards else None


def get_task(cfg: TaskConfig) -> Task:
    """The Task that `cfg.name` names, built with its knobs from `cfg`; with `task.rewards`, its
    problems that list no rewards of their own carry those."""
    from thinkrl.tasks import jsonl, mix  # noqa: PLC0415 - load on use

    if cfg.think_budgets:
        return Budgeted(get_task(replace(cfg, think_budgets="")), parse_budgets(cfg.think_budgets), cfg.seed)
    if cfg.name.startswith("mix:"):
        parts = [get_task(replace(cfg, name=part)) for part in mix_parts(cfg.name)]
        return mix.Mix(parts, _weights(cfg.mix_weights) if cfg.mix_weights else None)
    task = _build(cfg)
    if reward_names(cfg) is not None and not isinstance(task, jsonl.JsonlTask):  # jsonl applies them per line
        task = mix.WithRewards(task, reward_names(cfg))
    return task


def _build(cfg: TaskConfig) -> Task:
    from thinkrl.tasks import (aime, arithmetic, codegen, countdown, guess, gsm8k, humaneval, jsonl,  # noqa: PLC0415 - load on use
                               knights_knaves, lookup)

    if cfg.name == "gsm8k":
        return gsm8k.GSM8K(eval_size=cfg.eval_size)
    if cfg.name == "aime2025":
        return aime.AIME2025()
    if cfg.name == "arithmetic":
        return arithmetic.Arithmetic(
            seed=cfg.seed, num_train=cfg.num_train, num_eval=cfg.num_eval, operands=cfg.operands,
            min_digits=cfg.min_digits, max_digits=cfg.max_digits, ops=cfg.ops, digits=cfg.digits,
            solution_style=cfg.solution_style,
        )  # fmt: skip
    if cfg.name == "countdown":
        return countdown.Countdown(
            seed=cfg.seed, num_train=cfg.num_train, num_eval=cfg.num_eval, numbers=cfg.numbers,
            max_number=cfg.max_number, target_max=cfg.target_max,
        )  # fmt: skip
    if cfg.name == "guess":
        return guess.Guess(seed=cfg.seed, num_train=cfg.num_train, num_eval=cfg.num_eval, max_number=cfg.max_number,
                           max_guesses=cfg.max_guesses)
    if cfg.name == "lookup":
        return lookup.Lookup(seed=cfg.seed, entities=cfg.lookup_entities, hops=cfg.hops,
                             num_train=cfg.num_train, num_eval=cfg.num_eval, style=cfg.lookup_passages)  # fmt: skip
    if cfg.name == "knights_knaves":
        return knights_knaves.KnightsKnaves(seed=cfg.seed, num_train=cfg.num_train, num_eval=cfg.num_eval,
                                            people=cfg.people, kinds=cfg.statement_kinds, worked=cfg.knights_worked)  # fmt: skip
    if cfg.name == "code":
        return codegen.CodeGen(seed=cfg.seed, num_train=cfg.num_train, num_eval=cfg.num_eval, timeout_s=cfg.code_timeout,
                               workers=cfg.code_workers)
    if cfg.name == "humaneval":
        return humaneval.HumanEval(timeout_s=cfg.code_timeout, workers=cfg.code_workers)
    if cfg.name.startswith("jsonl:"):
        return jsonl.JsonlTask(
            cfg.name[len("jsonl:") :].strip(), prompt_field=cfg.prompt_field, answer_field=cfg.answer_field,
            eval_fraction=cfg.eval_fraction, seed=cfg.seed, rewards=reward_names(cfg), answer_type=cfg.answer_type,
        )  # fmt: skip
    raise UserError(f"unknown task '{cfg.name}' (key task.name): choose one of {', '.join(NAMES)}")
