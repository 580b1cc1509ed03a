"""Start-up: seconds from launching `forge-tui` to its first frame, against a bare Textual app.

    python benchmarks/first_frame.py [--rounds 5]

Each round starts the console on a pseudo-terminal of 80x24 (the embedded default, the sample data)
and times the first appearance of its footer; the peer is a minimal Textual app (header, one line,
footer) timed the same way in the same rounds, alternating. After each console's first frame the
process is left running for a few seconds (its workers open telemetry, look for a live run, check
the dataset in a child process) and its memory map is read: torch must never be loaded by the UI
process. Target: the console's median first frame under 1.5 s. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from terminal import Terminal  # noqa: E402

TARGET_SECONDS = 1.5
SETTLE_SECONDS = 4.0
BARE_APP = """
from textual.app import App
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

class Bare(App):
    BINDINGS = [Binding("1", "noop", "Datasets")]
    def compose(self):
        yield Header()
        yield Static("hello")
        yield Footer()

Bare().run()
"""


def first_frame(argv: list[str], env: dict[str, str], *, check_torch: bool) -> tuple[float, bool | None]:
    """(seconds to the first frame, whether torch got loaded into the process)."""
    terminal = Terminal(argv, env, ROOT, marker=b"Datasets")
    deadline = time.monotonic() + 30
    while terminal.marked_at is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if terminal.marked_at is None:
        terminal.close()
        raise SystemExit(f"no first frame in 30 s from {argv}")
    seconds = terminal.marked_at - terminal.started
    torch = None
    if check_torch:
        time.sleep(SETTLE_SECONDS)
        maps = Path(f"/proc/{terminal.process.pid}/maps").read_text()
        torch = "libtorch" in maps or "torch/_C" in maps
    terminal.close()
    return seconds, torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    console, bare, torch_loaded = [], [], []
    with tempfile.TemporaryDirectory(prefix="forge-first-frame-") as scratch:
        env = {**os.environ, "TERM": "xterm-256color", "FORGE_TUI_RUNS_DIR": scratch}
        forge = [sys.executable, "-m", "forge_tui", "--dataset", str(ROOT / "sample_data/waterworks/train.jsonl")]
        for round_ in range(args.rounds):
            for which in (("console", "bare") if round_ % 2 == 0 else ("bare", "console")):
                if which == "console":
                    seconds, torch = first_frame(forge, env, check_torch=True)
                    console.append(seconds)
                    torch_loaded.append(bool(torch))
                else:
                    bare.append(first_frame([sys.executable, "-c", BARE_APP], env, check_torch=False)[0])
            print(f"round {round_ + 1}: console {console[-1]:.3f} s, bare Textual app {bare[-1]:.3f} s"
                  f"{', torch loaded!' if torch_loaded[-1] else ''}", flush=True)
    median, peer = statistics.median(console), statistics.median(bare)
    summary = {"console_median_s": round(median, 3), "console_max_s": round(max(console), 3),
               "bare_textual_median_s": round(peer, 3), "ratio": round(median / peer, 2),
               "torch_loaded": any(torch_loaded), "target_s": TARGET_SECONDS,
               "met": median < TARGET_SECONDS and not any(torch_loaded), "rounds": args.rounds, "cpus": os.cpu_count()}
    print(f"first frame: median {median:.3f} s (bare Textual {peer:.3f} s, x{median / peer:.2f}); "
          f"torch in the UI process: {'yes' if summary['torch_loaded'] else 'no'}; target < {TARGET_SECONDS} s")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
