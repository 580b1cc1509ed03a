"""The Flower processes of a fleet and how they are started: the SuperLink (coordinator side), one
SuperNode per device, the app submitted to the SuperLink (`flwr run`), node keys registered
(`flwr supernode register`). Flower's CLI reads its connection from FLWR_HOME, which is kept inside
the run directory, never in the operator's home.

Rules enforced here: TLS for any address other than loopback; with TLS, SuperNode authentication
on and only the registered node keys accepted; runtime dependency installation off (it would fetch
packages from the network)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from forge_tui.config import toml_value
from forge_tui.errors import BadInput, ForgeError
from forge_tui.fleet.certs import CertFolder
from forge_tui.fleet.flower_main import split_address, write_shims
from forge_tui.fleet.settings import FleetSettings
from forge_tui.offline import is_loopback

APP_NAME = "forge-fleet"
CONNECTION = "fleet"
CLI_TIMEOUT = 120


def parse_address(address: str) -> tuple[str, int]:
    try:
        return split_address(address)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def require_tls(address: str, certs: CertFolder | None) -> None:
    """Any address but loopback needs TLS: a fleet's adapters must not cross a network in clear."""
    host, _ = parse_address(address)
    if certs is None and not is_loopback(host):
        raise BadInput(f"{address}: not a loopback address, and no certificates given: TLS is required off this machine "
                       "(make them with `forge-tui fleet certs DIR`, then pass --certs DIR)")


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def flower_env(home: Path) -> dict[str, str]:
    """The environment of every Flower process: FLWR_HOME inside the run (or the node's folder); on
    PATH first the shims that start Flower's own processes through flower_main (guarded, apps
    pinned), then this interpreter's scripts; no proxy (a node talks to its SuperLink directly,
    and the egress guard would refuse a proxy)."""
    env = {key: value for key, value in os.environ.items() if key not in PROXY_VARIABLES}
    shims = write_shims(home / "bin")
    env["PATH"] = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["FLWR_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def superlink_argv(address: str, certs: CertFolder | None) -> list[str]:
    host, port = parse_address(address)
    argv = [sys.executable, "-m", "forge_tui.fleet.flower_main", "superlink", "--",
            "--host", host, "--port", str(port), "--disable-runtime-dependency-installation"]
    if certs is None:
        return [*argv, "--insecure"]
    return [*argv, "--ssl-ca-certfile", str(certs.ca), "--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key),
            "--enable-supernode-auth"]


def write_node_config(path: Path, values: dict[str, str]) -> Path:
    """Flower's `--node-config` as a TOML file (its inline form cannot carry a quote in a path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in values.items()), encoding="utf-8")
    return path


@dataclass(frozen=True)
class NodeLaunch:
    """What one SuperNode is started with."""

    superlink: str
    folder: Path
    dataset: Path
    config_file: Path | None
    runtime_port: int
    ca: Path | None = None          # TLS: the fleet's CA
    key: Path | None = None         # authentication: this node's private key
    preset: str | None = None       # the node's preset under its config file
    threads: int = 0                # torch threads (nodes sharing one machine split its cores)

    def argv(self) -> list[str]:
        """The SuperNode's command line (its node config written beside it, in the node's folder)."""
        config = write_node_config(self.folder / "node-config.toml", {
            "node-dir": str(self.folder), "dataset": str(self.dataset), "config": str(self.config_file or ""),
            "superlink": self.superlink, "preset": self.preset or "", "threads": str(self.threads)})
        argv = [sys.executable, "-m", "forge_tui.fleet.flower_main", "supernode", "--allow", self.superlink, "--",
                "--superlink", self.superlink, "--port", str(self.runtime_port), "--node-config", str(config)]
        argv += ["--root-certificates", str(self.ca)] if self.ca else ["--insecure"]
        if self.key:
            argv += ["--auth-supernode-private-key", str(self.key)]
        return argv


def start(argv: list[str], log: Path, home: Path) -> subprocess.Popen[bytes]:
    """A Flower process in its own session (killing it takes its children), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=flower_env(home),
                                start_new_session=True, close_fds=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ANY_ADDRESS = ("0.0.0.0", "::", "")


def reachable(address: str) -> tuple[str, int]:
    """Where this machine reaches a SuperLink listening on `address` (loopback for a wildcard)."""
    host, port = parse_address(address)
    return ("127.0.0.1" if host in ANY_ADDRESS else host), port


def wait_for_port(address: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Until something listens on `address`; ForgeError when `process` died or time ran out."""
    host, port = reachable(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ForgeError(f"the Flower process exited with code {process.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
            return
        time.sleep(0.2)
    raise ForgeError(f"nothing listens on {address} after {timeout:.0f} s; see {log}")


def write_connection(home: Path, address: str, ca: Path | None) -> None:
    """Flower's CLI connection to the SuperLink's Control API (the same port as its Fleet API)."""
    host, port = reachable(address)
    shown = f"[{host}]" if ":" in host else host
    lines = ["[superlink]", f'default = "{CONNECTION}"', f"[superlink.{CONNECTION}]", f'address = "{shown}:{port}"']
    lines += [f"root-certificates = {json.dumps(str(ca))}"] if ca else ["insecure = true"]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def write_app(folder: Path, settings: FleetSettings) -> Path:
    """The Flower app submitted for the run: only its pyproject.toml, naming the coordinator and
    client modules of this installed package, with the run's settings as its run config."""
    folder.mkdir(parents=True, exist_ok=True)
    config = "\n".join(f"{key} = {toml_value(value)}" for key, value in settings.to_run_config().items())
    (folder / "pyproject.toml").write_text(f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{APP_NAME}"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "forge-tui"

[tool.flwr.app.components]
serverapp = "forge_tui.fleet.coordinator:app"
clientapp = "forge_tui.fleet.client_app:app"

[tool.flwr.app.config]
{config}
""")
    return folder


def flwr_cli(home: Path, *args: str) -> dict[str, object]:
    """One `flwr` command with JSON output; ForgeError with its message when it fails."""
    argv = [str(Path(sys.executable).parent / "flwr"), *args, "--format", "json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=flower_env(home), timeout=CLI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ForgeError(f"flwr {args[0]} did not answer in {CLI_TIMEOUT} s (is the SuperLink up?)") from None
    try:
        answer = json.loads(done.stdout[done.stdout.index("{"):])
    except ValueError:
        answer = {}
    if done.returncode != 0 or not answer.get("success", False):
        lines = done.stderr.strip().splitlines()
        said = answer.get("error-message") or (lines[-1] if lines else done.stdout.strip())
        raise ForgeError(f"flwr {args[0]} failed: {said}")
    return dict(answer)


def submit(home: Path, app: Path) -> str:
    """Start the app on the SuperLink; returns Flower's run id."""
    return str(flwr_cli(home, "run", str(app), CONNECTION)["run-id"])


def register(home: Path, public_key: Path, name: str) -> str:
    """Register a node's public key with the SuperLink; returns the node id it will have."""
    return str(flwr_cli(home, "supernode", "register", str(public_key), CONNECTION, "--name", name)["node-id"])
