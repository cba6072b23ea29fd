"""thinkrl's own llama-family decoder (llama.py), its one attention step (attention.py), the
bridge to HF checkpoints (hf.py) and LoRA adapters on any of these models (lora.py, through peft).
Other architectures run through HF's forward."""

from thinkrl.model.attention import Decode, KVCache, Packed, Prefill, attention, padded_causal_mask
from thinkrl.model.hf import adopt, is_own, keep_layers, save_own
from thinkrl.model.llama import CausalLM, ValueModel, head_shape, supports

__all__ = ["CausalLM", "Decode", "KVCache", "Packed", "Prefill", "ValueModel", "adopt", "attention", "head_shape",
           "is_own", "keep_layers", "padded_causal_mask", "save_own", "supports"]
