"""Chat data: conversations read from JSONL and turned into tokens through the chat template.

One encoder, `encode_chat`, for every stage that tokenizes a conversation: the prompts `thinkrl rl`
and `thinkrl eval` sample from (the assistant turn opened), `thinkrl sft`/`dpo` examples with
their assistant-token mask (`tokenize`), and the whole conversations a reward model scores. So
the prompt a model is trained on is token for token the prompt it is sampled from.

Data: one `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thinkrl.data.jsonl import read_jsonl
from thinkrl.errors import UserError

ROLES = ("system", "user", "assistant")


def is_message(m: object) -> bool:
    """A {role, content} dict with a known role and a string content."""
    return isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)


def conversation(prompt: str | list[dict], response: str) -> list[dict]:
    """Chat messages: the prompt (a question string is one user turn) and the assistant's response."""
    turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return turns + [{"role": "assistant", "content": response}]


def encode_chat(tokenizer, messages: list[dict], open_turn: bool = False, tools: list[dict] | None = None) -> list[int]:
    """Token ids of messages through the tokenizer's chat template; open_turn: end with the
    assistant turn opened (add_generation_prompt), as a prompt to sample from; tools: function
    schemas the template describes to the model (thinkrl.tools.template)."""
    kw = {"tools": tools} if tools else {}
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=open_turn, tokenize=False, **kw)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_conversation(tokenizer, messages: list[dict], max_length: int = 0) -> list[int]:
    """Token ids of a whole conversation (no generation prompt: the last assistant turn is
    complete), as a reward model reads it. Longer than max_length (> 0): the end is kept, since
    the score is read at the last token and the response is what is judged."""
    ids = encode_chat(tokenizer, messages)
    return ids[-max_length:] if 0 < max_length < len(ids) else ids


def read_chat_jsonl(path: str | Path) -> list[list[dict]]:
    """Conversations from a chat JSONL file; a bad line is a UserError naming file:line and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} not found")
    out = []
    for n, row in read_jsonl(path):
        where = f"{path}:{n}"
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages:
            raise UserError(f"{where}: key 'messages' must be a non-empty list of {{role, content}}")
        for i, m in enumerate(messages):
            if not is_message(m):
                raise UserError(f"{where}: messages[{i}] needs 'role' in {', '.join(ROLES)} and a string 'content'")
        if not any(m["role"] == "assistant" for m in messages):
            raise UserError(f"{where}: no assistant turn, so nothing to learn from this line")
        out.append([{"role": m["role"], "content": m["content"]} for m in messages])
    if not out:
        raise UserError(f"data file {path} holds no conversations")
    return out


@dataclass
class Example:
    """One tokenized conversation, split at its first assistant token.

    prompt: the tokens before it (no loss, can be encoded without gradient); completion: the
    rest; mask: 1 on completion tokens inside assistant turns (0 on later user turns)."""

    prompt: list[int]
    completion: list[int]
    mask: list[float]

    def __len__(self) -> int:
        return len(self.prompt) + len(self.completion)


def tokenize(tokenizer, messages: list[dict]) -> Example:
    """Token ids of a conversation and its assistant-token mask, through the chat template.

    An assistant turn's tokens are those between the template's opened assistant turn
    (add_generation_prompt) and the end of that turn, so the prompt seen here is exactly the one
    `thinkrl rl` and `thinkrl eval` give the model."""
    ids = encode_chat(tokenizer, messages)
    mask = [0.0] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(encode_chat(tokenizer, messages[:i], open_turn=True))
        upto = encode_chat(tokenizer, messages[: i + 1])
        if ids[: len(upto)] != upto or start > len(upto):
            raise UserError("the tokenizer's chat template does not render a conversation as the sum of its turns; "
                            "assistant tokens cannot be located")
        mask[start : len(upto)] = [1.0] * (len(upto) - start)
    first = mask.index(1.0)
    return Example(ids[:first], ids[first:], mask[first:])
