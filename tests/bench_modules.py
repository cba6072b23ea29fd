"""Load a script of benchmarks/ as a module, so a test reuses its code (benchmarks/ is no package)."""

import importlib.util
import sys
from pathlib import Path


def load_benchmark(name: str):
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod
