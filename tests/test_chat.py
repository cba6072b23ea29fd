"""thinkrl.chat: `thinkrl generate` and `thinkrl chat` on a tiny model."""

import pytest

from thinkrl.cli import main
from thinkrl.models import save_pretrained, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = tiny_model("llama")
    return save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def test_generate_shows_answer(model_dir, capsys):
    assert main(["generate", "--model", str(model_dir), "--max-new-tokens", "5", "hello"]) == 0
    assert "[answer]" in capsys.readouterr().out


def test_generate_think_budget_asks_for_that_length(model_dir, monkeypatch, capsys):
    from thinkrl import chat

    seen = []
    monkeypatch.setattr(chat, "_answer", lambda engine, cfg, history, seed: seen.append(history) or _Done())
    assert main(["generate", "--model", str(model_dir), "--think-budget", "32", "What is 2 + 3?"]) == 0
    assert seen[0][-1]["content"] == "What is 2 + 3?\nThink for 32 tokens."
    assert main(["generate", "--think-budget", "-1", "hi"]) == 2


class _Done:
    text, token_ids, finish_reason, calls = "<think>a</think> <answer>5</answer>", [1, 2], "stop", []


def test_generate_shows_tool_calls_apart(capsys):
    from thinkrl.chat import _show
    from thinkrl.engine import Completion
    from thinkrl.tools import ToolCall

    c = Completion(0, 0, [1], text="<think>use it <python>print(6*7)</python><result>42</result></think> <answer>42</answer>",
                   finish_reason="stop", calls=[ToolCall("python", "print(6*7)", "42")])
    _show(c)
    out = capsys.readouterr().out
    assert "[python call]\nprint(6*7)\n[python result]\n42" in out and out.rstrip().endswith("[answer]\n42")


def test_chat_keeps_a_conversation_and_resets(model_dir, monkeypatch, capsys):
    lines = iter(["hello", "and again", "/reset", "", "fresh start", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    seen = []
    from thinkrl import chat

    original = chat._answer

    def spy(engine, cfg, history, seed):
        seen.append([m["content"] for m in history if m["role"] == "user"])
        return original(engine, cfg, history, seed)

    monkeypatch.setattr(chat, "_answer", spy)
    assert main(["chat", "--model", str(model_dir), "--max-new-tokens", "4"]) == 0
    assert seen == [["hello"], ["hello", "and again"], ["fresh start"]]
    assert capsys.readouterr().out.count("[answer]") == 3
