"""The one JSONL reader: every data file a stage reads (task problems, chat data, preference pairs,
`thinkrl eval` completions) goes through `read_jsonl`, so they fail alike on a bad file: a
UserError naming PATH:LINE for bytes that are not UTF-8 and for a line that is not JSON. What a
line must hold is the caller's check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from thinkrl.errors import UserError


def read_utf8(path: Path) -> str:
    """A data file's text (a BOM is dropped); a UserError naming PATH:LINE of the first byte that is
    not UTF-8 (a latin-1 export, a binary file)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x}): save the file as UTF-8") from None


def lines(text: str) -> list[str]:
    """The lines of a JSONL text: split at newlines only. str.splitlines also splits at U+2028,
    U+0085 and other characters a JSON string may hold raw, and would cut such a line in two."""
    return [line.rstrip("\r") for line in text.split("\n")]


def read_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON value) of each non-blank line, in file order. The caller checks
    that the file exists (its message names the setting that gave the path)."""
    for n, line in enumerate(lines(read_utf8(path)), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        yield n, row
