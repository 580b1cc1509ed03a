"""`forge-tui serve` in a real browser, as a demo runs it: Debian's chromium, driven by Playwright (the
system browser, never a downloaded one). The page opens and starts its own console; every key the
console shows reaches the app; the number keys switch screens; the Train form is filled and a short
run launched; the Monitor moves; the run is stopped and the console quit from the page.

How the screen is read: textual-serve draws the app with xterm.js on a canvas, so neither the DOM nor
the accessibility tree holds its text. Its page keeps the xterm `Terminal` in a local variable, as
`this.terminal` of its own session object. An init script (HOOK, run before the page's own script)
puts a one-shot setter for `terminal` on Object.prototype: the first assignment of an xterm Terminal
to a `terminal` property is kept as an ordinary property, and remembered as window.__term (and its
owner, which holds the websocket, as window.__session). The screen is then the terminal's own
buffer, row by row (`buffer.active.getLine(y).translateToString()`): the text xterm.js drew, exactly.

How keys are checked: for every key a binding shows (footer and help), the test presses it in the
page with the websocket's stdin held back (so that no action runs), checks that the browser let the
page claim it (`defaultPrevented`: a real browser then takes no action of its own), and decodes what
the page would have sent with Textual's own input parser: it must be that binding's key. The keys a
user's browser keeps before any page sees them (close, open or switch tabs, reload, full screen)
reach the page all the same in headless Playwright, which has no tabs to act on, so a press cannot
show them kept: no shown binding may use one (BROWSER_KEEPS).

chromium comes from the system: `make test` installs it with apt where it may (its `tools` target)."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from textual._xterm_parser import XTermParser
from textual.binding import Binding
from textual.keys import key_to_character

import forge_tui.ui
from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import is_running
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.serve import app_command
from tests.e2e.test_console_tmux import _loss, _step
from tests.helpers import ROOT, SAMPLE, ScreenText, console_config, killed_if_left

# What lets Debian's chromium start here, as root and offline, without a GPU or a first-run dialog.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# Keys a user's browser keeps for itself, whatever the page does: Chromium's reserved commands (close,
# open, reopen and switch tabs and windows, quit) and reload and full screen.
BROWSER_KEEPS = {"ctrl+w", "ctrl+t", "ctrl+n", "ctrl+tab", "ctrl+shift+tab", "ctrl+shift+w", "ctrl+shift+t", "ctrl+shift+n",
                 "ctrl+shift+q", "ctrl+pageup", "ctrl+pagedown", "ctrl+f4", "alt+f4", "f5", "f11", "ctrl+f5", "shift+f5"}
EMPTIED = "max steps (0: epochs): expected a whole number"

HOOK = """
Object.defineProperty(Object.prototype, 'terminal', {
  configurable: true,
  get() { return undefined; },
  set(value) {
    Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && value.buffer.active && !window.__term) {
      window.__term = value;
      window.__session = this;
      delete Object.prototype.terminal;
    }
  },
});
window.__keydowns = [];
window.addEventListener('keydown', event => window.__keydowns.push(event), true);
window.__held = null;
"""
SCREEN = """() => {
  const term = window.__term, buffer = term.buffer.active, rows = [];
  for (let y = 0; y < term.rows; y++) rows.push(buffer.getLine(buffer.viewportY + y).translateToString(true));
  return rows.join('\\n');
}"""
HOLD = """() => {
  const socket = window.__session.socket;
  window.__held = [];
  socket.send = message => {
    const [kind, data] = JSON.parse(message);
    if (kind === 'stdin') window.__held.push(data); else WebSocket.prototype.send.call(socket, message);
  };
}"""
# Whether the page claimed the key's keydown (the modifiers' own keydowns are left to the browser).
CLAIMED = """() => window.__keydowns.filter(event => !['Control', 'Shift', 'Alt', 'Meta'].includes(event.key))
                               .every(event => event.defaultPrevented)"""
RELEASE = "() => { delete window.__session.socket.send; window.__held = null; }"
NAMES = {"escape": "Escape", "enter": "Enter", "tab": "Tab", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft",
         "right": "ArrowRight", "home": "Home", "end": "End", "pageup": "PageUp", "pagedown": "PageDown",
         "delete": "Delete", "backspace": "Backspace", "insert": "Insert"}
MODIFIERS = {"ctrl": "Control", "shift": "Shift", "alt": "Alt", "meta": "Meta"}


def playwright_key(key: str) -> str:
    """A Textual key name ('ctrl+l', 'question_mark', 'f2') as Playwright presses it."""
    *modifiers, name = key.split("+")
    base = name.upper() if re.fullmatch(r"f\d+", name) else NAMES.get(name) or key_to_character(name)
    assert base, f"no browser key for {key}"
    return "+".join([*(MODIFIERS[m] for m in modifiers), base])


def decoded(data: str) -> list[str]:
    """The keys the served app reads from `data` (its web driver parses stdin with this parser)."""
    parser = XTermParser()
    events = [*parser.feed(data), *parser.feed("")]  # the empty feed ends the input: a lone escape is escape
    return [str(getattr(event, "key", event)) for event in events]


def shown_bindings() -> dict[str, list[str]]:
    """Every key the console shows, in footers and help: the shown bindings of the app and of every
    screen and widget in forge_tui.ui, and the command palette's key (named in the help)."""
    shown: dict[str, list[str]] = {ForgeApp.COMMAND_PALETTE_BINDING: ["ForgeApp: command palette"]}
    for module in pkgutil.walk_packages(forge_tui.ui.__path__, "forge_tui.ui."):
        for name, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if cls.__module__ == module.name and "BINDINGS" in vars(cls):
                for binding in Binding.make_bindings(vars(cls)["BINDINGS"]):
                    if binding.show:
                        shown.setdefault(binding.key, []).append(f"{name}: {binding.description}")
    return shown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def processes(matches: Callable[[bytes], bool]) -> list[int]:
    """The pids of the processes (but this one) whose command line (NUL-separated) `matches`."""
    found = []
    for proc in Path("/proc").iterdir():
        with suppress(OSError):
            if proc.name.isdigit() and int(proc.name) != os.getpid() and matches((proc / "cmdline").read_bytes()):
                found.append(int(proc.name))
    return found


