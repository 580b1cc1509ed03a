"""`fleet local`: a whole fleet on this machine as real processes on loopback (one SuperLink, the
coordinator, N SuperNodes each holding its own shard), for demos, tests and the value benchmark.
With `tls`, the fleet's own certificates are made in the run and the secure path runs as in the
field: TLS, registered node keys.

RUN/ (an ordinary run directory: bench, export, Compare and Chat take it as is)
  fleet/            the app, Flower's home (FLWR_HOME), the SuperLink's log, shards/, certs/
  nodes/node-K/     each node's folder (see node.py)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from forge_tui.config import Config
from forge_tui.engine.events import Record, read_events
from forge_tui.engine.runs import RunDir, create_run, has_final_adapter
from forge_tui.errors import ForgeError
from forge_tui.fleet import launch
from forge_tui.fleet.certs import CertFolder, make_certs
from forge_tui.fleet.node import NodePlace, write_node_record
from forge_tui.fleet.settings import FleetSettings
from forge_tui.fleet.shards import split_rows, write_shard_files
from forge_tui.fleet.status import supervisor_pid_file

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 5.0
RESTARTS = 5                 # a node started again this many times without training a round is broken


def fleet_folder(run: RunDir) -> Path:
    return run.path / "fleet"


@dataclass
class LocalFleet:
    """The processes of one local fleet and how to start each again."""

    run: RunDir
    settings: FleetSettings
    address: str
    certs: CertFolder | None
    nodes: list[launch.NodeLaunch]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return fleet_folder(self.run) / "flwr-home"

    def start_superlink(self) -> None:
        log = fleet_folder(self.run) / "superlink.log"
        process = launch.start(launch.superlink_argv(self.address, self.certs), log, self.home)
        self.processes["superlink"] = process
        launch.wait_for_port(self.address, process, log)

    def start_node(self, index: int) -> None:
        node = self.nodes[index]
        self.processes[node.folder.name] = launch.start(node.argv(), node.folder / "supernode.log", self.home)

    def register_nodes(self) -> None:
        """Flower's CLI pointed at the SuperLink; with TLS, every node's key registered before any
        node connects (an unregistered key is refused)."""
        launch.write_connection(self.home, self.address, self.certs.ca if self.certs else None)
        if self.certs:
            for node in self.nodes:
                launch.register(self.home, self.certs.node_public(node.folder.name), node.folder.name)

    def submit(self) -> str:
        return launch.submit(self.home, launch.write_app(fleet_folder(self.run) / "app", self.settings))

    def rejoin_dead_nodes(self) -> list[str]:
        """Start again every node whose SuperNode died (a node back from a crash joins the next
        round); ForgeError for one that keeps dying before it trains a round (a bad key, a port
        taken), naming its log."""
        dead = [i for i, node in enumerate(self.nodes) if self.processes[node.folder.name].poll() is not None]
        for index in dead:
            node = self.nodes[index]
            trained = any((node.folder / "rounds").glob("round-*"))
            self.restarts[node.folder.name] = 0 if trained else self.restarts.get(node.folder.name, 0) + 1
            if self.restarts[node.folder.name] > RESTARTS:
                raise ForgeError(f"{node.folder.name} keeps exiting before its first round; see {node.folder / 'supernode.log'}")
            self.start_node(index)
        return [self.nodes[i].folder.name for i in dead]

    def stop(self) -> None:
        """Every process and everything under it (Flower starts its app processes in sessions of
        their own): asked to end, then killed."""
        stop_processes(list(self.processes.values()))


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """Each process's whole tree: SIGTERM, then SIGKILL for what is left after a grace period."""
    tree: list[psutil.Process] = []
    for process in processes:
        if process.poll() is not None:
            continue  # reaped already: its pid may belong to another process by now
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(process.pid)
            tree += [parent, *parent.children(recursive=True)]
    for member in tree:
        with contextlib.suppress(psutil.Error):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_SECONDS)
    for member in alive:
        with contextlib.suppress(psutil.Error):
            member.kill()
    for process in processes:
        process.wait()


