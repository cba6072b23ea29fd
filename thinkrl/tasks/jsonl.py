"""`jsonl:PATH`: the user's own problems, one JSON object per line.

Each line needs a question (`task.prompt_field`, default "question", a non-empty string) and a
reference answer (`task.answer_field`, default "answer", a string or a number). Blank lines are
skipped. Ids are `<file name>-<line number>`. The file is read (thinkrl.data.jsonl) and checked
when the task is built, so a bad line fails at startup with one line naming PATH:LINE and what
to do.

Which rewards apply (general prompts beside reasoning ones): a line may carry `"rewards": ["rm"]`,
the reward names that apply to it; a line without one gets `task.rewards` (empty: all rewards).
A line to which the accuracy reward does not apply needs no answer (an open question judged by a
reward model); every other line does.

Split: the distinct questions are shuffled with `task.seed` and an `eval_fraction` share of them
(rounded; at least one when the fraction is above 0, at most all but one when it is below 1) is
held out as `eval`; the rest is `train`. Splitting by question text keeps duplicated lines on one
side, so an eval question is never trained on. eval_fraction = 1 makes the file eval-only,
0 train-only.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from thinkrl.data.jsonl import read_jsonl
from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, check_split


def _check_file(path: Path) -> None:
    """A UserError naming the setting if the file is missing or a folder."""
    if not path.exists():
        raise UserError(f"{path}: no such file (task.name = 'jsonl:{path}'): check the path")
    if not path.is_file():
        raise UserError(f"{path}: not a file (task.name = 'jsonl:{path}'): give a .jsonl file")


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _rewards(where: str, row: dict, default: list[str] | None) -> list[str] | None:
    """The line's `rewards` list (reward names that apply to it), else the default; None = all."""
    if row.get("rewards") is None:
        return default
    names = row["rewards"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise UserError(f"{where}: field 'rewards' must be a list of reward names like [\"rm\"], got {json.dumps(names)}")
    return [n.strip() for n in names]


def _problem(path: Path, lineno: int, row: object, prompt_field: str, answer_field: str,
             default_rewards: list[str] | None = None) -> Problem:  # fmt: skip
    """One parsed line as a Problem, or a UserError saying what is wrong with it."""
    where = f"{path}:{lineno}"
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object like {{\"{prompt_field}\": ..., \"{answer_field}\": ...}}, got {_type_name(row)}")
    rewards = _rewards(where, row, default_rewards)
    open_prompt = rewards is not None and "accuracy" not in rewards  # judged by other rewards: no answer needed
    required = [(prompt_field, "task.prompt_field")] + ([] if open_prompt else [(answer_field, "task.answer_field")])
    for key, setting in required:
        if key not in row:
            keys = ", ".join(repr(k) for k in list(row)[:8]) or "none"
            hint = "; a prompt without an answer needs a \"rewards\" list without \"accuracy\", e.g. [\"rm\"]" if key == answer_field else ""
            raise UserError(f"{where}: missing field '{key}' (set {setting} to the key that holds it{hint}; this line has {keys})")
    question, answer = row[prompt_field], row.get(answer_field)
    if answer is None and open_prompt:
        answer = ""
    if not isinstance(question, str):
        raise UserError(f"{where}: field '{prompt_field}' must be a string, got {_type_name(question)}")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise UserError(f"{where}: field '{answer_field}' must be a string or a number, got {_type_name(answer)}")
    if not question.strip():
        raise UserError(f"{where}: field '{prompt_field}' is empty")
    if not open_prompt and not str(answer).strip():
        raise UserError(f"{where}: field '{answer_field}' is empty")
    meta = {"line": lineno, "source": where, **({"rewards": rewards} if rewards is not None else {})}
    return Problem(id=f"{path.name}-{lineno}", question=question, answer=str(answer).strip(), meta=meta)


def load(path: Path, prompt_field: str = "question", answer_field: str = "answer",
         rewards: list[str] | None = None) -> list[Problem]:  # fmt: skip
    """Every problem in the file, in file order; UserError on the first bad line. `rewards`: the
    reward names for lines that list none (None: all)."""
    _check_file(path)
    problems = [_problem(path, lineno, row, prompt_field, answer_field, rewards) for lineno, row in read_jsonl(path)]
    if not problems:
        raise UserError(f"{path}: no problems (the file is empty or has only blank lines)")
    return problems


def split(problems: list[Problem], eval_fraction: float, seed: int) -> dict[str, list[Problem]]:
    """{"train": ..., "eval": ...} by distinct question text, seeded; file order kept in each."""
    questions = list(dict.fromkeys(p.question for p in problems))
    random.Random(f"{seed}-jsonl-split").shuffle(questions)
    n_eval = round(len(questions) * eval_fraction)
    if eval_fraction > 0:
        n_eval = max(n_eval, 1)
    if eval_fraction < 1 and len(questions) > 1:
        n_eval = min(n_eval, len(questions) - 1)
    held_out = set(questions[:n_eval])
    return {
        "train": [p for p in problems if p.question not in held_out],
        "eval": [p for p in problems if p.question in held_out],
    }


class JsonlTask(Task):
    """Problems from a user's .jsonl file, judged by the default verifier (math equivalence)."""

    def __init__(self, path: str, prompt_field: str = "question", answer_field: str = "answer",
                 eval_fraction: float = 0.1, seed: int = 0, rewards: list[str] | None = None):  # fmt: skip
        self.path = Path(path).expanduser()
        self.name = f"jsonl:{path}"
        self._splits = split(load(self.path, prompt_field, answer_field, rewards), eval_fraction, seed)

    def problems(self, split: str) -> list[Problem]:
        return list(self._splits[check_split(split)])
