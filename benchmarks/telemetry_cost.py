"""What telemetry sampling costs: CPU time of the sampler at its default 1 s interval, per source.

    python benchmarks/telemetry_cost.py [--seconds 20] [--emulate-jtop]

For each source that opens here (sysfs always; replay of the shipped recording; NVML where a driver
is present; jtop where a service answers, or the emulated one with --emulate-jtop) it runs the real
Sampler thread for --seconds and reports the process's CPU time over that wall time (% of one core),
against an idle baseline measured the same way in the same run, plus the CPU time of one sample.
The target is under 1% of one core. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import forge_tui  # noqa: E402,F401 - offline variables first
from forge_tui.engine.telemetry import Sampler, open_source  # noqa: E402
from forge_tui.errors import ForgeError  # noqa: E402


def cpu_share(seconds: float, sampler: Sampler | None) -> float:
    """Process CPU seconds per wall second (x100: % of one core) while `sampler` runs."""
    if sampler:
        sampler.start()
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(seconds)
    share = (time.process_time() - cpu) / (time.monotonic() - wall) * 100
    if sampler:
        sampler.stop()
    return share


def per_sample_ms(spec: str, count: int = 50) -> float:
    opened = open_source(spec, interval=1.0)
    try:
        opened.source.sample()
        start = time.process_time()
        for _ in range(count):
            opened.source.sample()
        return (time.process_time() - start) / count * 1000
    finally:
        opened.source.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--emulate-jtop", action="store_true", help="start tests/fakes/jtop_service.py for the jtop source")
    args = parser.parse_args()
    service = None
    specs = ["sysfs", f"replay:{ROOT / 'sample_data/telemetry/orin-agx-training.jsonl'}", "nvml", "jtop"]
    if args.emulate_jtop:
        socket = Path(tempfile.mkdtemp()) / "jtop.sock"
        service = subprocess.Popen([sys.executable, "-m", "tests.fakes.jtop_service", "--socket", str(socket)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL)
        while not socket.exists():
            time.sleep(0.05)
        os.environ["FORGE_TUI_JTOP_SOCKET"] = str(socket)
    results: dict[str, dict[str, float]] = {}
    try:
        baseline = cpu_share(args.seconds, None)
        print(f"idle baseline: {baseline:.3f}% of one core over {args.seconds:g} s")
        for spec in specs:
            name = spec.split(":")[0]
            try:
                sampler = Sampler(open_source(spec, interval=1.0).source, 1.0)
            except ForgeError as exc:
                print(f"{name}: not available here ({exc})")
                continue
            share = cpu_share(args.seconds, sampler) - baseline
            sample = per_sample_ms(spec)
            results[name] = {"percent_of_one_core": round(share, 3), "cpu_ms_per_sample": round(sample, 3)}
            print(f"{name}: {share:.3f}% of one core at 1 s (above baseline); {sample:.2f} ms CPU per sample")
    finally:
        if service:
            service.terminate()
    print(json.dumps({"interval_s": 1.0, "seconds": args.seconds, "baseline_percent": round(baseline, 3), "sources": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
