"""Datasets: discovery, record shapes and their normalisation to one chat form, and the readers'
entry points (`read_dataset`, `load_samples`). The streaming itself is in `readers`.

Accepted record shapes (detected per file from its first record; a file mixing them is an error):
- chat:      {"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}
- alpaca:    {"instruction": "...", "input": "..." (optional), "output": "..."}
- prompt:    {"prompt": "...", "completion": "..."}
- text:      {"text": "..."}
Other keys (`id`, `category`, `facts`, ...) are kept as metadata.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from forge_tui.engine.readers import DEFAULT_MAX_RECORD_BYTES, RawRecord, read_raw
from forge_tui.engine.sample import FORMAT_KEYS, ROLES, DatasetError, Format, Message, Problem, Sample

__all__ = [
    "DatasetError",
    "Format",
    "Message",
    "Problem",
    "Sample",
    "dataset_files",
    "discover_datasets",
    "is_telemetry_recording",
    "load_samples",
    "normalise",
    "not_readable",
    "read_dataset",
    "read_samples",
    "skipped_entries",
    "special_kind",
]

SUFFIXES = (".jsonl", ".json", ".csv")


# --------------------------------------------------------------------------- discovery


def is_telemetry_recording(path: Path) -> bool:
    """A telemetry recording (JSONL too) announces itself on its first line; it is not training data."""
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline(4096))
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and first.get("recording") == "forge-telemetry"


def special_kind(path: Path) -> str | None:
    """What a path is when it is neither a regular file nor a folder, in words; None for those two (and
    for a path that is not there). Opening a FIFO blocks until a writer comes: such a path is never
    opened."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def not_readable(path: Path) -> str | None:
    """Why a dataset path is never opened (a FIFO, a socket, a device), in words; None for a regular
    file or a folder."""
    kind = special_kind(path)
    return f"{kind}, not a regular file or folder: not read (it could block or never end)" if kind else None


def dataset_files(path: Path) -> list[Path]:
    """The data files a path names: the file itself, or the supported regular files in a folder
    (sorted), leaving out telemetry recordings; nothing for a path that is neither."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*")
                      if p.is_file() and p.suffix.lower() in SUFFIXES and not is_telemetry_recording(p))
    return [path] if path.is_file() else []


def skipped_entries(folder: Path) -> list[tuple[Path, str]]:
    """Entries of a folder with a data file's name that are not regular files (FIFOs, sockets,
    devices): left out of the dataset, each with what it is."""
    if not folder.is_dir():
        return []
    found = ((entry, special_kind(entry)) for entry in sorted(folder.rglob("*")) if entry.suffix.lower() in SUFFIXES)
    return [(entry, kind) for entry, kind in found if kind]


def discover_datasets(roots: Iterable[Path]) -> list[Path]:
    """Every data file under the given folders (missing folders are skipped), for browsing."""
    return [file for root in roots if root.is_dir() for file in dataset_files(root)]


# --------------------------------------------------------------------------- normalisation


def detect_format(record: Any) -> Format | None:
    """The format a record's keys announce, by precedence chat > alpaca > prompt > text."""
    if not isinstance(record, dict):
        return None
    for fmt, keys in FORMAT_KEYS.items():
        if keys[0] in record or (fmt == "prompt" and "completion" in record):
            return fmt  # type: ignore[return-value]
    return None


def _type_word(value: Any) -> str:
    if value is None:
        return "null"
    words = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return words.get(type(value), type(value).__name__)


def _text_field(record: Mapping[str, Any], key: str, problems: list[str], *, optional: bool = False, label: str = "") -> str:
    """The string under `key`, or "" with a problem noted; `label` prefixes nested fields."""
    name = f"{label}.{key}" if label else repr(key)
    if key not in record:
        if not optional:
            problems.append(f"missing field {name}")
        return ""
    value = record[key]
    if not isinstance(value, str):
        problems.append(f"{name} is {_type_word(value)}, expected a string")
        return ""
    if not optional and not value.strip():
        problems.append(f"{name} is empty")
    return value


