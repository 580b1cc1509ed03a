"""Files written so that a crash never leaves half of one: a folder published atomically (whatever
reads the final path sees the old folder or the complete new one, and a power cut after the rename
keeps the new one), a small file written durably; and the one file hash everything records."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes its entries, renames included, durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish_dir(staging: Path, final: Path) -> Path:
    """fsync everything under `staging`, then rename it to `final`, replacing an existing `final`
    (moved aside first, removed after the rename)."""
    for path in staging.rglob("*"):
        fsync_path(path)
    fsync_path(staging)
    aside = final.with_name(f".partial-old-{final.name}-{os.getpid()}")
    if final.exists():
        final.rename(aside)
    staging.rename(final)
    fsync_path(final.parent)
    shutil.rmtree(aside, ignore_errors=True)
    return final


def write_durably(path: Path, text: str) -> None:
    """Write a small file so that after a crash it is either absent or complete."""
    staging = path.with_name(f".tmp-{path.name}")
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    staging.rename(path)
    fsync_path(path.parent)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (a model's weights never sit in memory whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_object(text: str | bytes) -> dict[str, Any]:
    """A JSON document that must be an object (ValueError for anything else, as for bad JSON)."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {type(document).__name__}")
    return document


def read_json_object(path: Path) -> dict[str, Any]:
    """A small JSON file holding one object (a run's records, a result)."""
    return json_object(path.read_text(encoding="utf-8"))


def end_torn_line(path: Path) -> None:
    """End the last line of an append-only JSON-lines log if a writer was killed in the middle of it,
    so the next record starts on a line of its own (readers skip the torn fragment; appended to it,
    the next record would be lost with it)."""
    try:
        with open(path, "rb+") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
    except FileNotFoundError:
        return
