"""Configuration: one dataclass per entry point, filled from a TOML recipe and `--set a.b=value` overrides.

Every field has a default, so a recipe only says what differs. Sections of the TOML file are the
nested dataclasses (`[sampling]`, `[task]`, ...), each validated in its `__post_init__` with errors
that name the key. Reading recipes and overrides and writing the resolved config back is
thinkrl.config.loader's (`load`, `save`, `to_toml`, re-exported here); the resolved config is
written with every run, so a run can be repeated by passing that file as the recipe.

Where a section lives, one rule: a section is defined beside the code that interprets it when
that code is a package thinkrl.config builds on, which must then not import thinkrl.config
(`[sampling]`: thinkrl.engine.sampling.SamplingParams; `[task]`: thinkrl.tasks.TaskConfig;
`[rewards]`: thinkrl.rewards.config.RewardConfig; `[tools]`: thinkrl.tools.config.ToolConfig);
every other section, and every entry point's
config, is defined in this package (sections.py: those several entry points share; stages.py:
the training commands; tools.py: eval, compare, generate/chat, bench). All of them are importable from
thinkrl.config.
"""

from __future__ import annotations

from thinkrl.config.loader import load, save, to_toml
from thinkrl.config.sections import ALGORITHMS, AlgoConfig, LoraConfig, ModelConfig, OptimConfig, RLEvalConfig
from thinkrl.config.stages import (
    PIPELINE_STAGES, DistillConfig, DPOConfig, MergeConfig, PipelineConfig, RLConfig, RMConfig, SampleConfig,
    SFTConfig,
)
from thinkrl.config.tools import BENCH_MODES, BenchConfig, CompareConfig, EvalConfig, GenerateConfig, ReportConfig
from thinkrl.engine.sampling import SamplingParams
from thinkrl.rewards.config import RewardConfig
from thinkrl.tasks import TaskConfig
from thinkrl.tools.config import SearchToolConfig, ToolConfig

__all__ = [
    "ALGORITHMS", "BENCH_MODES", "PIPELINE_STAGES", "AlgoConfig", "BenchConfig", "CompareConfig", "DPOConfig", "DistillConfig",
    "EvalConfig", "GenerateConfig", "LoraConfig", "MergeConfig", "ModelConfig", "OptimConfig", "PipelineConfig", "RLConfig",
    "RLEvalConfig", "RMConfig", "ReportConfig", "RewardConfig", "SFTConfig", "SampleConfig", "SamplingParams", "SearchToolConfig",
    "TaskConfig", "ToolConfig",
    "load", "save", "to_toml",
]
