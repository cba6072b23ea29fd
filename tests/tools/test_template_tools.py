"""Tool calls in the chat template's own format (tools.format = "template"): the tools described
through the template's tools=, Hermes <tool_call> blocks parsed, results inserted as the template's
own tool message, token for token."""

import pytest

from thinkrl.engine import Engine, SamplingParams
from thinkrl.envs.chat import inserted_ids
from thinkrl.errors import UserError
from thinkrl.evaluate import encode_prompt
from thinkrl.models import eos_token_ids
from thinkrl.tools import ToolConfig, Toolbox, call_metrics
from thinkrl.tools import template as T

# a chat template in the Hermes style (tools in the system turn, <tool_call> in the assistant's,
# <tool_response> in a user turn), as Qwen2.5's does it
HERMES = """{%- if tools %}<|im_start|>system
You may call these functions:
{% for t in tools %}{{ t | tojson }}
{% endfor %}Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>
{% endif %}
{%- for m in messages %}
{%- if m.role == 'tool' %}<|im_start|>user
<tool_response>
{{ m.content }}
</tool_response><|im_end|>
{% elif m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant
{{ m.content }}{% for c in m.tool_calls %}<tool_call>
{{ {"name": c.function.name, "arguments": c.function.arguments} | tojson }}
</tool_call>{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}
{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


@pytest.mark.parametrize("turn, expected", [
    ('I will search.<tool_call>\n{"name": "search", "arguments": {"query": "capital of Oma"}}\n</tool_call>',
     ("search", "capital of Oma", "")),
    ('<tool_call>{"name": "python", "arguments": "{\\"code\\": \\"print(6*7)\\"}"}</tool_call>', ("python", "print(6*7)", "")),
    ('<tool_call>{"name": "search", "arguments": {"query": "a"}}</tool_call> then '
     '<tool_call>{"name": "search", "arguments": {"query": "b"}}</tool_call>', ("search", "b", "")),
    ("no call here", None),
    ("<tool_call>{not json}</tool_call>", ("", "{not json}", "malformed tool call: JSONDecodeError")),
    ('<tool_call>{"name": "shell", "arguments": {}}</tool_call>', ("shell", '{"name": "shell", "arguments": {}}',
                                                                   "unknown tool 'shell'")),
    ('<tool_call>{"arguments": {}}</tool_call>', ("", '{"arguments": {}}', "malformed tool call: KeyError")),
    ('<tool_call>{"name": "search", "arguments": [1]}</tool_call>',
     ("search", '{"name": "search", "arguments": [1]}', "malformed tool call: arguments is not an object")),
])
def test_a_tool_call_block_is_read_or_its_fault_named(turn, expected):
    assert T.parse_call(turn, {"search": None, "python": None}) == expected


def test_the_tools_are_described_through_a_template_that_takes_them_and_refused_by_one_that_does_not(tiny_llama):
    _, tok = tiny_llama
    schemas = T.tool_schemas(["search", "python"])
    assert [s["function"]["parameters"]["required"] for s in schemas] == [["query"], ["code"]]
    with pytest.raises(UserError, match="does not describe tools.*tools.format = 'tags'"):
        T.check_template(tok, schemas)  # plain ChatML ignores tools=
    tok.chat_template = HERMES
    T.check_template(tok, schemas)
    prompt = tok.decode(encode_prompt(tok, [{"role": "user", "content": "Q"}], schemas))
    assert '"name": "search"' in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert Toolbox({"search": str}).prompt_tools(tok) is None  # the tag format's prompt names its tags itself
    with pytest.raises(UserError, match="tools.format must be"):
        ToolConfig(python=True, format="json")


def test_the_engine_inserts_the_templates_tool_message_after_each_call(tiny_llama, monkeypatch):
    """A random model writes no <tool_call>: its turns are ended at fixed lengths and each reads as
    a call; what is inserted is exactly the template's tool message, loss mask 0, and calls are recorded."""
    model, tok = tiny_llama
    tok.chat_template = HERMES
    message = inserted_ids(tok, T.PROBE, {"role": "tool", "content": "found where"})
    ends = (4, 4 + len(message) + 3)  # two turns, each read as a call; the third runs to the token limit
    monkeypatch.setattr(Engine, "_turn_ended", lambda self, res, start, env, finished:
                        len(res.token_ids) in ends and not finished and res.turns <= env.max_steps)
    monkeypatch.setattr(T, "parse_call", lambda turn, names: ("search", "where", ""))
    box = Toolbox({"search": lambda q: f"found {q}"}, max_calls=2, format="template")
    prompts = [encode_prompt(tok, [{"role": "user", "content": q}], box.prompt_tools(tok)) for q in ("a", "bc")]
    engine = Engine(model, tok, eos_token_ids(model, tok), runner="eager")
    outs = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=2 * len(message) + 20, ignore_eos=True),
                           n=2, seeds=[1, 2], tools=box)
    assert tok.decode(message).startswith("\n<|im_start|>user\n<tool_response>\nfound where\n</tool_response><|im_end|>")
    for c in outs:
        assert [(k.name, k.call, k.result, k.error) for k in c.calls] == [("search", "where", "found where", "")] * 2
        inserted = [t for t, m in zip(c.token_ids, c.mask) if m == 0]
        assert inserted == message * 2
        assert c.token_ids[4 : 4 + len(message)] == message and c.logprobs[4] == 0.0
    assert call_metrics(outs)["tools/calls_per_completion"] == 2


def test_a_malformed_call_gets_an_error_message_and_a_turn_without_one_ends(tiny_llama):
    _, tok = tiny_llama
    tok.chat_template = HERMES
    env = Toolbox({"search": lambda q: "x"}, format="template").env()
    step = env.step("<tool_call>nope</tool_call>")
    assert step.observation.startswith("error: malformed") and step.call.error and not step.done
    assert env.step("The answer is 4.").done
    assert tok.decode(env.encode(step, tok)).count("<tool_response>\nerror: malformed") == 1
