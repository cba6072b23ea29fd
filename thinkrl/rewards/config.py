"""RewardConfig: the `[rewards]` table of a recipe (what each weight switches on: thinkrl.rewards)."""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkrl.errors import UserError


@dataclass
class RewardConfig:
    accuracy: float = 1.0
    code_mode: str = "all"  # a code task's accuracy: all (1 when every test passes, else 0) | share (of tests passed)
    format: float = 0.0
    format_soft: float = 0.0
    tag_count: float = 0.0
    env: float = 0.0  # the reward a conversation's environment gave (thinkrl.envs; the guess task)
    overlong: float = 0.0
    overlong_buffer: int = 16  # tokens before max_new_tokens where the overlong penalty starts
    language: float = 0.0  # R1 language consistency of the reasoning (thinkrl.rewards.language)
    language_target: str = "en"  # the language the reasoning should be written in
    length_kimi: float = 0.0  # Kimi k1.5 length penalty within each prompt's group (thinkrl.rewards.length)
    length_cosine: float = 0.0  # cosine length reward: short correct and long wrong answers preferred
    cosine_max_len: int = 0  # tokens at which the cosine reaches its long value; 0 = sampling.max_new_tokens
    length_warmup_steps: int = 0  # Kimi k1.5's warm-up: length_kimi and length_cosine count from this RL step on
    length_l1: float = 0.0  # L1 budget reward (needs task.think_budgets; replaces accuracy)
    l1_mode: str = "exact"  # exact (as long as asked) | max (at most as long as asked)
    l1_alpha: float = 0.0003  # reward per token off the budget (the L1 paper's; raise it for budgets of tens of tokens)
    l1_delta: float = 0.5  # max mode: the reward of a correct answer exactly at its budget
    custom: list[str] = field(default_factory=list)  # "module:function" rewards of your own
    custom_weights: list[float] = field(default_factory=list)  # one weight per custom reward
    reward_model: str = ""  # folder of a reward model trained by `thinkrl rm`; "" = none
    reward_model_weight: float = 1.0  # weight of its score (the reward named "rm")
    reward_model_input: str = "answer"  # answer (the final answer only, R1 helpfulness) | response (all of it)
    reward_model_batch_size: int = 16  # completions per reward-model forward pass
    reward_model_max_length: int = 1024  # tokens of prompt + response it reads (longer: the end is kept)
    judge: str = ""  # a local causal LM (folder or embedded name) judging answers against the reference; "" = none
    judge_weight: float = 1.0  # weight of its soft yes (the reward named "judge": thinkrl.rewards.judge)
    judge_template: str = ""  # its user turn, with {question}, {reference}, {answer}; "" = thinkrl.rewards.judge.DEFAULT_TEMPLATE
    judge_input: str = "answer"  # answer (the final answer only) | response (all of it), put in {answer}
    judge_batch_size: int = 16  # completions per judge forward pass
    timeout: float = 10.0  # seconds a user reward (or the reward model, per completion) may take before it scores 0; 0 = no limit

    def __post_init__(self):
        from thinkrl.rewards.model import RM_INPUTS

        if self.reward_model_input not in RM_INPUTS:
            raise UserError(f"rewards.reward_model_input must be one of {', '.join(RM_INPUTS)}, got '{self.reward_model_input}'")
        if not self.timeout >= 0:
            raise UserError(f"rewards.timeout must be >= 0 seconds (0 = no limit), got {self.timeout}")
        if self.code_mode not in ("all", "share"):
            raise UserError(f"rewards.code_mode must be all or share, got '{self.code_mode}'")
        if self.l1_mode not in ("exact", "max"):
            raise UserError(f"rewards.l1_mode must be exact or max, got '{self.l1_mode}'")
        if self.length_warmup_steps < 0:
            raise UserError(f"rewards.length_warmup_steps must be >= 0, got {self.length_warmup_steps}")
        if self.judge_batch_size < 1:
            raise UserError(f"rewards.judge_batch_size must be >= 1, got {self.judge_batch_size}")
        if self.reward_model_batch_size < 1:
            raise UserError(f"rewards.reward_model_batch_size must be >= 1, got {self.reward_model_batch_size}")
        if len(self.custom) != len(self.custom_weights):
            raise UserError(
                f"rewards.custom has {len(self.custom)} entries but rewards.custom_weights has {len(self.custom_weights)}: give one weight each"
            )