def consoles(command: str) -> list[int]:
    """The consoles the server started with `command` (one per page)."""
    wanted = "\0".join(shlex.split(command)).encode() + b"\0"
    return processes(lambda cmdline: cmdline == wanted)


def ended(command: str, seconds: float = 15) -> list[int]:
    """Wait for these consoles to be gone; those still there are killed and returned."""
    return killed_if_left(lambda: consoles(command), seconds)


class Console(ScreenText):
    """The served console in one browser page."""

    POLL, WAIT = 0.1, 60.0

    def __init__(self, page: Page) -> None:
        self.page = page

    def screen(self) -> str:
        return str(self.page.evaluate(SCREEN))

    def press(self, key: str) -> None:
        self.page.keyboard.press(playwright_key(key))

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)

    def held_keys(self, keys: list[str]) -> Iterator[tuple[str, list[str], bool]]:
        """Press each key with stdin held back: (key, the keys the app would read, whether the page
        claimed the keydown so that the browser does nothing with it)."""
        self.page.evaluate(HOLD)
        try:
            for key in keys:
                self.page.evaluate("() => { window.__held.length = 0; window.__keydowns.length = 0; }")
                self.press(key)
                self.page.wait_for_function("() => window.__held.length > 0", timeout=5000)
                data = "".join(self.page.evaluate("() => window.__held"))
                claimed = self.page.evaluate(CLAIMED)
                yield key, decoded(data), bool(claimed)
        finally:
            self.page.evaluate(RELEASE)


def header(screen: str, current: str) -> bool:
    """Whether the header marks `current` ('3 Monitor') as the screen shown."""
    return f"[{current}]" in screen.splitlines()[0]


def on(current: str) -> Callable[[str], bool]:
    return lambda screen: header(screen, current)


