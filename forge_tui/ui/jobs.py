"""Work the console hands to `forge-tui` child processes, so that heavy imports (torch, transformers)
never land in the console's own process.

Every child is asked for `--json` and answers with a record the engine defines (`Preflight`,
`Launched`, ...), or an `ErrorRecord` when it refused. Whatever else happens (killed mid-way, an exit
without an answer, output that is not JSON, an answer of the wrong shape) comes back as one
exception, `ChildFailed`, whose message says what happened: the screens catch it and stay usable.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from forge_tui.config import Config
from forge_tui.engine.children import Launched, forge_argv
from forge_tui.engine.fsutil import json_object
from forge_tui.engine.gguf_export import Exported
from forge_tui.engine.preflight import Preflight
from forge_tui.errors import ErrorRecord

T = TypeVar("T")
SHOWN_OUTPUT = 120  # characters of an unexpected answer quoted back to the operator


class ChildFailed(Exception):
    """A child command gave no usable answer; the message says why, in the operator's words."""


_questions: dict[subprocess.Popen[str], str] = {}   # children that only answer a question, by kind: check | probe
_questions_lock = threading.Lock()
_closing = threading.Event()                     # the console is closing: no new question is asked


def run_child(config: Config, *args: str, question: str | None = None) -> subprocess.CompletedProcess[str]:
    """`forge-tui ARGS` (with the console's config) to the end; its output captured. A `question`
    (a check that changes nothing; its kind: check, or probe for a speed probe) is stopped when the
    console closes, as nobody waits for its answer, and `stop_questions(kind)` stops those of a kind."""
    process = subprocess.Popen(forge_argv(config.source, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    if question:
        with _questions_lock:
            _questions[process] = question
            if _closing.is_set():  # asked while the console closes: nobody will read the answer
                process.kill()
    try:
        stdout, stderr = process.communicate()
    finally:
        with _questions_lock:
            _questions.pop(process, None)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def accept_questions() -> None:
    """A console opens: questions are asked again (one console per process; tests open many)."""
    _closing.clear()


def stop_questions(kind: str | None = None) -> None:
    """Kill the questions of `kind` still running (a speed probe when a run is launched: it must
    not share the CPU with the run). With no kind: every question, and any asked from now on (the
    console is closing). Launches, resumes and exports are left to finish (the console's process
    waits for them: they change things); a detached runner or benchmark is never a child of the console."""
    with _questions_lock:
        if kind is None:
            _closing.set()
        for process, asked in _questions.items():
            if kind in (None, asked):
                process.kill()


def _said(text: str) -> str:
    """The gist of a child's stderr: its last line, without the CLI's error prefix."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("forge-tui: error: ") if lines else ""


def _died(what: str, done: subprocess.CompletedProcess[str]) -> ChildFailed:
    """Why a child that gave no answer gave none: killed by a signal, or exited (with what it said)."""
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return ChildFailed(f"{what}: the process was killed ({name}) before it answered")
    said = _said(done.stderr)
    return ChildFailed(f"{what}: exited with {done.returncode} without an answer" + (f": {said}" if said else ""))


def answer(what: str, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object a `--json` child printed; ChildFailed for anything else, or for its error."""
    if not done.stdout.strip():
        raise _died(what, done)
    try:
        document = json_object(done.stdout)
    except ValueError:
        shown = " ".join(done.stdout.split())[:SHOWN_OUTPUT]
        raise ChildFailed(f"{what}: the answer is not a JSON object (exit {done.returncode}): {shown}") from None
    if ErrorRecord.is_error(document):
        raise ChildFailed(ErrorRecord.from_json(document).error)
    return document


def ask(what: str, parse: Callable[[dict[str, Any]], T], config: Config, *args: str, question: str | None = None) -> T:
    """Run `forge-tui ARGS --json` and read its answer with `parse` (a record's `from_json`); `what`
    names the job in messages ("the dataset check")."""
    document = answer(what, run_child(config, *args, "--json", question=question))
    try:
        return parse(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChildFailed(f"{what}: an answer of the wrong shape ({type(exc).__name__}: {exc})") from None


def map_arguments(columns: Mapping[str, str]) -> list[str]:
    """A column mapping as the command line's `--map KEY=FIELD` arguments."""
    return [f"--map={key}={target}" for key, target in columns.items()]


def run_data_check(config: Config, path: Path, columns: Mapping[str, str]) -> dict[str, Any]:
    """`data check --json` (it loads the tokenizer, which imports transformers) under a column
    mapping: the report's JSON document (`CheckReport.to_json`), whether the dataset passed or not."""
    return ask("the dataset check", dict, config, "data", "check", str(path), *map_arguments(columns), question="check")


def preflight(config: Config, dataset: Path, preset: str, settings: list[str], *, probe: bool = False) -> Preflight:
    """`train --dry-run --json`: the dataset's check, the plan, the memory estimate and the time from
    the speeds measured here before (torch decides the device, so this is a child process); `probe`
    measures them first when this shape was never measured."""
    return ask("the dry run", Preflight.from_json, config, "train", "--dry-run", "--dataset", str(dataset),
               "--preset", preset, *settings, *([] if probe else ["--no-probe"]), question="probe" if probe else "check")


def launch_training(config: Config, dataset: Path, preset: str, settings: list[str]) -> Launched:
    """`train --detach --json`: the runner starts in its own session; the new run and its pid."""
    return ask("the launch", Launched.from_json, config, "train", "--detach", "--dataset", str(dataset), "--preset", preset, *settings)


def resume_run(config: Config, run: Path) -> Launched:
    """`resume RUN --detach --json` (it refuses a running or finished run, with the reason)."""
    return ask("the resume", Launched.from_json, config, "resume", str(run), "--detach")


def start_bench(config: Config, run: Path) -> Launched:
    """`bench RUN --detach --json` (it refuses an unfinished or busy run, with the reason)."""
    return ask("the benchmark", Launched.from_json, config, "bench", str(run), "--detach")


def export_gguf(config: Config, run: Path, target: Path, quant: str | None, progress: Callable[[int, int], None]) -> Exported:
    """`export RUN --gguf FILE --quant Q --json` (or `--gguf-adapter FILE` when `quant` is None): its
    progress lines go to `progress` as they come; the last line is the `Exported` record."""
    what = ["--gguf", str(target), "--quant", quant] if quant else ["--gguf-adapter", str(target)]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:  # a file: a chatty stderr never blocks the child
        process = subprocess.Popen(forge_argv(config.source, "export", str(run), *what, "--json"), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=errors, text=True)
        assert process.stdout is not None
        last = ""
        for line in process.stdout:
            try:
                record = json_object(line)
            except ValueError:
                continue
            if "done" in record:
                progress(int(record["done"]), int(record["total"]))
            else:
                last = line
        process.wait()
        errors.seek(0)
        stderr = errors.read()
    document = answer("the GGUF export", subprocess.CompletedProcess(process.args, process.returncode, last, stderr))
    return Exported.from_json(document)


def export_merged(config: Config, run: Path, target: Path) -> Path:
    """`export RUN --merged DIR --json`: the merged model's folder."""
    return ask("the export", lambda doc: Path(doc["merged"]), config, "export", str(run), "--merged", str(target))


DEMO_FLEET = ("--nodes", "3", "--rounds", "3", "--steps-per-round", "5", "--min-nodes", "2", "--preset", "quick")


def start_local_fleet(config: Config, dataset: Path, split: str) -> Launched:
    """`fleet local --detach --json` for a demo: three nodes on this machine, each its shard of
    `dataset`; the fleet's run directory and the pid of the process that runs it."""
    return ask("the local fleet", Launched.from_json, config, "fleet", "local", "--detach", "--dataset", str(dataset),
               "--split", split, *DEMO_FLEET)
