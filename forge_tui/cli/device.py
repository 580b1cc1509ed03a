"""`telemetry` and `doctor`: the device's readings, and whether it is ready to train."""

from __future__ import annotations

import argparse
import json
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from forge_tui import __version__
from forge_tui.cli.common import config_flag, interrupt_on_sigterm, json_flag, preset_flag, print_json
from forge_tui.config import Config
from forge_tui.errors import EXIT_FAILURE, EXIT_OK, BadInput

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands
    from forge_tui.engine.telemetry import Fallback
    from forge_tui.engine.telemetry.snapshot import Snapshot

DOCTOR_LABEL = 25  # columns before a finding's text


def _telemetry_output(args: argparse.Namespace, snapshot: Snapshot, fallbacks: list[Fallback]) -> None:
    from forge_tui.engine.telemetry.report import full_report, ticker

    if args.json:
        record = {**snapshot.to_json(), "fallbacks": [{"source": f.source, "reason": f.reason} for f in fallbacks]}
        print(json.dumps(record, ensure_ascii=False, indent=2 if args.once else None), flush=True)
    elif args.once:
        print("\n".join(full_report(snapshot, fallbacks)))
    else:
        print(ticker(snapshot), flush=True)


def _open_recording(path: Path | None, source: str, interval: float) -> TextIO | None:
    from forge_tui.engine.telemetry.replay import header, write_recording

    if path is None:
        return None
    try:
        handle = open(path, "x", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except FileExistsError:
        raise BadInput(f"{path}: already exists; record into a new file (nothing was written)") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot create the recording: {exc.strerror}") from None
    write_recording(handle, header(source, description=f"recorded by forge-tui {__version__} every {interval:g} s"))
    return handle


def _check_telemetry_flags(args: argparse.Namespace, interval: float) -> None:
    if not 0.05 <= interval <= 3600:
        raise BadInput(f"--interval must be between 0.05 and 3600 seconds, got {interval}")
    if args.duration is not None and args.duration <= 0:
        raise BadInput(f"--duration must be above 0, got {args.duration}")


def cmd_telemetry(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.telemetry import open_source
    from forge_tui.engine.telemetry.replay import write_recording

    interval = args.interval if args.interval is not None else config.telemetry.interval
    speed = args.speed if args.speed is not None else config.telemetry.replay_speed
    _check_telemetry_flags(args, interval)
    opened = open_source(args.source or config.telemetry.source, interval=interval, speed=speed)
    try:
        recording = _open_recording(args.record, opened.source.name, interval)
    except BadInput:
        opened.source.close()
        raise
    deadline = None if args.duration is None else time.monotonic() + args.duration
    interrupt_on_sigterm()
    try:
        if args.once and opened.source.name in ("sysfs", "nvml"):
            time.sleep(min(interval, 0.5))  # CPU load is measured between two readings
        while True:
            tick = time.monotonic()
            snapshot = opened.source.sample()
            _telemetry_output(args, snapshot, opened.fallbacks)
            if recording:
                write_recording(recording, snapshot.to_json())
            if args.once or (deadline is not None and time.monotonic() >= deadline):
                return EXIT_OK
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        opened.source.close()
        if recording:
            recording.close()


def _doctor_lines(check: str, status: str, text: str) -> list[str]:
    """A finding as the report prints it: status and check in columns, the text wrapped beside them."""
    lines = [line for part in text.splitlines() for line in textwrap.wrap(part, 79 - DOCTOR_LABEL - 1)]
    head = f"{status.upper():<5} {check:<19} {lines[0]}"
    return [head, *(f"{'':<{DOCTOR_LABEL}} {line}" for line in lines[1:])]


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.doctor import run_doctor

    findings = run_doctor(config)
    if args.json:
        print_json([finding.to_json() for finding in findings])
    else:
        for finding in findings:
            text = finding.detail + (f"\nnext: {finding.next_step}" if finding.next_step else "")
            print("\n".join(_doctor_lines(finding.check, finding.status, text)))
    return EXIT_FAILURE if any(f.status == "fail" for f in findings) else EXIT_OK


def register(commands: Commands) -> None:
    common, as_json = config_flag(), json_flag()
    telemetry = commands.add_parser("telemetry", parents=[common, as_json],
                                    help="device readings: temperatures and headroom, load, power, memory")
    telemetry.add_argument("--once", action="store_true", help="one full report, then exit")
    telemetry.add_argument("--interval", type=float, help="seconds between samples (default: the config's, 1)")
    telemetry.add_argument("--source", metavar="auto|jtop|nvml|sysfs|replay:FILE", help="where readings come from (default: auto)")
    telemetry.add_argument("--speed", type=float, help="replay speed (2 = twice as fast)")
    telemetry.add_argument("--record", type=Path, metavar="FILE", help="also write the snapshots to a new recording FILE")
    telemetry.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    telemetry.set_defaults(handler=cmd_telemetry)
    doctor = commands.add_parser("doctor", parents=[common, as_json, preset_flag("check memory for this preset")],
                                 help="pre-flight report: GPU, 4-bit, jtop, telemetry, memory, disk, offline")
    doctor.set_defaults(handler=cmd_doctor)


