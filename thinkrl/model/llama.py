"""thinkrl's own llama-family decoder: llama, mistral, qwen2, qwen3, with Hugging Face parameter names.

One implementation serves rollouts (prefill and decode over a KV cache, CUDA-graph decode),
training (padded, packed, detached prompt, chunked head) and PPO's value model, so what samples
and what trains compute the same function. The module tree and parameter names are HF's
(`model.layers.3.self_attn.q_proj.weight`, ...), so an HF checkpoint's state dict loads as it is,
a saved one is an HF checkpoint, and peft (LoRA on `q_proj`, ...) and FSDP2 (one unit per
`model.layers[i]`) see the modules they expect. The config object is HF's own.

The numerics follow HF's modelling code (RMSNorm in fp32, rotary cos/sin computed in fp32 and cast,
softmax scale head_dim ** -0.5), so logits equal HF's forward to float rounding. The attention step
is thinkrl.model.attention's, in the mode its metadata says. What is not llama-shaped (sliding
windows, dynamic RoPE, activations other than SiLU, soft-capped logits) is left to HF's forward:
`supports(config)` is the one capability check.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from thinkrl.model.attention import KVCache, attention

FAMILY = ("llama", "mistral", "qwen2", "qwen3")
STATIC_ROPE = ("default", "linear", "llama3", "yarn")  # inverse frequencies fixed at load time


def _rope_type(config) -> str:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return params.get("rope_type", params.get("type", "default")) if isinstance(params, dict) else "default"


def supports(config) -> str | None:
    """None if thinkrl's decoder runs this HF config exactly, else why not (then HF's forward does)."""
    kind = getattr(config, "model_type", None)
    if kind not in FAMILY:
        return f"model_type {kind!r} is not in the llama family ({', '.join(FAMILY)})"
    if _rope_type(config) not in STATIC_ROPE:
        return f"RoPE type {_rope_type(config)!r} changes with the sequence length"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} (not silu)"
    types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in types) or (kind == "mistral" and getattr(config, "sliding_window", None)):
        return "sliding-window attention"
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return "scaled or soft-capped logits"
    return None


def head_shape(config) -> tuple[int, int, int]:
    """(query heads, KV heads, head dim) of a llama-family config."""
    n_heads = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    return n_heads, n_kv, head_dim


def rope_frequencies(config) -> tuple[torch.Tensor, float]:
    """(inverse frequencies [D / 2] fp32, cos/sin scale) as HF's rotary embedding computes them.
    Always on the CPU, also while a model is built on the meta device (thinkrl.model.adopt)."""
    kind = _rope_type(config)
    with torch.device("cpu"):
        if kind == "default":
            theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or getattr(config, "rope_theta", 1e4)
            dim = head_shape(config)[2]
            return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), 1.0
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        inv_freq, scale = ROPE_INIT_FUNCTIONS[kind](config, "cpu")
        return inv_freq.float(), float(scale)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(x.dtype)


class Rotary(nn.Module):
    def __init__(self, config):
        super().__init__()
        inv_freq, self.scale = rope_frequencies(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # HF keeps it out of checkpoints too

    def forward(self, positions: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [B, T, D] for position ids [B, T]."""
        freqs = positions[..., None].float() * self.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.scale).to(dtype), (emb.sin() * self.scale).to(dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, config, layer_idx: int):
        super().__init__()
        kind = config.model_type
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv, self.head_dim = head_shape(config)
        self.scaling = self.head_dim ** -0.5
        bias = bool(getattr(config, "attention_bias", False))
        qkv_bias = {"qwen2": True, "mistral": False}.get(kind, bias)
        o_bias = {"qwen2": False, "mistral": False}.get(kind, bias)
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.n_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, self.n_kv * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, self.n_kv * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, hidden, bias=o_bias)
        if kind == "qwen3":  # per-head RMSNorm of q and k before rotary
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos, sin, meta) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
        q, k = _rotate(q.transpose(1, 2), cos, sin), _rotate(k.transpose(1, 2), cos, sin)  # [B, H(kv), T, D]
        out = attention(self.layer_idx, q, k, v.transpose(1, 2), self.scaling, meta)  # [B, H, T, D]
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = bool(getattr(config, "mlp_bias", False))
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.self_attn = Attention(config, layer_idx)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, h: torch.Tensor, cos, sin, meta) -> torch.Tensor:
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, meta)
        return h + self.mlp(self.post_attention_layernorm(h))


class Decoder(nn.Module):
    """HF's `model.model`: embeddings, layers, final norm. ids [B, T] -> final hidden states [B, T, H]."""

    def __init__(self, config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = Rotary(config)
        self.checkpointing = False  # recompute each layer in the backward (training mode only)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, meta) -> torch.Tensor:
        h = self.embed_tokens(ids)
        cos, sin = self.rotary_emb(positions, h.dtype)
        for layer in self.layers:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(layer, h, cos, sin, meta, use_reentrant=False)
            else:
                h = layer(h, cos, sin, meta)
        return self.norm(h)


class _Decoded(nn.Module):
    """What the causal LM and the value model share: HF's config, `model` (the decoder), set-up."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = Decoder(config)

    def hidden(self, ids: torch.Tensor, positions: torch.Tensor, meta) -> torch.Tensor:
        """Final hidden states [B, T, H] of ids [B, T] at position ids [B, T], attention per `meta`."""
        return self.model(ids, positions, meta)

    def new_cache(self, rows: int, length: int) -> KVCache:
        """An empty KV cache of `rows` rows and `length` columns for every layer, in the weights' dtype and device."""
        _, n_kv, head_dim = head_shape(self.config)
        param = self.model.embed_tokens.weight
        return KVCache.empty(len(self.model.layers), rows, n_kv, length, head_dim, param.dtype, param.device)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
        """HF's switch, for the same effect: every decoder layer recomputed in the backward (non-reentrant)."""
        self.model.checkpointing = True

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.model.checkpointing


class CausalLM(_Decoded):
    """HF's `...ForCausalLM` layout: `model` and `lm_head` (tied to the embeddings where the config says)."""

    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.generation_config = None  # HF's GenerationConfig of the checkpoint (eos ids), set by the loader
        if getattr(config, "tie_word_embeddings", False):
            self.lm_head.weight = self.model.embed_tokens.weight

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, meta) -> torch.Tensor:
        """Logits [B, T, V] (in the weights' dtype) of every position."""
        return self.lm_head(self.hidden(ids, positions, meta))


class ValueModel(_Decoded):
    """HF's `...ForTokenClassification` layout with one label: `model` and a scalar `score` head (PPO's critic)."""

    def __init__(self, config, score_bias: bool = True):
        super().__init__(config)
        self.score = nn.Linear(config.hidden_size, 1, bias=score_bias)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, meta) -> torch.Tensor:
        """Values [B, T] (fp32) of every position."""
        return self.score(self.hidden(ids, positions, meta)).squeeze(-1).float()