def prepare(config: Config, config_file: Path | None, dataset: Path, nodes: int, split: str, settings: FleetSettings,
            tls: bool = False) -> LocalFleet:
    """The coordinator's run (the whole dataset recorded, for bench's held-out sets), the shards and
    the nodes' folders; nothing is started."""
    split_lines = split_rows(dataset, nodes, split, seed=config.train.seed)  # a dataset that cannot be split leaves no run behind
    run = create_run(config, dataset, Path(settings.run_dir) if settings.run_dir else None)
    settings = FleetSettings(**{**settings.to_json(), "run_dir": str(run.path)}).checked()
    shards = write_shard_files(split_lines, fleet_folder(run) / "shards")
    names = [f"node-{index}" for index in range(1, nodes + 1)]
    certs = make_certs(fleet_folder(run) / "certs", [], names)[0] if tls else None
    address = f"127.0.0.1:{launch.free_port()}"
    threads = config.train.threads or max(1, (os.cpu_count() or 1) // nodes)  # one machine's cores, shared
    launches = []
    for name, shard in zip(names, shards, strict=True):
        place = NodePlace(run.path / "nodes" / name, shard, config_file, address, config.preset, threads)
        write_node_record(place, name)
        launches.append(launch.NodeLaunch(address, place.folder, shard, config_file, launch.free_port(),
                                          ca=certs.ca if certs else None, key=certs.node_key(name) if certs else None,
                                          preset=config.preset, threads=threads))
    return LocalFleet(run, settings, address, certs, launches)


def ended(run: RunDir) -> Record | None:
    """The coordinator's last word (`finished` with its adapter in place, or `error`), if any."""
    last = next((e for e in reversed(read_events(run.events)) if e["type"] in ("finished", "error")), None)
    if last is not None and last["type"] == "finished" and not has_final_adapter(run):
        return None
    return last


COORDINATOR_START_SECONDS = 300.0


def check_coordinator(run: RunDir, submitted: float, log: Path) -> None:
    """ForgeError when the coordinator has not started this long after the run was submitted (a
    ServerApp that failed before it could write a word: its story is in the SuperLink's log)."""
    if time.monotonic() - submitted > COORDINATOR_START_SECONDS and not run.events.is_file():
        raise ForgeError(f"the coordinator did not start within {COORDINATOR_START_SECONDS:.0f} s; see {log}")


def deadline_for(settings: FleetSettings) -> float:
    """How long a local fleet may take at most: every round's train and evaluate timing out, and
    start-up."""
    return settings.rounds * settings.round_timeout * 2 + 300


def run_local(fleet: LocalFleet, on_poll: Callable[[LocalFleet], None] | None = None) -> Record:
    """Start everything, follow the coordinator to its last word, stop everything; the last word
    (`finished` or `error`)."""
    supervisor_pid_file(fleet.run).write_text(str(os.getpid()))
    try:
        fleet.start_superlink()
        fleet.register_nodes()
        for index in range(len(fleet.nodes)):
            fleet.start_node(index)
        fleet.submit()
        submitted = time.monotonic()
        deadline = submitted + deadline_for(fleet.settings)
        while (last := ended(fleet.run)) is None:
            check_coordinator(fleet.run, submitted, fleet_folder(fleet.run) / "superlink.log")
            if fleet.processes["superlink"].poll() is not None:
                raise ForgeError(f"the SuperLink exited; see {fleet_folder(fleet.run) / 'superlink.log'}")
            if time.monotonic() > deadline:
                raise ForgeError(f"the fleet did not finish in {deadline_for(fleet.settings):.0f} s; see {fleet.run.events}")
            fleet.rejoin_dead_nodes()
            if on_poll:
                on_poll(fleet)
            time.sleep(POLL_SECONDS)
        return last
    finally:
        fleet.stop()
        supervisor_pid_file(fleet.run).unlink(missing_ok=True)
