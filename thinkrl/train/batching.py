"""Batching a rollout batch for the update: mini-batches (the optimizer steps), micro-batches (the
forward/backward passes) and the padded tensors of their rows. Shared by the policy update
(thinkrl.train.rl) and the PPO critic's (thinkrl.train.ppo_update), so both see the same rows.
"""

from __future__ import annotations

import torch

from thinkrl.config import RLConfig
from thinkrl.dist import Group
from thinkrl.model.inputs import to_device
from thinkrl.train.rollout import Rollout


def pad_rows(rows: list[list[float]], width: int, device) -> torch.Tensor:
    """[len(rows), width] fp32, each row's values then zeros: built on the host, one copy to `device`."""
    out = torch.zeros(len(rows), width)
    for r, xs in enumerate(rows):
        out[r, : len(xs)] = torch.tensor(xs)
    return to_device(out, device)


def micro_inputs(rollouts: list[Rollout], micro: list[int]) -> tuple[list[list[int]], list[int], list[list[int]]]:
    """(distinct prompts, prompt index of each row, completions) of some rows: a group's rows share one prompt."""
    prompts: list[list[int]] = []
    index: dict[int, int] = {}
    prompt_of_row = []
    for i in micro:
        key = id(rollouts[i].prompt)
        if key not in index:
            index[key] = len(prompts)
            prompts.append(rollouts[i].prompt)
        prompt_of_row.append(index[key])
    return prompts, prompt_of_row, [rollouts[i].completion.token_ids for i in micro]


def rows_of(x: torch.Tensor, micro: list[int], width: int, device) -> torch.Tensor:
    """Rows `micro` of a per-completion [N] or per-token [N, T] tensor, per-token ones cut to `width` tokens."""
    rows = x.index_select(0, to_device(torch.tensor(micro, dtype=torch.long), x.device))  # x[list] copies it blocking
    return to_device(rows if x.dim() == 1 else rows[:, :width], device)


def sampled_mask(rollouts: list[Rollout], micro: list[int], width: int, device) -> torch.Tensor:
    """[B, width] 1 at the tokens the model sampled, 0 at inserted ones (tool results) and padding:
    only sampled tokens carry a policy or value loss."""
    return pad_rows([[float(m) for m in rollouts[i].completion.mask] for i in micro], width, device)


def trained_flags(cfg: RLConfig, rollouts: list[Rollout]) -> list[bool]:
    """Which rollouts carry loss: all but those cut off at the token budget under algo.mask_truncated."""
    return [not (cfg.algo.mask_truncated and r.completion.finish_reason == "length") for r in rollouts]


def minibatches(cfg: RLConfig, step: int, rollouts: list[Rollout], keep: list[bool], in_row_order: bool = False):
    """The optimizer steps of one update: (rows, loss normalizer) for each of epochs x mini_batches.

    Rows are a fresh seeded permutation per epoch, a function of (seed, step), so the policy and
    the critic see the same mini-batches and a resumed run the same as an uninterrupted one. The
    normalizer is the mini-batch's trained-token count (token_mean) or its row count."""
    a = cfg.algo
    n = len(rollouts)
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
    for _ in range(a.epochs):
        order = torch.randperm(n, generator=gen).tolist()
        for mb in range(a.mini_batches):
            rows = order[mb * n // a.mini_batches : (mb + 1) * n // a.mini_batches]
            if not rows:
                continue
            tokens = sum(sum(rollouts[i].completion.mask) for i in rows if keep[i])  # sampled tokens only
            normalizer = float(max(tokens, 1)) if a.aggregation == "token_mean" else float(len(rows))
            yield (sorted(rows) if in_row_order else rows), normalizer


def row_tokens(rollout: Rollout) -> int:
    """The tokens a row runs through the forward: its prompt and its completion."""
    return len(rollout.prompt) + len(rollout.completion.token_ids)


def by_tokens(rollouts: list[Rollout], rows: list[int], budget: int) -> list[list[int]]:
    """`rows`, in order, cut greedily into micro-batches whose padded size (rows x the longest row's
    prompt + completion) stays within `budget` tokens; a row longer than the budget runs alone."""
    out: list[list[int]] = []
    longest = 0
    for i in rows:
        n = row_tokens(rollouts[i])
        if out and (len(out[-1]) + 1) * max(longest, n) <= budget:
            out[-1].append(i)
            longest = max(longest, n)
        else:
            out.append([i])
            longest = n
    return out


def micro_batches(rollouts: list[Rollout], rows: list[int], size: int, bucket_by_length: bool = False,
                  tokens: int = 0) -> list[list[int]]:
    """A mini-batch's rows cut into forward/backward micro-batches of `size` rows, or, with
    `tokens` > 0 (algo.micro_batch_tokens), of at most that many padded tokens each (`by_tokens`):
    few long rows or many short ones per pass, so each pass is near the same size.

    bucket_by_length: rows sorted by (completion length, prompt length) first (by prompt +
    completion under a token budget), so each micro-batch holds rows of similar length and pads
    little (a 512-token row no longer pads 20 short ones to 512). The loss is unchanged: every
    micro-batch divides by the whole mini-batch's normalizer (`minibatches`), so the micro-batches'
    losses and gradients add up to the same total in any grouping. The sort is stable: rows of
    equal length keep their order (a group stays together)."""
    if bucket_by_length:
        key = (lambda i: row_tokens(rollouts[i])) if tokens else (
            lambda i: (len(rollouts[i].completion.token_ids), len(rollouts[i].prompt)))
        rows = sorted(rows, key=key)
    if tokens:
        return by_tokens(rollouts, rows, tokens)
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def rank_micro_batches(rollouts: list[Rollout], rows: list[int], size: int, bucket_by_length: bool,
                       group: Group, tokens: int = 0) -> list[tuple[list[int], bool]]:
    """This rank's micro-batches of a mini-batch's rows, each with a `ghost` flag.

    One process: micro_batches(rows), no ghosts. Data-parallel: the rank's rows (`Group.rows`),
    then zero-loss ghost passes (rows[:1], their loss masked out) up to the largest rank's count:
    FSDP2's collectives need as many forwards and backwards on every rank. Every rank holds every
    rollout, so each computes every rank's count itself (under a token budget the count depends on
    the rows' lengths) and all agree without a collective."""
    micros = [(m, False) for m in micro_batches(rollouts, group.rows(rows), size, bucket_by_length, tokens)]
    if tokens:
        passes = max(len(micro_batches(rollouts, Group(r, group.world).rows(rows), size, bucket_by_length, tokens))
                     for r in range(group.world))
    else:
        passes = group.passes(len(rows), size)
    return micros + [(rows[:1], True)] * (passes - len(micros))
