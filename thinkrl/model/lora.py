"""LoRA through peft: low-rank adapters injected in place into a model's projections.

`attach` swaps each target `nn.Linear` (the attention and MLP projections of every decoder layer
by default) for peft's `lora.Linear`, which keeps the original as `base_layer` and adds
scale * B(A(dropout(x))) in its forward, scale = alpha / r. The model keeps its class (thinkrl's
CausalLM / ValueModel, or an HF model), its forward and its modes (packed, prefill, decode), so the
engine samples with the adapter applied and the trainer trains the same module: no merge, no
reload per step. Only the adapters (and any head named in `heads`, such as a new score head) keep
`requires_grad`, so an optimizer built over the trainable parameters holds only their state.

Files, in peft's own format so that plain peft reads them (`PeftModel.from_pretrained(base, folder)`):
`save_adapter` writes adapter_config.json + adapter_model.safetensors, keys
`base_model.model.<module>.lora_A.weight` (heads as `modules_to_save`); `load_adapter` reads them
back into an attached model bit for bit (resume). `merged_state_dict` is the plain HF state dict
with every W replaced by W + scale * B @ A, computed without touching the live weights, which is
what a saved final/ folder holds. `disabled(model)` runs the base model (adapters off): the
reference of the KL term, with no second copy of the weights.

With FSDP2, attach before sharding (the adapters then sit in their layer's unit) and gather the
trainable state before `save_adapter`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # the default
ADAPTER_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
PREFIX = "base_model.model."  # what PeftModel's state dict puts before the model's own names
ADAPTER = "default"  # peft's adapter name inside the modules


def _layers(model) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def has_lora(model) -> bool:
    return model is not None and bool(getattr(model, "peft_config", None)) and bool(_layers(model))


def _task_type(model) -> str:
    """peft's task type, which picks the PeftModel class that plain peft wraps the base in."""
    name = type(model).__name__
    if name == "ValueModel" or name.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    return "SEQ_CLS" if name.endswith("ForSequenceClassification") else "CAUSAL_LM"


def attach(model, r: int, alpha: float, dropout: float = 0.0, targets: list[str] | tuple[str, ...] = (),
           seed: int = 0, heads: tuple[torch.nn.Module, ...] = (), base: str = ""):
    """`model` with rank-`r` adapters on `targets` (empty: TARGETS), in place; only the adapters and
    `heads` trainable. B starts at zero, so the model computes exactly what it did; A is drawn with
    the RNG seeded by `seed` (the caller's RNG state is left as it was). `base` is the base model's
    folder, which saved adapters name (base_model_name_or_path)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        from thinkrl.errors import UserError

        raise UserError("lora.r > 0 needs peft: pip install 'thinkrl[lora]' (or pip install 'peft>=0.13')") from None

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets or TARGETS),
                        bias="none", base_model_name_or_path=base or None, task_type=_task_type(model))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            inject_adapter_in_model(config, model)
        except ValueError as e:  # no module matched the names
            from thinkrl.errors import UserError

            raise UserError(f"lora.target_modules {list(targets or TARGETS)}: {str(e).splitlines()[0]}") from e
    for head in heads:
        head.requires_grad_(True)
    return model


def trainable(model) -> list[torch.nn.Parameter]:
    """The parameters an optimizer updates: all of a plain model, the adapters (and heads) of an attached one."""
    return [p for p in model.parameters() if p.requires_grad]


def _is_adapter(name: str) -> bool:
    return ".lora_" in name


def _file_key(name: str) -> str:
    """Our parameter name -> peft's key in adapter_model.safetensors (the adapter name dropped)."""
    return PREFIX + name.replace(f".{ADAPTER}.", ".")


def _model_key(key: str) -> str:
    name = key.removeprefix(PREFIX)
    if _is_adapter(name):  # ...q_proj.lora_A.weight -> ...q_proj.lora_A.default.weight
        stem, leaf = name.rsplit(".", 1)
        name = f"{stem}.{ADAPTER}.{leaf}"
    return name


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The trainable parameters by name (adapters and heads), detached: what a checkpoint must keep."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor], where: str = "") -> None:
    """Copy `state` (trainable_state's names) into `model` in place; every trainable parameter must be there."""
    params = dict(model.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    if set(state) != wanted:
        from thinkrl.errors import UserError

        missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
        raise UserError(f"{where or 'adapter'}: does not fit this model's LoRA adapters (lora.r, lora.target_modules): "
                        f"missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v)


def _heads(model) -> list[str]:
    """Module names of trainable parameters that are not adapters (peft's modules_to_save)."""
    return sorted({n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad and not _is_adapter(n)})


def save_adapter(model, folder: Path) -> None:
    """adapter_config.json + adapter_model.safetensors in `folder` (created), in peft's format."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.peft_config[ADAPTER].to_dict()
    config.update(modules_to_save=_heads(model) or None, inference_mode=True,
                  target_modules=sorted(config["target_modules"]))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    state = {_file_key(n): v.contiguous() for n, v in trainable_state(model).items()}
    save_file(state, str(folder / ADAPTER_FILE), metadata={"format": "pt"})


def load_adapter(model, folder: Path) -> None:
    """Load `save_adapter`'s weights into an attached model, in place (bit for bit)."""
    from safetensors.torch import load_file

    path = Path(folder) / ADAPTER_FILE
    if not path.is_file():
        from thinkrl.errors import UserError

        raise UserError(f"checkpoint {folder} has no {ADAPTER_FILE}: it was not written by a run with lora.r > 0")
    device = next(model.parameters()).device
    load_trainable_state(model, {_model_key(k): v for k, v in load_file(str(path), device=str(device)).items()}, str(path))


def merged_state_dict(model) -> dict[str, torch.Tensor]:
    """The plain state dict (no base_layer / lora_ names) with each adapted weight merged:
    W + scale * B @ A, in W's dtype. The live weights are not changed."""
    adapted = set(_layers(model))
    layers = {name: m for name, m in model.named_modules() if m in adapted}
    state = {}
    for key, value in model.state_dict().items():
        if _is_adapter(key):
            continue
        owner = key[: -len(".base_layer.weight")] if key.endswith(".base_layer.weight") else None
        if owner in layers and ADAPTER in layers[owner].lora_A:
            layer = layers[owner]
            a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight  # [r, in], [out, r]
            with torch.no_grad():  # in fp32, rounded once to W's dtype
                value = (value.float() + layer.scaling[ADAPTER] * (b.float() @ a.float())).to(value.dtype)
        state[key.replace(".base_layer.", ".")] = value.detach()
    return state


@contextlib.contextmanager
def disabled(model):
    """Run the base model inside the block: every adapter off (a no-op for a model without LoRA)."""
    layers = _layers(model) if has_lora(model) else []
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def describe(model) -> str:
    """One line: trainable parameters against all, and the adapter's size."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in trainable(model))
    return f"{train:,} trainable parameters of {total:,} ({100 * train / max(total, 1):.2f}%)"
