"""Tools a rollout can call: a tool is a name and a function from the text of a call to the text of its result.

A completion calls tool NAME by writing `<NAME>call text</NAME>` (Search-R1's tag style; or, with
`tools.format = "template"`, in the chat template's own tool-call format: thinkrl.tools.template). A
toolbox is the simplest environment (thinkrl.envs): `Toolbox.env()` gives one `ToolEnv` per
completion row, whose model turn ends at a call's closing tag. The engine (thinkrl.engine)
notices the tag, pauses that row, steps its environment (which runs the call; the steps of a
decode step in parallel threads, each under a deadline), and appends `<result>...</result>` as
tokens the model did not sample (loss mask 0, no log-prob), then decodes on; eos or a stop string
ends the completion. Adding a tool is one function `str -> str` in `Toolbox.tools` and a recipe
key that builds it (`build_toolbox`).

Model-written code never runs here: the Python tool hands it to thinkrl.sandbox (another process,
no network, resource limits). A call that raises or passes its deadline gives an error result,
recorded on the completion; a thread stuck in a tool that ignores its deadline is left to finish
on its own (the sandbox kills its process at its own limit).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

from thinkrl.envs import Environment, Step, run_parallel
from thinkrl.tools.config import SearchToolConfig, ToolConfig

__all__ = ["SearchToolConfig", "ToolCall", "ToolConfig", "ToolEnv", "Toolbox", "build_toolbox", "call_metrics"]


@dataclass
class ToolCall:
    """One call a completion made: what it asked, what it got, and how it went."""

    name: str
    call: str
    result: str = ""
    error: str = ""  # "" when the tool returned; else "timeout" or the exception's one-line message
    seconds: float = 0.0


@dataclass
class Toolbox:
    tools: dict[str, Callable[[str], str]]
    max_calls: int = 4
    result_max_tokens: int = 128
    call_timeout_s: float = 10.0
    result_tag: str = "result"
    format: str = "tags"  # or "template": calls in the chat template's own format (thinkrl.tools.template)

    def closing_tags(self) -> list[str]:
        return [f"</{name}>" for name in self.tools]

    def find_call(self, text: str) -> tuple[str, str, str] | None:
        """(tool name, call text, text after its closing tag) of the last complete call in `text`,
        or None. The text after the tag is what the token that closed it wrote beyond it (a token
        such as "><" closes `</python>` and starts the next tag)."""
        ends = [(text.rfind(f"</{name}>"), name) for name in self.tools]
        close_at, name = max(ends)
        if close_at < 0:
            return None
        start = text.rfind(f"<{name}>", 0, close_at)
        if start < 0:
            return None
        return name, text[start + len(name) + 2 : close_at].strip(), text[close_at + len(name) + 3 :]

    def run(self, calls: list[tuple[str, str]]) -> list[ToolCall]:
        """Run (name, call text) pairs in parallel, each under call_timeout_s; results in order
        (thinkrl.envs.run_parallel: one daemon thread per call)."""
        outs = run_parallel([functools.partial(self.tools[name], text) for name, text in calls],
                            [self.call_timeout_s] * len(calls), name="thinkrl-tool")
        return [ToolCall(name, text, str(result) if not error else "", error, seconds)
                for (name, text), (result, error, seconds) in zip(calls, outs)]

    def env(self) -> Environment:
        """A fresh environment over these tools, for one completion row."""
        if self.format == "template":
            from thinkrl.tools.template import TemplateToolEnv  # noqa: PLC0415

            return TemplateToolEnv(self)
        return ToolEnv(self)

    def prompt_tools(self, tokenizer=None) -> list[dict] | None:
        """The chat template's `tools=` argument (the template format; None for tags, whose prompt
        names the tags itself). With `tokenizer`, first checks that its template describes tools."""
        if self.format != "template":
            return None
        from thinkrl.tools.template import check_template, tool_schemas  # noqa: PLC0415

        schemas = tool_schemas(self.tools)
        if tokenizer is not None:
            check_template(tokenizer, schemas)
        return schemas

    def result_text(self, call: ToolCall) -> str:
        """What the model reads after its call."""
        body = call.result if not call.error else f"error: {call.error}"
        return f"<{self.result_tag}>{body}</{self.result_tag}>"


class ToolEnv(Environment):
    """A toolbox as an environment: a model turn ends at a call's closing tag; the step runs the
    call and answers `<result>...</result>`; eos or a stop string ends the completion. A closing
    tag without its opening one is plain text (nothing inserted); after `max_calls` calls, every
    closing tag is."""

    eos_ends_episode = True

    def __init__(self, box: Toolbox):
        self.box = box
        self.stops = tuple(box.closing_tags())
        self.max_steps = box.max_calls
        self.timeout_s = box.call_timeout_s
        self.after = ""  # what the token that closed the last call wrote past its tag

    def reset(self, problem) -> str:
        return problem.question

    def step(self, model_turn: str) -> Step:
        found = self.box.find_call(model_turn)
        if found is None:
            return Step()
        name, text, self.after = found
        t0 = time.perf_counter()
        call = ToolCall(name, text, str(self.box.tools[name](text)), "", 0.0)
        call.seconds = time.perf_counter() - t0
        return Step(self.box.result_text(call), call=call)

    def failed(self, model_turn: str, error: str, seconds: float) -> Step:
        name, text, self.after = self.box.find_call(model_turn) or ("", model_turn, "")
        call = ToolCall(name, text, "", error, seconds)
        return Step(self.box.result_text(call), call=call)

    def encode(self, step: Step, tokenizer) -> list[int]:
        """The result's ids, its body cut to result_max_tokens. Where the closing token began the
        result tag ("><" closes `</python>` and opens `<`), the rest of the tag follows."""
        if step.call is None:
            return []
        encode = functools.partial(tokenizer.encode, add_special_tokens=False)
        open_tag = f"<{self.box.result_tag}>"
        open_tag = open_tag[len(self.after):] if self.after and open_tag.startswith(self.after) else open_tag
        call = step.call
        body = encode(call.result if not call.error else f"error: {call.error}")
        return encode(open_tag) + body[: self.box.result_max_tokens] + encode(f"</{self.box.result_tag}>")


def call_metrics(completions) -> dict[str, float]:
    """tools/* statistics of some completions (thinkrl.engine.Completion): calls per completion, the
    share that called at all, errors and timeouts per call, inserted tokens and model turns per completion
    (environments' observations count as inserted tokens)."""
    n = max(len(completions), 1)
    calls = [c for comp in completions for c in comp.calls]
    inserted = sum(len(comp.mask) - sum(comp.mask) for comp in completions)
    return {
        "tools/calls_per_completion": len(calls) / n,
        "tools/call_frac": sum(bool(comp.calls) for comp in completions) / n,
        "tools/error_frac": sum(bool(c.error) and c.error != "timeout" for c in calls) / max(len(calls), 1),
        "tools/timeout_frac": sum(c.error == "timeout" for c in calls) / max(len(calls), 1),
        "tools/result_tokens": inserted / n,
        "tools/seconds_per_call": sum(c.seconds for c in calls) / max(len(calls), 1),
        "tools/turns": sum(getattr(comp, "turns", 1) for comp in completions) / n,
    }


def task_corpus(task) -> str:
    """The path of the corpus a task brings (`tools.search.corpus = "task"`: the lookup task's)."""
    while task is not None and not hasattr(task, "corpus_path"):  # through wrappers (task.rewards, budgets)
        task = getattr(task, "task", None)
    if task is None:
        from thinkrl.errors import UserError  # noqa: PLC0415

        raise UserError("tools.search.corpus = 'task' needs a task with a corpus (lookup)")
    return str(task.corpus_path())


def build_toolbox(cfg: ToolConfig, task=None) -> Toolbox | None:
    """The tools a `[tools]` section asks for, or None when it asks for none. `task` supplies its own
    corpus for `search.corpus = "task"` (the lookup task)."""
    if not cfg.enabled:
        return None
    tools: dict[str, Callable[[str], str]] = {}
    if cfg.python:
        from thinkrl.sandbox import Limits  # noqa: PLC0415 - the sandbox only when asked for
        from thinkrl.tools.python import python_tool  # noqa: PLC0415

        tools["python"] = functools.partial(python_tool, limits=Limits(wall_s=cfg.call_timeout_s))
    if cfg.search.corpus:
        from thinkrl.tools.search import make_search_tool  # noqa: PLC0415 - bm25s only when asked for

        corpus = task_corpus(task) if cfg.search.corpus == "task" else cfg.search.corpus
        tools["search"] = make_search_tool(corpus, k=cfg.search.k, max_chars=cfg.search.max_chars)
    return Toolbox(tools, cfg.max_calls, cfg.result_max_tokens, cfg.call_timeout_s, cfg.result_tag, cfg.format)
