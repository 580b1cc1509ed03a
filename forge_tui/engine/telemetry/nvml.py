"""Desktop and data-centre NVIDIA GPUs through NVML (nvidia-ml-py), beside the host's sysfs readings.

Every query can be NotSupported on a given GPU (most are, on Jetson's integrated GPU): such a query
is remembered per device and not asked again. Headroom uses the GPU's own slowdown threshold, or
its thermal margin where the threshold is not reported.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from forge_tui.engine.telemetry.snapshot import Fan, Gpu, Rail, Sensor, Snapshot, Throttle, Trip
from forge_tui.engine.telemetry.sysfs import SysfsSource


class NvmlUnavailable(Exception):
    """NVML cannot be used here; the message says why in words an operator can act on."""


# Clock-event reasons that mean the GPU is holding its clocks back (idle, app clocks and sync boost do not).
THROTTLE_REASONS = {
    "nvmlClocksEventReasonSwPowerCap": "software power cap",
    "nvmlClocksEventReasonHwSlowdown": "hardware slowdown",
    "nvmlClocksEventReasonSwThermalSlowdown": "software thermal slowdown",
    "nvmlClocksEventReasonHwThermalSlowdown": "hardware thermal slowdown",
    "nvmlClocksEventReasonHwPowerBrakeSlowdown": "hardware power brake",
}


def _load_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def start_nvml(nvml: ModuleType) -> int:
    """nvmlInit and the device count, or NvmlUnavailable with the reason."""
    try:
        nvml.nvmlInit()
        count = int(nvml.nvmlDeviceGetCount())
    except nvml.NVMLError_LibraryNotFound:
        raise NvmlUnavailable("NVML library not found: no NVIDIA driver on this machine") from None
    except nvml.NVMLError_DriverNotLoaded:
        raise NvmlUnavailable("the NVIDIA driver is not loaded (check `nvidia-smi`)") from None
    except nvml.NVMLError_NoPermission:
        raise NvmlUnavailable("no permission to query the GPU through NVML (check /dev/nvidia* permissions)") from None
    except nvml.NVMLError_NotSupported:
        raise NvmlUnavailable("NVML is not supported on this GPU (Jetson's integrated GPU: use jtop)") from None
    except nvml.NVMLError as exc:
        _shutdown(nvml)
        raise NvmlUnavailable(f"NVML failed to start: {exc}") from None
    if count == 0:
        nvml.nvmlShutdown()
        raise NvmlUnavailable("NVML sees no GPU")
    return count


def _shutdown(nvml: ModuleType) -> None:
    with contextlib.suppress(nvml.NVMLError):  # already shut down, or the driver went away: nothing to release
        nvml.nvmlShutdown()


class NvmlSource:
    name = "nvml"

    def __init__(self, module: ModuleType | None = None, host: SysfsSource | None = None) -> None:
        self.nvml = module or _load_pynvml()
        count = start_nvml(self.nvml)
        try:
            self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except self.nvml.NVMLError as exc:
            _shutdown(self.nvml)
            raise NvmlUnavailable(f"NVML started but cannot open the GPU: {exc}") from None
        self.host = host or SysfsSource()
        self._unsupported: set[tuple[Any, ...]] = set()
        self.names = [str(self._query(i, "nvmlDeviceGetName") or f"GPU {i}") for i in range(count)]

    def _query(self, index: int, function: str, *args: Any) -> Any:
        """One NVML call; None when this device does not support it (remembered, not retried)."""
        key = (index, function, *args)
        if key in self._unsupported:
            return None
        try:
            return getattr(self.nvml, function)(self.handles[index], *args)
        except (self.nvml.NVMLError_NotSupported, self.nvml.NVMLError_FunctionNotFound, AttributeError):
            self._unsupported.add(key)
            return None
        except self.nvml.NVMLError:
            return None  # transient (GPU busy, lost for a moment): try again next tick

    def _gpu(self, index: int) -> Gpu:
        utilisation = self._query(index, "nvmlDeviceGetUtilizationRates")
        memory = self._query(index, "nvmlDeviceGetMemoryInfo")
        clock = self._query(index, "nvmlDeviceGetClockInfo", self.nvml.NVML_CLOCK_SM)
        maximum = self._query(index, "nvmlDeviceGetMaxClockInfo", self.nvml.NVML_CLOCK_SM)
        return Gpu(self.names[index], load_percent=None if utilisation is None else float(utilisation.gpu),
                   memory_used_bytes=None if memory is None else int(memory.used),
                   memory_total_bytes=None if memory is None else int(memory.total),
                   clock_mhz=None if clock is None else float(clock), clock_max_mhz=None if maximum is None else float(maximum))

    def _sensor(self, index: int) -> Sensor | None:
        temperature = self._query(index, "nvmlDeviceGetTemperature", self.nvml.NVML_TEMPERATURE_GPU)
        if temperature is None:
            return None
        trips = []
        slowdown = self._query(index, "nvmlDeviceGetTemperatureThreshold", self.nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)
        if slowdown is None:
            margin = self._query(index, "nvmlDeviceGetMarginTemperature")
            slowdown = None if margin is None else temperature + margin
        if slowdown is not None:
            trips.append(Trip("slowdown", float(slowdown)))
        shutdown = self._query(index, "nvmlDeviceGetTemperatureThreshold", self.nvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN)
        if shutdown is not None:
            trips.append(Trip("shutdown", float(shutdown)))
        return Sensor(f"{self.names[index]} (GPU {index})", float(temperature), tuple(trips))

    def _rail(self, index: int) -> Rail | None:
        milliwatts = self._query(index, "nvmlDeviceGetPowerUsage")
        if milliwatts is None:
            return None
        limit = self._query(index, "nvmlDeviceGetEnforcedPowerLimit")
        return Rail(f"{self.names[index]} (GPU {index})", milliwatts / 1000, limit_watts=None if limit is None else limit / 1000)

    def _fan(self, index: int) -> Fan | None:
        percent = self._query(index, "nvmlDeviceGetFanSpeed")
        return None if percent is None else Fan(f"GPU {index} fan", float(percent))

    def _throttle(self, index: int) -> list[str] | None:
        mask = self._query(index, "nvmlDeviceGetCurrentClocksEventReasons")
        if mask is None:
            mask = self._query(index, "nvmlDeviceGetCurrentClocksThrottleReasons")
        if mask is None:
            return None
        return [f"GPU {index}: {words}" for flag, words in THROTTLE_REASONS.items() if mask & getattr(self.nvml, flag, 0)]

    def sample(self) -> Snapshot:
        host = self.host.host()
        indices = range(len(self.handles))
        gpu_sensors = _present(self._sensor, indices)
        rails = _present(self._rail, indices)
        fans = _present(self._fan, indices)
        throttles = [self._throttle(i) for i in indices]
        known = [reasons for reasons in throttles if reasons is not None]
        reasons = tuple(reason for found in known for reason in found)
        sensors = (host["sensors"] or ()) + gpu_sensors
        notes = tuple(note for note in host.pop("notes") if not gpu_sensors)
        host.pop("sensors")
        return Snapshot(source=self.name, **host, gpus=tuple(self._gpu(i) for i in indices), sensors=sensors or None,
                        rails=rails or None, power_total_watts=sum(r.watts for r in rails) if rails else None,
                        fans=fans or None, throttle=Throttle(bool(reasons), reasons) if known else None, notes=notes)

    def close(self) -> None:
        _shutdown(self.nvml)


def _present(read: Callable[[int], Any], indices: range) -> tuple[Any, ...]:
    return tuple(item for item in map(read, indices) if item is not None)
