"""The prompt set-up a model was trained with, kept beside its weights in `thinkrl_prompt.json`.

A small model answers well only when asked the way it was trained: the R1-Zero demo model was
trained with the R1-Zero system prompt plus one worked example turn, and without that example it
writes neither <think> nor <answer>. So every training stage writes, in each checkpoint and in
final/, the set-up it trained with (plain transformers ignores the file):

    {"thinkrl_prompt": 1, "stage": "rl", "task": "arithmetic", "template": "r1_zero",
     "system": "<the system turn, or empty>", "examples": [<user/assistant turns before the question>],
     "think_budgets": [16, 32], "sampling": {<the held-out evaluation's: temperature, top_p, top_k,
     max_new_tokens, stop>}, "rollout_sampling": {<rl: the training rollouts'>},
     "task_config": {<the whole [task] section>}, "tools": {<rl with [tools]: that section>}}

`thinkrl generate`, `chat` and `eval` take it as their defaults when they load such a folder
(`defaults`: it sits below the recipe and the flags, which override it) and say so in one line;
`prompt_setup = "none"` ignores it, and a folder without it behaves as before.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from thinkrl.errors import UserError

FILE = "thinkrl_prompt.json"
VERSION = 1


# ---------------------------------------------------------------- what a stage writes


def _sampling(params) -> dict:
    return {k: getattr(params, k) for k in ("temperature", "top_p", "top_k", "max_new_tokens", "stop")}


def from_task(stage: str, task_cfg, task, sampling, rollout_sampling=None, tools=None) -> dict:
    """The set-up of a stage that prompts a task's problems itself (rl): the system turn and the
    example turns exactly as thinkrl.prompts.build_messages puts them before every question, and
    the `[tools]` it may call (a task's own search corpus named by its path, for generate)."""
    from thinkrl.prompts import build_messages
    from thinkrl.tasks.base import Problem

    turns = build_messages(Problem(id="", question="", answer=""), task, task_cfg.template, task_cfg.shots)[:-1]
    system = turns[0]["content"] if turns and turns[0]["role"] == "system" else ""
    setup = {
        "thinkrl_prompt": VERSION,
        "stage": stage,
        "task": task_cfg.name,
        "template": task_cfg.template,
        "system": system,
        "examples": turns[1:] if system else turns,
        "think_budgets": [int(b) for b in task_cfg.think_budgets.split(",") if b.strip()],
        "sampling": _sampling(sampling),
        "task_config": dataclasses.asdict(task_cfg),
    }
    if rollout_sampling is not None:
        setup["rollout_sampling"] = _sampling(rollout_sampling)
    if tools is not None and tools.enabled:
        from thinkrl.tools import task_corpus

        setup["tools"] = dataclasses.asdict(tools)
        if tools.search.corpus == "task":
            setup["tools"]["search"]["corpus"] = task_corpus(task)
    return setup


def from_conversation(stage: str, messages: list[dict], task_cfg=None, sampling=None) -> dict:
    """The set-up of a stage that trains on written conversations (sft, dpo, rm): the turns its
    first conversation puts before its last question (a system turn, worked examples), with the
    template they follow; `task_cfg` and `sampling` when the stage evaluates on a task."""
    from thinkrl.prompts import BOXED_SUFFIX, R1_ZERO_SYSTEM

    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    turns = [{"role": m["role"], "content": m["content"]} for m in messages[:last]]
    system = turns[0]["content"] if turns and turns[0]["role"] == "system" else ""
    examples = turns[1:] if system else turns
    question = messages[last]["content"] if messages else ""
    template = "r1_zero" if system == R1_ZERO_SYSTEM else "boxed" if BOXED_SUFFIX in question else "raw"
    setup = {
        "thinkrl_prompt": VERSION,
        "stage": stage,
        "task": task_cfg.name if task_cfg is not None else "",
        "template": template,
        "system": system,
        "examples": examples,
        "think_budgets": [],
        "sampling": _sampling(sampling) if sampling is not None else {},
    }
    if task_cfg is not None:  # the task as the conversations ask it: their template and example count
        shots = sum(m["role"] == "assistant" for m in examples)
        setup["task_config"] = {**dataclasses.asdict(task_cfg), "template": template, "shots": shots}
        setup["think_budgets"] = [int(b) for b in task_cfg.think_budgets.split(",") if b.strip()]
    return setup


def writer(setup: dict | None, extra: Callable[[Path], None] | None = None) -> Callable[[Path], None] | None:
    """save_pretrained's / save_checkpoint's `extra`: writes the set-up into the folder (plus `extra`),
    so it lands atomically with the weights."""
    if setup is None:
        return extra

    def write(folder: Path) -> None:
        (Path(folder) / FILE).write_text(json.dumps(setup, indent=2) + "\n", encoding="utf-8")
        if extra is not None:
            extra(folder)

    return write


# ---------------------------------------------------------------- what generate, chat and eval read


def locate(model_name: str, choice: str = "auto") -> Path | None:
    """The set-up file to use: `choice` "auto" = the model folder's, if it has one; "none" = none;
    anything else is a path to such a file (a missing one is a UserError)."""
    if choice == "none":
        return None
    if choice == "auto":
        path = Path(model_name) / FILE
        return path if path.is_file() else None
    if not Path(choice).is_file():
        raise UserError(f"prompt_setup: file {choice} not found (\"auto\" = the model folder's {FILE}, \"none\" = none)")
    return Path(choice)


def read(path: Path) -> dict:
    """A set-up file's contents; one UserError naming the file when it is not one."""
    try:
        setup = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable prompt set-up ({e}); set prompt_setup = \"none\" to ignore it") from None
    if not isinstance(setup, dict) or not isinstance(setup.get("examples", []), list):
        raise UserError(f"{path}: not a prompt set-up file (expected a JSON object with \"template\" and \"examples\")")
    return setup


