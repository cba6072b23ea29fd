"""Reward models: a causal LM with a scalar head that scores a (prompt, response) conversation.

One module for the two sides of a reward model, so they cannot drift apart:
- `thinkrl rm` (thinkrl/train/rm.py) trains one with `load_reward_model(..., new_head=True)` and
  `sequence_scores` (with gradient), and
- `thinkrl rl` uses a trained one as the reward named `rm` through `RewardModelReward`: all
  completions of a step are scored in batches on the policy's device, without gradient.
Both turn a conversation into tokens with `thinkrl.data.chat.encode_conversation`: the tokenizer's chat template
over the prompt turns and the complete assistant turn, so the reward model reads exactly the
turn the policy writes. Sequences are padded on the right and the model's config carries a pad
id that no conversation ends with, so transformers' sequence-classification head reads the score
at the last real token (the same number plain `AutoModelForSequenceClassification` gives).

What the reward model reads of a completion (`rewards.reward_model_input`): `answer` is the final
answer only (R1 scores helpfulness on the summary, so a long chain of thought is neither rewarded
nor punished as such); `response` is the whole completion (R1 scores harmlessness on everything).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from thinkrl.data.chat import conversation, encode_conversation
from thinkrl.errors import UserError

RM_INPUTS = ("answer", "response")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def answer_part(completion: str) -> str:
    """The final answer of a completion: the last <answer>...</answer>, else what follows the last
    </think>, else the whole completion (it never reached an answer block, so all of it is answer)."""
    found = _ANSWER.findall(completion)
    if found:
        return found[-1].strip()
    if "</think>" in completion:
        return completion.rsplit("</think>", 1)[1].replace("<answer>", "").strip()
    return completion.strip()


def reward_pad_id(tokenizer) -> int:
    """A pad id that conversations do not end with. Many chat tokenizers pad with their end-of-turn
    token, which may end a conversation; then the score would be read one token early. Prefer the
    tokenizer's own pad, else unk, else bos, as long as it is not the end-of-sequence token."""
    eos = tokenizer.eos_token_id
    for tid in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id):
        if tid is not None and tid != eos:
            return tid
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos


def _is_reward_model(folder: Path) -> bool:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    archs = cfg.get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs) and cfg.get("num_labels", len(cfg.get("id2label", {}) or [0])) == 1


def check_reward_model(name: str, key: str = "rewards.reward_model") -> Path:
    """The folder of a trained reward model, or a one-line UserError naming the key (checked when a
    recipe is read, before any model is loaded)."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise UserError(f"{key} = '{name}': no such folder; train a reward model with `thinkrl rm` and name its final/ folder")
    if not _is_reward_model(folder):
        raise UserError(f"{key} = '{name}': {folder} is not a reward model (a sequence-classification folder with "
                        "one label); train one with `thinkrl rm` and name its final/ folder")
    return folder


def load_reward_model(name: str, device: str = "cpu", dtype: torch.dtype | None = None, new_head: bool = False):
    """(model, tokenizer, pad_id) of a reward model in eval mode on `device`.

    new_head=True starts one from a causal LM folder or embedded name (`thinkrl rm`): the LM body
    with a fresh one-output score head in place of the LM head; otherwise `name` must be a trained
    reward model folder. The pad id is written into config and tokenizer, so the saved folder gives
    the same scores in plain transformers."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from thinkrl.models import load_tokenizer, resolve_model

    folder = resolve_model(name) if new_head else check_reward_model(name)
    dtype = dtype or torch.float32
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized" is the point of new_head
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=dtype) if new_head \
            else AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError) as e:  # unsupported architecture, config.json not JSON, no weight file
        raise UserError(f"model folder {folder}: transformers cannot load it for sequence classification "
                        f"({(str(e).strip().splitlines() or [type(e).__name__])[0]})") from e
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = load_tokenizer(folder)
    pad_id = model.config.pad_token_id if not new_head and model.config.pad_token_id is not None else reward_pad_id(tokenizer)
    model.config.pad_token_id = pad_id
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    model.to(device).eval()
    return model, tokenizer, pad_id


def sequence_scores(model, rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """Scalar scores [B] (float32) of B token sequences, right-padded into one forward pass.
    Gradient flows if the caller allows it (training); wrap in torch.no_grad() to score."""
    dev = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev))
    return out.logits[:, 0].float()


def score_conversations(model, tokenizer, pad_id: int, conversations: list[list[dict]], batch_size: int = 16,
                        max_length: int = 0) -> list[float]:
    """Scores of many conversations without gradient, in batches of similar length (less padding);
    returned in the input order."""
    rows = [encode_conversation(tokenizer, c, max_length) for c in conversations]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    scores = [0.0] * len(rows)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, s in zip(chunk, sequence_scores(model, [rows[i] for i in chunk], pad_id).tolist()):
                scores[i] = s
    return scores


class RewardModelReward:
    """The reward `rm` of an RL recipe: a trained reward model's score of each completion.

    A batched reward: called once per rollout batch as `fn(completions, references, infos)` with
    lists, it returns one float per completion. The prompt it sees is the problem's question as a
    user turn (the policy's system prompt and worked examples are instructions to the policy, not
    part of what is judged), matching the `prompt` of the preference pairs it was trained on.
    """

    batched = True

    def __init__(self, name: str, device: str = "cpu", dtype: torch.dtype | None = None, input: str = "answer",
                 batch_size: int = 16, max_length: int = 0):  # fmt: skip
        if input not in RM_INPUTS:
            raise UserError(f"rewards.reward_model_input must be one of {', '.join(RM_INPUTS)}, got '{input}'")
        self.model, self.tokenizer, self.pad_id = load_reward_model(name, device, dtype)
        self.model.requires_grad_(False)
        self.input, self.batch_size, self.max_length = input, batch_size, max_length

    def __call__(self, completions: list[str], references: list[str], infos: list[dict]) -> list[float]:
        convs = [conversation(info["problem"].question, answer_part(c) if self.input == "answer" else c)
                 for c, info in zip(completions, infos)]
        return score_conversations(self.model, self.tokenizer, self.pad_id, convs, self.batch_size, self.max_length)
