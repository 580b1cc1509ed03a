"""`forge-tui serve`: the console in a browser through textual-serve, for demos.

Each browser tab gets its own `forge-tui` process. The server binds to loopback unless told
otherwise, and its page is served without textual-serve's one remote asset (a web font from Google),
so a browser on an air-gapped site loads nothing from outside the device.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
from pathlib import Path

from forge_tui.engine.children import forge_argv
from forge_tui.errors import ForgeError

REMOTE_FONT = re.compile(r"\s*<link[^>]*fonts\.googleapis\.com[^>]*>", re.DOTALL)
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def offline_template(target: Path) -> Path:
    """textual-serve's page template without remote assets, written into `target`; returns `target`."""
    import textual_serve

    source = Path(textual_serve.__file__).parent / "templates" / "app_index.html"
    page = REMOTE_FONT.sub("", source.read_text(encoding="utf-8"))
    if "https://" in page:
        raise ForgeError(f"{source}: this textual-serve page loads a remote asset; refusing to serve it")
    (target / "app_index.html").write_text(page, encoding="utf-8")
    return target


def app_command(config_file: Path | None, dataset: Path | None) -> str:
    """The shell command textual-serve runs for each browser session."""
    dataset_flag = ["--dataset", str(dataset.resolve())] if dataset else []
    return shlex.join(forge_argv(config_file.resolve() if config_file else None, *dataset_flag))


def serve(config_file: Path | None, dataset: Path | None, host: str, port: int) -> None:
    from textual_serve.server import Server

    if host not in LOOPBACK:
        print(f"serving on {host}: anyone who can reach port {port} there drives this console", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="forge-tui-serve-") as folder:
        Server(app_command(config_file, dataset), host=host, port=port, title="Forge TUI",
               templates_path=offline_template(Path(folder))).serve()
