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

ROWS_PER_SLICE = 256
BATCH_ROWS = 4096


def _parquet_batches(file: Path, stack: ExitStack) -> Iterator[Any]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file, memory_map=True)
    stack.callback(parquet.close)
    yield from parquet.iter_batches(batch_size=BATCH_ROWS)


def _arrow_batches(file: Path, stack: ExitStack) -> Iterator[Any]:
    """Batches of an Arrow IPC file, or of an IPC stream (what `datasets` writes)."""
    import pyarrow as pa

    source = stack.enter_context(pa.memory_map(str(file)))
    try:
        reader = pa.ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(0)
        yield from pa.ipc.open_stream(source)
        return
    for index in range(reader.num_record_batches):
        yield reader.get_batch(index)


def read_columnar(file: Path) -> Iterator[RawRecord | Problem]:
    """The rows of a Parquet or Arrow file as records, or where and why reading stopped."""
    import pyarrow as pa

    parquet = file.suffix.lower() == ".parquet"
    row = 0
    try:
        with ExitStack() as stack:
            for batch in (_parquet_batches if parquet else _arrow_batches)(file, stack):
                for start in range(0, batch.num_rows, ROWS_PER_SLICE):
                    for value in batch.slice(start, ROWS_PER_SLICE).to_pylist():
                        row += 1
                        yield RawRecord(row, value)
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "Parquet" if parquet else "Arrow"
        yield Problem(file, row + 1 if row else None, f"not a readable {kind} file ({exc}); stopped reading")
