"""PPO's value model: the policy's initial weights with a scalar head, and its per-token values.

The critic is a separate model (not a head on the policy), so the value loss never pulls on the
policy's weights and the two get their own learning rates: an HF `...ForTokenClassification` with
`num_labels = 1`, loaded from the same folder as the policy, its head zeroed so every value starts
at 0 (the advantages of the first steps are then the discounted rewards, whitened). Saved, it is a
plain HF folder that `AutoModelForTokenClassification.from_pretrained` reads.

Alignment, the same as the log-probs of thinkrl.train.forward: values[b, t] = V(s_t) with
s_t = prompt + completion[:t], read from the hidden state at the position whose logits predict
completion token t (the prompt's last token for t = 0).

The forward is the policy's own (thinkrl.train.forward.completion_hidden on thinkrl.model's
decoder, here a ValueModel: the decoder with the scalar `score` head), so `detach_prompt` has the
policy's meaning: the prompt minus its last token is encoded once per distinct prompt without
gradient, and the completion attends to those cached keys and values. The values are exactly the
full forward's; the gradient leaves out the paths through the prompt's own keys and values, which
on a CPU roughly halves the critic's cost as it does the policy's. A model thinkrl's decoder does
not run takes HF's padded forward (detach_prompt then has no effect).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from thinkrl.errors import UserError
from thinkrl.model import adopt, lora
from thinkrl.models import resolve_model
from thinkrl.train.forward import completion_hidden

WEIGHTS_FILE = "critic.safetensors"  # the critic's weights inside a checkpoint folder


@contextlib.contextmanager
def _quiet_transformers():
    """The load report lists the new head as 'missing', which here is the point: keep it out of the log."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def value_head(critic) -> torch.nn.Linear:
    """The [hidden -> 1] head of a token-classification model (`score` in the llama/qwen family)."""
    head = getattr(critic, "score", None) or getattr(critic, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise UserError(f"{type(critic).__name__} has no linear value head (score / classifier)")
    return head


def load_critic(name_or_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """A value model from a causal-LM folder or embedded name: its transformer plus a zeroed scalar head."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    folder = resolve_model(str(name_or_path))
    try:
        config = AutoConfig.from_pretrained(folder, num_labels=1)
        config.classifier_dropout = 0.0  # a value regression, not a classifier to regularise
        with _quiet_transformers():
            critic = AutoModelForTokenClassification.from_pretrained(folder, config=config, dtype=dtype)
    except ValueError as e:
        raise UserError(f"model folder {folder}: transformers has no token-classification (value) model for it "
                        f"({str(e).splitlines()[0]}); algo.algorithm = 'ppo' needs one") from e
    head = value_head(critic)
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
    return adopt(critic).to(device)


def completion_values(critic, prompts: list[list[int]], prompt_of_row: list[int], completions: list[list[int]], *,
                      detach_prompt: bool = False, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(values [B, T] fp32, mask [B, T] float) of each row's completion given prompts[prompt_of_row[r]].

    T is the longest completion; see the module docstring for the alignment and `detach_prompt`.
    """
    h, _, mask = completion_hidden(critic, prompts, prompt_of_row, completions, detach_prompt=detach_prompt, pad_id=pad_id)
    return value_head(critic)(h).squeeze(-1).float(), mask


def save_critic_weights(critic, folder: Path) -> None:
    """The critic's weights as one safetensors file in `folder` (a checkpoint's temp folder); with
    LoRA only what trains (the adapters and the value head), the rest being the initial weights."""
    from safetensors.torch import save_file

    state = lora.trainable_state(critic) if lora.has_lora(critic) else critic.state_dict()
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(Path(folder) / WEIGHTS_FILE))


def load_critic_weights(critic, folder: Path) -> None:
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"checkpoint {folder} has no {WEIGHTS_FILE}: it was not written by a run with algo.algorithm = 'ppo'")
    state = load_file(str(path), device=str(next(critic.parameters()).device))
    if lora.has_lora(critic):
        lora.load_trainable_state(critic, state, str(path))
    else:
        critic.load_state_dict(state)
