"""Preference pairs: read, split by prompt, and built from `thinkrl eval` completions.

`thinkrl rm` and `thinkrl dpo` read the same format, one JSON object per line, either
    {"prompt": "question" or [messages], "chosen": "response", "rejected": "response"}
or whole conversations ending in the assistant turn being compared:
    {"chosen": [messages], "rejected": [messages]}
Pairs are split into train and held-out by prompt (seeded), so a held-out prompt is never trained on.

Building an honest preference set from `thinkrl eval` completions (`make_pairs`, and from the
shell `python -m thinkrl.train.rm pairs COMPLETIONS.jsonl ... --out pairs.jsonl`): for each prompt,
completions that are correct and in format are paired with completions of the same prompt that
are wrong or out of format (criterion `correct`), or, for open prompts without a reference answer,
completions that finished with ones cut off at the token budget (criterion `concise`: concise
versus rambling).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from thinkrl.data.chat import ROLES, conversation, is_message
from thinkrl.data.jsonl import read_jsonl
from thinkrl.errors import UserError
from thinkrl.rewards.model import answer_part


@dataclass
class Pair:
    """Two conversations that differ in their last (assistant) turn; `where` is file:line."""

    chosen: list[dict]
    rejected: list[dict]
    where: str

    @property
    def prompt_key(self) -> str:
        return json.dumps(self.chosen[:-1], sort_keys=True)


def _messages(where: str, key: str, value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: key '{key}' must be a string or a non-empty list of {{role, content}} messages")
    for i, m in enumerate(value):
        if not is_message(m):
            raise UserError(f"{where}: key '{key}', message {i}: needs 'role' in {', '.join(ROLES)} and a string 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def parse_pair(where: str, row: object) -> Pair:
    """One parsed JSONL line as a Pair, or a one-line UserError naming `where` (file:line) and the key."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object like {{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}}")
    for key in ("chosen", "rejected"):
        if key not in row:
            raise UserError(f"{where}: missing key '{key}' (this line has {', '.join(map(repr, row)) or 'no keys'})")
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, list) or isinstance(rejected, list):  # whole conversations
        if "prompt" in row:
            raise UserError(f"{where}: key 'prompt' goes with string 'chosen'/'rejected'; conversations hold their own prompt")
        pair = Pair(_messages(where, "chosen", chosen), _messages(where, "rejected", rejected), where)
        for key, conv in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            if conv[-1]["role"] != "assistant":
                raise UserError(f"{where}: key '{key}': the last message must be the assistant's (the turn compared)")
    else:
        if "prompt" not in row:
            raise UserError(f"{where}: missing key 'prompt' (string 'chosen'/'rejected' answer a prompt)")
        prompt = row["prompt"]
        if isinstance(prompt, str):
            if not prompt.strip():
                raise UserError(f"{where}: key 'prompt' is empty")
        else:
            prompt = _messages(where, "prompt", prompt)
        for key, value in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{where}: key '{key}' must be a non-empty string (or a list of messages)")
        pair = Pair(conversation(prompt, chosen), conversation(prompt, rejected), where)
    if pair.chosen == pair.rejected:
        raise UserError(f"{where}: 'chosen' and 'rejected' are the same, so the pair prefers nothing")
    return pair


def load_pairs(path: str | Path) -> list[Pair]:
    """Every pair of a preference JSONL file in file order; blank lines are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"data = '{path}': no such file (a preference JSONL; `python -m thinkrl.train.rm pairs` builds one)")
    pairs = [parse_pair(f"{path}:{n}", row) for n, row in read_jsonl(path)]
    if not pairs:
        raise UserError(f"{path}: no preference pairs (the file is empty)")
    return pairs


def split_pairs(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out) by prompt: a seeded `fraction` of the distinct prompts (at least one when
    fraction > 0 and there are two or more) and all their pairs are held out."""
    prompts = list(dict.fromkeys(p.prompt_key for p in pairs))
    if fraction <= 0 or len(prompts) < 2:
        return pairs, []
    random.Random(f"{seed}-rm-split").shuffle(prompts)
    held = set(prompts[: min(len(prompts) - 1, max(1, round(len(prompts) * fraction)))])
    return [p for p in pairs if p.prompt_key not in held], [p for p in pairs if p.prompt_key in held]


# ---------------------------------------------------------------- pairs from `thinkrl eval` completions

CRITERIA = ("correct", "concise")


def _good(row: dict, criterion: str) -> bool:
    """May this completion row be chosen (True) or rejected (False)?"""
    if criterion == "correct":
        return bool(row["correct"] and row["formatted"])
    return row.get("finish_reason") != "length"


def make_pairs(rows: list[dict], questions: dict[str, str], criterion: str = "correct", part: str = "response",
               per_prompt: int = 4) -> list[dict]:
    """Preference pairs {"prompt", "chosen", "rejected", "id"} from completion rows of `thinkrl eval`
    (fields id, text, correct, formatted, finish_reason), `questions` giving each id's question.

    Per prompt, good completions (criterion `correct`: correct and formatted; `concise`: finished
    before the token budget, the others were cut off by it) are paired one to one, in sample order, with bad ones of the same
    prompt, up to `per_prompt` pairs; prompts with no good or no bad completion give none. Each
    completion is used once, and pairs whose two texts are equal are skipped. part = "answer"
    keeps only the final answer of each text (what a reward model with reward_model_input =
    "answer" reads)."""
    if criterion not in CRITERIA:
        raise UserError(f"criterion must be one of {', '.join(CRITERIA)}, got '{criterion}'")
    by_id: dict[str, tuple[list[str], list[str]]] = {}
    for row in rows:
        text = answer_part(row["text"]) if part == "answer" else row["text"]
        good, bad = by_id.setdefault(str(row["id"]), ([], []))
        (good if _good(row, criterion) else bad).append(text)
    out = []
    for pid, (good, bad) in by_id.items():
        if pid not in questions:
            raise UserError(f"completion id '{pid}' is not a problem of the task: pass the task the completions came from")
        pairs = [(g, b) for g, b in zip(good, bad) if g.strip() and b.strip() and g != b][:per_prompt]
        out += [{"id": pid, "prompt": questions[pid], "chosen": g, "rejected": b} for g, b in pairs]
    return out


def _completion_rows(path: Path) -> list[dict]:
    """The rows of a `thinkrl eval` completions file."""
    rows = []
    for n, row in read_jsonl(path):
        missing = [k for k in ("id", "text", "correct", "formatted") if k not in row]
        if missing:
            raise UserError(f"{path}:{n}: missing key '{missing[0]}' (expected a `thinkrl eval` completions file)")
        rows.append(row)
    return rows


def pairs_from_eval(completions: str | Path, criterion: str = "correct", part: str = "response",
                    per_prompt: int = 4) -> list[dict]:
    """make_pairs on a `thinkrl eval` X.completions.jsonl, recovering each question from the task of
    the run's resolved config X.config.toml (written beside it), on the split it evaluated."""
    from thinkrl.config import EvalConfig, load
    from thinkrl.tasks import get_task

    path = Path(completions)
    if not path.is_file():
        raise UserError(f"{path}: no such file (the X.completions.jsonl that `thinkrl eval --out X.json` writes)")
    config = path.with_name(path.name.replace(".completions.jsonl", ".config.toml"))
    if not config.is_file():
        raise UserError(f"{config} not found: it is written by `thinkrl eval` beside {path.name} and names the task")
    cfg = load(EvalConfig, config, [])
    questions = {p.id: p.question for p in get_task(cfg.task).problems(cfg.split)}
    return make_pairs(_completion_rows(path), questions, criterion, part, per_prompt)
