"""A static-shape runner for thinkrl's decoder (thinkrl.model) whose decode step is replayed from CUDA graphs.

Why: a decode step of a small model is a few hundred small kernels, and on a GPU launching them
from Python costs more than running them. A CUDA graph replays the whole step (forward and
sampling) with one launch, but only if no shape, address or host decision changes between
replays. So `GraphRunner` keeps KVRunner's contract (prefill / decode / keep) on static shapes:

- rows are padded up to a bucket (BUCKETS); a finished row stays in its slot as dead padding
  until the live rows fit a smaller bucket, then the cache is compacted into it (`keep`);
- the KV cache is preallocated at a fixed length; attention reads a window of it (the filled
  columns rounded up to WINDOW) under a mask of real columns, so the shapes change only every
  WINDOW steps; one graph per (bucket, window, sampling settings), captured when first needed,
  all sharing one memory pool;
- `decode_all` samples inside the step (sampling.draw with shortlist=False, the per-step random
  numbers counter-based, with the step read from a device tensor) and feeds each
  sampled token to the next step on the device, so steps follow each other without the host;
  the host reads the tokens back every READ_EVERY steps, one batch behind, while the GPU runs on.

The step is the model's forward in Decode mode (thinkrl.model.attention). Prefill stays one eager pass
(KVRunner's own). On CPU the same static-shape code runs eagerly
(no capture), which is how its outputs are tested against KVRunner's.

Graphs read the model's weights at their addresses: updating them in place (an optimizer step,
load_state_dict) is seen by the next replay; replacing a parameter tensor is detected by `fits`
and the runner is rebuilt.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from thinkrl.engine.runner import KVRunner
from thinkrl.engine.sampling import SamplingParams, draw, method_for
from thinkrl.model import Decode, KVCache

BUCKETS = (1, 8, 16, 32, 64, 128, 256)  # padded batch sizes; above the last, multiples of it
WINDOW = 128  # attention reads the cache in windows of this many columns (a graph per window)
READ_EVERY = 8  # decode steps between two reads of the sampled tokens by the host
WARMUP = 2  # eager runs of a step on the capture stream before it is captured


def bucket_for(rows: int) -> int:
    """The padded batch size that serves `rows` rows."""
    for b in BUCKETS:
        if rows <= b:
            return b
    return -(-rows // BUCKETS[-1]) * BUCKETS[-1]


def window_for(cols: int, max_len: int) -> int:
    """Cache columns an attention step reads to see `cols` filled columns: rounded up to WINDOW."""
    return min(max_len, -(-cols // WINDOW) * WINDOW)


def weight_ptrs(model) -> tuple[int, ...]:
    """Addresses of the model's parameters: a captured graph reads them there."""
    return tuple(p.data_ptr() for p in model.parameters())


def capture(step: Callable[[], None], pool, stream) -> "torch.cuda.CUDAGraph":
    """A CUDA graph of `step` (a closure over static buffers that returns nothing).

    Warm-up runs on the capture stream first (lazy initialisation, cuBLAS workspaces, allocator
    blocks must not happen inside the capture); `step` must be idempotent, as the decode steps are
    (same inputs, same writes), since the warm-up really runs it.
    """
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, stream=stream):
        step()
    return graph


@dataclass
class Readback:
    """Sampled tokens and log-probs of steps [first, first + K) of the live rows, on their way to the host."""

    first: int
    rows: list[int]  # the caller's row id of each live row when the copy was issued
    tokens: torch.Tensor  # [len(rows), K] on the host (pinned on CUDA)
    logps: torch.Tensor
    event: object = None  # a CUDA event recorded after the copy; None on CPU

    def lists(self) -> tuple[list[list[int]], list[list[float]]]:
        """Wait for the copy (only this one, not the steps launched after it) and return plain lists."""
        if self.event is not None:
            self.event.synchronize()
        return self.tokens.tolist(), self.logps.tolist()


