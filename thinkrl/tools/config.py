"""The `[tools]` section: which tools a rollout may call, and the limits on calling them."""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkrl.errors import UserError


@dataclass
class SearchToolConfig:
    corpus: str = ""  # "" = no search tool; a JSONL corpus ({"id", "title", "text"} a line) or "task" (the task's own)
    k: int = 3  # passages a search returns
    max_chars: int = 300  # of each passage's text

    def __post_init__(self):
        if self.k < 1 or self.max_chars < 1:
            raise UserError(f"tools.search.k and tools.search.max_chars must be >= 1, got {self.k} and {self.max_chars}")


@dataclass
class ToolConfig:
    """A call is the text between `<NAME>` and `</NAME>` in a completion; its result is inserted as
    `<result>...</result>` tokens the model did not sample (loss mask 0), and decoding goes on."""

    python: bool = False  # the Python tool: the call's code runs in thinkrl.sandbox, its output is the result
    search: SearchToolConfig = field(default_factory=SearchToolConfig)
    max_calls: int = 4  # calls a completion may make; later closing tags are plain text
    result_max_tokens: int = 128  # a longer result is cut to this many tokens
    call_timeout_s: float = 10.0  # a call that takes longer gives an error result
    result_tag: str = "result"
    format: str = "tags"  # "tags": <NAME>call</NAME> -> <result>; "template": the chat template's tool calls (thinkrl.tools.template)

    def __post_init__(self):
        if self.max_calls < 1 or self.result_max_tokens < 1 or self.call_timeout_s <= 0:
            raise UserError("tools.max_calls, tools.result_max_tokens and tools.call_timeout_s must be positive")
        if not self.result_tag.isidentifier():
            raise UserError(f"tools.result_tag must be a plain word, got {self.result_tag!r}")
        if self.format not in ("tags", "template"):
            raise UserError(f"tools.format must be 'tags' or 'template', got {self.format!r}")

    @property
    def enabled(self) -> bool:
        return self.python or bool(self.search.corpus)
