"""Datasets: discovery, and the readers' entry points (`read_dataset`, `load_samples`). The
streaming is in `readers` (JSONL, JSON, CSV, gzip) and `columnar` (Parquet, Arrow); what a record
means is decided by `formats`.

A folder is read file by file (sorted). A `datasets` `save_to_disk` folder is read through its Arrow
files; a saved DatasetDict through its `train` split.
"""

from __future__ import annotations

import functools
import json
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from forge_tui.config import DataConfig
from forge_tui.engine.formats import detect_format, mapped, normalise_record
from forge_tui.engine.fsutil import read_json_object
from forge_tui.engine.readers import DATA_SUFFIXES, DEFAULT_MAX_RECORD_BYTES, data_suffix, read_raw
from forge_tui.engine.sample import DatasetError, Format, Message, Problem, Sample

__all__ = [
    "DatasetError",
    "Format",
    "Message",
    "Problem",
    "Reading",
    "Sample",
    "dataset_files",
    "discover_datasets",
    "is_telemetry_recording",
    "load_samples",
    "not_readable",
    "read_dataset",
    "read_samples",
    "skipped_entries",
    "special_kind",
]

DATASETS_METADATA = ("state.json", "dataset_info.json", "dataset_dict.json")  # what `save_to_disk` writes beside the data


@dataclass(frozen=True)
class Reading:
    """How files are read: the largest record accepted (bounds memory) and the column mapping."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    columns: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: DataConfig) -> Reading:
        return cls(data.max_record_bytes, dict(data.columns))


DEFAULT_READING = Reading()


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


def _split_folder(path: Path) -> Path:
    """A saved DatasetDict trains on its `train` split; any other folder is itself."""
    train = path / "train"
    return train if (path / "dataset_dict.json").is_file() and train.is_dir() else path


def _saved_data_files(folder: Path) -> frozenset[str] | None:
    """The Arrow files a `datasets` save_to_disk folder lists in its state.json (the cache files that
    `.map()` writes beside them are not the dataset); None for any other folder."""
    try:
        return frozenset(str(entry["filename"]) for entry in read_json_object(folder / "state.json")["_data_files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_data_file(path: Path, listed: frozenset[str] | None) -> bool:
    """Whether a file below a dataset folder is data; `listed`: what its folder's state.json lists."""
    if listed is not None:
        return path.name in listed and path.is_file()
    if not path.is_file() or not data_suffix(path) or path.name == "dataset_dict.json":
        return False
    if path.name in DATASETS_METADATA and (path.parent / "state.json").is_file():
        return False
    return not (path.suffix.lower() == ".jsonl" and is_telemetry_recording(path))


def dataset_files(path: Path) -> list[Path]:
    """The data files a path names: the file itself, or the supported regular files in a folder
    (sorted), leaving out telemetry recordings and `datasets`' metadata; nothing for a path that is
    neither."""
    if not path.is_dir():
        return [path] if path.is_file() else []
    listed = functools.cache(_saved_data_files)  # each folder's state.json read once
    return sorted(p for p in _split_folder(path).rglob("*") if _is_data_file(p, listed(p.parent)))


def skipped_entries(folder: Path) -> list[tuple[Path, str]]:
    """Entries of a folder left out of the dataset, each with why: those with a data file's name that
    are not regular files (FIFOs, sockets, devices), and a saved DatasetDict's other splits."""
    if not folder.is_dir():
        return []
    found = ((entry, special_kind(entry)) for entry in sorted(folder.rglob("*")) if data_suffix(entry))
    odd = [(entry, f"{kind}, not read") for entry, kind in found if kind]
    split = _split_folder(folder)
    others = [(entry, "another split, not read (a DatasetDict trains on its train split)")
              for entry in sorted(folder.iterdir()) if split != folder and entry.is_dir() and entry != split]
    return odd + others


def discover_datasets(roots: Iterable[Path]) -> list[Path]:
    """Every data file under the given folders (missing folders are skipped), for browsing."""
    return [file for root in roots if root.is_dir() for file in dataset_files(root)]


# --------------------------------------------------------------------------- reading


def read_samples(file: Path, reading: Reading = DEFAULT_READING) -> Iterator[Sample | Problem]:
    """Samples and problems of one file; its format is that of its first recognisable record."""
    file_format: Format | None = None
    seen_any = False
    for item in read_raw(file, reading.max_record_bytes):
        seen_any = True
        if isinstance(item, Problem):
            yield item
            continue
        if file_format is None:
            file_format = detect_format(mapped(item.value, reading.columns)[0]) if isinstance(item.value, dict) else None
        sample, problems = normalise_record(item.value, item.line, file, file_format, reading.columns)
        yield from problems
        if sample is not None:
            yield sample
    if not seen_any:
        yield Problem(file, None, "no records: the file is empty")


def read_dataset(paths: Iterable[Path], reading: Reading = DEFAULT_READING) -> Iterator[Sample | Problem]:
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
            yield Problem(path, None, f"folder holds no dataset files ({', '.join(DATA_SUFFIXES)})")
        for file in files:
            yield from read_samples(file, reading)


def load_samples(path: Path, reading: Reading = DEFAULT_READING) -> list[Sample]:
    """All samples of a dataset that must be clean (training, evaluation): raise on any problem."""
    samples: list[Sample] = []
    problems: list[Problem] = []
    for item in read_dataset([path], reading):
        (problems if isinstance(item, Problem) else samples).append(item)  # type: ignore[arg-type]
    if problems:
        raise DatasetError(problems)
    return samples
