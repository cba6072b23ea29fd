"""Between HF models and thinkrl's decoder: take an HF model's weights, write an HF checkpoint.

HF reads every checkpoint (safetensors, sharded, .bin, gguf through the converter), so loading
stays `from_pretrained`; `adopt` then moves the HF model's own Parameter objects into thinkrl's
module of the same layout (no copy; tied weights stay one Parameter). Saving writes what HF's
`save_pretrained` writes for these layouts (config.json naming the HF class, generation_config.json,
model.safetensors without the tied head), so plain `transformers` loads a thinkrl checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from thinkrl.model.llama import CausalLM, ValueModel, supports
from thinkrl.model.lora import has_lora, merged_state_dict

OWN = (CausalLM, ValueModel)


def is_own(model) -> bool:
    """Does thinkrl's decoder run this model (else it is an HF model run by its own forward)?"""
    return isinstance(model, OWN)


def adopt(hf_model):
    """thinkrl's module holding `hf_model`'s parameters, or `hf_model` itself where `supports` says no.

    Causal LMs become CausalLM, token-classification models with one label (PPO's critic) ValueModel.
    The HF model must not be used afterwards: its parameters now belong to the returned module.
    """
    config = hf_model.config
    if supports(config) is not None:
        return hf_model
    state = hf_model.state_dict(keep_vars=True)  # the Parameters themselves: tied ones stay tied
    score = getattr(hf_model, "score", None)
    with torch.device("meta"):  # no memory, no init: every parameter is assigned below
        if type(hf_model).__name__.endswith("ForTokenClassification"):
            if score is None or score.out_features != 1:
                return hf_model
            model = ValueModel(config, score_bias=score.bias is not None)
        elif hasattr(hf_model, "lm_head"):
            model = CausalLM(config)
        else:
            return hf_model
    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    model.load_state_dict(state, strict=True, assign=True)
    model.model.rotary_emb.to(next(iter(state.values())).device)  # built on the CPU, outside the meta device
    if isinstance(model, CausalLM):
        if getattr(config, "tie_word_embeddings", False):
            model.lm_head.weight = model.model.embed_tokens.weight
        model.generation_config = getattr(hf_model, "generation_config", None)
    return model.train(hf_model.training)


def hf_class_name(model) -> str:
    """The transformers class that reads this model's checkpoint, e.g. LlamaForCausalLM."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    )

    names = MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES if isinstance(model, ValueModel) else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    return names[model.config.model_type]


def save_own(model, folder: Path) -> None:
    """Write `model` (CausalLM or ValueModel) as an HF checkpoint into an existing `folder`; with
    LoRA adapters attached, the merged weights (thinkrl.model.lora.merged_state_dict)."""
    from safetensors.torch import save_file

    config = model.config
    config.architectures = [hf_class_name(model)]
    config.dtype = next(model.parameters()).dtype
    config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    tied = getattr(config, "tie_word_embeddings", False)
    state = merged_state_dict(model) if has_lora(model) else model.state_dict()
    state = {k: v.detach().contiguous() for k, v in state.items() if not (tied and k == "lm_head.weight")}
    save_file(state, str(Path(folder) / "model.safetensors"), metadata={"format": "pt"})


def keep_layers(model, idx: list[int]):
    """`model` (thinkrl's decoder or an HF llama-family model) with only decoder layers `idx`, in
    place, its config saying so: a distillation student cut from its teacher."""
    layers = model.model.layers
    model.model.layers = torch.nn.ModuleList([layers[i] for i in idx])
    for new, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = new  # KV caches (ours and HF's) are indexed by it
    model.config.num_hidden_layers = len(idx)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[i] for i in idx]
    return model