def test_the_served_console_in_a_browser(embedded_model, tmp_path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it with apt-get as root; "
                    "otherwise `sudo apt-get install chromium`")
    shown = shown_bindings()
    kept = {key: where for key, where in shown.items() if key in BROWSER_KEEPS}
    assert kept == {}, "a browser keeps these keys: give the action another key and show that one"

    config = tmp_path / "forge.toml"
    config.write_text(console_config(2, save_every=0))  # small batches, no checkpoint until the stop
    config = config.resolve()
    runs = tmp_path / "runs"
    dataset = SAMPLE / "train.jsonl"
    command = app_command(config, dataset)  # what the server runs for each page
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "forge_tui", "--config", str(config), "serve", "--port", str(port),
                               "--dataset", str(dataset)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "FORGE_TUI_RUNS_DIR": str(runs)}, start_new_session=True)
    left: list[int] = []
    run: RunDir | None = None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(headless=True, executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 640})
                page.add_init_script(HOOK)
                deadline = time.monotonic() + 30
                while True:  # the server takes a moment to listen
                    assert server.poll() is None, (tmp_path / "serve.log").read_text()
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "the server never listened"
                        time.sleep(0.1)
                page.goto(f"http://127.0.0.1:{port}/")
                console = Console(page)
                page.wait_for_function("() => window.__term !== undefined", timeout=10_000)
                console.wait_for(lambda text: header(text, "1 Datasets") and "623 (chat 623)" in text)
                assert len(consoles(command)) == 1  # the page started its own console
                page.evaluate("() => window.__term.focus()")  # (a click would reach the app as a mouse click)

                # Every shown key reaches the app as that key, and the browser leaves it to the page.
                for key, read, claimed in console.held_keys(sorted(shown)):
                    assert read == [key], f"{key} ({', '.join(shown[key])}) reaches the app as {read}"
                    assert claimed, f"{key} ({', '.join(shown[key])}): the page did not claim it; the browser acts on it"

                # Keys a browser has its own uses for do their work here: escape, ctrl+p (print), and below
                # ctrl+r (reload), ctrl+l (the address bar), ctrl+q.
                console.press("question_mark")
                console.wait_for("Forge TUI keys")
                console.press("escape")
                console.wait_for(lambda text: "Forge TUI keys" not in text)
                console.press("ctrl+p")
                console.wait_for("Search for commands")
                console.press("escape")
                console.wait_for(lambda text: "Search for commands" not in text)
                console.press("p")  # the dataset's preview, and back to its check
                console.wait_for(lambda text: "623 (chat 623)" not in text)
                console.press("p")
                console.wait_for("623 (chat 623)")

                # Chat (6) is visited last, after the run: it loads a model as soon as it is shown.
                for number, name in [(2, "Train"), (3, "Monitor"), (4, "Compare"), (5, "Runs"), (7, "Fleet"), (1, "Datasets")]:
                    console.press(str(number))
                    console.wait_for(on(f"{number} {name}"), 10)

                console.press("t")  # train on the dataset
                console.wait_for(lambda text: header(text, "2 Train") and "dataset waterworks/train.jsonl" in text)
                for _ in range(8):  # preset, model, rank, alpha, dropout, learning rate, epochs, max steps
                    console.press("tab")
                console.press("ctrl+u")  # the field emptied (before typing: Textual's Input loses a key that
                console.wait_for(EMPTIED)  # comes in the same instant as ctrl+u, in a terminal too)
                console.type("7")
                console.wait_for(re.compile(r"max steps \(0: epochs\)\s+7\b").search)
                console.press("ctrl+r")  # every field back to the preset's value
                console.wait_for(re.compile(r"max steps \(0: epochs\)\s+0\b").search)
                console.press("ctrl+u")
                console.wait_for(EMPTIED)
                console.type("40")
                console.press("escape")
                console.wait_for(lambda text: re.search(r"max steps \(0: epochs\)\s+40\b", text) and re.search(r"memory.*\n.*\bok\b", text))
                console.press("ctrl+l")  # launch

                first = console.wait_for(lambda text: header(text, "3 Monitor") and "RUNNING" in text and _loss(text) is not None)
                run = RunDir(next(runs.iterdir()))
                moved = console.wait_for(lambda text: _step(text) > _step(first) and _loss(text) != _loss(first))
                assert run.name in moved
                console.press("s")  # stop: checkpoint, then stop (resumable)
                console.wait_for(f"{run.name}  STOPPED")
                console.press("6")  # the last screen: Chat starts loading the model to chat with
                console.wait_for(on("6 Chat"), 10)
                console.press("ctrl+q")
                page.wait_for_selector("body.-closed", state="attached", timeout=10_000)  # "Session ended."
                left = ended(command)
            finally:
                browser.close()
    finally:
        launched = [RunDir(path) for path in runs.iterdir()] if runs.exists() else []
        for each in launched:
            each.request_stop()
        deadline = time.monotonic() + 60
        while any(is_running(each) for each in launched) and time.monotonic() < deadline:
            time.sleep(0.2)
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # whatever the server left in its group
        log.close()
        stray = processes(lambda cmdline: str(tmp_path).encode() in cmdline)  # a runner, a chat model, a check
        for pid in stray:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert left == []  # the console ends with its session
    assert stray == []  # and so does everything it started
    assert run is not None
    assert not is_running(run)

