"""`thinkrl generate` and `thinkrl chat`: answer a prompt, or hold a conversation, showing the
thinking and the answer apart (the <think>/<answer> format of the r1_zero template), and the
tool calls with their results apart from both when `[tools]` gives the model tools."""

from __future__ import annotations

import sys

from thinkrl.config import GenerateConfig
from thinkrl.errors import UserError


def prompt_messages(cfg: GenerateConfig, history: list[dict]) -> list[dict]:
    """What generate and chat ask the model: the system turn, the first `cfg.shots` worked example
    turns of the model's prompt set-up (thinkrl.prompt_setup), then the conversation. For a problem's
    question this is the prompt training and eval built (thinkrl.prompts.build_messages)."""
    from thinkrl.prompt_setup import example_turns, locate, read
    from thinkrl.prompts import R1_ZERO_SYSTEM, TEMPLATES

    if cfg.template not in TEMPLATES:
        raise UserError(f"unknown template '{cfg.template}' for generate/chat: choose one of {', '.join(TEMPLATES)}")
    path = locate(cfg.model.name, cfg.prompt_setup) if cfg.shots else None
    examples = example_turns(read(path) if path else None, cfg.shots)
    system = cfg.system or (R1_ZERO_SYSTEM if cfg.template == "r1_zero" else "")
    return ([{"role": "system", "content": system}] if system else []) + examples + history


def user_message(cfg: GenerateConfig, text: str, budget: int = 0) -> dict:
    """One user turn as the template words it (boxed: its instruction after the question; an L1
    thinking budget: "Think for N tokens.")."""
    from thinkrl.prompts import user_turn

    return {"role": "user", "content": user_turn(text.strip(), cfg.template, budget)}


def _answer(engine, cfg: GenerateConfig, history: list[dict], seed: int):
    from thinkrl.evaluate import encode_prompt

    from thinkrl.tools import build_toolbox

    ids = encode_prompt(engine.tokenizer, prompt_messages(cfg, history))
    return engine.generate([ids], cfg.sampling, n=1, seeds=[seed], tools=build_toolbox(cfg.tools))[0]


def _show(completion) -> None:
    from thinkrl.prompts import split_response

    thinking, answer = split_response(completion.text)
    if answer is None:  # not in the <think>/<answer> format: show the whole response as the answer
        thinking, answer = None, completion.text.strip()
    if thinking:
        print(f"[thinking]\n{thinking}\n")
    for call in completion.calls:
        print(f"[{call.name} call]\n{call.call}\n[{call.name} result{', ' + call.error if call.error else ''}]\n"
              f"{call.result}\n")
    print(f"[answer]\n{answer}")
    print(f"({len(completion.token_ids)} tokens, finished by {completion.finish_reason})", file=sys.stderr)


def run_generate(cfg: GenerateConfig, args) -> int:
    prompt = " ".join(args.prompt) if args.prompt else ""
    if prompt == "-" or (not prompt and not sys.stdin.isatty()):
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise UserError("generate needs a prompt: thinkrl generate \"What is 17 + 25?\" (or '-' to read stdin)")
    from thinkrl.evaluate import load_engine

    engine = load_engine(cfg.model, 1)
    # think_budget: the instruction an L1-trained model learned (task.think_budgets)
    _show(_answer(engine, cfg, [user_message(cfg, prompt, cfg.think_budget)], cfg.seed))
    return 0


def run_chat(cfg: GenerateConfig, args) -> int:
    from thinkrl.evaluate import load_engine
    from thinkrl.prompts import split_response

    engine = load_engine(cfg.model, 1)
    history: list[dict] = []
    print(f"thinkrl chat with {cfg.model.name}. /reset clears the conversation, /quit (or Ctrl-D) leaves.")
    turn = 0
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print()
            return 0
        if line.strip() in ("/quit", "/exit"):
            return 0
        if line.strip() == "/reset":
            history = []
            continue
        if not line.strip():
            continue
        history.append(user_message(cfg, line))
        completion = _answer(engine, cfg, history, cfg.seed + turn)
        _show(completion)
        # keep only the answer in the history, as R1 does across turns: earlier thinking is not fed back
        answer = split_response(completion.text)[1]
        history.append({"role": "assistant", "content": answer if answer is not None else completion.text.strip()})
        turn += 1
