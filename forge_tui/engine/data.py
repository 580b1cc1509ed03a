"""Dataset readers: JSONL, JSON arrays and CSV, streamed, validated and normalised to one chat form.

Every reader yields `Sample`s and `Problem`s in file order and never holds more than one record
(at most `max_record_bytes`) in memory, so a file larger than memory can be checked. Files are opened
read-only; nothing here writes.

Accepted record shapes (detected per file from its first record; a file mixing them is an error):
- chat:      {"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}
- alpaca:    {"instruction": "...", "input": "..." (optional), "output": "..."}
- prompt:    {"prompt": "...", "completion": "..."}
- text:      {"text": "..."}
Other keys (`id`, `category`, `facts`, ...) are kept as metadata.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from forge_tui.errors import BadInput

Format = Literal["chat", "alpaca", "prompt", "text"]
FORMAT_KEYS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "alpaca": ("instruction", "input", "output"),
    "prompt": ("prompt", "completion"),
    "text": ("text",),
}
ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".json", ".csv")
DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024
_CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Sample:
    """One training example in the internal chat form.

    A `text` record becomes a single assistant message with `fmt == "text"`: it is trained on as
    raw text, without the chat template.
    """

    messages: tuple[Message, ...]
    fmt: Format
    file: Path
    line: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input, located as precisely as the format allows."""

    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass(frozen=True)
class _Raw:
    """A parsed record before validation."""

    line: int
    value: Any


class _StopFile(Exception):
    """A problem after which the rest of the file cannot be read reliably."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class DatasetError(BadInput):
    """A dataset that must be clean has problems; the message lists them (capped)."""

    def __init__(self, problems: list[Problem], cap: int = 50) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:cap]]
        if len(problems) > cap:
            lines.append(f"... and {len(problems) - cap} more problems")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- discovery


def is_telemetry_recording(path: Path) -> bool:
    """A telemetry recording (JSONL too) announces itself on its first line; it is not training data."""
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline(4096))
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and first.get("recording") == "forge-telemetry"


def dataset_files(path: Path) -> list[Path]:
    """The data files a path names: the file itself, or the supported files in a folder (sorted),
    leaving out telemetry recordings."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*")
                      if p.is_file() and p.suffix.lower() in SUFFIXES and not is_telemetry_recording(p))
    return [path]


def discover_datasets(roots: Iterable[Path]) -> list[Path]:
    """Every data file under the given folders (missing folders are skipped), for browsing."""
    return [file for root in roots if root.is_dir() for file in dataset_files(root)]


# --------------------------------------------------------------------------- raw readers


class _LineProblem(Exception):
    """A problem confined to one line: reading goes on with the next."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _decode(data: bytes, file: Path, line: int) -> str:
    column = data.find(b"\x00") + 1
    if column:
        raise _LineProblem(Problem(file, line, f"NUL byte at column {column}; is this a binary file?"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _LineProblem(
            Problem(file, line, f"invalid UTF-8 at column {exc.start + 1} (byte 0x{data[exc.start]:02x}); save the file as UTF-8")
        ) from None


def _skip_rest_of_line(handle: BinaryIO) -> None:
    while True:
        chunk = handle.readline(_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


def _bounded_lines(handle: BinaryIO, file: Path, limit: int) -> Iterator[tuple[int, bytes | Problem]]:
    """(line number, bytes without the newline) per line; an over-long line becomes a Problem."""
    number = 0
    while True:
        data = handle.readline(limit + 1)
        if not data:
            return
        number += 1
        if number == 1 and data.startswith(_BOM):
            data = data[len(_BOM):]
        if len(data) > limit and not data.endswith(b"\n"):
            _skip_rest_of_line(handle)
            yield number, Problem(file, number, f"line is longer than {limit // (1024 * 1024)} MiB; records are limited to that size")
            continue
        yield number, data


def _read_jsonl(handle: BinaryIO, file: Path, limit: int) -> Iterator[_Raw | Problem]:
    for number, data in _bounded_lines(handle, file, limit):
        if isinstance(data, Problem):
            yield data
            continue
        complete = data.endswith(b"\n")
        try:
            text = _decode(data, file, number)
        except _LineProblem as exc:
            yield exc.problem
            continue
        if not text.strip():
            continue
        try:
            yield _Raw(number, json.loads(text))
        except json.JSONDecodeError as exc:
            if not complete:
                yield Problem(file, number, f"truncated last line (no newline at the end and the JSON is incomplete: {exc.msg})")
            else:
                yield Problem(file, number, f"malformed JSON: {exc.msg} at column {exc.colno}")
        except RecursionError:
            yield Problem(file, number, "JSON nested too deeply")


class _TextStream:
    """Incrementally decoded UTF-8 text with line counting, for the JSON array reader."""

    def __init__(self, handle: BinaryIO, file: Path) -> None:
        self._handle = handle
        self._file = file
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._first = True
        self.buffer = ""
        self.line = 1  # line number of buffer[0]
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk to the buffer; False at end of file."""
        if self.eof:
            return False
        data = self._handle.read(_CHUNK)
        if self._first and data.startswith(_BOM):
            data = data[len(_BOM):]
        self._first = False
        final = not data
        try:
            text = self._decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            bad_line = self.line + self.buffer.count("\n") + data[: exc.start].count(b"\n")
            raise _StopFile(Problem(self._file, bad_line, "invalid UTF-8; save the file as UTF-8")) from None
        if "\x00" in text:
            bad_line = self.line + (self.buffer + text[: text.index("\x00")]).count("\n")
            raise _StopFile(Problem(self._file, bad_line, "NUL byte; is this a binary file?"))
        self.buffer += text
        self.eof = final
        return not final

    def consume(self, count: int) -> None:
        self.line += self.buffer.count("\n", 0, count)
        self.buffer = self.buffer[count:]

    def skip_space(self) -> bool:
        """Drop leading whitespace; False when only whitespace remains to the end of the file."""
        while True:
            stripped = len(self.buffer) - len(self.buffer.lstrip())
            self.consume(stripped)
            if self.buffer or not self.more():
                return bool(self.buffer)


