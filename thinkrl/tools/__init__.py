"""Tools a rollout can call: a tool is a name and a function from the text of a call to the text of its result.

A completion calls tool NAME by writing `<NAME>call text</NAME>` (Search-R1's tag style). The
engine (thinkrl.engine) notices the closing tag, pauses that row, runs the call here (the calls
of a decode step in parallel threads, each under a deadline), and appends `<result>...</result>` as tokens
the model did not sample (loss mask 0, no log-prob), then decodes on. Adding a tool is one
function `str -> str` in `Toolbox.tools` and a recipe key that builds it (`build_toolbox`).

Model-written code never runs here: the Python tool hands it to thinkrl.sandbox (another process,
no network, resource limits). A call that raises or passes its deadline gives an error result,
recorded on the completion; a thread stuck in a tool that ignores its deadline is left to finish
on its own (the sandbox kills its process at its own limit).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Callable

from thinkrl.tools.config import SearchToolConfig, ToolConfig

__all__ = ["SearchToolConfig", "ToolCall", "ToolConfig", "Toolbox", "build_toolbox", "call_metrics"]


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
        """Run (name, call text) pairs in parallel, each under call_timeout_s; results in order.

        One daemon thread per call (a tool's own cost, a sandbox process or a search, dwarfs a
        thread's start): a call that ignores its deadline is left behind and never holds up the
        interpreter's exit, as a pool's worker would."""
        t0 = time.perf_counter()
        boxes: list[list] = [[] for _ in calls]
        threads = [threading.Thread(target=_timed, args=(self.tools[name], text, box), daemon=True,
                                    name=f"thinkrl-tool-{name}") for (name, text), box in zip(calls, boxes)]
        for t in threads:
            t.start()
        out = []
        for (name, text), thread, box in zip(calls, threads, boxes):
            thread.join(max(0.0, self.call_timeout_s - (time.perf_counter() - t0)))  # the calls run side by side
            result, error, seconds = box[0] if box else ("", "timeout", time.perf_counter() - t0)
            out.append(ToolCall(name, text, result, error, seconds))
        return out

    def result_text(self, call: ToolCall) -> str:
        """What the model reads after its call."""
        body = call.result if not call.error else f"error: {call.error}"
        return f"<{self.result_tag}>{body}</{self.result_tag}>"


def _timed(fn: Callable[[str], str], text: str, box: list) -> None:
    """fn(text) as (result, error, seconds), appended to `box`."""
    t0 = time.perf_counter()
    try:
        box.append((str(fn(text)), "", time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001 - a tool's failure is the model's result, not the run's end
        line = next((x for x in str(e).splitlines() if x.strip()), type(e).__name__)
        box.append(("", f"{type(e).__name__}: {line}", time.perf_counter() - t0))


def call_metrics(completions) -> dict[str, float]:
    """tools/* statistics of some completions (thinkrl.engine.Completion): calls per completion, the
    share that called at all, errors and timeouts per call, inserted result tokens per completion."""
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
    }


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

        corpus = cfg.search.corpus
        if corpus == "task":
            while task is not None and not hasattr(task, "corpus_path"):  # through wrappers (task.rewards, budgets)
                task = getattr(task, "task", None)
            corpus = str(task.corpus_path()) if task is not None else ""
            if not corpus:
                from thinkrl.errors import UserError  # noqa: PLC0415

                raise UserError("tools.search.corpus = 'task' needs a task with a corpus (lookup)")
        tools["search"] = make_search_tool(corpus, k=cfg.search.k, max_chars=cfg.search.max_chars)
    return Toolbox(tools, cfg.max_calls, cfg.result_max_tokens, cfg.call_timeout_s, cfg.result_tag)