class GraphRunner(KVRunner):
    """KVRunner's contract on static shapes; on CUDA each decode step is one graph replay."""

    def __init__(self, model, batch: int, max_len: int, graphs: bool | None = None):
        super().__init__(model, bucket_for(batch), window_for(max_len, 1 << 62))  # cache [L, cap, Hkv, S, D]
        dev = self.valid.device
        self.cap, self.max_len = self.cache.k.shape[1], self.cache.k.shape[3]
        self.offset = torch.zeros(self.cap, dtype=torch.long, device=dev)  # position id = offset + column
        self.keys = torch.zeros(self.cap, dtype=torch.long, device=dev)  # random stream per slot
        self.tokens = torch.zeros(self.cap, self.max_len, dtype=torch.long, device=dev)  # [slot, step] sampled
        self.logps = torch.zeros(self.cap, self.max_len, dtype=torch.float32, device=dev)
        self.tok_in = torch.zeros(self.cap, dtype=torch.long, device=dev)  # decode()'s input tokens
        self.logits = None  # decode()'s output [cap, V], made on first use
        self.col = torch.zeros(1, dtype=torch.long, device=dev)  # the column this step writes
        self.step = torch.zeros(1, dtype=torch.long, device=dev)  # the completion token this step samples
        self.use_graphs = dev.type == "cuda" if graphs is None else graphs and dev.type == "cuda"
        self.graphs: dict = {}
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self.stream = torch.cuda.Stream(device=dev) if self.use_graphs else None
        self.weights = weight_ptrs(model)
        self.reset(batch)

    def fits(self, batch: int, max_len: int) -> bool:
        """Can this runner (its buffers and graphs) serve a chunk of `batch` rows and `max_len` columns?"""
        return bucket_for(batch) <= self.cap and max_len <= self.max_len and weight_ptrs(self.model) == self.weights

    def reset(self, batch: int) -> None:
        """Start a new chunk of `batch` rows on the same buffers, so the captured graphs stay valid."""
        self.t = 0
        self.valid.zero_()
        self.pos.zero_()
        self.offset.zero_()
        self.n, self.b = batch, bucket_for(batch)  # live rows, padded rows in use
        self.slots = torch.arange(batch, device=self.valid.device)  # live row -> cache slot

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor, n: int) -> torch.Tensor:
        """KVRunner.prefill on the first P * n slots of the padded cache (the rest stay empty)."""
        rows = ids.shape[0] * n
        full = self.cache, self.valid, self.pos
        self.cache = KVCache(self.cache.k[:, :rows], self.cache.v[:, :rows])  # views: writes land in the full cache
        self.valid, self.pos = self.valid[:rows], self.pos[:rows]
        try:
            logits = super().prefill(ids, attn, n)
        finally:
            self.cache, self.valid, self.pos = full
        self.offset[:rows] = self.pos[:rows] - self.t
        return logits

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """KVRunner.decode: one token per live row [n] -> logits [n, V]."""
        if self.logits is None:
            vocab = self.model.lm_head.out_features
            self.logits = torch.zeros(self.cap, vocab, dtype=self.cache.k.dtype, device=self.cache.k.device)
        self.tok_in.index_copy_(0, self.slots, tokens)
        self._run(None)
        return self.logits[self.slots]

    def keep(self, rows: torch.Tensor) -> None:
        """Drop finished rows. Their slots keep computing as padding until the live rows fit a
        smaller bucket; then the live rows move to the front so that bucket's graph serves them."""
        self.slots = self.slots[rows.to(self.slots.device, non_blocking=True)]  # no wait for the queued steps
        self.n = len(self.slots)
        if bucket_for(self.n) < self.b:
            self._compact()
            self.b = bucket_for(self.n)

    def _compact(self) -> None:
        """Move the live rows' cache and state to slots 0..n-1 (one layer at a time: little extra memory)."""
        n, slots = self.n, self.slots
        k, v = self.cache.k, self.cache.v
        for i in range(k.shape[0]):
            k[i, :n] = k[i, slots]
            v[i, :n] = v[i, slots]
        for buf in (self.valid, self.pos, self.offset, self.keys, self.tokens, self.logps):
            buf[:n] = buf[slots]
        self.slots = torch.arange(n, device=slots.device)

    @torch.inference_mode()
    def decode_all(self, logits, keys, params: SamplingParams, record, on_tokens=None) -> None:
        """Sample every completion token after prefill, on the device.

        logits [n, V]: prefill's; keys [n]: each row's random stream (sampling.stream_keys).
        record(row, step, token, logprob) -> True when that row's completion has ended; it is called
        in step order per row, as the engine's own loop would. on_tokens(k): k rows produced a token.
        Finished rows are dropped (`keep`) once the host has seen them end.
        """
        n = self.n
        self.keys[:n] = keys
        tok, lp = draw(logits, params, keys, 0, shortlist=False)
        self.tokens[:n, 0], self.logps[:n, 0] = tok, lp
        setting = (params.temperature, params.top_p, params.top_k, method_for(params, logits.device))
        alive, finished = list(range(n)), set()
        pending, s = self._read(0, 1, alive), 1
        while True:
            end = min(s + READ_EVERY, params.max_new_tokens)
            for step in range(s, end):
                self.step.fill_(step)
                self._run(setting)
            issued = self._read(s, end, alive) if s < end else None  # the GPU runs these steps meanwhile
            s = end
            self._deliver(pending, finished, record, on_tokens)
            if len(finished) == n or issued is None:
                return
            alive = self._drop(alive, finished)
            pending = issued

    def _read(self, first: int, end: int, alive: list[int]) -> Readback:
        """Start copying steps [first, end) of the live rows to the host without waiting for it."""
        tokens, logps = self.tokens[self.slots, first:end], self.logps[self.slots, first:end]
        if not tokens.is_cuda:
            return Readback(first, list(alive), tokens, logps)
        host_t = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
        host_l = torch.empty(logps.shape, dtype=logps.dtype, pin_memory=True)
        host_t.copy_(tokens, non_blocking=True)
        host_l.copy_(logps, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return Readback(first, list(alive), host_t, host_l, event)

    @staticmethod
    def _deliver(read: Readback, finished: set, record, on_tokens) -> None:
        """Hand a readback's tokens to `record`, step by step, skipping rows that already ended."""
        tokens, logps = read.lists()
        for j in range(len(tokens[0]) if tokens else 0):
            produced = 0
            for r, row in enumerate(read.rows):
                if row in finished:
                    continue
                produced += 1
                if record(row, read.first + j, tokens[r][j], logps[r][j]):
                    finished.add(row)
            if on_tokens is not None and produced:
                on_tokens(produced)

    def _drop(self, alive: list[int], finished: set) -> list[int]:
        """Keep only the rows not yet finished; returns the new live row list."""
        still = [i for i, row in enumerate(alive) if row not in finished]
        if len(still) < len(alive):
            self.keep(torch.tensor(still, dtype=torch.long))
        return [alive[i] for i in still]

    def _run(self, setting) -> None:
        """One decode step at column t: the graph of (bucket, window, setting), captured on first use."""
        key = (self.b, window_for(self.t + 1, self.max_len), setting)
        self.col.fill_(self.t)
        if self.use_graphs and key not in self.graphs:
            try:
                self.graphs[key] = capture(self._step_fn(*key), self.pool, self.stream)
            except RuntimeError as err:  # an op that cannot be captured: go on eagerly, and say so
                warnings.warn(f"CUDA graph capture failed, decoding eagerly from now on: {err}")
                self.use_graphs = False
        if self.use_graphs:
            self.graphs[key].replay()
        else:
            self._step_fn(*key)()
        self.t += 1

    def _step_fn(self, b: int, w: int, setting) -> Callable[[], None]:
        """The decode step for bucket b and window w as a closure over static buffers (what a graph
        captures). setting None: logits of tok_in into self.logits; else (temperature, top_p, top_k, method):
        the token sampled at step-1 in, the token of `step` out."""
        if setting is None:
            def step():
                self.logits[:b].copy_(self._forward(self.tok_in[:b], b, w))
            return step
        temperature, top_p, top_k, method = setting
        params = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, method=method)

        def step():
            prev = self.tokens[:b].index_select(1, self.step - 1).squeeze(1)
            tok, lp = draw(self._forward(prev, b, w), params, self.keys[:b], self.step, shortlist=False)
            self.tokens[:b].index_copy_(1, self.step, tok[:, None])
            self.logps[:b].index_copy_(1, self.step, lp[:, None])
        return step

    def _forward(self, tokens: torch.Tensor, b: int, w: int) -> torch.Tensor:
        """Logits [b, V] of one token per slot written at column self.col, attending to columns [0, w)."""
        col = self.col
        self.valid[:b].index_fill_(1, col, True)
        meta = Decode(self.cache, col, w, ~self.valid[:b, None, None, :w])
        h = self.model.hidden(tokens[:, None], (self.offset[:b] + col)[:, None], meta)
        return self.model.lm_head(h[:, -1])