def _chat_messages(record: Mapping[str, Any], problems: list[str]) -> tuple[Message, ...]:
    turns = record["messages"]
    if not isinstance(turns, list):
        problems.append(f"'messages' is {_type_word(turns)}, expected an array of turns")
        return ()
    if not turns:
        problems.append("'messages' is empty")
        return ()
    messages = []
    for index, turn in enumerate(turns):
        label = f"messages[{index}]"
        if not isinstance(turn, dict):
            problems.append(f"{label} is {_type_word(turn)}, expected an object with role and content")
            continue
        role = turn.get("role")
        if role not in ROLES:
            shown = "missing" if role is None else repr(role)
            problems.append(f"{label}.role is {shown}; expected one of {', '.join(ROLES)}")
        content = _text_field(turn, "content", problems, label=label)
        messages.append(Message(str(role), content))
    if not any(m.role == "assistant" for m in messages):
        problems.append("conversation has no assistant turn (nothing to learn from)")
    return tuple(messages)


def _alpaca_messages(record: Mapping[str, Any], problems: list[str]) -> tuple[Message, ...]:
    instruction = _text_field(record, "instruction", problems)
    extra = _text_field(record, "input", problems, optional=True)
    output = _text_field(record, "output", problems)
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return (Message("user", prompt), Message("assistant", output))


def _prompt_messages(record: Mapping[str, Any], problems: list[str]) -> tuple[Message, ...]:
    prompt = _text_field(record, "prompt", problems)
    completion = _text_field(record, "completion", problems)
    return (Message("user", prompt), Message("assistant", completion))


def _text_messages(record: Mapping[str, Any], problems: list[str]) -> tuple[Message, ...]:
    return (Message("assistant", _text_field(record, "text", problems)),)


_BUILDERS = {"chat": _chat_messages, "alpaca": _alpaca_messages, "prompt": _prompt_messages, "text": _text_messages}


def normalise(raw: RawRecord, file: Path, file_format: Format | None) -> tuple[Sample | None, list[Problem]]:
    """Validate one record against its file's format and build the Sample."""
    record = raw.value
    if not isinstance(record, dict):
        return None, [Problem(file, raw.line, f"record is {_type_word(record)}, expected an object")]
    fmt = detect_format(record)
    if fmt is None:
        keys = ", ".join(sorted(record)) or "none"
        return None, [Problem(file, raw.line,
                              f"record has keys [{keys}]; expected messages, instruction+output, prompt+completion or text")]
    if file_format is not None and fmt != file_format:
        return None, [Problem(file, raw.line, f"record is in {fmt} format but this file is in {file_format} format (mixed formats)")]
    found: list[str] = []
    messages = _BUILDERS[fmt](record, found)
    if found:
        return None, [Problem(file, raw.line, message) for message in found]
    used = set(FORMAT_KEYS[fmt])
    meta = {key: value for key, value in record.items() if key not in used}
    return Sample(messages, fmt, file, raw.line, meta), []


def read_samples(file: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[Sample | Problem]:
    """Samples and problems of one file; its format is that of its first recognisable record."""
    file_format: Format | None = None
    seen_any = False
    for item in read_raw(file, max_record_bytes):
        seen_any = True
        if isinstance(item, Problem):
            yield item
            continue
        if file_format is None and isinstance(item.value, dict):
            file_format = detect_format(item.value)
        sample, problems = normalise(item, file, file_format)
        yield from problems
        if sample is not None:
            yield sample
    if not seen_any:
        yield Problem(file, None, "no records: the file is empty")


def read_dataset(paths: Iterable[Path], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[Sample | Problem]:
    """Samples and problems of every file under the given paths, in order."""
    for path in paths:
        if not path.exists():
            yield Problem(path, None, "no such file or folder")
            continue
        refused = not_readable(path)
        if refused:
            yield Problem(path, None, refused)
            continue
        files = dataset_files(path)
        if not files:
            yield Problem(path, None, f"folder holds no dataset files ({', '.join(SUFFIXES)})")
        for file in files:
            yield from read_samples(file, max_record_bytes)


def load_samples(path: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> list[Sample]:
    """All samples of a dataset that must be clean (training, evaluation): raise on any problem."""
    samples: list[Sample] = []
    problems: list[Problem] = []
    for item in read_dataset([path], max_record_bytes):
        (problems if isinstance(item, Problem) else samples).append(item)  # type: ignore[arg-type]
    if problems:
        raise DatasetError(problems)
    return samples
