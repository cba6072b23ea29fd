"""A generative judge as a reward: a local language model asked whether a response's final answer
agrees with the reference, the reward its probability of "yes" (soft), for answers no rule checks.

As in "Crossing the Reward Bridge" (a generative, soft verifier): the judge reads the question, the
reference and the response's final answer (or the whole response) through the recipe's template
as one user turn of its chat template, and the reward is the probability it gives "yes" against
"no" as the first word of its reply, p(yes) / (p(yes) + p(no)), each summed over the first tokens
of its spellings ("yes", "Yes", " yes", " Yes": whole words in a real vocabulary). Batched on the policy's device, without
gradient; any local causal-LM folder or the embedded model's name. The reward is `judge`, usable
beside rule rewards and chosen per problem as the reward model is (a problem's `rewards` list).
"""

from __future__ import annotations

import torch

from thinkrl.data.chat import encode_chat
from thinkrl.errors import UserError
from thinkrl.rewards.model import answer_part

DEFAULT_TEMPLATE = ("Question: {question}\nReference answer: {reference}\nResponse's final answer: {answer}\n\n"
                    "Does the response's final answer agree with the reference answer? Reply with yes or no.")
JUDGE_INPUTS = ("answer", "response")
FIELDS = ("question", "reference", "answer")


def check_template(template: str) -> None:
    """A UserError unless `template` formats with exactly the fields it may use."""
    try:
        template.format(**{k: "" for k in FIELDS})
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"rewards.judge_template: {type(e).__name__} {e}: use only the fields "
                        f"{', '.join('{' + f + '}' for f in FIELDS)} (double {{ }} for a literal brace)") from e
    if "{answer}" not in template:
        raise UserError("rewards.judge_template must contain {answer}: the judge has to see what it judges")


def first_ids(tokenizer, word: str) -> set[int]:
    """The first token of each spelling of `word` (lower and capitalised, with and without a
    leading space): the whole word where the vocabulary has it as one token."""
    return {tokenizer.encode(form, add_special_tokens=False)[0]
            for form in (word, word.capitalize(), " " + word, " " + word.capitalize())}


def verdict_ids(tokenizer) -> tuple[list[int], list[int]]:
    """(yes ids, no ids): first_ids of each word, less the ids both share (a lone space)."""
    yes, no = first_ids(tokenizer, "yes"), first_ids(tokenizer, "no")
    yes, no = sorted(yes - no), sorted(no - yes)
    if not yes or not no:
        raise UserError("the judge's tokenizer does not tell 'yes' from 'no' by their first token: it cannot be read "
                        "as a yes/no judge")
    return yes, no


def yes_probability(logits: torch.Tensor, yes: list[int], no: list[int]) -> torch.Tensor:
    """p(yes) / (p(yes) + p(no)) of each row of next-token logits [B, V] (fp32)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    y, n = torch.logsumexp(logp[:, yes], dim=-1), torch.logsumexp(logp[:, no], dim=-1)
    return torch.sigmoid(y - n)


def next_token_logits(model, rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """Logits [B, V] of the token after each row (left-padded into one forward pass, no gradient)."""
    from thinkrl.train.forward import completion_hidden

    h, _, _ = completion_hidden(model, rows, list(range(len(rows))), [[pad_id]] * len(rows), pad_id=pad_id)
    return model.get_output_embeddings()(h[:, 0])


class JudgeReward:
    """The reward `judge` (module docstring). A batched reward: fn(completions, references, infos)."""

    batched = True

    def __init__(self, name: str, device: str = "cpu", dtype: torch.dtype | None = None, template: str = "",
                 input: str = "answer", batch_size: int = 16):  # fmt: skip
        from thinkrl.models import load_model

        if input not in JUDGE_INPUTS:
            raise UserError(f"rewards.judge_input must be one of {', '.join(JUDGE_INPUTS)}, got '{input}'")
        self.template = template or DEFAULT_TEMPLATE
        check_template(self.template)
        self.model, self.tokenizer = load_model(name, device=device, dtype=dtype or torch.float32)
        self.model.requires_grad_(False).eval()
        self.yes, self.no = verdict_ids(self.tokenizer)
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.input, self.batch_size = input, batch_size

    def prompt(self, completion: str, reference: str, question: str) -> list[int]:
        answer = answer_part(completion) if self.input == "answer" else completion
        text = self.template.format(question=question, reference=reference, answer=answer)
        return encode_chat(self.tokenizer, [{"role": "user", "content": text}], open_turn=True)

    def __call__(self, completions: list[str], references: list[str], infos: list[dict]) -> list[float]:
        rows = [self.prompt(c, str(r), info["problem"].question) for c, r, info in zip(completions, references, infos)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths together: less padding
        out = [0.0] * len(rows)
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                p = yes_probability(next_token_logits(self.model, [rows[i] for i in chunk], self.pad_id), self.yes, self.no)
                for i, v in zip(chunk, p.tolist()):
                    out[i] = v
        return out
