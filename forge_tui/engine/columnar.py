"""Columnar readers: Parquet files and Arrow files (the IPC file or stream format; a `datasets`
`save_to_disk` folder holds the latter), read with pyarrow one record batch at a time and turned
into plain records a slice of rows at a time, so memory stays bounded on a file of millions of
rows. Nested list/struct columns become lists and objects, which the record shapes then read.
Rows are numbered from 1: problems are reported at FILE:row N."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from forge_tui.engine.readers import RawRecord
from forge_tui.engine.sample import Problem
from forge_tui.units import MIB

ROWS_PER_SLICE = 256
BATCH_ROWS = 1024
READ_BUFFER = 4 * MIB  # Parquet column chunks are streamed through a buffer this size, not read whole
CONVERSION_ERRORS = (ValueError, OverflowError, TypeError)  # a value Python cannot hold (a date past 9999)


def _parquet_batches(file: Path, stack: ExitStack) -> Iterator[Any]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file, buffer_size=READ_BUFFER, pre_buffer=False)
    stack.callback(parquet.close)
    yield from parquet.iter_batches(batch_size=BATCH_ROWS)


def _arrow_batches(file: Path, stack: ExitStack) -> Iterator[Any]:
    """Batches of an Arrow IPC file, or of an IPC stream (what `datasets` writes), each validated in
    full before a value is read: a damaged buffer would otherwise crash the converter."""
    import pyarrow as pa

    source = stack.enter_context(pa.memory_map(str(file)))
    try:
        reader = pa.ipc.open_file(source)
        batches: Iterator[Any] = (reader.get_batch(index) for index in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        source.seek(0)
        batches = iter(pa.ipc.open_stream(source))
    for batch in batches:
        batch.validate(full=True)
        yield batch


def _rows(piece: Any, first: int, file: Path, limit: int) -> Iterator[RawRecord | Problem]:
    """The rows of a slice as records; a row too large, or holding a value Python cannot hold, is a
    problem at its row (found one row at a time only when the slice as a whole fails)."""
    try:
        if piece.nbytes <= limit:
            for offset, value in enumerate(piece.to_pylist()):
                yield RawRecord(first + offset, value)
            return
    except CONVERSION_ERRORS:
        pass
    for offset in range(piece.num_rows):
        row = piece.slice(offset, 1)
        if row.nbytes > limit:
            yield Problem(file, first + offset, f"row is larger than {limit // MIB} MiB; records are limited to that size")
            continue
        try:
            yield RawRecord(first + offset, row.to_pylist()[0])
        except CONVERSION_ERRORS as exc:
            yield Problem(file, first + offset, f"a value cannot be read ({type(exc).__name__}: {exc})")


def read_columnar(file: Path, max_record_bytes: int) -> Iterator[RawRecord | Problem]:
    """The rows of a Parquet or Arrow file as records, or where and why reading stopped."""
    import pyarrow as pa

    parquet = file.suffix.lower() == ".parquet"
    row = 0
    try:
        with ExitStack() as stack:
            for batch in (_parquet_batches if parquet else _arrow_batches)(file, stack):
                for start in range(0, batch.num_rows, ROWS_PER_SLICE):
                    piece = batch.slice(start, ROWS_PER_SLICE)
                    yield from _rows(piece, row + 1, file, max_record_bytes)
                    row += piece.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "Parquet" if parquet else "Arrow"
        yield Problem(file, row + 1 if row else None, f"not a readable {kind} file ({exc}); stopped reading", stops=True)
