"""Device telemetry: one snapshot type, four sources, a sampler thread and the thermal guard.

Sources, in the order `auto` tries them: jtop (Jetson, through the jtop service), NVML (NVIDIA
GPUs), sysfs + psutil (any Linux); `replay:FILE` plays a recording. Each source that `auto` passes
over leaves a reason the operator can act on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from forge_tui.config import TELEMETRY_SOURCES as SOURCES
from forge_tui.config import replay_file
from forge_tui.engine.memory import is_jetson
from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.errors import BadInput, ForgeError


class Source(Protocol):
    name: str

    def sample(self) -> Snapshot: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Fallback:
    source: str
    reason: str


@dataclass
class Opened:
    source: Source
    fallbacks: list[Fallback] = field(default_factory=list)


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """`auto|jtop|nvml|sysfs|replay:FILE` -> (kind, replay file)."""
    if spec in SOURCES:
        return spec, None
    recording = replay_file(spec)
    if recording is not None:
        return "replay", recording
    raise BadInput(f"telemetry source {spec!r}: expected one of {', '.join(SOURCES)} or replay:FILE")


def _open_jtop(interval: float) -> Source:
    from forge_tui.engine.telemetry.jtop_source import JtopSource, JtopUnavailable, default_socket, explain

    try:
        socket = default_socket()
    except ImportError:
        raise _Unavailable("jetson-stats is not installed in Forge's environment (`pip install jetson-stats`)") from None
    if not Path(socket).exists():  # nothing to talk to: say so without starting a client
        raise _Unavailable(explain("The jtop.service is not active", socket))
    try:
        return JtopSource(interval, socket)
    except JtopUnavailable as exc:
        raise _Unavailable(str(exc)) from None


def _open_nvml() -> Source:
    from forge_tui.engine.telemetry.nvml import NvmlSource, NvmlUnavailable

    try:
        return NvmlSource()
    except NvmlUnavailable as exc:
        raise _Unavailable(str(exc)) from None
    except ImportError:
        raise _Unavailable("nvidia-ml-py is not installed") from None


def _open_sysfs() -> Source:
    from forge_tui.engine.telemetry.sysfs import SysfsSource

    return SysfsSource()


class _Unavailable(Exception):
    pass


def open_source(spec: str = "auto", *, interval: float = 1.0, speed: float = 1.0) -> Opened:
    """Open the source `spec` names; `auto` tries jtop, then NVML, then sysfs, keeping each reason.
    A source named explicitly that cannot open is an error carrying its reason."""
    kind, path = parse_spec(spec)
    if kind == "replay":
        from forge_tui.engine.telemetry.replay import ReplaySource

        assert path is not None
        return Opened(ReplaySource(path, speed))
    openers = {"jtop": lambda: _open_jtop(interval), "nvml": _open_nvml, "sysfs": _open_sysfs}
    if kind != "auto":
        try:
            return Opened(openers[kind]())
        except _Unavailable as exc:
            raise ForgeError(f"telemetry source {kind}: {exc}") from None
    fallbacks = []
    for name in ("jtop", "nvml"):
        if name == "nvml" and is_jetson():
            fallbacks.append(Fallback(name, "NVML reports almost nothing on Jetson's integrated GPU: sysfs reads its "
                                            "load and clocks (the jtop service gives the full picture)"))
            continue
        try:
            return Opened(openers[name](), fallbacks)
        except _Unavailable as exc:
            fallbacks.append(Fallback(name, str(exc)))
    return Opened(_open_sysfs(), fallbacks)


class Sampler:
    """One daemon thread sampling a source every `interval` seconds; readers take the latest
    snapshot (newer ones replace older ones: nothing queues). A failing read is kept as `error` and
    retried at the next tick; it never stops the thread. `fresh()` refuses a reading older than
    `STALE_TICKS` intervals, so nothing acts on a sensor that stopped answering. `listener` sees
    every snapshot on the sampler's thread; one that fails is dropped (`listener_error` says why)."""

    STALE_TICKS = 3

    def __init__(self, source: Source, interval: float = 1.0, listener: Callable[[Snapshot], None] | None = None) -> None:
        self.source, self.interval = source, interval
        self.listener = listener
        self.listener_error: str | None = None
        self.latest: Snapshot | None = None
        self.error: str | None = None
        self._taken = 0.0  # monotonic time of `latest`
        self._fresh = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            tick = time.monotonic()
            try:
                snapshot, error = self.source.sample(), None
            except Exception as exc:  # noqa: BLE001 - a sensor failing must not end sampling
                snapshot, error = None, f"{type(exc).__name__}: {exc}"
            with self._fresh:
                if snapshot is not None:
                    self.latest, self._taken = snapshot, time.monotonic()
                self.error = error
                self._fresh.notify_all()
            if snapshot is not None and not self._stop.is_set():
                self._tell(snapshot)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - tick)))

    def _tell(self, snapshot: Snapshot) -> None:
        if self.listener is None:
            return
        try:
            self.listener(snapshot)
        except Exception as exc:  # noqa: BLE001 - a full disk must not end sampling for the guard
            self.listener, self.listener_error = None, f"{type(exc).__name__}: {exc}"

    def fresh(self) -> Snapshot | None:
        """The latest snapshot, or None when the last good one is older than STALE_TICKS intervals."""
        with self._fresh:
            if self.latest is None or time.monotonic() - self._taken > self.STALE_TICKS * self.interval:
                return None
            return self.latest

    def wait(self, timeout: float) -> Snapshot | None:
        """Block until the next sample (or the timeout) and return the fresh snapshot, if any."""
        with self._fresh:
            self._fresh.wait(timeout)
        return self.fresh()

    def stop(self) -> bool:
        """Stop the thread; the source is closed only once no read is in progress. False when a
        read still hangs (its snapshot will not reach the listener)."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            return False
        self.source.close()
        return True
