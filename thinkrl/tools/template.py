"""Tool calls in the chat template's own format, for models whose template describes tools.

With `tools.format = "template"` the tools are described to the model through the chat template's
`tools=` argument (a JSON schema per tool: `tool_schemas`), the model calls one by writing, in its
assistant turn, the Hermes-style block that Qwen2.5/Qwen3 and many other templates teach:

    <tool_call>
    {"name": "search", "arguments": {"query": "..."}}
    </tool_call>

and ends its turn (eos, `<|im_end|>`). The result comes back as the template's own tool message:
exactly the ids the template writes for a `{"role": "tool"}` message after that turn, opening the
next assistant turn (thinkrl.envs.chat.inserted_ids, the same delta ChatEnv inserts user turns
with), so prompt + completion decodes to the template's rendering of the whole conversation. A
turn without a call ends the completion. Like the tag format (thinkrl.tools.ToolEnv), the inserted
ids carry loss mask 0 and no log-prob, and each call is recorded on the completion.
"""

from __future__ import annotations

import json
import re
import time

from thinkrl.envs import Step
from thinkrl.envs.chat import ChatEnv, inserted_ids
from thinkrl.errors import UserError

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)

# what each built-in tool is told to be, and the name of its one string argument
DESCRIPTIONS = {
    "python": ("Run Python code in a sandbox and return what it prints.", "code"),
    "search": ("Search the encyclopedia and return the best matching passages.", "query"),
}
PROBE = [{"role": "user", "content": "Q"},
         {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}]


def tool_schemas(names) -> list[dict]:
    """The `tools=` argument of apply_chat_template: an OpenAI-style function schema per tool."""
    out = []
    for name in names:
        description, arg = DESCRIPTIONS.get(name, (f"The {name} tool.", "input"))
        out.append({"type": "function", "function": {
            "name": name, "description": description,
            "parameters": {"type": "object", "properties": {arg: {"type": "string"}}, "required": [arg]}}})
    return out


def check_template(tokenizer, schemas: list[dict]) -> None:
    """A UserError unless the tokenizer's chat template writes the tools into the prompt."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Q"}], tools=schemas, tokenize=False,
                                         add_generation_prompt=True)
    missing = [s["function"]["name"] for s in schemas if s["function"]["name"] not in text]
    if missing:
        raise UserError(f"tools.format = 'template': this model's chat template does not describe tools (no "
                        f"{missing[0]!r} in the prompt it renders with tools=): use tools.format = 'tags'")


def parse_call(turn: str, names) -> tuple[str, str, str] | None:
    """(tool name, argument text, error) of the last <tool_call> block of a model turn, or None when
    it has none. A block that is not JSON `{"name", "arguments"}` naming a known tool gives the error."""
    found = _CALL.findall(turn)
    if not found:
        return None
    body = found[-1]
    try:
        call = json.loads(body)
        name, args = call["name"], call.get("arguments", {})
        args = json.loads(args) if isinstance(args, str) else args
    except (ValueError, KeyError, TypeError) as e:
        return "", body, f"malformed tool call: {type(e).__name__}"
    if name not in names:
        return str(name), body, f"unknown tool {name!r}"
    if not isinstance(args, dict):
        return name, body, "malformed tool call: arguments is not an object"
    value = args.get(DESCRIPTIONS.get(name, ("", "input"))[1], next(iter(args.values()), "") if args else "")
    return name, str(value), ""


class TemplateToolEnv(ChatEnv):
    """A toolbox through the chat template (module docstring): a model turn ends at eos; a turn with
    a <tool_call> block gets the tool's result as a tool message, a turn without one ends the episode."""

    def __init__(self, box):
        from thinkrl.tools import ToolCall  # noqa: PLC0415 - thinkrl.tools imports this module

        self.box, self.call_type = box, ToolCall
        self.max_steps = box.max_calls
        self.timeout_s = box.call_timeout_s

    def reset(self, problem) -> str:
        return problem.question

    def step(self, model_turn: str) -> Step:
        found = parse_call(model_turn, self.box.tools)
        if found is None:
            return Step(done=True)
        name, text, error = found
        if error:
            return Step(f"error: {error}", call=self.call_type(name, text, "", error, 0.0))
        t0 = time.perf_counter()
        result = str(self.box.tools[name](text))
        return Step(result, call=self.call_type(name, text, result, "", time.perf_counter() - t0))

    def failed(self, model_turn: str, error: str, seconds: float) -> Step:
        name, text, _ = parse_call(model_turn, self.box.tools) or ("", model_turn, "")
        return Step(f"error: {error}", call=self.call_type(name, text, "", error, seconds))

    def encode(self, step: Step, tokenizer) -> list[int]:
        """The template's tool message holding the result, its body cut to result_max_tokens."""
        body = tokenizer.encode(step.observation, add_special_tokens=False)[: self.box.result_max_tokens]
        return inserted_ids(tokenizer, PROBE, {"role": "tool", "content": tokenizer.decode(body)})
