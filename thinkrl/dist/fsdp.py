"""FSDP2 for thinkrl's decoder: shard the trained model, gather full weights for the engine and checkpoints.

`shard` applies `fully_shard` to every decoder layer, then to the whole model (embeddings, final
norm and head; a tied head stays one parameter). The root keeps its parameters gathered from
forward to backward (`reshard_after_forward=False`), so the training code may call the head after
`model.hidden(...)` as it does in one process. Gradients are summed over the ranks, not averaged:
each rank's loss is already its share of the global token mean.

Parameters stay fp32 and sharded (the optimizer's state is exact, so resume is too); with a bf16
model dtype FSDP2's mixed-precision policy runs forward and backward in bf16 and reduces
gradients in fp32, which replaces one process's fp32 master weights (thinkrl.train.optim).

The engine samples from an unsharded inference copy (`inference_copy`), refreshed in place after
each update (`refresh`): one all-gather of the weights per RL step, the copy's memory is one full
model per rank in the model dtype, and its tensors keep their addresses, so CUDA graphs stay valid.
"""

from __future__ import annotations

import copy

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from thinkrl.errors import UserError

FULL = StateDictOptions(full_state_dict=True)


def shard(model, dtype: torch.dtype):
    """`model` (fp32, thinkrl's decoder) sharded in place with FSDP2; computes in `dtype`."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method
    from thinkrl.model import is_own

    if not is_own(model):
        raise UserError(f"data-parallel training serves thinkrl's decoder (llama, mistral, qwen2, qwen3), not "
                        f"{getattr(model.config, 'model_type', '?')}")
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype != torch.float32 else None
    kw = {"mp_policy": mp} if mp is not None else {}
    for layer in model.model.layers:
        fully_shard(layer, **kw)
    fully_shard(model, reshard_after_forward=False, **kw)
    register_fsdp_forward_method(model, "hidden")  # the training forward enters through hidden(), not forward()
    for module in (*model.model.layers, model):  # a sum over ranks: each rank's loss is its share of the global mean
        module.set_gradient_divide_factor(1.0)
        module.set_force_sum_reduction_for_comms(True)  # plain SUM (gloo has no pre-multiplied sum)
    return model


def full_state(model) -> dict[str, torch.Tensor]:
    """The full (unsharded) weights, on every rank, by parameter name."""
    return get_model_state_dict(model, options=FULL)


def inference_copy(model, dtype: torch.dtype):
    """An unsharded copy of `model` (before sharding) for the engine, in the model dtype. Its
    parameters keep their requires_grad flags (never used for a backward: the engine runs without
    gradients), so saving it writes the same trainable parts (a LoRA adapter) as the model would."""
    return copy.deepcopy(model).to(dtype).eval()


@torch.no_grad()
def refresh(copy_model, model) -> None:
    """Write the sharded model's current weights into the inference copy, in place."""
    state = full_state(model)
    own = dict(copy_model.named_parameters(remove_duplicate=False))
    for name, value in state.items():
        own[name].copy_(value)
    missing = set(own) - set(state)
    head = getattr(copy_model, "lm_head", None)  # PPO's critic has a value head instead
    tied = {"lm_head.weight"} if head is not None and head.weight is copy_model.model.embed_tokens.weight else set()
    if missing - tied:
        raise RuntimeError(f"weights missing from the gathered state: {sorted(missing - tied)[:3]}")
