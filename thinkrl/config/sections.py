"""The sections that several entry points share: the model, the algorithm, the optimizer and the
held-out evaluation during training (thinkrl.config says where sections live)."""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkrl.algos.advantages import ESTIMATORS, SCALES
from thinkrl.algos.losses import AGGREGATIONS, KL_ESTIMATORS
from thinkrl.algos.rollout_correction import RATIO_LEVELS, ROLLOUT_IS
from thinkrl.engine.sampling import SamplingParams
from thinkrl.errors import UserError
from thinkrl.reflection import REFLECTION_PHRASES

ALGORITHMS = ("grpo", "ppo")  # algo.algorithm


def _choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"{key} must be one of {', '.join(choices)}, got '{value}'")


def _at_least_one(cfg, keys, section: str = "") -> None:
    """Each of `keys` on `cfg` must be >= 1 (counts and sizes); the error names the key."""
    for key in keys:
        if getattr(cfg, key) < 1:
            raise UserError(f"{section}{key} must be >= 1, got {getattr(cfg, key)}")


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"  # a local HF folder or an embedded name
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (fp32 on CPU, bf16 on CUDA) | float32 | bfloat16 | float16

    def __post_init__(self):
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise UserError(f"model.dtype must be auto, float32, bfloat16 or float16, got '{self.dtype}'")


