"""The configs of the training commands: `thinkrl rl`, `rm`, `sft`, `sample`, `distill`, `pipeline`,
`dpo` and `merge`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from thinkrl.config.sections import (AlgoConfig, LoraConfig, ModelConfig, OptimConfig, RLEvalConfig, _at_least_one,
                                     _choice)
from thinkrl.engine.sampling import SamplingParams
from thinkrl.errors import UserError
from thinkrl.rewards.config import RewardConfig
from thinkrl.rewards.language import SCRIPTS
from thinkrl.tasks import TaskConfig
from thinkrl.tools.config import ToolConfig


@dataclass
class RLConfig:
    """`thinkrl rl`: R1-Zero-style RL from verifiable rewards with the GRPO family."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)  # r > 0: train LoRA adapters (the policy's, and the critic's)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=256))
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)
    tools: ToolConfig = field(default_factory=ToolConfig)  # multi-turn rollouts: tools the model may call
    steps: int = 100  # RL steps (one rollout batch each)
    prompts_per_step: int = 8  # groups per step
    group_size: int = 8  # completions per prompt (G)
    rollout_batch: int = 64  # rows the engine decodes together
    seed: int = 0
    out_dir: str = "runs/rl"
    sample_every: int = 5  # steps between writing completions to samples.jsonl
    save_every: int = 0  # steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 2
    resume: bool = False  # continue from the newest checkpoint in out_dir

    def __post_init__(self):
        _at_least_one(self, ("steps", "prompts_per_step", "group_size", "rollout_batch"))
        if self.algo.algorithm == "grpo" and self.group_size < 2 and (self.algo.scale == "group" or self.algo.estimator == "rloo"):
            raise UserError(
                f"group_size = {self.group_size} cannot have algo.scale = 'group' or algo.estimator = 'rloo' "
                "(a group of one has no spread and no other members): use group_size >= 2"
            )
        rows = self.prompts_per_step * self.group_size
        if self.algo.mini_batches > rows:
            raise UserError(f"algo.mini_batches = {self.algo.mini_batches} is more than the {rows} completions of a step "
                            f"(prompts_per_step x group_size): each mini-batch needs at least one; lower algo.mini_batches")
        if self.algo.algorithm == "ppo" and self.algo.critic_warmup_steps >= self.steps:
            raise UserError(f"algo.critic_warmup_steps = {self.algo.critic_warmup_steps} leaves none of the {self.steps} "
                            "steps to train the policy")
        if self.algo.aggregation == "seq_mean_token_sum_norm" and self.sampling.max_new_tokens < 1:
            raise UserError("seq_mean_token_sum_norm divides by sampling.max_new_tokens, which must be >= 1")


