"""The console driven as an operator drives it: the real app in a real terminal (tmux, 80x24), keys
sent, the screen read back. Pick the sample dataset, start a quick training from the Train form, see
the loss move, quit, start the console again and find it attached to the run still going, stop it.

tmux comes from the system (`make test` installs it where it can; see the README)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import is_running
from tests.helpers import ROOT, ScreenText, console_config, killed_if_left


class Tmux(ScreenText):
    """One tmux session of 80x24 running a shell."""

    def __init__(self, env: dict[str, str]) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed: `make test` installs it with apt-get as root; "
                        "otherwise `sudo apt-get install tmux`")
        self.name = f"forge-e2e-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24",
                        f"env {exports} bash --norc --noprofile"], check=True)

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)
        time.sleep(0.4)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=True).stdout

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)


def _loss(text: str) -> float | None:
    found = re.search(r"^ loss (\d+\.\d+)", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _consoles(config: Path) -> list[int]:
    """The pids of consoles started with this config (not its runners, which have a command)."""
    wanted = [sys.executable, "-m", "forge_tui", "--config", str(config)]
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().split(b"\0")[:-1] == [w.encode() for w in wanted]:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _ended(config: Path, seconds: float = 15) -> list[int]:
    """Wait for the consoles of this config to be gone; those still there are killed and returned."""
    return killed_if_left(lambda: _consoles(config), seconds)


def _step(text: str) -> int:
    found = re.search(r"step (\d+)/\d+", text)
    return int(found.group(1)) if found else -1


def test_train_from_the_console_quit_reopen_and_find_the_run_still_going(embedded_model, tmp_path) -> None:
    config = tmp_path / "forge.toml"
    config.write_text(console_config(4))
    runs = tmp_path / "runs"
    console = f"{shlex.quote(sys.executable)} -m forge_tui --config {shlex.quote(str(config))}"
    passed = {key: value for key, value in os.environ.items() if key in ("HOME", "PATH", "LANG") or key.startswith("XDG_")}
    tmux = Tmux({**passed, "FORGE_TUI_RUNS_DIR": str(runs), "TERM": "xterm-256color"})
    try:
        tmux.keys(f"cd {shlex.quote(str(ROOT))} && {console}", "Enter")
        tmux.wait_for("waterworks/train.jsonl")
        for _ in range(8):  # down the list to the sample training set, as an operator reads it
            if "623 (chat 623)" in tmux.screen():
                break
            tmux.keys("Down")
            time.sleep(2)  # each dataset's check takes a moment
        tmux.wait_for("623 (chat 623)")
        tmux.keys("t")  # train on it
        tmux.wait_for(lambda text: "[2 Train]" in text and "dataset waterworks/train.jsonl" in text)
        opened = tmux.wait_for(re.compile(r"preset\s+quick").search)  # the preset meant for a machine with no GPU
        assert "chosen for this machine (no GPU)" in opened
        for _ in range(8):  # preset, model, rank, alpha, dropout, learning rate, epochs, max steps
            tmux.keys("Tab")
        tmux.keys("C-u")
        tmux.keys("60", literal=True)
        tmux.keys("Escape")
        tmux.wait_for(lambda text: "memory" in text and "ok" in text and re.search(r"max steps \(0: epochs\)\s+60", text))
        tmux.keys("C-l")  # launch
        first = tmux.wait_for(lambda text: "[3 Monitor]" in text and "RUNNING" in text and _loss(text) is not None, 300)
        moved = tmux.wait_for(lambda text: _loss(text) is not None and _loss(text) != _loss(first), 300)
        assert _step(moved) > _step(first)
        run = RunDir(next(runs.iterdir()))
        tmux.keys("C-q")
        tmux.wait_for(lambda text: "12345 screens" not in text, 30)  # back at the shell
        assert is_running(run)  # the console is gone; the run is not

        tmux.keys(console, "Enter")  # the console again: it finds the run still going
        tmux.wait_for("waterworks/train.jsonl")
        tmux.keys("3")
        attached = tmux.wait_for(lambda text: run.name in text and "RUNNING" in text and _step(text) > _step(moved), 300)
        assert "HEADROOM" in attached
        tmux.keys("s")  # stop: checkpoint, then stop (resumable)
        tmux.wait_for(f"{run.name}  STOPPED", 300)
        tmux.keys("C-q")
    finally:
        tmux.close()
        left = _ended(config)  # (and killed, so that a failure here never slows the rest of the suite)
        if runs.exists():
            for path in runs.iterdir():
                RunDir(path).request_stop()
    assert left == []  # a console whose terminal is gone exits; it never spins on
    deadline = time.monotonic() + 120
    while is_running(run) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not is_running(run)
