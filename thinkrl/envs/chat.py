"""ChatEnv: an environment that talks to the model through its chat template.

The model's turn is an assistant message; it ends at eos, the template's end of turn
(`<|im_end|>` for SmolLM2 and Qwen). Each observation is a user message, inserted as exactly the
ids the template writes between that end of turn and the opening of the next assistant turn:
the delta between the conversation with and without the new user message (with the generation
prompt), plus what the template writes after its end-of-turn token (SmolLM2: the newline after
`<|im_end|>`). The delta is taken on a probe conversation once per message, and is the same
after any assistant turn for templates that render each message on its own (the usual ChatML,
Llama 3 and Mistral ones; a template that rewrites history, such as Qwen3's dropping of earlier
<think> blocks, is not one of them).

So prompt + completion, decoded, is the template's rendering of the conversation, and the ids
trained on are the ids the model sampled and these inserted ids, never a re-tokenised chat (which
could split the model's text into other tokens).
"""

from __future__ import annotations

from thinkrl.data.chat import encode_chat
from thinkrl.envs import Environment, Step
from thinkrl.errors import UserError

PROBE = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def inserted_ids(tokenizer, probe: list[dict], message: dict) -> list[int]:
    """The ids the chat template writes after the last turn of `probe` (an assistant turn) has
    ended with its end-of-turn token (the tokenizer's eos): the rest of that turn's closing,
    `message` (a user or tool message), and the opening of the next assistant turn."""
    before = encode_chat(tokenizer, probe)
    after = encode_chat(tokenizer, probe + [message], open_turn=True)
    eot = tokenizer.eos_token_id
    if after[: len(before)] != before or eot not in before:
        raise UserError(f"this tokenizer's chat template does not close an assistant turn with its eos token and "
                        f"render a new {message['role']} message after it unchanged: an environment cannot insert "
                        "its turns")
    end = len(before) - before[::-1].index(eot)  # just past the last end-of-turn token: the assistant's
    return before[end:] + after[len(before) :]


def user_turn_ids(tokenizer, message: str) -> list[int]:
    """inserted_ids of a user message after an assistant turn."""
    return inserted_ids(tokenizer, PROBE, {"role": "user", "content": message})


class ChatEnv(Environment):
    """A conversation: a model turn ends at eos and `step` answers it with a user message (or
    ends it). Subclasses implement reset and step, as any Environment."""

    eos_ends_episode = False

    def encode(self, step: Step, tokenizer) -> list[int]:
        return user_turn_ids(tokenizer, step.observation)
