"""TOML configuration -> typed, validated config.

Loading gathers *every* problem (syntax, unknown sections and keys, wrong types, impossible values)
before reporting, each as `FILE:LINE: [section] key: what is wrong` where the line can be found.
Layers, lowest first: the defaults, the preset, the config file, the command line's flags.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from forge_tui.config.sections import PRESETS, SECTIONS, Config
from forge_tui.errors import BadInput
from forge_tui.paths import default_config_file

SET = Path("command line")               # where a problem given by a flag (--set, --map, --dataset) is reported
toml_loads = tomllib.loads              # the TOML reader of this Python (tomli before 3.11), for themes too
TOMLDecodeError = tomllib.TOMLDecodeError


@dataclass(frozen=True)
class ConfigProblem:
    file: Path
    line: int | None
    message: str
    key: str | None = None  # "section.key" the problem is about (the Train form marks that field)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        return f"{where}: {self.message}"


class ConfigError(BadInput):
    """Raised with every problem found in a config file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """Map (table, key) -> line number, so problems can point at the line that holds them."""
    lines: dict[tuple[str, str], int] = {}
    table = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            table = header.group(1)
            lines.setdefault((table, ""), number)
            continue
        key = re.match(r"^([A-Za-z0-9_-]+)\s*=", stripped)
        if key:
            lines.setdefault((table, key.group(1)), number)
    return lines


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _coerce(value: Any, hint: Any) -> tuple[Any, str | None]:
    """Check `value` against a field's type; return (converted value, problem or None)."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list):
            return None, f"expected an array, got {_type_name(value)}"
        items = []
        for index, item in enumerate(value):
            converted, problem = _coerce(item, item_hint)
            if problem:
                return None, f"item {index + 1}: {problem}"
            items.append(converted)
        return tuple(items), None
    if origin is dict:
        return _coerce_table(value, typing.get_args(hint)[1])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, options[0])
    if hint is bool:
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {_type_name(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return None, f"expected an integer, got {_type_name(value)}"
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        return None, f"expected a number, got {_type_name(value)}"
    if hint is str:
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {_type_name(value)}")
    raise TypeError(f"unsupported config type {hint!r}")  # a programming error, not bad input


def _coerce_table(value: Any, item_hint: Any) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return None, f"expected a table ({{ key = value, ... }}), got {_type_name(value)}"
    items = {}
    for key, item in value.items():
        converted, problem = _coerce(item, item_hint)
        if problem:
            return None, f"{key}: {problem}"
        items[key] = converted
    return items, None


def _build_section(
    name: str, cls: type, table: Any, file: Path, lines: dict[tuple[str, str], int]
) -> tuple[Any, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    if not isinstance(table, dict):
        return cls(), [ConfigProblem(file, lines.get((name, "")), f"[{name}] must be a table")]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        line = lines.get((name, key))
        if key not in known:
            problems.append(ConfigProblem(file, line, f"[{name}] unknown key {key!r} (known: {', '.join(sorted(known))})", f"{name}.{key}"))
            continue
        converted, problem = _coerce(value, hints[key])
        if problem:
            problems.append(ConfigProblem(file, line, f"[{name}] {key}: {problem}", f"{name}.{key}"))
        else:
            values[key] = converted
    section = cls(**values)
    check = getattr(section, "problems", None)
    if check is not None:
        for key, message in check():
            problems.append(ConfigProblem(file, lines.get((name, key)), f"[{name}] {key}: {message}", f"{name}.{key}"))
    return section, problems


def _merge(*layers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for name, table in layer.items():
            if isinstance(table, dict) and isinstance(merged.get(name), dict):
                merged[name] = {**merged[name], **table}
            else:
                merged[name] = table
    return merged


def _toml(text: str, file: Path) -> dict[str, Any]:
    """The TOML document, or ConfigError at the line of its syntax error."""
    try:
        return dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        # tomllib only gained structured positions in 3.14; older ones put them in the message
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(exc))
        line = int(at.group(1)) if at else None
        message = str(exc)[: at.start()] + f" at column {at.group(2)}" if at else str(exc)
        raise ConfigError([ConfigProblem(file, line, f"TOML syntax error: {message}")]) from None


def parse_config(text: str, file: Path, preset: str | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, *, check_paths: bool = False) -> Config:
    """Parse TOML text over a preset, then apply flag overrides; raise ConfigError listing every problem
    (a file that is not TOML at all still has its flags checked, so both are reported at once)."""
    name = preset or "standard"
    if name not in PRESETS:
        raise ConfigError([ConfigProblem(file, None, f"unknown preset {name!r} (known: {', '.join(PRESETS)})")])
    overrides = overrides or {}
    problems: list[ConfigProblem] = []
    try:
        data = _toml(text, file)
    except ConfigError as exc:
        problems, data = exc.problems, {}
    lines = _key_lines(text)
    sections: dict[str, Any] = {}
    for section, table in _merge(PRESETS[name], data, overrides).items():
        cls = SECTIONS.get(section)
        if cls is None:
            given = section in overrides and section not in data
            line = None if given else lines.get((section, "")) or lines.get(("", section))
            problems.append(ConfigProblem(SET if given else file, line,
                                          f"unknown section [{section}] (known: {', '.join(sorted(SECTIONS))})"))
            continue
        sections[section], found = _build_section(section, cls, table, file, lines)
        problems.extend(_blame_overrides(found, overrides))
    if check_paths:
        problems.extend(_blame_overrides(_missing_dataset(sections.get("train"), file, lines), overrides))
    if problems:
        raise ConfigError(problems)
    return Config(**sections, preset=name, source=file if text else None)


def _missing_dataset(train: Any, file: Path, lines: dict[tuple[str, str], int]) -> list[ConfigProblem]:
    """The training dataset, when one is named and is not there (reported with the other problems)."""
    dataset = getattr(train, "dataset", "")
    if not dataset or Path(dataset).expanduser().exists():
        return []
    return [ConfigProblem(file, lines.get(("train", "dataset")), f"[train] dataset: {dataset}: no such file or folder",
                          "train.dataset")]


def _blame_overrides(problems: list[ConfigProblem], overrides: dict[str, dict[str, Any]]) -> list[ConfigProblem]:
    """A bad value given on the command line (`--set`, a flag) is reported as such, not as the file's."""
    def given(problem: ConfigProblem) -> bool:
        section, _, key = (problem.key or "").partition(".")
        return key in overrides.get(section, {})

    return [dataclasses.replace(p, file=SET, line=None) if given(p) else p for p in problems]


