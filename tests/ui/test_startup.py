"""The UI process never imports the training stack: every screen opened, every start-up worker run,
and torch, transformers, peft and bitsandbytes are still absent (they load in child processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.helpers import ROOT, SAMPLE

VISIT_EVERY_SCREEN = f"""
import asyncio, json, sys
from forge_tui.config import load_config
from forge_tui.ui.app import ForgeApp

async def main():
    app = ForgeApp(load_config(), dataset=__import__("pathlib").Path({str(SAMPLE / "train.jsonl")!r}))
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "12345?":
            await pilot.press(key)
            await pilot.pause(0.5)
        await pilot.pause(3)
    heavy = ("torch", "transformers", "peft", "bitsandbytes", "accelerate")
    print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in heavy)))

asyncio.run(main())
"""


def test_the_console_never_loads_the_training_stack(embedded_model, tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", VISIT_EVERY_SCREEN], capture_output=True, text=True, cwd=ROOT,
                            timeout=300, env={**os.environ, "FORGE_TUI_RUNS_DIR": str(tmp_path)}, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_console_whose_input_thread_hangs_still_ends() -> None:
    """Textual's input thread is not a daemon; stuck on a vanished terminal it would keep the process
    (spinning) after the console closed. The console ends it after a grace period."""
    code = ("import threading, time\nfrom forge_tui.cli.console import _end_if_input_hangs\n"
            "threading.Thread(target=time.sleep, args=(60,), name='textual-input').start()\n"
            "_end_if_input_hangs(0.2)\nprint('still here')\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "still here" not in done.stdout
    assert time.monotonic() - started < 20
