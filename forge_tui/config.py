"""TOML configuration -> typed, validated config.

Every section is a frozen dataclass whose fields carry a one-line doc (`doc=` in the field metadata);
the README's config table is written from them. Loading gathers *every*
problem (syntax, unknown sections and keys, wrong types, impossible values) before reporting, each as
`FILE:LINE: [section] key: what is wrong` where the line can be found.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from forge_tui.errors import BadInput
from forge_tui.paths import default_config_file


def _doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class ModelsConfig:
    """Models beyond the embedded default."""

    paths: tuple[str, ...] = _doc(
        "Local model directories (safetensors) to offer besides the embedded default.", factory=tuple
    )


@dataclass(frozen=True)
class DataConfig:
    """Dataset discovery and preparation."""

    dirs: tuple[str, ...] = _doc("Folders to browse for datasets besides sample_data/.", factory=tuple)
    eval_fraction: float = _doc("Share of samples held out for eval loss (split by content hash).", 0.1)
    max_seq_len: int = _doc("Tokens per sample; longer samples are truncated (and reported).", 1024)
    max_record_mib: int = _doc("Largest single record a reader accepts, in MiB (bounds memory).", 8)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not 0.0 <= self.eval_fraction < 0.5:
            found.append(("eval_fraction", f"must be in [0, 0.5), got {self.eval_fraction}"))
        if not 16 <= self.max_seq_len <= 131072:
            found.append(("max_seq_len", f"must be between 16 and 131072, got {self.max_seq_len}"))
        if not 1 <= self.max_record_mib <= 1024:
            found.append(("max_record_mib", f"must be between 1 and 1024, got {self.max_record_mib}"))
        return found


@dataclass(frozen=True)
class Config:
    """The whole configuration; each attribute is one TOML table."""

    models: ModelsConfig = field(default_factory=ModelsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    source: Path | None = None


SECTIONS: dict[str, type] = {"models": ModelsConfig, "data": DataConfig}


@dataclass(frozen=True)
class ConfigProblem:
    file: Path
    line: int | None
    message: str

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
            problems.append(ConfigProblem(file, line, f"[{name}] unknown key {key!r} (known: {', '.join(sorted(known))})"))
            continue
        converted, problem = _coerce(value, hints[key])
        if problem:
            problems.append(ConfigProblem(file, line, f"[{name}] {key}: {problem}"))
        else:
            values[key] = converted
    section = cls(**values)
    check = getattr(section, "problems", None)
    if check is not None:
        for key, message in check():
            problems.append(ConfigProblem(file, lines.get((name, key)), f"[{name}] {key}: {message}"))
    return section, problems


def parse_config(text: str, file: Path) -> Config:
    """Parse TOML text; raise ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib only gained structured positions in 3.14; older ones put them in the message
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(exc))
        line = int(found.group(1)) if found else None
        message = str(exc)[: found.start()] + f" at column {found.group(2)}" if found else str(exc)
        raise ConfigError([ConfigProblem(file, line, f"TOML syntax error: {message}")]) from None
    lines = _key_lines(text)
    problems: list[ConfigProblem] = []
    sections: dict[str, Any] = {}
    for name, table in data.items():
        cls = SECTIONS.get(name)
        if cls is None:
            problems.append(
                ConfigProblem(file, lines.get((name, "")) or lines.get(("", name)),
                              f"unknown section [{name}] (known: {', '.join(sorted(SECTIONS))})")
            )
            continue
        sections[name], found = _build_section(name, cls, table, file, lines)
        problems.extend(found)
    if problems:
        raise ConfigError(problems)
    return Config(**sections, source=file)


def load_config(path: Path | None = None) -> Config:
    """Load `path`, or the default config file if it exists, or the built-in defaults."""
    explicit = path is not None
    file = path if explicit else default_config_file()
    if not file.exists():
        if explicit:
            raise BadInput(f"{file}: config file not found")
        return Config()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise BadInput(f"{file}: cannot read config: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(file, line, "config is not valid UTF-8")]) from None
    return parse_config(text, file)

