"""Reading and writing configs: TOML recipe + `--set key=value` overrides -> a dataclass, and back.

Generic over any dataclass of sections (thinkrl.config's): `load(cls, recipe, overrides)` builds
defaults <- recipe <- overrides, checking every key (an unknown one names the file and suggests the
closest valid key) and converting every value by its field's type; `to_toml` / `save` write the
resolved config so that `load` reads it back to an equal one. Every error is a one-line UserError.

Two declarations a config class may make, read here (nothing here names a config class):
- `INHERITED_SECTIONS = {"task": ("stage_a", ...)}`: a listed section that a recipe leaves out of
  a sub-table `[stage_a]` is taken whole from the top-level `[task]` (PipelineConfig's stages).
- `LIST_STRINGS = {"digits": int, ...}`: `str` fields whose value is a comma-separated list (the
  code reading them parses the string). A recipe writes them as TOML lists (`digits = [2, 1]`), an
  old comma string (`digits = "2,1"`) still loads, and `to_toml` writes the list.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from thinkrl.errors import UserError



def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown(key: str, valid: list[str], where: str) -> UserError:
    close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
    hint = f"; did you mean '{key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return UserError(f"{where}unknown config key '{key}'{hint}")


def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


_ITEM_NAMES = {int: ("integers", "[2, 1]"), float: ("numbers", "[3, 1]"), str: ("names", '["accuracy", "format"]')}


def _list_strings(cls) -> dict[str, type]:
    return getattr(cls, "LIST_STRINGS", {})


def _list_string(value: Any, item: type, key: str, where: str) -> str:
    """A LIST_STRINGS field's value: a TOML list (or a `--set` "[...]") joined with commas; an old
    comma string as it is (the field's own check reads it)."""
    if isinstance(value, str) and value.strip().startswith("["):
        value = _toml_list(value, key, where)
    if isinstance(value, str):
        return value
    name, example = _ITEM_NAMES[item]
    bad = UserError(f"{where}key '{key}' must be a list of {name}, e.g. {key.rsplit('.', 1)[-1]} = {example}, got {value!r}")
    if not isinstance(value, list):
        raise bad
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int if item is int else (int, float) if item is float else str):
            raise bad
        if item is str and ("," in v or not v.strip()):
            raise bad
    return ",".join(str(v) for v in value)


def _list_items(text: str, item: type) -> list:
    """A LIST_STRINGS field's comma string as the TOML list to_toml writes."""
    out: list = []
    for part in (p.strip() for p in text.split(",")) if text else ():
        if item is str:
            out.append(part)
            continue
        for number in (int, float):
            try:
                out.append(number(part))
                break
            except ValueError:
                pass
        else:  # not a number: written as it is, and read back as an error naming the key
            out.append(part)
    return out


