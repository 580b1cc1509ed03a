"""`fleet status`: a fleet run's nodes and rounds, read from the coordinator's events (and, for a
local fleet, the nodes' own folders: a node whose round is paused by its thermal guard shows so at
once). `FleetStatus` is what `fleet status --json` prints and the console's Fleet screen reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from forge_tui.config import Config
from forge_tui.engine.events import Record, read_events
from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import list_runs, run_status
from forge_tui.errors import BadInput
from forge_tui.fleet.node import NodePlace, round_runs

MISSED = {"heat": "paused by heat", "gone": "gone", "late": "late", "failed": "failed", "model": "failed"}


@dataclass
class NodeStatus:
    """One node. state: training | paused by heat | idle (delivered, waiting) | late | gone | failed | done."""

    node: int
    name: str | None = None
    state: str = "idle"
    round: int = 0                 # the last round it delivered
    samples: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    headroom_c: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class FleetStatus:
    """A fleet run: its state (as `runs` says it), the rounds done, the nodes, the traffic, and the
    global eval loss per round (round 0: the shared starting adapter)."""

    name: str
    path: str
    state: str
    round: int = 0
    rounds: int = 0
    nodes: list[NodeStatus] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    private: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> FleetStatus:
        fields = {key: value for key, value in record.items() if key in cls.__dataclass_fields__}
        fields["nodes"] = [NodeStatus(**node) for node in record.get("nodes", [])]
        fields["eval_loss"] = [(int(r), float(v)) for r, v in record.get("eval_loss", [])]
        return cls(**fields)


def is_fleet_run(path: Path) -> bool:
    return (path / "fleet" / "adapter_config.json").is_file() or (path / "fleet" / "app").is_dir()


def _local_names(run: RunDir) -> dict[int, NodePlace]:
    """The nodes of a local fleet by their Flower id (each node writes it when it first trains)."""
    found = {}
    for folder in sorted((run.path / "nodes").glob("node-*")):
        try:
            found[int((folder / "node-id").read_text())] = NodePlace(folder, Path(), None, "")
        except (OSError, ValueError):
            continue
    return found


class _Reader:
    """The coordinator's events, folded into a FleetStatus in the order they were written."""

    def __init__(self, status: FleetStatus) -> None:
        self.status = status
        self.by_id: dict[int, NodeStatus] = {}
        self.members: list[int] = []

    def node(self, node: int) -> NodeStatus:
        if node not in self.by_id:
            self.by_id[node] = NodeStatus(node)
        return self.by_id[node]

    def read(self, event: Record) -> None:
        kind, status = event["type"], self.status
        if kind == "fleet_started":
            status.rounds, status.private = int(event["rounds"]), bool(event.get("dp_noise"))
        elif kind == "fleet_round_started":
            self.members = [int(n) for n in event["nodes"]]
            for known in self.by_id.values():
                known.state = "gone" if known.node not in self.members else known.state
            for member in self.members:
                self.node(member).state = "training"
        elif kind == "fleet_update":
            self._update(event)
        elif kind == "fleet_missed" and event.get("phase", "train") == "train":
            self.node(int(event["node"])).state = MISSED.get(str(event["reason"]), "failed")
        elif kind == "fleet_round":
            status.round = int(event["round"])
            status.bytes_in += int(event["bytes_in"])
            status.bytes_out += int(event["bytes_out"])
            for member in self.members:
                self.node(member).bytes_received += int(event["bytes_out"]) // max(1, len(self.members))
        elif kind == "eval":
            status.eval_loss.append((int(event["step"]), float(event["eval_loss"])))

    def _update(self, event: Record) -> None:
        node = self.node(int(event["node"]))
        node.state, node.round, node.samples = "idle", int(event["round"]), int(event["examples"])
        node.loss, node.eval_loss, node.headroom_c = event.get("train_loss"), event.get("eval_loss"), event.get("headroom_c")
        node.bytes_sent += int(event["bytes"])


def fleet_status(run: RunDir) -> FleetStatus:
    """Nodes, rounds and bytes of a fleet run, as its files say now."""
    state = run_status(run).state
    reader = _Reader(FleetStatus(name=run.name, path=str(run.path), state=state))
    for event in read_events(run.events):
        reader.read(event)
    places = _local_names(run)
    for node in reader.by_id.values():
        place = places.get(node.node)
        node.name = place.folder.name if place else None
        if state == "finished" and node.state in ("idle", "training"):
            node.state = "done"
        elif place and node.state in ("training", "late") and _paused(place):
            node.state = "paused by heat"
    reader.status.nodes = sorted(reader.by_id.values(), key=lambda n: (n.name or "", n.node))
    return reader.status


def _paused(place: NodePlace) -> bool:
    runs = round_runs(place)
    return bool(runs) and run_status(runs[-1]).state == "paused"


def supervisor_pid_file(run: RunDir) -> Path:
    """Holds the pid of the process running a local fleet (SIGTERM stops the whole fleet)."""
    return run.path / "fleet" / "local.pid"


def supervisor(run: RunDir) -> int | None:
    """The live process running this local fleet, if any (a pid file left by a killed one, or a
    pid since reused by another program, is not it)."""
    try:
        pid = int(supervisor_pid_file(run).read_text())
        command = " ".join(psutil.Process(pid).cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if "fleet" in command and "local" in command else None


def node_trails(folder: Path) -> list[Path]:
    """A fleet node's audit trails: its own (updates received and sent) and each round run's."""
    own = folder / "audit.jsonl"
    rounds = round_runs(NodePlace(folder, Path(), None, ""))
    return [*([own] if own.is_file() else []), *(run.audit for run in rounds if run.audit.is_file())]


def fleet_runs(config: Config) -> list[RunDir]:
    """Every fleet run in the runs folder, newest first."""
    return [status.run for status in reversed(list_runs(config)) if is_fleet_run(Path(status.path))]


def newest_fleet_run(config: Config) -> RunDir:
    found = fleet_runs(config)
    if not found:
        raise BadInput("no fleet run in the runs folder: start one with `forge-tui fleet local` or `forge-tui fleet serve`")
    return found[0]
