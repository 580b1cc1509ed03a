"""The sampler thread and the runner's watch: failing sources, stale readings, lost and restored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forge_tui.config import parse_config
from forge_tui.engine.telemetry import Opened, Sampler
from forge_tui.engine.telemetry import watch as watch_module
from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Trip


class Flaky:
    """A source whose readings can be switched off (raising, as a dead jtop service does)."""

    name = "flaky"

    def __init__(self, headroom: float = 20.0) -> None:
        self.answering, self.headroom, self.closed = True, headroom, False

    def sample(self) -> Snapshot:
        if not self.answering:
            raise ConnectionError("service gone")
        return Snapshot(time=time.time(), source=self.name, sensors=(Sensor("tj", 90 - self.headroom, (Trip("passive", 90.0),)),))

    def close(self) -> None:
        self.closed = True


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_failing_source_goes_stale_then_recovers_and_stop_closes_it() -> None:
    source = Flaky()
    sampler = Sampler(source, interval=0.05).start()
    _until(lambda: sampler.fresh() is not None)
    source.answering = False
    _until(lambda: sampler.fresh() is None)  # the last good reading is not served for ever
    assert sampler.error == "ConnectionError: service gone"
    assert sampler.latest is not None
    source.answering = True
    _until(lambda: sampler.fresh() is not None and sampler.error is None)
    sampler.stop()
    assert source.closed


@pytest.fixture
def flaky_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[watch_module.ThermalWatch, Flaky, list[str]]]:
    source = Flaky()
    monkeypatch.setattr(watch_module, "open_source", lambda *a, **k: Opened(source))
    config = parse_config("[telemetry]\ninterval = 0.05\n", Path("forge.toml"))
    watch = watch_module.ThermalWatch(config)
    said: list[str] = []
    watch.attach(said.append)
    yield watch, source, said
    watch.close()


def test_lost_readings_are_said_once_and_a_paused_run_stays_paused(flaky_watch) -> None:
    watch, source, said = flaky_watch
    _until(lambda: watch.sampler.fresh() is not None)
    assert watch.check().action == "run"
    source.headroom = 2.0
    _until(lambda: watch.check().action == "pause")
    source.answering = False
    _until(lambda: watch.sampler.fresh() is None)
    assert watch.check().action == "wait"
    assert watch.check().action == "wait"
    assert len(said) == 1
    assert "stopped answering" in said[0]
    assert "stays paused" in said[0]
    source.answering, source.headroom = True, 15.0
    assert watch.wait_until_cool(lambda: False).action == "resume"
    assert said[-1] == "telemetry (flaky) answering again"
