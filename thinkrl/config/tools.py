"""The configs of the commands that train nothing: `thinkrl eval`, `compare`, `generate`/`chat` and `bench`."""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkrl.bench_model import SHAPES
from thinkrl.config.sections import AlgoConfig, ModelConfig, OptimConfig, _at_least_one, _choice
from thinkrl.engine.sampling import SamplingParams
from thinkrl.errors import UserError
from thinkrl.reflection import REFLECTION_PHRASES
from thinkrl.tasks import TaskConfig
from thinkrl.tools.config import ToolConfig


@dataclass
class EvalConfig:
    """`thinkrl eval`: sample K completions per held-out problem and score them with the task's verifier."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    # DeepSeek-R1's evaluation setting: temperature 0.6, top-p 0.95 (temperature 0 = greedy)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=512))
    split: str = "eval"  # which split of the task to evaluate on
    limit: int = 0  # first N problems of the split (0 = all)
    samples: int = 1  # completions per problem (K in pass@k, maj@k)
    batch_size: int = 64  # rows (problems x samples) decoded together
    seed: int = 0  # request seeds derive from it: same seed, same completions
    out: str = ""  # results JSON; default runs/eval-<task>-<time>/results.json
    tools: ToolConfig = field(default_factory=ToolConfig)  # tools the model may call (as in training)
    seeds: int = 1  # sampling seeds (seed, seed + 1, ...): rates are their mean, with the spread across them
    # self-verification phrases the reflection/* metrics count (thinkrl.reflection); [] = off
    reflection_phrases: list[str] = field(default_factory=lambda: list(REFLECTION_PHRASES))
    # the model folder's thinkrl_prompt.json (the task, prompt and sampling it was trained with) as
    # the defaults below the recipe and flags: auto (if the folder has one) | none | PATH to such a file
    prompt_setup: str = "auto"

    def __post_init__(self):
        if self.samples < 1:
            raise UserError(f"samples must be >= 1, got {self.samples}")
        if self.seeds < 1:
            raise UserError(f"seeds must be >= 1, got {self.seeds}")
        if self.limit < 0:
            raise UserError(f"limit must be >= 0 (0 = all), got {self.limit}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class CompareConfig:
    """`thinkrl compare A.json B.json`: the paired difference of two `thinkrl eval` results on the same problems."""

    resamples: int = 10_000  # paired bootstrap resamples of the problems
    seed: int = 0  # the bootstrap's seed: the same seed, the same interval
    level: float = 0.95  # confidence level of the interval (and 1 - level: the test's significance level)
    out: str = ""  # also write the comparison as JSON here

    def __post_init__(self):
        _at_least_one(self, ("resamples",))
        if not 0 < self.level < 1:
            raise UserError(f"level must be in (0, 1), got {self.level}")


@dataclass
class GenerateConfig:
    """`thinkrl generate` and `thinkrl chat`: answer prompts, showing thinking and answer apart."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=512))
    template: str = "r1_zero"  # r1_zero (system prompt asking for <think>/<answer>) | boxed | raw
    system: str = ""  # a system prompt of your own; replaces the template's
    shots: int = 0  # worked example turns before the question, from the model's prompt set-up (thinkrl_prompt.json)
    # the model folder's thinkrl_prompt.json (template, example turns, sampling it was trained with) as
    # the defaults below the recipe and flags: auto (if the folder has one) | none | PATH to such a file
    prompt_setup: str = "auto"
    think_budget: int = 0  # generate: append "Think for N tokens." (for a model trained with task.think_budgets)
    seed: int = 0
    tools: ToolConfig = field(default_factory=ToolConfig)  # tools the model may call; calls shown apart

    def __post_init__(self):
        if self.think_budget < 0:
            raise UserError(f"think_budget must be >= 0 (0 = none), got {self.think_budget}")
        if self.shots < 0:
            raise UserError(f"shots must be >= 0, got {self.shots}")


BENCH_MODES = ("train", "decode", "profile")  # bench.mode


@dataclass
class BenchConfig:
    """`thinkrl bench`: GRPO step and decode speed on a random-weight model, on the TRL anchor's
    settings (ANCHORS.md; thinkrl.bench). Workload keys at 0 take the shape's values, which for
    qwen2.5-0.5b are the anchor's: 8 prompts x 8 completions, 128 + 512 tokens."""

    mode: str = "train"  # train: rollout + update steps | decode: generation only, `batch` rows | profile: one
    # train step under torch.profiler, top kernels by device time (CPU time on a CPU) as a table
    shape: str = "auto"  # auto (qwen2.5-0.5b on CUDA, small on CPU) | qwen2.5-0.5b | small | tiny
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16
    prompt_tokens: int = 0  # random prompt ids per prompt; 0 = the shape's
    new_tokens: int = 0  # completion length, forced (end-of-sequence ignored); 0 = the shape's
    prompts: int = 0  # prompts per step; 0 = the shape's
    group_size: int = 0  # completions per prompt; 0 = the shape's
    batch: int = 64  # decode mode: rows decoded together (distinct prompts, one completion each)
    warmup: int = 1  # untimed steps (runs in decode mode) first
    steps: int = 3  # timed steps (runs in decode mode); figures are their mean
    peak_tflops: float = 0.0  # MFU denominator; 0 = by GPU name (H100 / H200: 989 bf16 dense), none on CPU
    vs_trl: bool = False  # also run TRL's GRPOTrainer on the same configuration (a child process) and print ratios
    out: str = ""  # JSON results file ("" = print only)
    seed: int = 0
    runner: str = "auto"  # the engine's runner: auto (graph on CUDA) | eager | graph (on CPU: its code path, no graphs)
    release_engine: bool = False  # free the engine's KV cache and graphs after each rollout (memory vs recapture)
    profile_rows: int = 15  # profile mode: kernels (ops on CPU) in the table
    algo: AlgoConfig = field(default_factory=AlgoConfig)  # the update's settings (defaults: GRPO, beta 0, token mean)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        _choice("mode", self.mode, BENCH_MODES)
        _choice("shape", self.shape, ("auto", *SHAPES))
        _choice("dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        _choice("runner", self.runner, ("auto", "eager", "graph"))
        _at_least_one(self, ("batch", "steps", "profile_rows"))
        for key in ("prompt_tokens", "new_tokens", "prompts", "group_size", "warmup", "peak_tflops"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0 (0 = the default), got {getattr(self, key)}")
        if self.vs_trl and self.mode != "train":
            raise UserError("vs_trl compares GRPO steps: use mode = train (--mode train)")
        if self.algo.algorithm != "grpo" or self.algo.kl_coef:
            raise UserError("bench measures the anchor's GRPO step without a reference model: "
                            "keep algo.algorithm = 'grpo' and algo.kl_coef = 0")


@dataclass
class ReportConfig:
    """`thinkrl report RUN_DIR`: (re)build a finished run's summary and report.html from its files
    (RUN_DIR: the out_dir of rl, sft, rm, dpo, distill or pipeline)."""

    stage: str = ""  # the stage that wrote it; "" = as the run recorded it (run_summary.json), else guessed

    def __post_init__(self):
        if self.stage:
            _choice("stage", self.stage, ("rl", "sft", "rm", "dpo", "distill", "pipeline"))
