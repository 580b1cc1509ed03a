"""`bench`: base vs tuned on held-out data, in the foreground or detached."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_tui.cli.common import config_flag, detach_flag, json_flag, print_json, run_argument
from forge_tui.cli.runs import start_detached_command
from forge_tui.config import Config
from forge_tui.engine.events import Record
from forge_tui.errors import EXIT_OK, BadInput
from forge_tui.units import figure

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands
    from forge_tui.engine.runs import RunDir

PROGRESS = ("bench_started", "bench_progress", "bench_failed")  # told on stderr; the result is the table


def _echo(event: Record) -> None:
    from forge_tui.engine.eventtext import describe

    if event["type"] in PROGRESS:
        print(describe(event), file=sys.stderr, flush=True)


def _summary(result: dict[str, Any]) -> None:
    from forge_tui.engine.scoring import SUBSCORES

    base, tuned, delta = result["base"], result["tuned"], result["delta"]
    low, high = result["ci95"]["delta"]
    print(f"{'':<12} {'base':>7} {'tuned':>7} {'delta':>7}")
    print(f"{'composite':<12} {base['composite']:>7.1f} {tuned['composite']:>7.1f} {delta['composite']:>+7.1f}   "
          f"95% CI of delta {low:+.1f}..{high:+.1f}")
    for key in SUBSCORES:
        print(f"{key:<12} {figure(base['subscores'][key]):>7} {figure(tuned['subscores'][key]):>7} "
              f"{figure(delta['subscores'][key], sign=True):>7}")
    for name, row in result["categories"].items():
        print(f"  {name:<10} {row['base']['composite']:>7.1f} {row['tuned']['composite']:>7.1f} "
              f"{row['tuned']['composite'] - row['base']['composite']:>+7.1f}   ({row['items']} items)")


def _detached(run: RunDir, args: argparse.Namespace, eval_path: Path, retention: Path | None) -> int:
    """The benchmark in its own session (the console that asked may close); its events go to the
    run's log, which the Compare screen tails."""
    from forge_tui.engine.runs import require_finished
    from forge_tui.engine.status import is_running

    require_finished(run)
    if is_running(run):
        raise BadInput(f"{run.path}: busy (a runner or a benchmark holds it)")
    command = ["bench", str(run.path), "--eval", str(eval_path)]
    command += ["--retention", str(retention)] if retention else []
    command += ["--limit", str(args.limit)] if args.limit else []
    return start_detached_command(run, args, *command, log_name="bench.log")


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
        return _detached(run, args, eval_path, retention)
    result = run_bench(run, eval_path, retention, settings_from(config), limit=args.limit, echo=_echo)
    report = render(result)
    (run.path / "bench" / "report.md").write_text(report, encoding="utf-8")
    if args.report:
        args.report.write_text(report, encoding="utf-8")
    if args.json:
        print_json(result)
    else:
        _summary(result)
        print(f"report: {args.report or run.path / 'bench' / 'report.md'}")
    return EXIT_OK


def register(commands: Commands) -> None:
    bench = commands.add_parser("bench", parents=[config_flag(), run_argument("run name or directory (a finished run)"),
                                                  json_flag(), detach_flag()],
                                help="base vs tuned on held-out data: composite score 0-100")
    bench.add_argument("--eval", type=Path, help="eval file (default: eval.jsonl beside the training data)")
    bench.add_argument("--retention", type=Path, help="general questions the base answers (default: retention.jsonl beside it)")
    bench.add_argument("--limit", type=int, help="first N items of each file")
    bench.add_argument("--report", type=Path, metavar="FILE.md", help="also write the Markdown report here")
    bench.set_defaults(handler=cmd_bench)
