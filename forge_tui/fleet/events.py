"""The fleet's events, in the coordinator's run directory next to the ordinary ones (`step` per round
with the fleet's train loss, `eval` with the global eval loss, `finished`), so Monitor, Runs and
`runs` read a fleet run as they read any run. Nodes are named by their Flower node id: a node's name
never travels (only tensors and numbers do)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from forge_tui.engine.events import Event


@dataclass(frozen=True)
class FleetStarted(Event):
    """The coordinator began: the settings it runs with (privacy options included)."""

    type: ClassVar[str] = "fleet_started"
    rounds: int
    min_nodes: int
    steps_per_round: int
    round_timeout: float
    dp_noise: float = 0.0
    dp_clip: float = 0.0
    server_lr: float = 1.0


@dataclass(frozen=True)
class RoundStarted(Event):
    """A round was sent to these nodes."""

    type: ClassVar[str] = "fleet_round_started"
    round: int
    rounds: int
    nodes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class UpdateReceived(Event):
    """One node's update arrived: its size and digest (the node's audit trail names the same digest)."""

    type: ClassVar[str] = "fleet_update"
    round: int
    node: int
    examples: int
    train_loss: float | None
    eval_loss: float | None
    headroom_c: float | None      # the node's thermal headroom as its round began (None: no sensor)
    bytes: int
    sha256: str


@dataclass(frozen=True)
class NodeMissed(Event):
    """A node sent to did not deliver this round: `heat` (its thermal guard stopped it), `model` (its
    base model is not the coordinator's), `failed` (its round failed; the node's own files say why),
    `late` (no word before the round's timeout), `gone` (it stopped reporting to the SuperLink)."""

    type: ClassVar[str] = "fleet_missed"
    round: int
    node: int
    reason: str
    phase: str = "train"          # train | evaluate


@dataclass(frozen=True)
class RoundDone(Event):
    """A round's aggregate: how many nodes delivered, their weighted train loss, the bytes both ways.
    The global adapter's eval loss comes as an `eval` event (step = round) once the nodes measured it."""

    type: ClassVar[str] = "fleet_round"
    round: int
    rounds: int
    nodes: int
    examples: int
    train_loss: float | None
    bytes_in: int
    bytes_out: int
    sha256: str | None            # the global adapter's digest (None: nobody delivered; the adapter stays)
    seconds: float
