"""The NVML source through a fake module that raises pynvml's real error classes."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from forge_tui.engine.telemetry.nvml import NvmlSource, NvmlUnavailable
from forge_tui.engine.telemetry.snapshot import Trip
from forge_tui.engine.telemetry.sysfs import SysfsSource


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)  # pynvml maps the code to its subclass, e.g. NVMLError_NotSupported


class FakeNvml:
    """An H100 as NVML describes it: no fan, no slowdown threshold (only the thermal margin)."""

    def __init__(self, init_error: int | None = None, reasons: int = 0) -> None:
        self.calls: Counter[str] = Counter()
        self.init_error, self.reasons = init_error, reasons
        for name in dir(pynvml):
            if name.startswith(("NVML", "nvmlClocksEventReason")):
                setattr(self, name, getattr(pynvml, name))

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvmlDevice"):
            object.__getattribute__(self, "calls")[name] += 1
        return object.__getattribute__(self, name)

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise _error(self.init_error)

    def nvmlShutdown(self) -> None:
        return None

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetName(self, handle: str) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:
        return SimpleNamespace(used=20 * 2**30, total=80 * 2**30, free=60 * 2**30)

    def nvmlDeviceGetClockInfo(self, handle: str, clock: int) -> int:
        return 1755

    def nvmlDeviceGetMaxClockInfo(self, handle: str, clock: int) -> int:
        return 1980

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        return 71

    def nvmlDeviceGetTemperatureThreshold(self, handle: str, kind: int) -> int:
        if kind == pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 92

    def nvmlDeviceGetMarginTemperature(self, handle: str) -> int:
        return 16

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return 350_123

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:
        return 700_000

    def nvmlDeviceGetFanSpeed(self, handle: str) -> int:
        raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return self.reasons


@pytest.fixture
def host(tmp_path) -> SysfsSource:
    return SysfsSource(tmp_path)  # an empty /sys: the host part adds no sensors


def test_readings_headroom_from_the_margin_and_absent_fan(host: SysfsSource) -> None:
    fake = FakeNvml()
    source = NvmlSource(module=fake, host=host)  # type: ignore[arg-type]
    snapshots = [source.sample() for _ in range(3)]
    snapshot = snapshots[-1]
    (gpu,) = snapshot.gpus
    assert (gpu.load_percent, gpu.clock_mhz, gpu.clock_max_mhz) == (87.0, 1755.0, 1980.0)
    assert (gpu.memory_used_bytes, gpu.memory_total_bytes) == (20 * 2**30, 80 * 2**30)
    (sensor,) = snapshot.sensors
    assert sensor.trips == (Trip("slowdown", 87.0), Trip("shutdown", 92.0))
    assert snapshot.headroom.celsius == 16.0
    assert snapshot.rails[0].watts == pytest.approx(350.123)
    assert snapshot.rails[0].limit_watts == 700.0
    assert snapshot.fans is None
    assert "fans" in snapshot.absent
    assert snapshot.throttle is not None
    assert not snapshot.throttle.active
    # a query the device does not support is asked once, not every tick
    assert fake.calls["nvmlDeviceGetFanSpeed"] == 1
    assert fake.calls["nvmlDeviceGetTemperatureThreshold"] == 1 + 3  # slowdown once, shutdown every tick
    assert fake.calls["nvmlDeviceGetMarginTemperature"] == 3  # supported: asked every tick


def test_clock_event_reasons_mark_throttling(host: SysfsSource) -> None:
    fake = FakeNvml(reasons=pynvml.nvmlClocksEventReasonSwThermalSlowdown | pynvml.nvmlClocksEventReasonGpuIdle)
    throttle = NvmlSource(module=fake, host=host).sample().throttle  # type: ignore[arg-type]
    assert throttle.active
    assert throttle.reasons == ("GPU 0: software thermal slowdown",)


@pytest.mark.parametrize(("code", "words"), [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded"),
    (pynvml.NVML_ERROR_NOT_SUPPORTED, "not supported on this GPU"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no permission"),
])
def test_start_failures_say_why(code: int, words: str, host: SysfsSource) -> None:
    with pytest.raises(NvmlUnavailable, match=words):
        NvmlSource(module=FakeNvml(init_error=code), host=host)  # type: ignore[arg-type]


def test_a_gpu_that_cannot_be_opened_leaves_nvml_shut_down(host: SysfsSource) -> None:
    fake = FakeNvml()
    shutdowns = []
    fake.nvmlShutdown = lambda: shutdowns.append(True)  # type: ignore[method-assign]

    def refuse(index: int) -> str:
        raise _error(pynvml.NVML_ERROR_NO_PERMISSION)

    fake.nvmlDeviceGetHandleByIndex = refuse  # type: ignore[method-assign]
    with pytest.raises(NvmlUnavailable, match="cannot open the GPU"):
        NvmlSource(module=fake, host=host)  # type: ignore[arg-type]
    assert shutdowns == [True]
