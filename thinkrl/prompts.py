"""Prompt templates: how a Problem becomes chat messages. The engine never sees templates.

- `r1_zero`: the DeepSeek-R1-Zero instruction as the system turn. It asks for <think>/<answer>
  tags and says nothing about how to reason.
- `boxed`: the DeepSeek-R1 evaluation instruction, "reason step by step ... \\boxed{}".
- `raw`: the question alone.
A problem with a thinking budget (`meta["think_budget"]`, from `task.think_budgets`) has
"Think for N tokens." after its question.
`shots` worked examples (the task's `examples()`, from its train side) come first as user/assistant
turns: format priming for small models that do not follow the instruction zero-shot.
"""

from __future__ import annotations

import re

from thinkrl import verify
from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task

R1_ZERO_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and "
    "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
    "<answer> answer here </answer>."
)
BUDGET_INSTRUCTION = "Think for {n} tokens."  # L1's instruction, after the question (thinkrl.tasks.budget)
BOXED_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."

TEMPLATES = ("r1_zero", "boxed", "raw")


def user_turn(question: str, template: str, budget: int = 0) -> str:
    """The question, the template's instruction, and an L1 thinking budget ("Think for N tokens.")."""
    text = question + BOXED_SUFFIX if template == "boxed" else question
    return f"{text}\n{BUDGET_INSTRUCTION.format(n=budget)}" if budget else text


def build_messages(problem: Problem, task: Task, template: str = "r1_zero", shots: int = 0) -> list[dict]:
    """Chat messages for one problem: optional system turn, `shots` worked examples, the question."""
    if template not in TEMPLATES:
        raise UserError(f"unknown template '{template}' (key task.template): choose one of {', '.join(TEMPLATES)}")
    messages: list[dict] = []
    if template == "r1_zero":
        messages.append({"role": "system", "content": R1_ZERO_SYSTEM})
    examples = task.examples()[:shots] if shots else []
    if shots and len(examples) < shots:
        raise UserError(f"task '{task.name}' has {len(examples)} worked examples, task.shots asks for {shots}")
    for question, response in examples:
        messages.append({"role": "user", "content": user_turn(question, template)})
        messages.append({"role": "assistant", "content": response})
    messages.append({"role": "user", "content": user_turn(problem.question, template, problem.meta.get("think_budget", 0))})
    return messages


def write_response(reasoning: str, answer: str, template: str = "r1_zero") -> str:
    """A response in the answer format `template` asks for, from a written solution and its answer."""
    if template == "r1_zero":
        return f"<think>{reasoning}</think> <answer>{answer}</answer>"
    return f"{reasoning}\n\nThe answer is \\boxed{{{answer}}}."  # boxed; raw accepts it too


_R1_FORMAT = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)


def split_response(text: str) -> tuple[str | None, str | None]:
    """(thinking, answer) of an R1-format response, or (None, None) when it is not in that format.

    Strict: exactly one <think>...</think> followed by exactly one <answer>...</answer> and nothing
    else but white space around them.
    """
    if text.count("<think>") != 1 or text.count("</think>") != 1 or text.count("<answer>") != 1 or text.count("</answer>") != 1:
        return None, None
    m = _R1_FORMAT.fullmatch(text)
    if m is None:
        return None, None
    return m.group("think").strip(), m.group("answer").strip()


def follows_format(text: str, template: str) -> bool:
    """Does a response follow the answer format its template asked for?

    r1_zero: the strict <think>/<answer> structure (split_response); boxed: a \\boxed{} answer;
    raw: any extractable answer.
    """
    if template == "r1_zero":
        return split_response(text)[1] is not None
    if template == "boxed":
        return "\\boxed" in text and verify.extract_answer(text) is not None
    return verify.extract_answer(text) is not None
