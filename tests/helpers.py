"""Helpers the tests share (fixtures live in conftest.py files). Test modules import from here, never
from each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Static

from forge_tui.engine.events import Record, read_events

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "waterworks"


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m forge_tui ARGS` in a fresh process, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "forge_tui", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd or ROOT, env={**os.environ, **(env or {})}, check=False,
    )


def train(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`forge-tui --config CONFIG train EXTRA` in the foreground."""
    return run_cli("--config", str(config), "train", *extra)


def run_dir(result: subprocess.CompletedProcess[str]) -> Path:
    """The run directory a foreground `train` announced."""
    line = next(line for line in result.stdout.splitlines() if line.startswith("run directory: "))
    return Path(line.removeprefix("run directory: "))


def adapter_tensors(run: Path) -> dict[str, Any]:
    """The final adapter's tensors by name."""
    from safetensors.torch import load_file

    return load_file(run / "adapter" / "adapter_model.safetensors")


def place_final_adapter(run: Path) -> None:
    """What makes a run finished for every command (runs.has_final_adapter), for runs whose events
    a test writes itself: an adapter folder with its config (no weights: nothing here loads them)."""
    (run / "adapter").mkdir(parents=True, exist_ok=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")


def wait_for_event(run: Path, kind: str, predicate: Callable[[Record], bool] = lambda e: True, timeout: float = 300) -> Record:
    """Poll a run's event log until an event of `kind` satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(run / "events.jsonl"):
            if event["type"] == kind and predicate(event):
                return event
        time.sleep(0.2)
    raise AssertionError(f"no {kind} event in {run}")


# --------------------------------------------------------------------------- the console


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], bool], tries: int = 300) -> None:
    """Let the app run until `predicate` holds (about 15 s at most)."""
    for _ in range(tries):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


S = TypeVar("S", bound=Screen[Any])


def shown(app: App[Any], kind: type[S]) -> S:
    """The app's current screen, which must be a `kind`."""
    screen = app.screen
    assert isinstance(screen, kind), f"{type(screen).__name__} is shown, not {kind.__name__}"
    return screen


async def runs_table(pilot: Pilot[Any], ready: Callable[[DataTable[Any]], bool]) -> DataTable[Any]:
    """Open the Runs screen (5) and wait until its table is `ready`."""
    from forge_tui.ui.screens.runs import RunsScreen

    await pilot.press("5")
    table = shown(pilot.app, RunsScreen).query_one(DataTable)
    await wait_for(pilot, lambda: ready(table))
    return table


def text_of(app: App[Any], selector: str) -> str:
    """What a Static on the app's current screen shows."""
    return str(app.screen.query_one(selector, Static).render())


# --------------------------------------------------------------------------- telemetry


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Files (relative path -> content) under `root`, e.g. a fake /sys."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


ORIN_ZONES = {
    "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "sys/class/thermal/thermal_zone0/temp": "45500\n",
    "sys/class/thermal/thermal_zone0/trip_point_0_type": "passive\n",
    "sys/class/thermal/thermal_zone0/trip_point_0_temp": "99000\n",
    "sys/class/thermal/thermal_zone0/trip_point_1_type": "critical\n",
    "sys/class/thermal/thermal_zone0/trip_point_1_temp": "104500\n",
    "sys/class/thermal/thermal_zone0/trip_point_2_type": "active\n",
    "sys/class/thermal/thermal_zone0/trip_point_2_temp": "50000\n",
    "sys/class/thermal/thermal_zone1/type": "tj-thermal\n",
    "sys/class/thermal/thermal_zone1/temp": "80000\n",
    "sys/class/thermal/thermal_zone1/trip_point_0_type": "hot\n",
    "sys/class/thermal/thermal_zone1/trip_point_0_temp": "85000\n",
}


def start_service(socket: Path, *extra: str) -> subprocess.Popen[bytes]:
    """The emulated jtop service (tests/fakes) listening on `socket`."""
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.jtop_service", "--socket", str(socket), *extra],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"emulated jtop service did not start: {process.communicate()[1].decode()}")
        time.sleep(0.05)
    return process


def write_trace(path: Path, headrooms: list[float], step: float = 1.0, limit: float = 90.0, watts: float | None = None) -> Path:
    """A recording whose one sensor has the given headroom to a passive trip at `limit`, `step` s
    apart; drawing a constant `watts` where given."""
    from forge_tui.engine.telemetry.replay import header
    from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Trip

    lines = [header("test", synthetic=True)]
    for index, room in enumerate(headrooms):
        sensor = Sensor("tj", limit - room, (Trip("passive", limit),))
        lines.append(Snapshot(time=1000.0 + index * step, source="test", sensors=(sensor,), power_total_watts=watts).to_json())
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


class ScreenText:
    """A console read back as text (a tmux pane, a browser's terminal), for end-to-end tests:
    subclasses say how to read it, and how often and how long to wait for it."""

    POLL = 0.3
    WAIT = 120.0

    def screen(self) -> str:
        raise NotImplementedError

    def wait_for(self, found: Callable[[str], object] | str, seconds: float | None = None) -> str:
        """Wait until `found` (a string, or a test of the text) is on the screen; returns the screen."""
        test = (lambda text: found in text) if isinstance(found, str) else found
        limit = self.WAIT if seconds is None else seconds
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            text = self.screen()
            if test(text):
                return text
            time.sleep(self.POLL)
        raise AssertionError(f"not on screen after {limit:.0f} s: {found}\n--- screen ---\n{self.screen()}")


def killed_if_left(find: Callable[[], list[int]], seconds: float = 15) -> list[int]:
    """Wait for the processes `find` lists to end; those still there after `seconds` are killed and
    returned (a test asserts there are none)."""
    import signal
    from contextlib import suppress

    deadline = time.monotonic() + seconds
    while find() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = find()
    for pid in left:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def console_config(micro_batch_size: int, *, save_every: int | None = None) -> str:
    """A config for the end-to-end console tests: a short run of the real model (no rehearsal set, no
    held-out split, so no eval pass before the first step; short samples), telemetry replayed from
    the Orin recording."""
    save = "" if save_every is None else f"save_every = {save_every}\n"
    replay = ROOT / "sample_data" / "telemetry" / "orin-agx-training.jsonl"
    return (f'[data]\nrehearsal = ""\neval_fraction = 0.0\nmax_seq_len = 128\n'
            f"[train]\nmicro_batch_size = {micro_batch_size}\ngrad_accum = 1\n{save}"
            f'[telemetry]\nsource = "replay:{replay}"\nreplay_speed = 20.0\n')
