"""Chat data: assistant-only masks through real chat templates, the one chat encoder, and chat
JSONL errors that name file:line and key."""

import json
import re

import pytest

from thinkrl.data.chat import conversation, encode_chat, encode_conversation, read_chat_jsonl, tokenize
from thinkrl.errors import UserError
from thinkrl.evaluate import encode_prompt
from thinkrl.models import tiny_model

CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>2+2=4</think> <answer>4</answer>"}]


@pytest.mark.parametrize("which", ["byte", "embedded"])
def test_mask_covers_the_assistant_turn_only(which, request):
    tok = tiny_model("llama")[1] if which == "byte" else request.getfixturevalue("embedded")[1]
    ex = tokenize(tok, CONV)
    assert ex.prompt == encode_prompt(tok, CONV[:-1])  # the prompt rl and eval give the model
    trained = tok.decode([t for t, m in zip(ex.completion, ex.mask) if m])
    assert trained.startswith("<think>2+2=4</think> <answer>4</answer><|im_end|>")
    assert all(ex.mask)


def test_two_assistant_turns_leave_the_user_turn_between_untrained(tiny_llama):
    _, tok = tiny_llama
    conv = CONV + [{"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}]
    ex = tokenize(tok, conv)
    text_of = lambda keep: tok.decode([t for t, m in zip(ex.completion, ex.mask) if m == keep])
    assert "and 3+3?" in text_of(0.0) and "and 3+3?" not in text_of(1.0)
    assert "<answer>4</answer>" in text_of(1.0) and "6" in text_of(1.0)


def test_bad_lines_name_file_line_and_key(tmp_path):
    cases = {
        "{not json": "not valid JSON",
        json.dumps({"text": "hi"}): "key 'messages'",
        json.dumps({"messages": [{"role": "bot", "content": "x"}]}): "messages[0]",
        json.dumps({"messages": [{"role": "user", "content": "x"}]}): "no assistant turn",
    }
    for line, msg in cases.items():
        path = tmp_path / "d.jsonl"
        path.write_text(json.dumps({"messages": CONV}) + "\n\n" + line + "\n")
        with pytest.raises(UserError, match=f"d.jsonl:3: .*{re.escape(msg)}"):
            read_chat_jsonl(path)
    with pytest.raises(UserError, match="not found"):
        read_chat_jsonl(tmp_path / "missing.jsonl")


def test_one_encoder_for_prompts_and_whole_conversations(tiny_llama):
    _, tok = tiny_llama
    whole = encode_chat(tok, CONV)
    assert encode_conversation(tok, CONV) == whole
    assert encode_conversation(tok, CONV, max_length=5) == whole[-5:]  # the end is kept: the score is read there
    prompt = encode_chat(tok, CONV[:-1], open_turn=True)
    assert prompt == encode_prompt(tok, CONV[:-1]) and whole[: len(prompt)] == prompt
    assert conversation("2+2?", "4") == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