def config_from_sections(sections: dict[str, dict[str, Any]], file: Path, preset: str = "standard") -> Config:
    """Rebuild a Config from `Config.sections()` (a run's recorded settings), validating it again."""
    return dataclasses.replace(parse_config("", file, "standard", sections), preset=preset, source=None)


def toml_value(value: bool | int | float | str) -> str:
    """A setting written as a TOML value, as `parse_assignments` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


def parse_assignments(items: list[str]) -> dict[str, dict[str, Any]]:
    """`section.key=value` settings (`--set`) -> override tables. The value is read as a TOML value
    (`8`, `2e-4`, `true`, `"text"`), and as a plain string when it is not one (`nf4`)."""
    tables: dict[str, dict[str, Any]] = {}
    for item in items:
        name, equals, raw = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not (equals and dot and section and key):
            raise BadInput(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. lora.r=8")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        tables.setdefault(section, {})[key.strip()] = value
    return tables


def load_config(path: Path | None = None, preset: str | None = None,
                overrides: dict[str, dict[str, Any]] | None = None, *, check_paths: bool = False) -> Config:
    """`path`, or the default config file if it exists, over `preset`, under flag `overrides`;
    `check_paths` also refuses a dataset that is not there (what `train` needs)."""
    explicit = path is not None
    file = path if path is not None else default_config_file()
    if not file.exists():
        if explicit:
            raise BadInput(f"{file}: config file not found")
        return parse_config("", file, preset, overrides, check_paths=check_paths)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise BadInput(f"{file}: cannot read config: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(file, line, "config is not valid UTF-8")]) from None
    return parse_config(text, file, preset, overrides, check_paths=check_paths)