@dataclass
class RMConfig:
    """`thinkrl rm`: a scalar reward model on preference pairs (Bradley-Terry), from a causal LM."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the causal LM the reward model starts from
    data: str = ""  # preference JSONL: {"prompt", "chosen", "rejected"} or {"chosen": [messages], "rejected": [messages]}
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    lora: LoraConfig = field(default_factory=LoraConfig)  # r > 0: LoRA adapters, the score head trained whole
    epochs: int = 1
    steps: int = 0  # optimizer steps; 0 = epochs x (train pairs / batch_size)
    batch_size: int = 16  # pairs per optimizer step
    micro_batch_size: int = 8  # pairs per forward/backward (2x this many sequences)
    max_len: int = 1024  # tokens per conversation; a longer one keeps its end (the response, where the score is read)
    eval_fraction: float = 0.1  # share of the prompts held out for pairwise accuracy (0 = none)
    eval_every: int = 0  # steps between held-out evaluations; 0 = at the start and the end only
    seed: int = 0
    out_dir: str = "runs/rm"
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 2
    resume: bool = False

    def __post_init__(self):
        _at_least_one(self, ("epochs", "batch_size", "micro_batch_size", "max_len"))
        for key in ("steps", "eval_every", "save_every"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.eval_fraction < 1:
            raise UserError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")


# ---------------------------------------------------------------- supervised stages (R1 cold start, rejection SFT, distillation)


@dataclass
class SFTConfig:
    """`thinkrl sft`: supervised fine-tuning on chat JSONL, loss on the assistant's tokens only."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""  # chat JSONL: one {"messages": [{"role": ..., "content": ...}, ...]} per line
    task: TaskConfig = field(default_factory=TaskConfig)  # held-out evaluation task (eval.limit > 0 turns it on)
    eval: RLEvalConfig = field(default_factory=lambda: RLEvalConfig(limit=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    lora: LoraConfig = field(default_factory=LoraConfig)  # r > 0: train LoRA adapters
    epochs: int = 1
    steps: int = 0  # optimizer steps; 0 = epochs x (train examples / batch_size)
    batch_size: int = 16  # sequences per optimizer step
    micro_batch_size: int = 8  # sequences per forward/backward
    max_len: int = 2048  # examples longer than this (prompt + response tokens) are left out, and counted
    eval_fraction: float = 0.05  # share of the data held out for the validation loss (0 = none)
    detach_prompt: bool = False  # encode the tokens before the first assistant token without gradient (CPU)
    teacher: str = ""  # distillation: a model sharing the student's tokenizer, for a token-level KL term
    kl_coef: float = 0.0  # weight of KL(teacher || student) added to the cross-entropy
    kl_temperature: float = 1.0
    seed: int = 0
    out_dir: str = "runs/sft"
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 2
    resume: bool = False

    def __post_init__(self):
        _at_least_one(self, ("epochs", "batch_size", "micro_batch_size", "max_len"))
        if self.steps < 0:
            raise UserError(f"steps must be >= 0 (0 = whole epochs), got {self.steps}")
        if not 0 <= self.eval_fraction < 1:
            raise UserError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.kl_coef < 0 or self.kl_temperature <= 0:
            raise UserError("kl_coef must be >= 0 and kl_temperature > 0")


@dataclass
class SampleConfig:
    """`thinkrl sample`: k completions per prompt, keep the good ones, write SFT-ready chat JSONL.

    The cold-start data of R1 (from a few-shot-prompted model, or R1-Zero's readable outputs) and
    its rejection-sampling step (pointed at an RL checkpoint)."""

    LIST_STRINGS: ClassVar[dict[str, type]] = {"relabel_budgets": int}  # a TOML list, kept as "24,48,80" (config.loader)

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)  # prompts and verifier; task.shots primes the sampling only
    # model: sample `model` | solutions: write the task's own worked solutions (curated data, no model)
    source: str = "model"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=512))
    split: str = "train"  # prompts come from this split (never the eval split when the data trains a model)
    limit: int = 0  # first N prompts of the split (0 = all)
    samples: int = 4  # completions drawn per prompt (k)
    keep: int = 1  # accepted completions written per prompt (0 = every distinct one)
    prefer: str = "first"  # which accepted ones to keep: first (sampling order) | shortest (long2short)
    # L1 hindsight budgets, e.g. [24, 48, 80]: each kept completion's prompt asks for the listed budget
    # nearest its own length in tokens ("Think for N tokens."; written solutions are measured with
    # model.name's tokenizer), so SFT on the data ties each budget to a length
    relabel_budgets: str = ""
    require_correct: bool = True  # the task's verifier accepts the answer
    require_format: bool = True  # the template's answer format (<think>/<answer> for r1_zero)
    min_language: float = 0.9  # readability: share of reasoning words in language_target (0 = off)
    language_target: str = "en"
    data_shots: int = 0  # worked examples kept in the written prompts (sampling may use more, via task.shots)
    batch_size: int = 64
    seed: int = 0
    out: str = "runs/sample/data.jsonl"  # chat JSONL; statistics go beside it (<name>.stats.json)

    def __post_init__(self):
        _choice("prefer", self.prefer, ("first", "shortest"))
        _choice("source", self.source, ("model", "solutions"))
        _at_least_one(self, ("samples", "batch_size"))
        if self.relabel_budgets:
            from thinkrl.tasks.budget import parse_budgets

            if parse_budgets(self.relabel_budgets) is None:
                raise UserError(f"relabel_budgets = {self.relabel_budgets!r}: must be positive token counts, e.g. [24, 48, 80]")
            if self.task.think_budgets:
                raise UserError("relabel_budgets writes the budgets itself: leave task.think_budgets empty")
        if self.keep < 0 or self.limit < 0 or self.data_shots < 0:
            raise UserError("keep, limit and data_shots must be >= 0")
        if not 0 <= self.min_language <= 1:
            raise UserError(f"min_language must be in [0, 1], got {self.min_language}")
        if self.min_language and self.language_target not in SCRIPTS:
            raise UserError(f"language_target must be one of {', '.join(SCRIPTS)}, got '{self.language_target}'")


@dataclass
class DistillConfig:
    """`thinkrl distill`: the teacher's correct traces (rejection-sampled) -> student SFT.

    The stage sections are whole configs; distill fills in their wiring: sample.model = teacher,
    sample.out, sft.model = the student, sft.data, sft.out_dir (and sft.teacher when
    sft.kl_coef > 0). The held-out evaluation uses sample.task's eval split."""

    teacher: ModelConfig = field(default_factory=ModelConfig)
    student: ModelConfig = field(default_factory=ModelConfig)
    student_layers: int = 0  # > 0: the student keeps this many evenly spaced decoder layers (a smaller model)
    data: str = ""  # teacher traces already sampled (chat JSONL): skip the sampling stage
    sample: SampleConfig = field(default_factory=SampleConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)
    seed: int = 0
    out_dir: str = "runs/distill"

    def __post_init__(self):
        if self.student_layers < 0:
            raise UserError(f"student_layers must be >= 0, got {self.student_layers}")


