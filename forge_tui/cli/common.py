"""What every command shares: its handler's shape, JSON output, the usage-error parser and the
parent parsers of the flags several commands take."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from forge_tui.config import PRESETS, Config
from forge_tui.errors import EXIT_BAD_INPUT, BadInput

Handler = Callable[[argparse.Namespace, Config], int]


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def print_json_line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


class Parser(argparse.ArgumentParser):
    """argparse with our exit code for usage errors (2, as argparse) and no traceback paths."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


if TYPE_CHECKING:
    from typing import TypeAlias

    Commands: TypeAlias = argparse._SubParsersAction[Parser]


def usage(parser: argparse.ArgumentParser) -> int:
    """A command group called without its command: the usage, exit 2."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: a command is required (see --help)", file=sys.stderr)
    return EXIT_BAD_INPUT


def _parent() -> Parser:
    return Parser(add_help=False)


def config_flag() -> Parser:
    """--config, accepted after the command too (`forge-tui train --config F`); SUPPRESS keeps the
    value given before the command when it is not repeated after it."""
    parent = _parent()
    parent.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="config TOML")
    return parent


def map_flag() -> Parser:
    """--map KEY=FIELD (repeatable): a column mapping in place of the config's `[data] columns`."""
    parent = _parent()
    parent.add_argument("--map", action="append", metavar="KEY=FIELD", dest="columns",
                        help="read the records' KEY as FIELD (repeatable; replaces [data] columns), e.g. --map question=instruction")
    return parent


def column_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """`--map` flags as a `[data] columns` override (empty when none was given)."""
    columns: dict[str, str] = {}
    for item in args.columns or []:
        key, equals, target = item.rpartition("=")  # a field has no "=", a column's name may
        if not (equals and key and target.strip()):
            raise BadInput(f"--map {item!r}: expected KEY=FIELD, e.g. question=instruction")
        columns[key] = target.strip()
    return {"data": {"columns": columns}} if columns else {}


def json_flag() -> Parser:
    parent = _parent()
    parent.add_argument("--json", action="store_true",
                        help='machine-readable output; a failure prints {"error": ..., "exit_code": ...}')
    return parent


def run_argument(what: str = "run name or directory") -> Parser:
    parent = _parent()
    parent.add_argument("run", help=what)
    return parent


def detach_flag() -> Parser:
    parent = _parent()
    parent.add_argument("--detach", action="store_true", help="run in a new session that survives this terminal")
    return parent


def preset_flag(help_text: str) -> Parser:
    parent = _parent()
    parent.add_argument("--preset", choices=list(PRESETS), help=help_text)
    return parent


def interrupt_on_sigterm() -> None:
    """SIGTERM (a `kill`) and SIGHUP (the terminal or the SSH link went) end a long foreground
    command as Ctrl-C does (a fleet's Flower processes are stopped with it, a recording is closed
    whole), also where SIGINT was ignored from the start (a job started in the background); once
    it is stopping, further signals are ignored so the stopping completes."""
    def interrupt(*_: object) -> None:
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
        raise KeyboardInterrupt

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, interrupt)
