"""Raw readers: JSONL, JSON arrays and CSV (each possibly gzip-compressed), streamed record by
record; Parquet and Arrow files through `columnar`.

Each yields parsed records (`RawRecord`) and `Problem`s in file order and never holds more than one
record (at most `max_record_bytes`) in memory, so a file larger than memory can be checked. Files are
opened read-only; nothing here writes. What a record means is decided by `data.normalise`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from forge_tui.config import DataConfig
from forge_tui.engine.sample import COLUMNAR_SUFFIXES, Problem
from forge_tui.units import MIB

DEFAULT_MAX_RECORD_BYTES = DataConfig().max_record_bytes
_CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class RawRecord:
    """A parsed record before validation."""

    line: int
    value: Any


class _StopFile(Exception):
    """A problem after which the rest of the file cannot be read reliably."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


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


def _skip_rest_of_line(handle: IO[bytes]) -> None:
    while True:
        chunk = handle.readline(_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


def _bounded_lines(handle: IO[bytes], file: Path, limit: int) -> Iterator[tuple[int, bytes | Problem]]:
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
            yield number, Problem(file, number, f"line is longer than {limit // MIB} MiB; records are limited to that size")
            continue
        yield number, data


def _read_jsonl(handle: IO[bytes], file: Path, limit: int) -> Iterator[RawRecord | Problem]:
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
            yield RawRecord(number, json.loads(text))
        except json.JSONDecodeError as exc:
            if not complete:
                yield Problem(file, number, f"truncated last line (no newline at the end and the JSON is incomplete: {exc.msg})")
            else:
                yield Problem(file, number, f"malformed JSON: {exc.msg} at column {exc.colno}")
        except RecursionError:
            yield Problem(file, number, "JSON nested too deeply")
        except ValueError as exc:  # valid JSON Python will not hold (an integer of thousands of digits)
            yield Problem(file, number, f"unreadable JSON value ({exc})")


class _TextStream:
    """Incrementally decoded UTF-8 text with line counting, for the JSON array reader."""

    def __init__(self, handle: IO[bytes], file: Path) -> None:
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


def _read_json_array(handle: IO[bytes], file: Path, limit: int) -> Iterator[RawRecord | Problem]:
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


def _read_json_values(handle: IO[bytes], file: Path, limit: int) -> Iterator[RawRecord | Problem]:
    """JSON values one after another (a pretty-printed object, or several), each at its first line."""
    stream = _TextStream(handle, file)
    decoder = json.JSONDecoder()
    try:
        while stream.skip_space():
            yield _decode_element(stream, decoder, file, limit)
    except _StopFile as exc:
        yield exc.problem


def _decode_element(stream: _TextStream, decoder: json.JSONDecoder, file: Path, limit: int) -> RawRecord:
    start_line = stream.line
    while True:
        try:
            value, end = decoder.raw_decode(stream.buffer)
        except json.JSONDecodeError as exc:
            if len(stream.buffer) > limit:
                raise _StopFile(Problem(file, start_line,
                                        f"record is larger than {limit // MIB} MiB or malformed; stopped reading")) from None
            if stream.more():
                continue
            line = start_line + stream.buffer.count("\n", 0, exc.pos)
            raise _StopFile(Problem(file, line, f"malformed or truncated JSON: {exc.msg}")) from None
        except RecursionError:
            raise _StopFile(Problem(file, start_line, "JSON nested too deeply")) from None
        except ValueError as exc:
            raise _StopFile(Problem(file, start_line, f"unreadable JSON value ({exc}); stopped reading")) from None
        stream.consume(end)
        return RawRecord(start_line, value)


def _csv_lines(handle: IO[bytes], file: Path, limit: int) -> Iterator[str]:
    for number, data in _bounded_lines(handle, file, limit):
        if isinstance(data, Problem):
            raise _StopFile(Problem(file, number, data.message + "; stopped reading this CSV file"))
        try:
            yield _decode(data, file, number)
        except _LineProblem as exc:
            raise _StopFile(Problem(file, number, exc.problem.message + "; stopped reading this CSV file")) from None


def _read_csv(handle: IO[bytes], file: Path, limit: int) -> Iterator[RawRecord | Problem]:
    csv.field_size_limit(limit)
    reader = csv.reader(_csv_lines(handle, file, limit))
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = [name.strip() for name in header]
        previous_end = reader.line_num
        for row in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                yield Problem(file, start, f"row has {len(row)} fields, the header has {len(columns)}")
                continue
            yield RawRecord(start, dict(zip(columns, row, strict=True)))
    except csv.Error as exc:
        yield Problem(file, reader.line_num + 1, f"malformed CSV: {exc}; stopped reading")
    except _StopFile as exc:
        yield exc.problem


def _head(handle: IO[bytes]) -> bytes:
    """The first bytes of a file, without consuming them."""
    peek = getattr(handle, "peek", None)
    return peek(4096)[:4096].removeprefix(_BOM).lstrip() if peek else b""


def _looks_like_array(head: bytes) -> bool:
    """'[' first means a JSON array whatever the suffix says."""
    return head[:1] == b"["


def _looks_pretty(head: bytes) -> bool:
    """An object whose first line is not JSON on its own: a pretty-printed object, not JSON Lines."""
    first = head.split(b"\n", 1)[0]
    if first[:1] != b"{":
        return False
    try:
        json.loads(first)
    except ValueError:
        return True
    return False


GZIP_SUFFIX = ".gz"
TEXT_SUFFIXES = (".jsonl", ".json", ".csv")
DATA_SUFFIXES = (*TEXT_SUFFIXES, *COLUMNAR_SUFFIXES, *(suffix + GZIP_SUFFIX for suffix in TEXT_SUFFIXES))


def data_suffix(file: Path) -> str:
    """What a data file is by its name: `.jsonl`, `.json`, `.csv` (compressed or not), `.parquet`,
    `.arrow`; "" for anything else."""
    name = file.name.lower()
    inner = name.removesuffix(GZIP_SUFFIX)
    suffix = Path(inner).suffix
    if inner != name:
        return suffix if suffix in TEXT_SUFFIXES else ""
    return suffix if suffix in DATA_SUFFIXES else ""


def _records(handle: IO[bytes], file: Path, limit: int) -> Iterator[RawRecord | Problem]:
    suffix = data_suffix(file)
    if suffix == ".csv":
        yield from _read_csv(handle, file, limit)
        return
    head = _head(handle)
    if _looks_like_array(head):
        yield from _read_json_array(handle, file, limit)
    elif suffix == ".json" and _looks_pretty(head):
        yield from _read_json_values(handle, file, limit)
    else:
        yield from _read_jsonl(handle, file, limit)


def _until_unreadable(items: Iterator[RawRecord | Problem], file: Path) -> Iterator[RawRecord | Problem]:
    """The items, then where and why reading stopped if the file could not be read to its end (a
    damaged or truncated gzip stream, a failing disk)."""
    line = 0
    try:
        for item in items:
            line = item.line or line
            yield item
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        yield Problem(file, line + 1, f"damaged or truncated gzip data ({exc}); stopped reading (the problems of this file "
                                      "before this line may come from the damage)", stops=True)
    except OSError as exc:
        yield Problem(file, line + 1, f"read error ({exc.strerror or exc}); stopped reading", stops=True)


def read_raw(file: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord | Problem]:
    """Parsed records (or problems) of one file: by its name for CSV, gzip, Parquet and Arrow, by its
    content for JSON (an array) and JSONL."""
    suffix = data_suffix(file)
    if suffix in COLUMNAR_SUFFIXES:
        from forge_tui.engine.columnar import read_columnar

        yield from read_columnar(file, max_record_bytes)
        return
    try:
        handle = cast(IO[bytes], gzip.open(file, "rb") if file.name.lower().endswith(GZIP_SUFFIX) else open(file, "rb"))  # noqa: SIM115
    except OSError as exc:
        yield Problem(file, None, f"cannot open: {exc.strerror}")
        return
    with handle:
        yield from _until_unreadable(_records(handle, file, max_record_bytes), file)