def _read_json_array(handle: BinaryIO, file: Path, limit: int) -> Iterator[_Raw | Problem]:
    """Stream the elements of a top-level JSON array, one element in memory at a time."""
    stream = _TextStream(handle, file)
    decoder = json.JSONDecoder()
    try:
        if not stream.skip_space():
            return
        if not stream.buffer.startswith("["):
            yield Problem(file, stream.line, "a .json file must hold an array of records ([{...}, ...])")
            return
        stream.consume(1)
        expect_value = True
        while True:
            if not stream.skip_space():
                yield Problem(file, stream.line, "truncated JSON array: the file ends before the closing ]")
                return
            head = stream.buffer[0]
            if head == "]":
                return
            if not expect_value:
                if head != ",":
                    yield Problem(file, stream.line, f"malformed JSON array: expected , or ] but found {head!r}; stopped reading")
                    return
                stream.consume(1)
                expect_value = True
                continue
            yield _decode_element(stream, decoder, file, limit)
            expect_value = False
    except _StopFile as exc:
        yield exc.problem


def _decode_element(stream: _TextStream, decoder: json.JSONDecoder, file: Path, limit: int) -> _Raw:
    start_line = stream.line
    while True:
        try:
            value, end = decoder.raw_decode(stream.buffer)
        except json.JSONDecodeError as exc:
            if len(stream.buffer) > limit:
                raise _StopFile(Problem(file, start_line, f"record is larger than {limit // (1024 * 1024)} MiB or malformed; stopped reading")) from None
            if stream.more():
                continue
            raise _StopFile(Problem(file, start_line + stream.buffer.count("\n", 0, exc.pos), f"malformed or truncated JSON: {exc.msg}")) from None
        except RecursionError:
            raise _StopFile(Problem(file, start_line, "JSON nested too deeply")) from None
        stream.consume(end)
        return _Raw(start_line, value)


def _csv_lines(handle: BinaryIO, file: Path, limit: int) -> Iterator[str]:
    for number, data in _bounded_lines(handle, file, limit):
        if isinstance(data, Problem):
            raise _StopFile(Problem(file, number, data.message + "; stopped reading this CSV file"))
        try:
            yield _decode(data, file, number)
        except _LineProblem as exc:
            raise _StopFile(Problem(file, number, exc.problem.message + "; stopped reading this CSV file")) from None


def _read_csv(handle: BinaryIO, file: Path, limit: int) -> Iterator[_Raw | Problem]:
    csv.field_size_limit(limit)
    reader = csv.reader(_csv_lines(handle, file, limit))
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = [name.strip() for name in header]
        if not _csv_format(columns):
            yield Problem(
                file, 1,
                f"CSV header has columns {columns}; need instruction+output, prompt+completion or text",
            )
            return
        previous_end = reader.line_num
        for row in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                yield Problem(file, start, f"row has {len(row)} fields, the header has {len(columns)}")
                continue
            yield _Raw(start, dict(zip(columns, row)))
    except csv.Error as exc:
        yield Problem(file, reader.line_num + 1, f"malformed CSV: {exc}; stopped reading")
    except _StopFile as exc:
        yield exc.problem


def _csv_format(columns: list[str]) -> Format | None:
    names = set(columns)
    if {"instruction", "output"} <= names:
        return "alpaca"
    if {"prompt", "completion"} <= names:
        return "prompt"
    if "text" in names:
        return "text"
    return None


def _looks_like_array(handle: BinaryIO) -> bool:
    """Peek at the first non-space byte: '[' means a JSON array whatever the suffix says."""
    head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
    return head.removeprefix(_BOM).lstrip()[:1] == b"["


def read_raw(file: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[_Raw | Problem]:
    """Parsed records (or problems) of one file, by its content: CSV by suffix, else JSON/JSONL."""
    try:
        handle = open(file, "rb")  # noqa: SIM115 - closed in the finally below, after the generator ends
    except OSError as exc:
        yield Problem(file, None, f"cannot open: {exc.strerror}")
        return
    with handle:
        if file.suffix.lower() == ".csv":
            yield from _read_csv(handle, file, max_record_bytes)
        elif _looks_like_array(handle):
            yield from _read_json_array(handle, file, max_record_bytes)
        else:
            yield from _read_jsonl(handle, file, max_record_bytes)


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
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


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


def normalise(raw: _Raw, file: Path, file_format: Format | None) -> tuple[Sample | None, list[Problem]]:
    """Validate one record against its file's format and build the Sample."""
    record = raw.value
    if not isinstance(record, dict):
        return None, [Problem(file, raw.line, f"record is {_type_word(record)}, expected an object")]
    fmt = detect_format(record)
    if fmt is None:
        keys = ", ".join(sorted(record)) or "none"
        return None, [Problem(file, raw.line, f"record has keys [{keys}]; expected messages, instruction+output, prompt+completion or text")]
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

