"""`jsonl:PATH`: the user's own problems, one JSON object per line.

Each line needs a question (`task.prompt_field`, default "question", a non-empty string) and a
reference answer (`task.answer_field`, default "answer": a string, a number, or a list of them,
the accepted aliases, e.g. ["Ilse Varrow", "Varrow"]; the first is the reference shown in outputs).
Blank lines are skipped. Ids are `<file name>-<line number>`. The file is read (thinkrl.data.jsonl) and checked
when the task is built, so a bad line fails at startup with one line naming PATH:LINE and what
to do.

Verifier (`task.answer_type`): "math" (default) compares the completion's answer with each alias
by mathematical equivalence (thinkrl.verify); "text" by normalised exact match, the EM of SQuAD and
Search-R1 (lowercase; punctuation and the articles a/an/the removed; spaces collapsed:
`lookup.normalise_answer`), for short free-text answers such as names ("the Grey Heron." =
"grey heron"). Either is the one verifier of eval and reward.

Worked examples (`task.shots`): a train line may carry `"response"`, the assistant turn to show
for its question (e.g. `<think><search>...</search><result>...</result> ...</think>
<answer>...</answer>`); those lines, in file order, are the task's examples. Eval lines never are.

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

from thinkrl import verify
from thinkrl.data.jsonl import read_jsonl
from thinkrl.data.packaged import data_file
from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task, check_split
from thinkrl.tasks.lookup import normalise_answer

ANSWER_TYPES = ("math", "text")  # task.answer_type: how a completion's answer is compared with the reference


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
             default_rewards: list[str] | None = None, answer_type: str = "math") -> Problem:  # fmt: skip
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
    if not isinstance(question, str):
        raise UserError(f"{where}: field '{prompt_field}' must be a string, got {_type_name(question)}")
    if not question.strip():
        raise UserError(f"{where}: field '{prompt_field}' is empty")
    aliases = [""] if answer is None and open_prompt else _aliases(where, answer, answer_field, open_prompt, answer_type)
    meta = {"line": lineno, "source": where, **({"rewards": rewards} if rewards is not None else {})}
    if len(aliases) > 1:
        meta["aliases"] = aliases
    response = row.get("response")
    if response is not None:
        if not isinstance(response, str) or not response.strip():
            raise UserError(f"{where}: field 'response' (the worked answer shown as an example turn) must be a non-empty string, "
                            f"got {json.dumps(response)[:40]}")
        meta["response"] = response.strip()
    return Problem(id=f"{path.name}-{lineno}", question=question, answer=aliases[0], meta=meta)


def _aliases(where: str, answer: object, key: str, open_prompt: bool, answer_type: str) -> list[str]:
    """The reference answer as a list of accepted strings (one unless the line gives a list)."""
    items = answer if isinstance(answer, list) else [answer]
    if isinstance(answer, list) and not answer:
        raise UserError(f"{where}: field '{key}' is an empty list; give at least one accepted answer")
    out = []
    for i, item in enumerate(items, 1):
        name = f"field '{key}' item {i}" if isinstance(answer, list) else f"field '{key}'"
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            what = "a string, a number or a list of them (accepted aliases)" if not isinstance(answer, list) else "a string or a number"
            raise UserError(f"{where}: {name} must be {what}, got {_type_name(item)}")
        text = str(item).strip()
        if not text and not open_prompt:
            raise UserError(f"{where}: {name} is empty")
        if text and answer_type == "text" and not normalise_answer(text):
            raise UserError(f"{where}: {name} = {json.dumps(item)} is nothing once normalised (task.answer_type = 'text' "
                            "drops case, punctuation and articles); write the answer itself")
        out.append(text)
    return out


def load(path: Path, prompt_field: str = "question", answer_field: str = "answer",
         rewards: list[str] | None = None, answer_type: str = "math") -> list[Problem]:  # fmt: skip
    """Every problem in the file, in file order; UserError on the first bad line. `rewards`: the
    reward names for lines that list none (None: all)."""
    _check_file(path)
    problems = [_problem(path, lineno, row, prompt_field, answer_field, rewards, answer_type)
                for lineno, row in read_jsonl(path)]  # fmt: skip
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
    """Problems from a user's .jsonl file, judged by math equivalence or normalised text match."""

    def __init__(self, path: str, prompt_field: str = "question", answer_field: str = "answer",
                 eval_fraction: float = 0.1, seed: int = 0, rewards: list[str] | None = None,
                 answer_type: str = "math"):  # fmt: skip
        if answer_type not in ANSWER_TYPES:
            raise UserError(f"task.answer_type = {answer_type!r}: choose one of {', '.join(ANSWER_TYPES)}")
        self.path = data_file(Path(path).expanduser())  # recipes/data/... also from the installed package
        self.name = f"jsonl:{path}"
        self.answer_type = answer_type
        self._splits = split(load(self.path, prompt_field, answer_field, rewards, answer_type), eval_fraction, seed)

    def problems(self, split: str) -> list[Problem]:
        return list(self._splits[check_split(split)])

    def examples(self) -> list[tuple[str, str]]:
        """(question, response) of the train lines that carry a "response", in file order."""
        return [(p.question, p.meta["response"]) for p in self._splits["train"] if "response" in p.meta]

    def score(self, completion: str, problem: Problem) -> float:
        """1.0 if the completion's answer matches the reference or one of its aliases (by
        task.answer_type), else 0.0."""
        pred = self.extract(completion)
        if pred is None:
            return 0.0
        refs = problem.meta.get("aliases") or [problem.answer]
        if self.answer_type == "text":
            return float(normalise_answer(pred) in {normalise_answer(r) for r in refs})
        return float(any(verify.math_equal(pred, r, question=problem.question) for r in refs))

    def vote_key(self, answer: str) -> str:
        return normalise_answer(answer) if self.answer_type == "text" else super().vote_key(answer)
