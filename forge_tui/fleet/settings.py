"""What a fleet run is asked to do: the coordinator's settings, carried to the ServerApp in the Flower
app's run config (every value a TOML scalar) and recorded in the run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from forge_tui.errors import BadInput


@dataclass(frozen=True)
class FleetSettings:
    """One fleet run."""

    run_dir: str                 # the coordinator's run directory (absolute)
    rounds: int = 3              # FedAvg rounds
    min_nodes: int = 2           # a round starts with at least this many nodes and aggregates what they send
    steps_per_round: int = 8     # optimizer steps each node trains per round, from the global adapter
    round_timeout: float = 600.0  # seconds a round waits for replies; a node later than that misses the round
    dp_noise: float = 0.0        # differential privacy: Gaussian noise multiplier (0 = off)
    dp_clip: float = 0.0         # differential privacy: the clipping norm of each update (needed with dp_noise)
    server_lr: float = 1.0       # the global adapter moves by server_lr x the nodes' mean update (1: plain FedAvg)

    def problems(self) -> list[str]:
        checks = [(self.rounds >= 1, "--rounds must be at least 1"),
                  (self.min_nodes >= 1, "--min-nodes must be at least 1"),
                  (self.steps_per_round >= 1, "--steps-per-round must be at least 1"),
                  (self.round_timeout > 0, "--round-timeout must be positive"),
                  (self.dp_noise >= 0 and self.dp_clip >= 0, "--dp-noise and --dp-clip cannot be negative"),
                  (0 < self.server_lr <= 10, "--server-lr must be above 0 and at most 10"),
                  ((self.dp_noise > 0) == (self.dp_clip > 0), "--dp-noise and --dp-clip go together (both positive, or neither)")]
        return [message for ok, message in checks if not ok]

    def checked(self) -> FleetSettings:
        found = self.problems()
        if found:
            raise BadInput("; ".join(found))
        return self

    @property
    def private(self) -> bool:
        return self.dp_noise > 0

    @property
    def needs_start(self) -> bool:
        """Whether the coordinator must hold round 1's starting adapter (DP clips, and a server
        learning rate steps, relative to it)."""
        return self.private or self.server_lr != 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_run_config(self) -> dict[str, Any]:
        """Flower's run config: keys with dashes, TOML scalars."""
        return {name.replace("_", "-"): value for name, value in asdict(self).items()}

    @classmethod
    def from_run_config(cls, config: dict[str, Any]) -> FleetSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{key.replace("-", "_"): value for key, value in config.items() if key.replace("-", "_") in names})