def example_turns(setup: dict | None, shots: int) -> list[dict]:
    """The first `shots` worked examples (user + assistant turns) of a set-up."""
    if shots <= 0:
        return []
    turns = (setup or {}).get("examples", [])
    if sum(m.get("role") == "assistant" for m in turns) < shots:
        have = sum(m.get("role") == "assistant" for m in turns)
        raise UserError(f"shots = {shots}, but the model's prompt set-up has {have} example turns"
                        + ("" if setup else f" (the model folder has no {FILE})"))
    out, answered = [], 0
    for m in turns:
        out.append({"role": m["role"], "content": m["content"]})
        answered += m.get("role") == "assistant"
        if answered == shots:
            return out
    return out


def defaults(command: str, setup: dict) -> dict[str, Any]:
    """The nested config values a set-up gives `command` (generate, chat or eval), as a recipe would."""
    sampling = {k: v for k, v in setup.get("sampling", {}).items()}
    if command == "eval":  # the task as trained (its keys this version knows), which rebuilds the same example turns
        from thinkrl.tasks import TaskConfig

        known = {f.name for f in dataclasses.fields(TaskConfig)}
        task = {k: v for k, v in (setup.get("task_config") or {}).items() if k in known}
        if not task and setup.get("template"):  # trained on written conversations: their template at least
            task = {"template": setup["template"]}
        out: dict[str, Any] = {"task": task} if task else {}
    else:
        from thinkrl.prompts import R1_ZERO_SYSTEM

        template = setup.get("template", "r1_zero")
        out = {"template": template, "shots": sum(m.get("role") == "assistant" for m in setup.get("examples", []))}
        if setup.get("system") and not (template == "r1_zero" and setup["system"] == R1_ZERO_SYSTEM):
            out["system"] = setup["system"]  # a system turn of the data's own, not the template's
    if sampling:
        out["sampling"] = sampling
    if setup.get("tools"):
        out["tools"] = setup["tools"]
    return out


def describe(path: Path, setup: dict) -> str:
    """The one line generate, chat and eval print when they use a set-up."""
    shots = sum(m.get("role") == "assistant" for m in setup.get("examples", []))
    parts = [f"template {setup.get('template', '?')}", f"{shots} example turn{'' if shots == 1 else 's'}"]
    if setup.get("task"):
        parts.insert(0, f"task {setup['task']}")
    if setup.get("think_budgets"):
        parts.append("think budgets " + ",".join(map(str, setup["think_budgets"])))
    return f"using the prompt set-up {path} ({', '.join(parts)}); flags override, --set prompt_setup=none ignores it"


def apply(cls, cfg, recipe, overrides: list[str], command: str, show: Callable[[str], None] | None = None):
    """`cfg` (generate, chat or eval) with the model folder's set-up below the recipe and the flags:
    defaults <- set-up <- recipe <- --set. Unchanged when there is no set-up file."""
    from thinkrl.config.loader import build, load

    path = locate(cfg.model.name, cfg.prompt_setup)
    if path is None:
        return cfg
    setup = read(path)
    base = build(cls, defaults(command, setup), where=f"{path}: ")
    if show is not None:
        show(describe(path, setup))
    return load(cls, recipe, overrides, base=base)
