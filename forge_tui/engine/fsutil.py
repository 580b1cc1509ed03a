"""Files written so that a crash never leaves half of one: a folder published atomically (whatever
reads the final path sees the old folder or the complete new one, and a power cut after the rename
keeps the new one), a small file written durably; and the one file hash everything records."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forge_tui.errors import BadInput, ForgeError
from forge_tui.units import MIB


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


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def out_of_space(folder: Path, needed: int, what: str) -> ForgeError:
    """The error a full disk is reported as: where, what was being written, needed against free."""
    return ForgeError(f"no space left on the disk holding {folder} for {what}: about {needed / MIB:.1f} MiB needed, "
                      f"{free_bytes(folder) / MIB:.1f} MiB free; nothing was left half-written: free space and try again")


def require_space(folder: Path, needed: int, what: str) -> None:
    """Refuse before writing when the disk cannot hold `needed` bytes (with a 10% margin)."""
    if free_bytes(folder) < needed * 1.1:
        raise out_of_space(folder, needed, what)


def is_out_of_space(exc: BaseException, folder: Path, needed: int) -> bool:
    """Whether a failed write failed for want of space: ENOSPC itself, or a library's own error
    (torch: "unexpected pos", safetensors: "No space left on device") on a disk that is now short."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return "No space left" in str(exc) or free_bytes(folder) < needed


def remove_stale(folder: Path, prefix: str) -> None:
    """Remove the temporaries `PREFIX<pid>` of writers that died (a killed export leaves hundreds
    of MB); a live writer's are left alone."""
    for stale in folder.glob(f"{prefix}*"):
        pid = stale.name[len(prefix):]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(stale)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def check_destination(out: Path, what: str) -> None:
    """Refuse, before any model is loaded, a destination whose folder is missing or cannot be written
    (and remove what killed exports to it left behind)."""
    parent = out.parent
    if not parent.is_dir():
        raise BadInput(f"{parent}: no such folder for {what}")
    remove_stale(parent, f".tmp-{out.name}-")
    try:
        tempfile.TemporaryDirectory(dir=parent).cleanup()
    except OSError as exc:
        raise BadInput(f"{parent}: cannot write {what} here: {exc.strerror}") from None


@contextmanager
def staged(staging: Path, needed: int, what: str) -> Iterator[Path]:
    """Write `what` into `staging` (created here) on a disk checked to have room for `needed` bytes;
    if the block fails, the staging folder is removed, and a failure for want of space (judged
    before the removal frees any) is said as such, with where and how much."""
    require_space(staging.parent, needed, what)
    staging.mkdir()
    with _removed_on_failure(staging, needed, what):
        yield staging


@contextmanager
def published_file(out: Path, needed: int, what: str) -> Iterator[Path]:
    """A file written whole or not at all: the block writes the temporary path it is given (beside
    `out`, on a disk checked for room); after the block it is fsynced and renamed to `out`. A failed
    block leaves nothing, and what killed writers left is removed first."""
    remove_stale(out.parent, f".tmp-{out.name}-")
    require_space(out.parent, needed, what)
    staging = out.parent / f".tmp-{out.name}-{os.getpid()}"
    with _removed_on_failure(staging, needed, what):
        yield staging
        fsync_path(staging)
        _publish_new(staging, out)
        fsync_path(out.parent)


def _publish_new(staging: Path, out: Path) -> None:
    """Rename that never replaces: a hard link fails if `out` appeared meanwhile (a second export to the
    same name); filesystems without hard links (FAT on a USB stick) get a check, then the rename."""
    try:
        os.link(staging, out)
    except FileExistsError:
        raise ForgeError(f"{out}: appeared while this export was written (another export?); it was left as it is") from None
    except OSError:
        if out.exists():
            raise ForgeError(f"{out}: appeared while this export was written; it was left as it is") from None
        staging.rename(out)
        return
    staging.unlink()


@contextmanager
def _removed_on_failure(staging: Path, needed: int, what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        short = is_out_of_space(exc, staging.parent, needed)
        _remove(staging)
        if short:
            raise out_of_space(staging.parent, needed, what) from None
        raise


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
