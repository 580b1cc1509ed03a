"""Help: every key, in one place."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Forge TUI keys

| key | does |
|---|---|
| 1 | **Datasets**: browse, check and preview datasets |
| 2 | **Train**: settings for a new run, and its launch |
| 3 | **Monitor**: the attached run's loss and progress beside the device's telemetry |
| 4 | **Compare**: base vs tuned on the benchmark, item by item |
| 5 | **Runs**: every run and its state |
| 6 | **Chat**: ask the base and the tuned model side by side |
| 7 | **Fleet**: fine-tuning across devices on Flower: nodes, rounds, global eval loss |
| ? | this help (escape closes it) |
| ctrl+q | quit (a run, or a benchmark, goes on in its own process) |
| ctrl+p | command palette: screens, themes, stopping the attached run |

**Datasets**: up / down choose a dataset, `p` switches between its check and a preview of its
samples, `r` checks it again (after editing the file), `t` trains on it, `m` maps the columns of a
file in no format Forge knows (its first record's keys to instruction, output, messages, ...; the
mapping goes with every check and run of that dataset). Forge reads JSONL, JSON, CSV, gzip,
Parquet, Arrow and `datasets` folders in the chat (OpenAI), ShareGPT, alpaca, prompt/completion
and text shapes. A dataset with problems lists each as `FILE:LINE: what is wrong` (`FILE:row N`
in Parquet and Arrow); it cannot be trained on until they are fixed. Files are never modified.

**Train**: it opens on the preset meant for this machine (`quick` with no GPU, `standard` on an
NVIDIA GPU, `orin-7b` on a Jetson); the plan says how long the run will take here (a short probe
measures this device the first time a shape is checked). `tab` moves through the settings,
`escape` leaves a field (so that 1-5 switch screens again), `ctrl+r` puts every field back to the
preset's value, `ctrl+l` launches. A setting the run would refuse is marked as it is typed; the
memory estimate is checked against the device's memory. The run starts in its own process: it
goes on if this console closes or the SSH link drops.

**Monitor**: `s` asks the attached run to stop after a checkpoint (resumable). The thermal
headroom is the distance from the hottest sensor to its throttle trip point; it says `near pause`
(warning colour) below the guard's resume threshold and `PAUSE` (error colour) below its pause
threshold. The graphs show the last readings of the headroom, the GPU (or CPU) load and the power,
each with its current value. A run that has ended shows its record: time, energy (Wh, J/token,
mean and peak power, where the device has a power meter), lowest headroom, time throttled, peaks.

**Compare**: `b` benchmarks the run (finished runs only; it runs in its own process and the table
fills as items are answered), `f` shows all items, the improved ones or the regressed ones; up /
down show an item's question, reference and both answers side by side; `c` opens the item's tuned
answer in an editor to write the right one (see Chat).

**Runs**: up / down choose a run, enter or `a` attaches the Monitor to it, `s` asks it to stop
(after a checkpoint: it can be resumed), `r` resumes a stopped or interrupted run in the
background, `b` opens its benchmark, `e` exports a finished run as a merged model in RUN/merged,
`g` as a GGUF file for llama.cpp in RUN/gguf (the merged model at f16, q8_0 or q4_0, or the adapter
alone for `--lora`), with a progress bar. `m` (or `space` in a terminal) marks runs (and unmarks
them), `c` shows the marked ones side by side: their loss curves overlaid, their results (benchmark, eval loss, time
against the estimate, energy, lowest headroom) and the settings that differ. The columns after
`eval` (time ~estimate, Wh, lowest headroom) scroll into view on an 80-column terminal.
Reopening the console attaches to the run still going.

**Chat**: a question typed below (enter sends) is answered by the base model and the tuned one,
streamed side by side (one above the other on a narrow terminal), each with its tokens/s and time to
first token; each keeps its own history. `escape` cancels the answers (and, with none coming, leaves
the field so that the keys below work), `f2` starts a new conversation, `m` picks another finished
run or the base model alone, `c` opens the last tuned answer in an editor: write the right answer and
`ctrl+s` appends it to corrections.jsonl in your first data folder (`[data] dirs`), with where it came
from, and records it in the run's audit trail. Train on that folder to learn from the corrections.
The settings row takes a system prompt, the temperature (0 is greedy), top-p and the longest answer.

**Fleet**: the newest fleet run (or one picked with `m`): each node's state (training, paused by
heat, idle, late, gone, done), the last round it delivered, its samples, loss, thermal headroom and the
bytes it sent; the rounds' progress and the global eval loss per round. `l` starts a local fleet
for a demo (3 nodes on this machine, each with its share of the picked dataset, 3 rounds), `s`
stops it, `a` attaches the Monitor to the fleet's run. Only adapter tensors and numbers travel.

**When something fails** in the background, a notification names it and the file that holds the
details (the console log: ~/.local/state/forge-tui/log/console.log on Linux); the screen goes on.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