@dataclass
class AlgoConfig:
    """The policy-gradient algorithm: every switch independent (see thinkrl.algos)."""

    algorithm: str = "grpo"  # grpo: group-relative advantages (estimator, scale) | ppo: a critic and GAE per token
    estimator: str = "grpo"  # grpo (group mean baseline) | rloo (leave-one-out)
    scale: str = "group"  # group (GRPO std) | batch | none (Dr. GRPO)
    clip_low: float = 0.2
    clip_high: float = 0.2  # above clip_low: DAPO clip-higher (0.28)
    dual_clip: float = 0.0  # > 1 turns dual clip on (3.0 is usual); 0 = off
    aggregation: str = "token_mean"  # token_mean (DAPO) | seq_mean_token_mean (GRPO) | seq_mean_token_sum_norm (Dr. GRPO)
    kl_coef: float = 0.0  # KL to the initial model as a loss term; 0 = no reference model at all
    kl_estimator: str = "k3"  # k1 | k2 | k3
    entropy_coef: float = 0.0  # entropy bonus
    mask_truncated: bool = False  # completions cut at max_new_tokens get no loss (DAPO overlong filtering)
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, draw more prompts
    max_draws: int = 4  # dynamic sampling: at most this many prompt batches per step
    epochs: int = 1  # optimisation passes over one rollout batch
    mini_batches: int = 1  # optimizer steps per pass (ratio != 1 from the second on)
    micro_batch_size: int = 8  # rows per forward/backward; gradients accumulate over a mini-batch
    # micro-batches by size instead: as many rows as fit this many padded tokens (rows x the longest
    # prompt + completion among them; a longer row runs alone); 0 = off, micro_batch_size rows
    micro_batch_tokens: int = 0
    detach_prompt: bool = False  # train on completion tokens only, prompt encoded without gradient (CPU)
    # GPU memory: LM head + log-softmax on this many tokens at a time, recomputed in the backward, so the
    # [B, T, vocab] fp32 logits never exist at once (2048-8192 on a GPU); 0 = off, the full logits
    logprob_chunk: int = 0
    bucket_by_length: bool = False  # micro-batches of rows of similar length (less padding); same loss and gradient
    # padding-free micro-batches: each micro-batch's rows run as one sequence, position ids restarting at
    # every row, attention kept within it (llama family, full forward; others stay padded); same loss and gradient
    pack: bool = False
    # GPU memory: recompute each decoder layer's activations in the backward (HF gradient checkpointing);
    # applies to the full forward (detach_prompt = false), the path GPU recipes take
    gradient_checkpointing: bool = False
    # off-policy corrections (thinkrl.algos.rollout_correction; docs/rl.md "Rollout correction and GSPO")
    ratio_level: str = "token"  # token (PPO/GRPO) | sequence (GSPO: one clipped ratio per completion; clips ~3e-4/4e-4)
    # weight each token's policy-gradient term by exp(logp_train - logp_engine): off | tis (truncated at
    # rollout_is_cap) | mis (0 outside [rollout_is_low, rollout_is_cap]); with epochs x mini_batches > 1 it
    # costs one no-grad forward of the batch before the update (the training log-probs the ratio needs)
    rollout_is: str = "off"
    rollout_is_cap: float = 2.0  # tis: the weight's cap; mis: the band's upper end
    rollout_is_low: float = 0.5  # mis: the band's lower end
    # ppo only (thinkrl.algos.ppo): a value model from the same initial weights, trained at optim.critic_lr
    gamma: float = 1.0  # discount per token
    lam: float = 0.95  # GAE lambda: 1 = Monte Carlo returns, 0 = one-step TD
    value_clip: float = 0.2  # clipped value loss: values move at most this far from the rollout's; 0 = off
    kl_in_reward: bool = False  # kl_coef * KL to the reference as a per-token reward penalty, not a loss term
    whiten_advantages: bool = True  # per-token advantages scaled to mean 0, std 1 over the batch
    critic_warmup_steps: int = 0  # the first N steps train only the critic (the policy waits for a useful baseline)

    def __post_init__(self):
        _choice("algo.algorithm", self.algorithm, ALGORITHMS)
        _choice("algo.estimator", self.estimator, ESTIMATORS)
        _choice("algo.scale", self.scale, SCALES)
        _choice("algo.aggregation", self.aggregation, AGGREGATIONS)
        _choice("algo.kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        _choice("algo.ratio_level", self.ratio_level, RATIO_LEVELS)
        _choice("algo.rollout_is", self.rollout_is, ROLLOUT_IS)
        if not self.rollout_is_cap >= 1.0:
            raise UserError(f"algo.rollout_is_cap must be >= 1 (a cap below 1 down-weights on-policy tokens), "
                            f"got {self.rollout_is_cap}")
        if not 0.0 <= self.rollout_is_low <= 1.0:
            raise UserError(f"algo.rollout_is_low must be in [0, 1], got {self.rollout_is_low}")
        if self.dual_clip and self.dual_clip <= 1:
            raise UserError(f"algo.dual_clip must be > 1 (or 0 for off), got {self.dual_clip}")
        if self.clip_low < 0 or self.clip_high < 0:
            raise UserError("algo.clip_low and algo.clip_high must be >= 0")
        _at_least_one(self, ("max_draws", "epochs", "mini_batches", "micro_batch_size"), "algo.")
        for key in ("gamma", "lam"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UserError(f"algo.{key} must be in [0, 1], got {getattr(self, key)}")
        if self.value_clip < 0 or self.critic_warmup_steps < 0:
            raise UserError("algo.value_clip and algo.critic_warmup_steps must be >= 0")
        if self.micro_batch_tokens < 0:
            raise UserError(f"algo.micro_batch_tokens must be >= 0 (padded tokens per micro-batch; 0 = off), "
                            f"got {self.micro_batch_tokens}")
        if self.logprob_chunk < 0:
            raise UserError(f"algo.logprob_chunk must be >= 0 (tokens per chunk; 0 = off), got {self.logprob_chunk}")
        if self.pack and self.detach_prompt:
            raise UserError("algo.pack and algo.detach_prompt do not combine (the detached prompt is encoded "
                            "separately, padded): turn one off")
        if self.algorithm != "ppo" and (self.kl_in_reward or self.critic_warmup_steps):
            raise UserError("algo.kl_in_reward and algo.critic_warmup_steps need a critic: set algo.algorithm = 'ppo'")
        if self.algorithm == "ppo" and self.kl_in_reward and not self.kl_coef:
            raise UserError("algo.kl_in_reward = true with algo.kl_coef = 0 penalises nothing: set algo.kl_coef > 0")
        if self.algorithm == "ppo" and self.dynamic_sampling:
            raise UserError("algo.dynamic_sampling drops groups of equal rewards, which only group advantages need; "
                            "with algo.algorithm = 'ppo' the critic is the baseline: turn it off")


@dataclass
class OptimConfig:
    lr: float = 1e-6
    schedule: str = "constant"  # after warm-up: constant | linear | cosine (down to min_lr_ratio * lr)
    warmup_steps: int = 0  # optimizer steps of linear warm-up
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping
    critic_lr: float = 1e-5  # algo.algorithm = 'ppo': the value model's learning rate (same schedule, betas, clipping)
    max_skipped_updates: int = 5  # updates in a row skipped for a non-finite loss or gradient before the run stops; 0 = never

    def __post_init__(self):
        _choice("optim.schedule", self.schedule, ("constant", "linear", "cosine"))
        if self.max_skipped_updates < 0:
            raise UserError(f"optim.max_skipped_updates must be >= 0 (0 = never stop), got {self.max_skipped_updates}")
        if self.lr <= 0:
            raise UserError(f"optim.lr must be > 0, got {self.lr}")
        if self.critic_lr <= 0:
            raise UserError(f"optim.critic_lr must be > 0, got {self.critic_lr}")


@dataclass
class LoraConfig:
    """`[lora]` of every training stage: low-rank adapters through peft (thinkrl.model.lora, docs/lora.md).
    The optimizer holds only the adapters' state, checkpoints only their weights, and final/ is the
    merged model (a plain HF folder) with the adapter in final/adapter/."""

    r: int = 0  # rank of the adapters; 0 = off (every weight trains)
    alpha: float = 32.0  # the adapter's output is scaled by alpha / r
    dropout: float = 0.0  # on the adapters' input while training; keep 0 in RL (sampling runs without it)
    target_modules: list[str] = field(default_factory=list)  # module names; empty = the attention and MLP projections

    def __post_init__(self):
        if self.r < 0:
            raise UserError(f"lora.r must be >= 0 (0 = off), got {self.r}")
        if self.alpha <= 0:
            raise UserError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class RLEvalConfig:
    """Held-out evaluation during `thinkrl rl`, on the task's eval split."""

    every: int = 0  # steps between evaluations; 0 = at the start and the end only
    limit: int = 200  # held-out problems (the first N of the eval split)
    samples: int = 1
    batch_size: int = 64
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0, max_new_tokens=256))
    # self-verification phrases counted in held-out completions (eval/reflection/*) and, in RL, in the
    # rollouts (reflection/*), split by correct and incorrect (thinkrl.reflection); [] = off
    reflection_phrases: list[str] = field(default_factory=lambda: list(REFLECTION_PHRASES))

    def __post_init__(self):
        for key, zero in (("every", "start and end only"), ("limit", "no evaluation")):
            if getattr(self, key) < 0:
                raise UserError(f"eval.{key} must be >= 0 (0 = {zero}), got {getattr(self, key)}")
        _at_least_one(self, ("samples", "batch_size"), "eval.")
