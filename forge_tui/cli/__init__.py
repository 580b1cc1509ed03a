"""`forge-tui`: the TUI with no arguments, subcommands for everything it drives.

Exit codes: 0 success, 2 bad input (a file, flag or config that cannot be used; nothing was
modified), 1 any other failure. No traceback reaches the operator unless FORGE_TUI_DEBUG=1. A
command asked for `--json` that fails prints an `ErrorRecord` on stdout as well as the message.

Each module here is one concern and registers its own commands: data (models, data check), runs
(train, resume, runs, stop, export, audit), bench, chat, fleet (Flower), device (telemetry, doctor), console (the TUI, serve).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from forge_tui import __version__
from forge_tui.cli import bench, chat, console, data, device, fleet, runs
from forge_tui.cli.common import Handler, Parser, print_json_line
from forge_tui.config import Config, load_config
from forge_tui.errors import EXIT_FAILURE, ErrorRecord, ForgeError

INTERRUPTED = 130  # the shell's code for a process ended by Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="forge-tui", description="On-device fine-tuning console. With no command, opens the TUI.")
    parser.add_argument("--version", action="version", version=f"forge-tui {__version__}")
    parser.add_argument("--config", type=Path, help="config TOML (default: the user config file, if any)")
    parser.add_argument("--dataset", type=Path, help="dataset to open in the TUI")
    parser.set_defaults(handler=console.cmd_tui)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for module in (data, runs, bench, chat, fleet, device, console):
        module.register(commands)
    return parser


def _fail(args: argparse.Namespace, message: str, exit_code: int) -> int:
    print(f"forge-tui: error: {message}", file=sys.stderr)
    if getattr(args, "json", False):  # one line: streaming commands print one JSON object per line
        print_json_line(ErrorRecord(message, exit_code).to_json())
    return exit_code


def command_config(args: argparse.Namespace) -> Config:
    """The config a command runs with: the config file over the command's `--preset`, under its own
    flags (`train --set ...`), all checked at once, so that every problem is reported together."""
    overrides = args.overrides(args) if "overrides" in args else None
    return load_config(args.config, getattr(args, "preset", None), overrides, check_paths=getattr(args, "dataset_needed", False))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, command_config(args))
    except ForgeError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("forge-tui: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:  # the machine, not the program: a full or read-only disk, a file gone
        if os.environ.get("FORGE_TUI_DEBUG"):
            raise
        return _fail(args, environment_error(exc), EXIT_FAILURE)
    except Exception as exc:  # the last line of defence: no traceback for operators
        if os.environ.get("FORGE_TUI_DEBUG"):
            raise
        return _fail(args, f"internal error: {type(exc).__name__}: {exc}\n"
                           "Run again with FORGE_TUI_DEBUG=1 for the traceback, and report it.", EXIT_FAILURE)
    finally:
        _tell_refused()


def environment_error(exc: OSError) -> str:
    """An error of the machine in the operator's words: what, and on which file."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}" + (f" (-> {exc.filename2})" if exc.filename2 else "")


def _tell_refused() -> None:
    """Outgoing connections the egress guard refused in this process (inside a run, the audit trail
    has them too)."""
    from forge_tui.offline import refused_attempts

    for attempt in refused_attempts():
        print(f"forge-tui: refused an outgoing connection to {attempt.target} (from {attempt.caller})", file=sys.stderr)
