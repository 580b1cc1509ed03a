"""Flower's SuperLink and SuperNode, started through this module so that the egress guard is in force
in their processes first (importing forge_tui installs it; Flower's own telemetry is off, see
offline.py). A node may reach its SuperLink's address and nothing else:

    python -m forge_tui.fleet.flower_main supernode --allow HOST:PORT -- FLOWER-SUPERNODE-ARGS
    python -m forge_tui.fleet.flower_main superlink -- FLOWER-SUPERLINK-ARGS
"""

from __future__ import annotations

import sys

from forge_tui.offline import allow_destination, install_egress_guard


def split_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` -> (host, port); ValueError when it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address}: not HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv: list[str]) -> None:
    role, rest = argv[0], argv[1:]
    separator = rest.index("--")
    ours, flower = rest[:separator], rest[separator + 1:]
    install_egress_guard()
    if ours[:1] == ["--allow"]:
        allow_destination(*split_address(ours[1]))
    sys.argv = [f"flower-{role}", *flower]
    if role == "superlink":
        from flwr.superlink.cli import flower_superlink

        flower_superlink()
    else:
        from flwr.supernode.cli import flower_supernode

        flower_supernode()


if __name__ == "__main__":
    main(sys.argv[1:])
