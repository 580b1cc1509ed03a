"""Fixtures for the telemetry tests: a fake /sys tree, a running emulated jtop service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ORIN_ZONES, start_service, write_tree


@pytest.fixture
def orin_sysfs(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "root", ORIN_ZONES)


@pytest.fixture
def jtop_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An emulated jtop service on a socket under tmp_path; FORGE_TUI_JTOP_SOCKET points at it."""
    socket = tmp_path / "jtop.sock"
    process = start_service(socket)
    monkeypatch.setenv("FORGE_TUI_JTOP_SOCKET", str(socket))
    yield socket
    process.terminate()
    process.wait(timeout=10)
