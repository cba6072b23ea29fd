"""Configuration: one dataclass per entry point, filled from a TOML recipe and `--set a.b=value` overrides.

Every field has a default, so a recipe only says what differs. Sections of the TOML file are the
nested dataclasses (`[sampling]`, `[task]`, ...). Unknown keys are errors that name the key (and the
file) and suggest the closest valid one. Values given on the command line are converted by the
field's type. The resolved config is written back as TOML with every run, so a run can be repeated
by passing that file as the recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkrl.algos.advantages import ESTIMATORS, SCALES
from thinkrl.algos.losses import AGGREGATIONS, KL_ESTIMATORS
from thinkrl.engine.sampling import SamplingParams
from thinkrl.errors import UserError
from thinkrl.rewards import RewardConfig
from thinkrl.rewards.language import SCRIPTS
from thinkrl.tasks import TaskConfig

ALGORITHMS = ("grpo", "ppo")  # algo.algorithm


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"  # a local HF folder or an embedded name
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (fp32 on CPU, bf16 on CUDA) | float32 | bfloat16 | float16

    def __post_init__(self):
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise UserError(f"model.dtype must be auto, float32, bfloat16 or float16, got '{self.dtype}'")


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

    def __post_init__(self):
        if self.samples < 1:
            raise UserError(f"samples must be >= 1, got {self.samples}")
        if self.limit < 0:
            raise UserError(f"limit must be >= 0 (0 = all), got {self.limit}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class GenerateConfig:
    """`thinkrl generate` and `thinkrl chat`: answer prompts, showing thinking and answer apart."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=512))
    template: str = "r1_zero"  # r1_zero (system prompt asking for <think>/<answer>) | raw
    system: str = ""  # a system prompt of your own; replaces the template's
    think_budget: int = 0  # generate: append "Think for N tokens." (for a model trained with task.think_budgets)
    seed: int = 0

    def __post_init__(self):
        if self.think_budget < 0:
            raise UserError(f"think_budget must be >= 0 (0 = none), got {self.think_budget}")


def _choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"{key} must be one of {', '.join(choices)}, got '{value}'")


def _at_least_one(cfg, keys, section: str = "") -> None:
    """Each of `keys` on `cfg` must be >= 1 (counts and sizes); the error names the key."""
    for key in keys:
        if getattr(cfg, key) < 1:
            raise UserError(f"{section}{key} must be >= 1, got {getattr(cfg, key)}")


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
class RLEvalConfig:
    """Held-out evaluation during `thinkrl rl`, on the task's eval split."""

    every: int = 0  # steps between evaluations; 0 = at the start and the end only
    limit: int = 200  # held-out problems (the first N of the eval split)
    samples: int = 1
    batch_size: int = 64
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0, max_new_tokens=256))

    def __post_init__(self):
        for key, zero in (("every", "start and end only"), ("limit", "no evaluation")):
            if getattr(self, key) < 0:
                raise UserError(f"eval.{key} must be >= 0 (0 = {zero}), got {getattr(self, key)}")
        _at_least_one(self, ("samples", "batch_size"), "eval.")


