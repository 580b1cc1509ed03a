"""The console itself: `forge-tui` (the TUI in this terminal) and `serve` (in a browser)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from forge_tui.cli.common import config_flag
from forge_tui.config import Config
from forge_tui.errors import EXIT_OK, BadInput

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands


def cmd_tui(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.ui.app import ForgeApp
    from forge_tui.ui.themes import load_themes

    themes = load_themes()
    if config.ui.theme not in {theme.name for theme in themes}:
        raise BadInput(f"[ui] theme = {config.ui.theme!r}: no such theme (known: {', '.join(t.name for t in themes)})")
    ForgeApp(config=config, dataset=args.dataset, themes=themes).run()
    _end_if_input_hangs()
    return EXIT_OK


def _end_if_input_hangs(grace: float = 2.0) -> None:
    """The console's process must end when the console does. Textual's input thread is not a daemon,
    and when the terminal vanished during the app's shutdown it can miss its stop signal and spin on
    the dead descriptor for ever (seen once in the tmux test: a console at 96% CPU after its session
    was gone). Give it `grace` seconds, then end the process (runs live in their own processes)."""
    stuck = [t for t in threading.enumerate() if t.name == "textual-input" and t.is_alive()]
    for thread in stuck:
        thread.join(grace)
    if any(thread.is_alive() for thread in stuck):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.ui.serve import serve

    if not 1 <= args.port <= 65535:
        raise BadInput(f"--port must be between 1 and 65535, got {args.port}")
    if args.dataset is not None and not args.dataset.exists():
        raise BadInput(f"{args.dataset}: no such dataset")
    serve(config.source, args.dataset, args.host, args.port)
    return EXIT_OK


def register(commands: Commands) -> None:
    served = commands.add_parser("serve", parents=[config_flag()], help="the console in a web browser (textual-serve), for demos")
    served.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    served.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    served.add_argument("--dataset", type=Path, help="dataset to open")
    served.set_defaults(handler=cmd_serve)
