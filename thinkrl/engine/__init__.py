"""Rollout engine: token ids in, completions (ids, log-probs, loss mask, finish reason) out."""

from thinkrl.engine.engine import Completion, Engine
from thinkrl.engine.sampling import SamplingParams

__all__ = ["Completion", "Engine", "SamplingParams"]
