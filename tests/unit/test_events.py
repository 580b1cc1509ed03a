"""The event log: one JSON object per line, a torn last line (a kill mid-write) skipped by readers and
never the grave of the next event."""

from __future__ import annotations

import os
from pathlib import Path

from forge_tui.engine import events as ev
from forge_tui.engine.events import EventLog, EventTail, read_events


def _log(path: Path, *events: ev.Event) -> None:
    log = EventLog(path)
    for event in events:
        log.emit(event)
    log.close()


def test_a_writer_after_a_torn_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _log(path, ev.Eval(step=1, eval_loss=2.0, eval_tokens=10), ev.Eval(step=2, eval_loss=1.5, eval_tokens=10))
    os.truncate(path, path.stat().st_size - 7)
    assert [e["step"] for e in read_events(path)] == [1]  # the torn event is skipped
    _log(path, ev.BenchStarted(items=3, eval_file="e", retention_file=None))
    assert [e["type"] for e in read_events(path)] == ["eval", "bench_started"]


def test_a_tail_hands_over_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.poll() == []  # no log yet
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"type": "eval", "step": 1}\n{"type": "ev')
    assert [e["step"] for e in tail.poll()] == [1]
    with path.open("a", encoding="utf-8") as handle:
        handle.write('al", "step": 2}\n[1, 2]\n')
    assert [e["step"] for e in tail.poll()] == [2]  # the rest of the line arrived; a line that is not an event is skipped
