"""The rollout engine: batched sampling with a KV cache, speaking token ids.

In: prompt ids (chat templates are the caller's business), SamplingParams, n samples per prompt,
one seed per prompt. Out: one `Completion` per (prompt, sample), prompt-major: the sampled ids,
their log-probs under the tempered distribution, a loss mask (1 for every token the model sampled;
later multi-turn rollouts put 0 on inserted tool text) and why it stopped: "eos", "stop" or "length".

Prompts are processed in chunks of at most `max_batch` rows, longest first; each prompt is
encoded once and shared by its n samples; finished rows leave the batch once enough of them have
finished to pay for compacting the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from thinkrl.engine.runner import make_runner, pad, supports_prefix
from thinkrl.engine.sampling import SamplingParams, sample, stream_keys, uniforms
from thinkrl.errors import UserError


MIN_SHARED_PREFIX = 16  # shorter common prefixes are not worth a separate prefill


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the token prefix all prompts share, leaving each at least one token of its own."""
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


@dataclass
class Completion:
    prompt_index: int
    sample_index: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    finish_reason: str = "length"  # "eos" | "stop" | "length"
    text: str = ""


class Engine:
    def __init__(self, model, tokenizer, eos_token_ids: list[int], max_batch: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.max_batch = max_batch
        self.device = next(model.parameters()).device
        self.context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_token_ids[0]
        self.pad_id = pad

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        n: int = 1,
        seeds: list[int] | None = None,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[Completion]:
        """n completions for each prompt, as one flat prompt-major list (prompt i's at i*n .. i*n+n-1)."""
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        for i, p in enumerate(prompts):
            if not p:
                raise UserError(f"prompt {i} is empty")
            if len(p) + params.max_new_tokens > self.context:
                raise UserError(
                    f"prompt {i} has {len(p)} tokens; with sampling.max_new_tokens={params.max_new_tokens} it exceeds "
                    f"the model's context of {self.context}: shorten it or lower max_new_tokens"
                )
        out: list[Completion] = [Completion(i, j) for i in range(len(prompts)) for j in range(n)]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths share a chunk
        per_chunk = max(1, self.max_batch // n)
        was_training = self.model.training
        self.model.eval()
        try:
            for c in range(0, len(order), per_chunk):
                chunk = order[c : c + per_chunk]
                rows = self._run_chunk([prompts[i] for i in chunk], [seeds[i] for i in chunk], params, n, on_tokens)
                for k, i in enumerate(chunk):
                    for j in range(n):
                        done = rows[k * n + j]
                        done.prompt_index, done.sample_index = i, j
                        out[i * n + j] = done
        finally:
            self.model.train(was_training)
        return out

    def _run_chunk(self, prompts, seeds, params: SamplingParams, n: int, on_tokens) -> list[Completion]:
        dev = self.device
        rows = len(prompts) * n
        # a system prompt or few-shot turns common to every prompt of the chunk are encoded once
        shared = common_prefix(prompts) if len(prompts) > 1 and supports_prefix(self.model) else 0
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        suffixes = [p[shared:] for p in prompts]
        ids, attn = pad(suffixes, self.pad_id, left=True)  # every row's last prompt token in the last column
        width = ids.shape[1]
        runner = make_runner(self.model, rows, shared + width + params.max_new_tokens)
        if shared:
            prefix = torch.tensor([prompts[0][:shared]], device=dev)
            runner.prefill(prefix, torch.ones_like(prefix, dtype=torch.bool), rows)  # one row, copied to all
        logits = runner.prefill(ids.to(dev), attn.to(dev), n)
        keys = stream_keys(torch.tensor(seeds).repeat_interleave(n), torch.arange(n).repeat(len(prompts))).to(dev)
        results = [Completion(r // n, r % n) for r in range(rows)]
        alive = torch.arange(rows)  # runner row -> result index
        finished = torch.zeros(rows, dtype=torch.bool)  # per runner row
        eos = self.eos.to(dev)
        for step in range(params.max_new_tokens):
            tokens, logps = sample(logits, params, uniforms(keys, step))
            tok_list, lp_list = tokens.tolist(), logps.tolist()
            is_eos = torch.isin(tokens, eos).tolist() if not params.ignore_eos else [False] * len(tok_list)
            produced = 0
            for r, res_i in enumerate(alive.tolist()):
                if finished[r]:
                    continue
                produced += 1
                res = results[res_i]
                res.token_ids.append(tok_list[r])
                res.logprobs.append(lp_list[r])
                res.mask.append(1)
                if is_eos[r]:
                    res.finish_reason = "eos"
                elif params.stop and self._hit_stop(res.token_ids, params.stop):
                    res.finish_reason = "stop"
                elif step + 1 < params.max_new_tokens:
                    continue
                finished[r] = True
            if on_tokens is not None:
                on_tokens(produced)
            if bool(finished.all()):
                break
            if int(finished.sum()) * 8 >= len(alive):  # compact once an eighth of the rows are dead
                keep = (~finished).nonzero().squeeze(-1)
                runner.keep(keep.to(dev))
                alive, keys, tokens = alive[keep], keys[keep.to(dev)], tokens[keep.to(dev)]
                finished = torch.zeros(len(alive), dtype=torch.bool)
            logits = runner.decode(tokens)
        for res in results:
            res.text = self._text(res, params.stop)
        return results

    def _hit_stop(self, token_ids: list[int], stops: list[str]) -> bool:
        """Did the last token complete a stop string? Decodes a short window, not the whole completion."""
        window = max(len(s) for s in stops) + 8
        with_last = self.tokenizer.decode(token_ids[-window:], skip_special_tokens=True)
        without = self.tokenizer.decode(token_ids[-window:-1], skip_special_tokens=True)
        return any(s in with_last and s not in without for s in stops)

    def _text(self, res: Completion, stops: list[str]) -> str:
        text = self.tokenizer.decode(res.token_ids, skip_special_tokens=True)
        if res.finish_reason == "stop":
            ends = [text.find(s) + len(s) for s in stops if s in text]
            text = text[: min(ends)] if ends else text
        return text