def _toml_list(text: str, key: str, where: str) -> list:
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        raise UserError(f"{where}key '{key}': cannot read {text!r} as a list: write a TOML list such as "
                        "'[\"</answer>\", \"END\"]' (strings quoted) or '[0.5, 0.5]', or comma-separated values") from None


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check or convert one value (from TOML, or a string from --set) to the field type `tp`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _convert(value, args[0], key, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = _toml_list(text, key, where)
            else:
                value = [v for v in text.split(",") if v] if text else []
        if not isinstance(value, list):
            raise UserError(f"{where}key '{key}' must be a list, got {type(value).__name__} {value!r}")
        return [_convert(v, item, key, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise UserError(f"{where}key '{key}' must be true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise UserError(f"{where}key '{key}' must be a number, got {value!r}")
        if isinstance(value, int) or (tp is float and isinstance(value, float)):
            return tp(value)
        if isinstance(value, str):
            try:
                return tp(value.replace("_", ""))
            except ValueError:
                pass
        raise UserError(f"{where}key '{key}' must be {'an integer' if tp is int else 'a number'}, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}key '{key}' must be a string, got {value!r}")
    return value


def build(cls, data: dict[str, Any], prefix: str = "", where: str = "", base=None):
    """Dataclass `cls` from a nested dict, checking every key and type.

    Keys the dict leaves out keep the values of `base` (by default `cls()`), so the defaults an
    entry point gives its sections (eval's sampling temperature, say) survive a partial section.
    """
    base = cls() if base is None else base
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types_:
            raise _unknown(full, list(types_), where)
        tp = types_[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise UserError(f"{where}key '{full}' is a section ([{full}]), not a value")
            kwargs[key] = build(tp, value, prefix=f"{full}.", where=where, base=getattr(base, key))
        elif key in _list_strings(cls):
            kwargs[key] = _list_string(value, _list_strings(cls)[key], full, where)
        else:
            kwargs[key] = _convert(value, tp, full, where)
    try:
        return dataclasses.replace(base, **kwargs)
    except UserError as e:
        raise UserError(f"{where}{e}" if where and not str(e).startswith(where) else str(e)) from None


def parse_override(text: str) -> tuple[list[str], str]:
    key, _, value = text.partition("=")
    if "=" not in text or not key.strip():
        raise UserError(f"--set expects key=value (e.g. --set sampling.temperature=0.7), got '{text}'")
    return key.strip().split("."), value


def _read_toml(path: Path) -> dict[str, Any]:
    """A recipe's tables; a UserError naming PATH:LINE when it is not UTF-8 or not TOML."""
    from thinkrl.data.jsonl import read_utf8

    try:
        text = read_utf8(path)
    except UserError as e:  # "PATH:LINE: not valid UTF-8 ..."
        raise UserError(f"recipe {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib (3.11) puts the position in the message only: "... (at line 3, column 7)"
        found = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", str(e))
        if found:
            raise UserError(f"recipe {path}:{found[2]}: not valid TOML ({found[1]}, column {found[3]})") from None
        raise UserError(f"recipe {path}: not valid TOML ({e})") from None


def load(cls, recipe: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), base=None):
    """The config for an entry point: defaults <- recipe TOML <- `--set` overrides (in that order).
    `recipe`: a TOML file's path, or the name of a recipe shipped in the package (thinkrl.data.packaged).
    `base`: a config of `cls` in place of the defaults (a model's prompt set-up, thinkrl.prompt_setup)."""
    from thinkrl.data.packaged import find_recipe

    data: dict[str, Any] = {}
    if recipe:
        path = find_recipe(recipe)  # a path, or a packaged recipe's name ("r1_zero")
        data = _read_toml(path)
        where = f"recipe {path}: "
        build(cls, data, where=where, base=base)  # report recipe errors against the file before applying overrides
    for text in overrides:
        parts, value = parse_override(text)
        node, tp_cls = data, cls
        for depth, part in enumerate(parts):
            types_ = _field_types(tp_cls)
            dotted = ".".join(parts[: depth + 1])
            if part not in types_:
                raise _unknown(dotted, list(types_), "--set: ")
            tp = types_[part]
            if depth == len(parts) - 1:
                if _is_dataclass_type(tp):
                    raise UserError(f"--set: '{dotted}' is a section; set one of its keys, e.g. {dotted}.{next(iter(_field_types(tp)))}=...")
                items = _list_strings(tp_cls).get(part)
                node[part] = _list_string(value, items, dotted, "--set: ") if items else _convert(value, tp, dotted, "--set: ")
            else:
                if not _is_dataclass_type(tp):
                    raise UserError(f"--set: '{dotted}' is a value, not a section")
                node = node.setdefault(part, {})
                tp_cls = tp
    _inherit_sections(cls, data)
    return build(cls, data, base=base)


def _inherit_sections(cls, data: dict) -> None:
    """cls.INHERITED_SECTIONS = {"task": ("a", "b")}: a sub-table [a] without its own [a.task] takes
    the top-level [task] whole, not the section's defaults (a recipe that names its task once
    samples and trains on it everywhere); a sub-table with its own keeps it as written."""
    for name, subtables in getattr(cls, "INHERITED_SECTIONS", {}).items():
        if name not in data:
            continue
        for sub in subtables:
            section = data.setdefault(sub, {})
            if isinstance(section, dict) and name not in section:
                section[name] = copy.deepcopy(data[name])


# ---------------------------------------------------------------- writing the resolved config


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(cfg) -> str:
    """The whole config as TOML that `load` reads back to an equal config (None values are left out)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []

    def emit(obj, name: str):
        scalars = []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                tables.append((f"{name}.{f.name}" if name else f.name, v))
            elif f.name in _list_strings(type(obj)) and isinstance(v, str):
                scalars.append(f"{f.name} = {_toml_value(_list_items(v, _list_strings(type(obj))[f.name]))}")
            elif v is not None:
                scalars.append(f"{f.name} = {_toml_value(v)}")
        return scalars

    lines += emit(cfg, "")
    while tables:
        name, obj = tables.pop(0)
        lines += ["", f"[{name}]"] + emit(obj, name)
    return "\n".join(lines) + "\n"


def save(cfg, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(cfg), encoding="utf-8")
    return path
