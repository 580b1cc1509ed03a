"""`train`, `resume`, `runs`, `stop`, `export` and `audit`: a run's life from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_tui.cli.common import (
    column_overrides,
    config_flag,
    detach_flag,
    json_flag,
    map_flag,
    preset_flag,
    print_json,
    print_json_line,
    run_argument,
)
from forge_tui.config import Config, parse_assignments
from forge_tui.engine.events import Record
from forge_tui.engine.gguf_export import QUANTS
from forge_tui.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, BadInput
from forge_tui.units import MIB, duration

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands
    from forge_tui.engine.runs import RunDir


def _train_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """`--set` settings, then the dedicated flags over them (the config `train` runs with is the
    file's under these: cli.command_config)."""
    overrides = parse_assignments(args.set or [])
    for section, table in column_overrides(args).items():
        overrides[section] = {**overrides.get(section, {}), **table}
    flags = {"max_steps": args.max_steps, "save_every": args.save_every, "seed": args.seed}
    train = {key: value for key, value in flags.items() if value is not None}
    if args.dataset is not None:
        train["dataset"] = str(args.dataset)
    if train:
        overrides["train"] = {**overrides.get("train", {}), **train}
    return overrides


def _echo(event: Record) -> None:
    from forge_tui.engine.eventtext import describe

    line = describe(event)
    if line:
        print(line, flush=True)


def _run_foreground(run: RunDir, as_json: bool) -> int:
    from forge_tui.engine.train import run_training

    if not as_json:
        print(f"run directory: {run.path}", flush=True)
    state = run_training(run, echo=print_json_line if as_json else _echo)
    if state == "finished" and not as_json:
        print(f"adapter: {run.adapter}")
    return EXIT_OK if state in ("finished", "stopped") else EXIT_FAILURE


def start_detached_command(run: RunDir, args: argparse.Namespace, *command: str, log_name: str) -> int:
    """`forge-tui COMMAND` in its own session, its output in RUN/LOG_NAME; says so (as a `Launched`
    record with --json) and returns 0."""
    from forge_tui.engine.children import Launched, forge_argv, start_detached

    pid = start_detached(forge_argv(args.config, *command), run.path / log_name)
    if args.json:
        print_json(Launched(str(run.path), pid).to_json())
    else:
        print(run.path)
        print(f"pid {pid} started in its own session: it keeps going if this terminal closes; output in "
              f"{run.path / log_name}\nwatch: forge-tui runs   stop: forge-tui stop {run.name}", file=sys.stderr)
    return EXIT_OK


def _launch(run: RunDir, args: argparse.Namespace) -> int:
    """The runner in the foreground, or detached (`resume RUN` in its own session)."""
    if args.detach:
        return start_detached_command(run, args, "resume", str(run.path), log_name="runner.log")
    return _run_foreground(run, args.json)


def cmd_train(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import create_run

    if not config.train.dataset:
        raise BadInput("no dataset: pass --dataset PATH or set [train] dataset in the config")
    if args.dry_run:
        return _dry_run(config, Path(config.train.dataset), as_json=args.json, may_probe=not args.no_probe)
    return _launch(create_run(config, Path(config.train.dataset), args.run_dir), args)


def _dry_run(config: Config, dataset: Path, *, as_json: bool, may_probe: bool) -> int:
    from forge_tui.engine.eta import eta_words
    from forge_tui.engine.preflight import preflight

    found = preflight(config, dataset, may_probe=may_probe)
    if as_json:
        print_json(found.to_json())
        return EXIT_OK if found.ok else EXIT_BAD_INPUT
    for line in found.problems:
        print(line, file=sys.stderr)
    plan, memory = found.plan, found.memory
    if plan:
        print(f"plan: {plan.device} {plan.dtype}{', 4-bit NF4' if plan.quantized else ''}"
              f"{', checkpointed activations' if plan.checkpointing else ''}")
    if memory:
        print(f"memory ({memory.verdict}): {memory.describe}")
    if found.eta:
        print(f"time: {eta_words(found.eta)}")
    elif found.eta_note:
        print(f"time: {found.eta_note}")
    print("ready to launch" if found.ok else "not ready: nothing was created")
    return EXIT_OK if found.ok else EXIT_BAD_INPUT


def cmd_resume(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runner import ensure_resumable
    from forge_tui.engine.runs import find_run

    run = find_run(args.run, config)
    ensure_resumable(run)
    return _launch(run, args)


def cmd_runs(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.status import LIVE, list_runs
    from forge_tui.engine.telemetry.record import describe

    rows = list_runs(config)
    if args.json:
        print_json([row.to_json() for row in rows])
        return EXIT_OK
    if not rows:
        print("no runs yet: forge-tui train --preset quick --dataset sample_data/waterworks/train.jsonl")
    for row in rows:
        loss = f"loss {row.loss:.4f}" if row.loss is not None else ""
        print(f"{row.name:<32} {row.state:<11} step {row.step}/{row.total_steps or '?'}  {loss}")
        if row.error:
            print(f"{'':<32} error: {row.error}")
        if row.reason:
            print(f"{'':<32} {row.state}: {row.reason}")
        if row.record is not None and row.state not in LIVE:
            estimate = f" (estimated {duration(row.estimate_s)})" if row.estimate_s is not None else ""
            lines = describe(row.record)
            print(f"{'':<32} {lines[0]}{estimate}")
            print("\n".join(f"{'':<32} {line}" for line in lines[1:]))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import find_run
    from forge_tui.engine.status import is_running

    run = find_run(args.run, config)
    if not is_running(run):
        raise BadInput(f"{run.path}: not running")
    run.request_stop()
    print(f"stop requested: {run.name} checkpoints and stops before its next step (resume with forge-tui resume {run.name})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import find_run

    run = find_run(args.run, config)
    if args.quant is not None and args.gguf is None:
        raise BadInput("--quant is the weight type of --gguf; --merged and --gguf-adapter take none")
    if args.merged is None:
        return _export_gguf(args, run)
    from forge_tui.engine.export import export_merged

    out = export_merged(run, args.merged)
    if args.json:
        print_json({"merged": str(out)})
    else:
        print(f"merged model written to {out}")
    return EXIT_OK


def _export_gguf(args: argparse.Namespace, run: RunDir) -> int:
    """The GGUF model or adapter; progress as JSON lines under --json (the console's bar), else on a terminal."""
    from forge_tui.engine.gguf_export import export_gguf, export_gguf_adapter

    def progress(done: int, total: int) -> None:
        if args.json:
            print_json_line({"done": done, "total": total})
        elif sys.stderr.isatty():
            print(f"\rwriting tensors {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    if args.gguf is not None:
        exported = export_gguf(run, args.gguf, args.quant or "f16", progress)
    else:
        exported = export_gguf_adapter(run, args.gguf_adapter, progress)
    if args.json:
        print_json_line(exported.to_json())
    else:
        print(f"GGUF {exported.kind} ({exported.quant}) written to {exported.path}: {exported.bytes / MIB:.1f} MiB, "
              f"sha256 {exported.sha256}")
    return EXIT_OK


def _trails(args: argparse.Namespace, config: Config) -> list[Path]:
    """The trails `audit` verifies: a run's, and for a fleet run every node's (their own and their
    rounds'); or a fleet node's folder."""
    from forge_tui.engine.runs import find_run
    from forge_tui.fleet.status import node_trails

    folder = Path(args.run).expanduser()
    if (folder / "node.json").is_file():
        return node_trails(folder)
    run = find_run(args.run, config)
    if not run.audit.is_file():
        raise BadInput(f"{run.audit}: no audit trail (runs created before forge-tui kept one have none)")
    return [run.audit, *(trail for node in sorted((run.path / "nodes").glob("*/")) for trail in node_trails(node))]


def cmd_audit(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.audit import verify

    checked = [(trail, *verify(trail)) for trail in _trails(args, config)]
    broken = [problem for _, _, problems in checked for problem in problems]
    if args.json:
        first, count, _ = checked[0]
        print_json({"path": str(first), "entries": count, "intact": not broken, "problems": broken,
                    "trails": [{"path": str(t), "entries": n, "intact": not p, "problems": p} for t, n, p in checked]})
    else:
        for problem in broken:
            print(problem, file=sys.stderr)
        for trail, count, problems in checked:
            print(f"{trail}: {count} entries, " + ("chain intact" if not problems else f"BROKEN ({len(problems)} problem(s))"))
    return EXIT_OK if not broken else EXIT_BAD_INPUT


def register(commands: Commands) -> None:
    common, as_json, run, detach = config_flag(), json_flag(), run_argument(), detach_flag()
    train = commands.add_parser("train", parents=[common, as_json, detach, map_flag(), preset_flag("settings under the config file")],
                                help="fine-tune with LoRA/QLoRA (foreground, or --detach)")
    train.add_argument("--dataset", type=Path, help="training data file or folder")
    train.add_argument("--max-steps", type=int, help="optimizer steps (overrides epochs)")
    train.add_argument("--save-every", type=int, help="steps between checkpoints")
    train.add_argument("--seed", type=int, help="seed for adapter init, dropout and data order")
    train.add_argument("--run-dir", type=Path, help="run directory (default: a new one under the runs folder)")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override one config setting (repeatable), e.g. --set lora.r=8")
    train.add_argument("--dry-run", action="store_true",
                       help="check the dataset, model and memory estimate, and estimate the run's time, then stop (creates nothing)")
    train.add_argument("--no-probe", action="store_true",
                       help="with --dry-run: estimate the time only from speeds measured here before (no probe)")
    train.set_defaults(handler=cmd_train, overrides=_train_overrides, dataset_needed=True)

    resume = commands.add_parser("resume", parents=[common, run, as_json, detach],
                                 help="continue an interrupted or stopped run from its last checkpoint")
    resume.set_defaults(handler=cmd_resume)
    runs = commands.add_parser("runs", parents=[common, as_json], help="list runs and their state")
    runs.set_defaults(handler=cmd_runs)
    stop = commands.add_parser("stop", parents=[common, run], help="ask a running run to checkpoint and stop")
    stop.set_defaults(handler=cmd_stop)
    export = commands.add_parser("export", parents=[common, run, as_json],
                                 help="write a finished run as a merged model, a GGUF file or a GGUF adapter")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--merged", type=Path, metavar="DIR", help="new folder for the merged model (safetensors)")
    target.add_argument("--gguf", type=Path, metavar="FILE", help="new GGUF file of the merged model, for llama.cpp")
    target.add_argument("--gguf-adapter", type=Path, metavar="FILE",
                        help="new GGUF file of the LoRA adapter alone (llama.cpp --lora on the base model's GGUF)")
    export.add_argument("--quant", choices=QUANTS, help="weight type of --gguf (default f16)")
    export.set_defaults(handler=cmd_export)
    audit = commands.add_parser("audit", parents=[common, run, as_json],
                                help="verify a run's audit trail (hash chain), a fleet run's nodes' too; names the first broken line")
    audit.set_defaults(handler=cmd_audit)
