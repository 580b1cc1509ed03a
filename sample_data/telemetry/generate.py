"""Writes the two SYNTHETIC telemetry recordings next to this script (deterministic).

    python sample_data/telemetry/generate.py            # rewrite the recordings
    python sample_data/telemetry/generate.py --check    # exit 1 if the committed files differ

They are shaped like an NVIDIA Jetson AGX Orin 64GB in MAXN under a QLoRA training load, from a
first-order thermal model with noise, so the TUI and the thermal guard have something realistic to
show on a laptop. They were not measured on hardware; each file's header says so.
  orin-agx-training.jsonl       warm-up then steady training, ~20 °C of headroom (loops for demos)
  orin-agx-hot-enclosure.jsonl  a hot enclosure: headroom falls under 5 °C with the GPU clock held
                                back, the load stops (as the guard pauses), it cools past 10 °C, the
                                load returns
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forge_tui.engine.telemetry.replay import header  # noqa: E402
from forge_tui.engine.telemetry.snapshot import Fan, Gpu, Memory, Rail, Sensor, Snapshot, Throttle, Trip  # noqa: E402
from forge_tui.engine.telemetry.sysfs import clock_throttle  # noqa: E402

HERE = Path(__file__).resolve().parent
START = 1_790_000_000.0  # a fixed clock so the files are reproducible
TRIPS = (Trip("passive", 99.0), Trip("critical", 104.5))
SENSOR_OFFSETS = {"cpu": -3.0, "gpu": -0.8, "cv0": -7.5, "soc0": -5.0, "soc1": -5.6, "tj": 0.0}
GPU_MAX_MHZ = 1300.5
KIB = 1024


def _rails(gpu_load: float, cpu_load: float, rng: random.Random) -> tuple[Rail, ...]:
    gpu = 3.8 + 0.17 * gpu_load + rng.uniform(-0.4, 0.4)
    cpu = 1.6 + 0.06 * cpu_load + rng.uniform(-0.2, 0.2)
    return (Rail("VDD_GPU_SOC", round(gpu, 2), volts=5.08, amps=round(gpu / 5.08, 3)),
            Rail("VDD_CPU_CV", round(cpu, 2), volts=5.08, amps=round(cpu / 5.08, 3)),
            Rail("VIN_SYS_5V0", round(5.6 + rng.uniform(-0.2, 0.2), 2), volts=5.0),
            Rail("VDDQ_VDD2_1V8AO", round(1.3 + rng.uniform(-0.05, 0.05), 2), volts=1.8))


def snapshot(t: float, tj: float, gpu_load: float, gpu_mhz: float, memory_gib: float, rng: random.Random) -> Snapshot:
    cpu = tuple(round(min(100.0, max(0.0, 0.3 * gpu_load + rng.uniform(-8, 25))), 1) for _ in range(12))
    sensors = tuple(Sensor(name, round(tj + offset + rng.uniform(-0.3, 0.3), 1), TRIPS) for name, offset in SENSOR_OFFSETS.items())
    rails = _rails(gpu_load, sum(cpu) / len(cpu), rng)
    reason = clock_throttle("gpu", gpu_load, gpu_mhz, GPU_MAX_MHZ)
    return Snapshot(
        time=round(START + t, 1), source="jtop", cpu_percent=cpu,
        memory=Memory(ram_total_bytes=62_800_000 * KIB, ram_used_bytes=int(memory_gib * 2**30),
                      swap_total_bytes=31_400_000 * KIB, swap_used_bytes=0,
                      gpu_shared_bytes=int(max(0.4, memory_gib - 5.5) * 2**30)),
        gpus=(Gpu("gpu", load_percent=round(gpu_load, 1), clock_mhz=gpu_mhz, clock_max_mhz=GPU_MAX_MHZ),),
        sensors=sensors, rails=rails, power_total_watts=round(sum(r.watts for r in rails), 2),
        fans=(Fan("pwmfan", round(min(100.0, max(25.0, 25 + (tj - 45) * 1.6)), 1), int(1200 + max(0.0, tj - 45) * 55)),),
        power_mode="MAXN", jetson_clocks=False, throttle=Throttle(reason is not None, (reason,) if reason else ()))


def _approach(value: float, target: float, step: float, tau: float) -> float:
    return target + (value - target) * math.exp(-step / tau)


def training(rng: random.Random) -> list[Snapshot]:
    """20 s idle, then training: tj settles near 79 °C (about 20 °C below the passive trip)."""
    tj, memory, found = 46.0, 6.2, []
    for index in range(100):
        t = index * 3.0
        busy = t >= 20
        tj = _approach(tj, 79.5 if busy else 46.0, 3.0, 70.0) + rng.uniform(-0.2, 0.2)
        memory = _approach(memory, 38.5 if busy else 6.2, 3.0, 25.0)
        load = rng.uniform(94, 99.5) if busy else rng.uniform(0, 4)
        found.append(snapshot(t, tj, load, GPU_MAX_MHZ if busy else 306.0, memory, rng))
    return found


def hot_enclosure(rng: random.Random) -> list[Snapshot]:
    """Training in a 50 °C enclosure: tj heads for the passive trip and the GPU clock is held back from
    92 °C; the load stops when headroom falls under 4.5 °C (as the guard pauses) and returns once
    it is back above 10.5 °C."""
    tj, busy, found = 58.0, True, []
    for index in range(120):
        t = index * 4.0
        tj = _approach(tj, 104.0 if busy else 60.0, 4.0, 80.0 if busy else 45.0) + rng.uniform(-0.2, 0.2)
        busy = tj < 94.5 if busy else tj < 88.5
        clock = GPU_MAX_MHZ if tj < 92 else 1032.0
        load = rng.uniform(95, 99.5) if busy else rng.uniform(0, 3)
        found.append(snapshot(t, tj, load, clock if busy else 306.0, 38.5 if busy else 30.1, rng))
    return found


DESCRIPTION = ("SYNTHETIC, not measured: shaped like an NVIDIA Jetson AGX Orin 64GB (MAXN) under a QLoRA training "
               "load; {what}. Generated by sample_data/telemetry/generate.py.")


def outputs() -> dict[str, str]:
    files = {
        "orin-agx-training.jsonl": (training, "warm-up then steady training, about 20 °C of headroom"),
        "orin-agx-hot-enclosure.jsonl": (hot_enclosure, "a hot enclosure: headroom under 5 °C and a held-back GPU "
                                                         "clock, the load pausing, cooling past 10 °C, resuming"),
    }
    rendered = {}
    for name, (build, what) in files.items():
        rng = random.Random(name)
        lines = [header("jtop", synthetic=True, description=DESCRIPTION.format(what=what))]
        lines += [{k: v for k, v in s.to_json().items() if k not in ("headroom", "absent")} for s in build(rng)]
        rendered[name] = "".join(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n" for line in lines)
    return rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args()
    stale = []
    for name, text in outputs().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)} (run sample_data/telemetry/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