@dataclass
class RLConfig:
    """`thinkrl rl`: R1-Zero-style RL from verifiable rewards with the GRPO family."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=256))
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)
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


BENCH_MODES = ("train", "decode")  # bench.mode


@dataclass
class BenchConfig:
    """`thinkrl bench`: GRPO step and decode speed on a random-weight model, on the TRL anchor's
    settings (ANCHORS.md; thinkrl.bench). Workload keys at 0 take the shape's values, which for
    qwen2.5-0.5b are the anchor's: 8 prompts x 8 completions, 128 + 512 tokens."""

    mode: str = "train"  # train: rollout + update steps | decode: generation only, `batch` rows
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
    algo: AlgoConfig = field(default_factory=AlgoConfig)  # the update's settings (defaults: GRPO, beta 0, token mean)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        from thinkrl.bench_model import SHAPES

        _choice("mode", self.mode, BENCH_MODES)
        _choice("shape", self.shape, ("auto", *SHAPES))
        _choice("dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        _at_least_one(self, ("batch", "steps"))
        for key in ("prompt_tokens", "new_tokens", "prompts", "group_size", "warmup", "peak_tflops"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0 (0 = the default), got {getattr(self, key)}")
        if self.vs_trl and self.mode != "train":
            raise UserError("vs_trl compares GRPO steps: use mode = train (--mode train)")
        if self.algo.algorithm != "grpo" or self.algo.kl_coef:
            raise UserError("bench measures the anchor's GRPO step without a reference model: "
                            "keep algo.algorithm = 'grpo' and algo.kl_coef = 0")


# ---------------------------------------------------------------- building dataclasses from dicts


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown(key: str, valid: list[str], where: str) -> UserError:
    close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
    hint = f"; did you mean '{key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return UserError(f"{where}unknown config key '{key}'{hint}")


def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check or convert one value (from TOML, or a string from --set) to the field type `tp`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _convert(value, args[0], key, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = tomllib.loads(f"v = {text}")["v"]
                except tomllib.TOMLDecodeError:
                    raise UserError(f"{where}key '{key}': cannot read {value!r} as a list: write a TOML list such as "
                                    "'[\"</answer>\", \"END\"]' (strings quoted) or '[0.5, 0.5]', or comma-separated values") from None
            else:
                value = [v for v in text.split(",") if v] if text else []
        if not isinstance(value, list):
            raise UserError(f"{where}key '{key}' must be a list, got {type(value).__name__} {value!r}")
        return [_convert(v, item, key, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise UserError(f"{where}key '{key}' must be true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise UserError(f"{where}key '{key}' must be a number, got {value!r}")
        if isinstance(value, int) or (tp is float and isinstance(value, float)):
            return tp(value)
        if isinstance(value, str):
            try:
                return tp(value.replace("_", ""))
            except ValueError:
                pass
        raise UserError(f"{where}key '{key}' must be {'an integer' if tp is int else 'a number'}, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}key '{key}' must be a string, got {value!r}")
    return value


def build(cls, data: dict[str, Any], prefix: str = "", where: str = "", base=None):
    """Dataclass `cls` from a nested dict, checking every key and type.

    Keys the dict leaves out keep the values of `base` (by default `cls()`), so the defaults an
    entry point gives its sections (eval's sampling temperature, say) survive a partial section.
    """
    base = cls() if base is None else base
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types_:
            raise _unknown(full, list(types_), where)
        tp = types_[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise UserError(f"{where}key '{full}' is a section ([{full}]), not a value")
            kwargs[key] = build(tp, value, prefix=f"{full}.", where=where, base=getattr(base, key))
        else:
            kwargs[key] = _convert(value, tp, full, where)
    try:
        return dataclasses.replace(base, **kwargs)
    except UserError as e:
        raise UserError(f"{where}{e}" if where and not str(e).startswith(where) else str(e)) from None


def parse_override(text: str) -> tuple[list[str], str]:
    key, _, value = text.partition("=")
    if "=" not in text or not key.strip():
        raise UserError(f"--set expects key=value (e.g. --set sampling.temperature=0.7), got '{text}'")
    return key.strip().split("."), value


def _read_toml(path: Path) -> dict[str, Any]:
    """A recipe's tables; a UserError naming PATH:LINE when it is not UTF-8 or not TOML."""
    from thinkrl.tasks.jsonl import read_utf8

    try:
        text = read_utf8(path)
    except UserError as e:  # "PATH:LINE: not valid UTF-8 ..."
        raise UserError(f"recipe {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib (3.11) puts the position in the message only: "... (at line 3, column 7)"
        found = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", str(e))
        if found:
            raise UserError(f"recipe {path}:{found[2]}: not valid TOML ({found[1]}, column {found[3]})") from None
        raise UserError(f"recipe {path}: not valid TOML ({e})") from None


def load(cls, recipe: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()):
    """The config for an entry point: defaults <- recipe TOML <- `--set` overrides (in that order)."""
    data: dict[str, Any] = {}
    if recipe:
        path = Path(recipe)
        if not path.is_file():
            raise UserError(f"recipe {path} not found")
        data = _read_toml(path)
        where = f"recipe {path}: "
        build(cls, data, where=where)  # report recipe errors against the file before applying overrides
    for text in overrides:
        parts, value = parse_override(text)
        node, tp_cls = data, cls
        for depth, part in enumerate(parts):
            types_ = _field_types(tp_cls)
            dotted = ".".join(parts[: depth + 1])
            if part not in types_:
                raise _unknown(dotted, list(types_), "--set: ")
            tp = types_[part]
            if depth == len(parts) - 1:
                if _is_dataclass_type(tp):
                    raise UserError(f"--set: '{dotted}' is a section; set one of its keys, e.g. {dotted}.{next(iter(_field_types(tp)))}=...")
                node[part] = _convert(value, tp, dotted, "--set: ")
            else:
                if not _is_dataclass_type(tp):
                    raise UserError(f"--set: '{dotted}' is a value, not a section")
                node = node.setdefault(part, {})
                tp_cls = tp
    if cls is PipelineConfig:
        _inherit_task(data)
    return build(cls, data)


def _inherit_task(data: dict) -> None:
    """A pipeline stage without its own [<stage>.task] table takes the top-level [task] whole (the
    task every model is evaluated on), not TaskConfig's defaults: a recipe that names its task once
    samples and trains on it everywhere. A stage with its own table keeps it as written."""
    if "task" not in data:
        return
    for stage in PIPELINE_STAGES:
        section = data.setdefault(stage, {})
        if isinstance(section, dict) and "task" not in section:
            section["task"] = copy.deepcopy(data["task"])


# ---------------------------------------------------------------- writing the resolved config


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(cfg) -> str:
    """The whole config as TOML that `load` reads back to an equal config (None values are left out)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []

    def emit(obj, name: str):
        scalars = []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                tables.append((f"{name}.{f.name}" if name else f.name, v))
            elif v is not None:
                scalars.append(f"{f.name} = {_toml_value(v)}")
        return scalars

    lines += emit(cfg, "")
    while tables:
        name, obj = tables.pop(0)
        lines += ["", f"[{name}]"] + emit(obj, name)
    return "\n".join(lines) + "\n"


def save(cfg, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(cfg), encoding="utf-8")
    return path


# ---------------------------------------------------------------- supervised stages (R1 cold start, rejection SFT, distillation)


@dataclass
class SFTConfig:
    """`thinkrl sft`: supervised fine-tuning on chat JSONL, loss on the assistant's tokens only."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""  # chat JSONL: one {"messages": [{"role": ..., "content": ...}, ...]} per line
    task: TaskConfig = field(default_factory=TaskConfig)  # held-out evaluation task (eval.limit > 0 turns it on)
    eval: RLEvalConfig = field(default_factory=lambda: RLEvalConfig(limit=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
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
    # L1 hindsight budgets, e.g. "24,48,80": each kept completion's prompt asks for the listed budget
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
                raise UserError(f"relabel_budgets = {self.relabel_budgets!r}: must be comma-separated positive token counts, e.g. '24,48,80'")
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
