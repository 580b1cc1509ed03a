"""Every Flower process of a fleet starts through this module, so that the egress guard is in force
in it before Flower runs (importing forge_tui installs it; Flower's telemetry and update check are
off, see offline.py), and so that a node or a coordinator only ever runs this package's own apps.

    python -m forge_tui.fleet.flower_main ROLE [--allow HOST:PORT] -- FLOWER-ARGS

ROLE is superlink, supernode, superexec, clientapp or serverapp. A node may reach its SuperLink's
address (`--allow`) and nothing else; an app process may reach the runtime API it is given. Flower
starts `flower-superexec`, `flwr-clientapp` and `flwr-serverapp` by name: `write_shims` puts
scripts under those names first on the Flower processes' PATH, so those come through here too.

One port, three APIs: Flower's SuperLink serves its Control API (start a run, register a node) and
its Runtime API on the same port as its Fleet API. Here a request from another machine reaches the
Fleet API only (`FleetOnly`), and the app loaders of the node and coordinator processes load this
package's ClientApp and ServerApp and refuse anything else, whatever run reaches them.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_tui.offline import allow_destination

PINNED = {"clientapp": "forge_tui.fleet.client_app:app", "serverapp": "forge_tui.fleet.coordinator:app"}
SHIMS = {"flower-superexec": "superexec", "flwr-clientapp": "clientapp", "flwr-serverapp": "serverapp"}
RUNTIME_FLAG = "--runtime-api-address"


def split_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` -> (host, port); ValueError when it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address}: not HOST:PORT")
    return host.strip("[]"), int(port)


def pinned_loader(role: str, load: Callable[..., Any]) -> Callable[..., Any]:
    """Flower's `load_app`, refusing every app reference but this package's own for `role`."""
    def load_pinned(reference: str, error_type: type[Exception], *args: Any, **kwargs: Any) -> Any:
        if reference != PINNED[role]:
            raise error_type(f"forge-tui runs only its own {role} ({PINNED[role]}); refused {reference!r}")
        return load(reference, error_type, *args, **kwargs)

    return load_pinned


REMOTE_PATHS = ("/v1/fleet/",)   # all a node needs; the Control and Runtime APIs answer this machine only


def own_addresses() -> set[str]:
    """This machine's addresses (loopback included): a client at one of them is local."""
    import psutil

    return {entry.address.split("%")[0] for entries in psutil.net_if_addrs().values() for entry in entries} | {"127.0.0.1", "::1"}


class FleetOnly:
    """ASGI middleware for the SuperLink: a request from another machine may reach the Fleet API
    only. Flower serves its Control API (start a run, register a node) and Runtime API on the same
    port; without this, anyone who can reach the port could register a key of their own or start a
    run."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.local = own_addresses()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        client = str((scope.get("client") or ("", 0))[0])
        if scope["type"] == "http" and not str(scope.get("path", "")).startswith(REMOTE_PATHS) and client not in self.local:
            await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"forge-tui: only the Fleet API answers other machines"})
            return
        await self.app(scope, receive, send)


def _fleet_only() -> None:
    import flwr.superlink.main as superlink_app
    from starlette.middleware import Middleware

    middleware = vars(superlink_app)["_get_middleware"]
    vars(superlink_app)["_get_middleware"] = lambda: [Middleware(FleetOnly), *middleware()]


def _pin_apps() -> None:
    import flwr.clientapp.utils as client_loading
    import flwr.server.run_serverapp as server_loading

    for role, module in (("clientapp", client_loading), ("serverapp", server_loading)):
        vars(module)["load_app"] = pinned_loader(role, vars(module)["load_app"])


def _entry(role: str) -> Callable[[], None]:
    if role == "superlink":
        from flwr.superlink.cli import flower_superlink

        _fleet_only()
        return flower_superlink
    if role == "supernode":
        from flwr.supernode.cli import flower_supernode

        return flower_supernode
    if role == "superexec":
        from flwr.supercore.cli import flower_superexec

        return flower_superexec
    _pin_apps()
    if role == "clientapp":
        from flwr.supernode.cli import flwr_clientapp

        return flwr_clientapp
    from flwr.superlink.cli import flwr_serverapp

    return flwr_serverapp


def write_shims(folder: Path) -> Path:
    """`folder/flower-superexec`, `flwr-clientapp`, `flwr-serverapp`: this interpreter through
    this module. Returns the folder, to put first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, role in SHIMS.items():
        script = folder / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m forge_tui.fleet.flower_main {role} -- "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def main(argv: list[str]) -> None:
    role, rest = argv[0], argv[1:]
    separator = rest.index("--")
    ours, flower = rest[:separator], rest[separator + 1:]
    allowed = [ours[1]] if ours[:1] == ["--allow"] else []
    if RUNTIME_FLAG in flower:
        allowed.append(flower[flower.index(RUNTIME_FLAG) + 1])
    for address in allowed:
        allow_destination(*split_address(address))
    sys.argv = [next((name for name, shim in SHIMS.items() if shim == role), f"flower-{role}"), *flower]
    _entry(role)()


if __name__ == "__main__":
    main(sys.argv[1:])
