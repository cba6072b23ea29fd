"""The rollout engine: batched sampling with a KV cache, speaking token ids.

In: prompt ids (chat templates are the caller's business), SamplingParams, n samples per prompt,
one seed per prompt. Out: one `Completion` per (prompt, sample), prompt-major: the sampled ids,
their log-probs under the tempered distribution, a loss mask (1 for every token the model sampled;
later multi-turn rollouts put 0 on inserted tool text) and why it stopped: "eos", "stop" or "length".

Prompts are processed in chunks of at most `max_batch` rows, longest first; each prompt is
encoded once and shared by its n samples; finished rows leave the batch once enough of them have
finished to pay for compacting the cache.

Runners (`runner=`): "eager" steps the model from Python (KVRunner for thinkrl's own decoder, the HF
fallback otherwise); "graph" (the default on CUDA for thinkrl's decoder) replays each decode step,
sampling included, from CUDA graphs and keeps its runner across calls so graphs are captured once
(`release()` frees its KV cache, e.g. while training). Both give the same completions.
Multi-turn rollouts (`envs=`, one thinkrl.envs.Environment per row, or `tools=`, a Toolbox whose
`env()` gives them): when a row's model turn ends (eos, a stop string, or one of its env's `stops`),
the steps of that decode step's rows run in parallel threads; an observation is fed one token per
decode step with mask 0 and log-prob 0, so the row's KV cache holds it and every row stays in step
with the batch. The graph runner's steps are then sampled on the host, as the eager runner's are,
so that an observation can be fed as the next input of any row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from thinkrl.engine.graph_runner import GraphRunner
from thinkrl.engine.runner import make_runner
from thinkrl.engine.sampling import SamplingParams, draw, stream_keys
from thinkrl.envs import Environment, Step, run_steps
from thinkrl.errors import UserError
from thinkrl.model import is_own
from thinkrl.model.inputs import pad
from thinkrl.tools import ToolCall, Toolbox


MIN_SHARED_PREFIX = 16  # shorter common prefixes are not worth a separate prefill
RUNNERS = ("auto", "eager", "graph")


def pick_runner(kind: str, model, device: torch.device) -> str:
    """"eager" or "graph" for Engine(runner=kind): auto means graph on CUDA where the model allows it."""
    if kind not in RUNNERS:
        raise UserError(f"engine runner must be one of {', '.join(RUNNERS)}, not {kind!r}")
    if kind == "auto":
        return "graph" if device.type == "cuda" and is_own(model) else "eager"
    if kind == "graph" and not is_own(model):
        raise UserError(f"engine runner 'graph' serves the llama family (thinkrl.model.supports), not "
                        f"{getattr(model.config, 'model_type', '?')}: use runner 'eager'")
    return kind


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
    calls: list[ToolCall] = field(default_factory=list)  # tool calls, in order (multi-turn rollouts)
    turns: int = 1  # model turns: 1 + the environment steps that went on
    env_reward: float | None = None  # the sum of the rewards its environment's steps gave; None if none did


class Engine:
    def __init__(self, model, tokenizer, eos_token_ids: list[int], max_batch: int = 64, runner: str = "auto"):
        self.model = model
        self.tokenizer = tokenizer
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.max_batch = max_batch
        self.device = next(model.parameters()).device
        self.context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_token_ids[0]
        self.pad_id = pad
        self.runner = pick_runner(runner, model, self.device)
        self._graph: GraphRunner | None = None  # kept across calls: its CUDA graphs are captured once

    def release(self) -> None:
        """Free the graph runner's KV cache and graphs (say, for a training phase); the next call rebuilds them."""
        self._graph = None

    def _runner(self, rows: int, max_len: int):
        """The runner of one chunk; the graph runner is reused while the chunk fits its buffers."""
        if self.runner == "eager":
            return make_runner(self.model, rows, max_len)
        if self._graph is None or not self._graph.fits(rows, max_len):
            self._graph = None  # free the old cache and graphs before allocating the new ones
            self._graph = GraphRunner(self.model, rows, max_len)
        self._graph.reset(rows)
        return self._graph

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        n: int = 1,
        seeds: list[int] | None = None,
        on_tokens: Callable[[int], None] | None = None,
        tools: Toolbox | None = None,
        envs: list[Environment | None] | None = None,
    ) -> list[Completion]:
        """n completions for each prompt, as one flat prompt-major list (prompt i's at i*n .. i*n+n-1).

        envs: one environment per completion, in the same order (None: that one is single-turn),
        reset by the caller (thinkrl.envs.start); a completion's observations are inserted as
        tokens with mask 0 and log-prob 0, and it decodes on (thinkrl.envs); max_new_tokens counts
        both. tools: every completion gets `tools.env()`, so a completion that writes a call
        (`<python>...</python>`) gets its result inserted (thinkrl.tools)."""
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        if tools is not None and envs is not None:
            raise UserError("a rollout takes tools or environments, not both: a task with environments holds its tools")
        if tools is not None:
            envs = [tools.env() for _ in range(len(prompts) * n)]
        if envs is not None and len(envs) != len(prompts) * n:
            raise ValueError(f"{len(envs)} environments for {len(prompts)} prompts x {n} samples")
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
                chunk_envs = None if envs is None else [envs[i * n + j] for i in chunk for j in range(n)]
                rows = self._run_chunk([prompts[i] for i in chunk], [seeds[i] for i in chunk], params, n, on_tokens,
                                       chunk_envs)
                for k, i in enumerate(chunk):
                    for j in range(n):
                        done = rows[k * n + j]
                        done.prompt_index, done.sample_index = i, j
                        out[i * n + j] = done
        finally:
            self.model.train(was_training)
        return out

    def _run_chunk(self, prompts, seeds, params: SamplingParams, n: int, on_tokens, envs=None) -> list[Completion]:
        dev = self.device
        rows = len(prompts) * n
        # a system prompt or few-shot turns common to every prompt of the chunk are encoded once
        shared = common_prefix(prompts) if len(prompts) > 1 and is_own(self.model) else 0
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        suffixes = [p[shared:] for p in prompts]
        ids, attn = pad(suffixes, self.pad_id, left=True)  # every row's last prompt token in the last column
        width = ids.shape[1]
        runner = self._runner(rows, shared + width + params.max_new_tokens)
        if shared:
            prefix = torch.tensor([prompts[0][:shared]], device=dev)
            runner.prefill(prefix, torch.ones_like(prefix, dtype=torch.bool), rows)  # one row, copied to all
        logits = runner.prefill(ids.to(dev), attn.to(dev), n)
        keys = stream_keys(torch.tensor(seeds).repeat_interleave(n), torch.arange(n).repeat(len(prompts))).to(dev)
        results = [Completion(r // n, r % n) for r in range(rows)]
        if isinstance(runner, GraphRunner) and envs is None:  # sampling on the device; the host reads every few steps
            eos = set() if params.ignore_eos else set(self.eos.tolist())
            runner.decode_all(logits, keys, params, lambda r, step, tok, lp: self._record(
                results[r], tok, lp, tok in eos, step, params), on_tokens)
            for res in results:
                res.text = self._text(res, params.stop)
            return results
        alive = torch.arange(rows)  # runner row -> result index
        finished = torch.zeros(rows, dtype=torch.bool)  # per runner row
        eos = self.eos.to(dev)
        forced: dict[int, list[int]] = {}  # result index -> observation tokens still to feed, in order
        starts = [0] * rows  # result index -> where its current model turn began
        for step in range(params.max_new_tokens):
            tokens, logps = draw(logits, params, keys, step)
            tok_list, lp_list = tokens.tolist(), logps.tolist()
            is_eos = torch.isin(tokens, eos).tolist() if not params.ignore_eos else [False] * len(tok_list)
            produced = 0
            ended: list[tuple[int, int]] = []  # (runner row, result index) of the rows whose model turn just ended
            for r, res_i in enumerate(alive.tolist()):
                if finished[r]:
                    continue
                produced += 1
                if forced.get(res_i):  # an observation being fed: not sampled, never trained on
                    tok_list[r] = forced[res_i].pop(0)
                    finished[r] = self._insert(results[res_i], tok_list[r], step, params)
                    continue
                finished[r] = self._record(results[res_i], tok_list[r], lp_list[r], is_eos[r], step, params)
                env = envs[res_i] if envs is not None else None
                if env is not None and self._turn_ended(results[res_i], starts[res_i], env, bool(finished[r])):
                    ended.append((r, res_i))
            if ended:
                turns = [self.tokenizer.decode(results[i].token_ids[starts[i] :], skip_special_tokens=True) for _, i in ended]
                for (r, res_i), st in zip(ended, run_steps([envs[i] for _, i in ended], turns)):
                    finished[r] = self._take_step(res_i, results[res_i], envs[res_i], st, step, params, forced, starts)
            tokens = torch.tensor(tok_list, device=dev) if forced else tokens
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

    def _turn_ended(self, res: Completion, start: int, env: Environment, finished: bool) -> bool:
        """Does the last token end a model turn that `env` answers? At eos or a stop string (unless
        that ends the conversation: env.eos_ends_episode), or at one of env.stops while the budget lasts."""
        if res.turns > env.max_steps:
            return False
        if finished:
            return res.finish_reason in ("eos", "stop") and not env.eos_ends_episode
        return bool(env.stops) and self._hit_stop(res.token_ids, list(env.stops), start)

    def _take_step(self, res_i: int, res: Completion, env: Environment, st: Step, step: int, params: SamplingParams,
                   forced: dict[int, list[int]], starts: list[int]) -> bool:
        """Record an environment's answer to a row's turn; True when the row is finished. One that
        goes on gets its observation queued in `forced`, unless the token budget is spent."""
        if st.call is not None:
            res.calls.append(st.call)
        if st.reward is not None:
            res.env_reward = (res.env_reward or 0.0) + st.reward
        if st.done:
            res.finish_reason = "stop" if res.finish_reason == "length" else res.finish_reason  # ended at an env stop
            return True
        if step + 1 >= params.max_new_tokens:
            res.finish_reason = "length"  # the conversation would go on
            return True
        res.finish_reason = "length"  # until it ends again
        observation = env.encode(st, self.tokenizer)
        if observation:
            forced[res_i] = observation
        res.turns += bool(observation)
        starts[res_i] = len(res.token_ids) + len(observation)
        return False

    def _insert(self, res: Completion, token: int, step: int, params: SamplingParams) -> bool:
        """Append one token the model did not sample (an observation, such as a tool result): mask 0, log-prob 0; True when
        the token budget ends the completion there."""
        res.token_ids.append(token)
        res.logprobs.append(0.0)
        res.mask.append(0)
        return step + 1 >= params.max_new_tokens

    def _record(self, res: Completion, token: int, logprob: float, is_eos: bool, step: int, params: SamplingParams) -> bool:
        """Append one sampled token to a completion; True when it ends it (eos, a stop string, or length)."""
        res.token_ids.append(token)
        res.logprobs.append(logprob)
        res.mask.append(1)
        if is_eos:
            res.finish_reason = "eos"
        elif params.stop and self._hit_stop(res.token_ids, params.stop):
            res.finish_reason = "stop"
        elif step + 1 < params.max_new_tokens:
            return False
        return True

    def _hit_stop(self, token_ids: list[int], stops: list[str], start: int = 0) -> bool:
        """Did the last token complete a stop string (within token_ids[start:], the current turn)?
        Decodes a short window, not the whole completion."""
        first = max(start, len(token_ids) - (max(len(s) for s in stops) + 8))
        with_last = self.tokenizer.decode(token_ids[first:], skip_special_tokens=True)
        without = self.tokenizer.decode(token_ids[first:-1], skip_special_tokens=True)
        return any(s in with_last and s not in without for s in stops)

    def _text(self, res: Completion, stops: list[str]) -> str:
        text = self.tokenizer.decode(res.token_ids, skip_special_tokens=True)
        if res.finish_reason == "stop":
            ends = [text.find(s) + len(s) for s in stops if s in text]
            text = text[: min(ends)] if ends else text
        return text
