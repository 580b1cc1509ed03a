"""Publishing a folder atomically: whatever reads the final path sees the old folder or the complete
new one, never a half-written one, and a power cut after the rename keeps the new one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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