PIPELINE_STAGES = ("cold_start_data", "cold_start_sft", "reasoning_rl", "rejection_data", "rejection_sft", "all_rl")


@dataclass
class PipelineConfig:
    """`thinkrl pipeline`: DeepSeek-R1, stage by stage.

    cold_start_data (sample) -> cold_start_sft -> reasoning_rl -> rejection_data (sample the RL
    model) -> rejection_sft -> all_rl. Each section is that stage's whole config; the pipeline
    fills in the wiring (which model a stage starts from, which data it reads, where it writes)."""

    # the loader's rule (config.loader): a stage without its own [<stage>.task] takes the top-level [task] whole
    INHERITED_SECTIONS: ClassVar[dict[str, tuple[str, ...]]] = {"task": PIPELINE_STAGES}

    model: ModelConfig = field(default_factory=ModelConfig)  # the base model
    stages: list[str] = field(default_factory=lambda: list(PIPELINE_STAGES))  # which stages run, in this order
    cold_start_model: str = ""  # the model the cold-start data is sampled from ("" = the base model)
    rejection_sft_from: str = "base"  # base (as R1: retrain the base on the new data) | previous (the RL model)
    compare: list[str] = field(default_factory=list)  # more models for the final report (e.g. an R1-Zero run)
    cold_start_data: SampleConfig = field(default_factory=SampleConfig)
    cold_start_sft: SFTConfig = field(default_factory=SFTConfig)
    reasoning_rl: RLConfig = field(default_factory=RLConfig)
    rejection_data: SampleConfig = field(default_factory=SampleConfig)
    rejection_sft: SFTConfig = field(default_factory=SFTConfig)
    all_rl: RLConfig = field(default_factory=RLConfig)
    task: TaskConfig = field(default_factory=TaskConfig)  # the held-out evaluation every stage's model gets
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)
    seed: int = 0
    out_dir: str = "runs/r1"
    resume: bool = False  # skip finished stages, resume an interrupted one from its checkpoint

    def __post_init__(self):
        _choice("rejection_sft_from", self.rejection_sft_from, ("base", "previous"))
        for s in self.stages:
            _choice("stages entry", s, PIPELINE_STAGES)
        order = [PIPELINE_STAGES.index(s) for s in self.stages]
        if order != sorted(order) or len(set(order)) != len(order):
            raise UserError(f"stages must keep the R1 order without repeats: {', '.join(PIPELINE_STAGES)}")


@dataclass
class DPOConfig:
    """`thinkrl dpo`: direct preference optimisation on chosen/rejected pairs (Kimi's long2short route)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""  # preference JSONL, the format `thinkrl rm` reads
    beta: float = 0.1  # strength of the implicit KL to the reference (the starting model)
    epochs: int = 1
    steps: int = 0  # optimizer steps; 0 = epochs x (train pairs / batch_size)
    batch_size: int = 8  # pairs per optimizer step
    micro_batch_size: int = 4  # pairs per forward/backward
    max_len: int = 2048  # pairs with a longer conversation are left out, and counted
    eval_fraction: float = 0.1  # share of the prompts held out (0 = none)
    detach_prompt: bool = False  # encode the prompt without gradient (CPU)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6))
    lora: LoraConfig = field(default_factory=LoraConfig)  # r > 0: train LoRA adapters
    seed: int = 0
    out_dir: str = "runs/dpo"

    def __post_init__(self):
        _at_least_one(self, ("epochs", "batch_size", "micro_batch_size", "max_len"))
        if self.beta <= 0:
            raise UserError(f"beta must be > 0, got {self.beta}")
        if not 0 <= self.eval_fraction < 1:
            raise UserError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")


@dataclass
class MergeConfig:
    """`thinkrl merge`: a weighted average of checkpoints of one architecture (Kimi's long2short merge)."""

    models: list[str] = field(default_factory=list)  # two or more model folders (or embedded names)
    weights: list[float] = field(default_factory=list)  # one per model, summing to 1; empty = equal weights
    out: str = "runs/merged"
    dtype: str = "float32"  # dtype of the merged weights: float32 | bfloat16 | float16

    def __post_init__(self):
        _choice("dtype", self.dtype, ("float32", "bfloat16", "float16"))
        if self.weights and len(self.weights) != len(self.models):
            raise UserError(f"weights has {len(self.weights)} entries for {len(self.models)} models: give one each")
        if self.weights and abs(sum(self.weights) - 1.0) > 1e-6:
            raise UserError(f"weights must sum to 1, got {sum(self.weights)}")
