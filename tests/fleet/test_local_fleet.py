"""Real fleets on loopback with the tiny model: Flower's SuperLink, the coordinator and SuperNodes as
separate processes, the trainer on every node. One fleet loses a node to kill -9 in the middle of a
round and goes on; its run is then an ordinary run for `runs`, `bench`, `audit` and `fleet status`;
what crossed the wire is scanned for the data. A node whose key is not registered is refused."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from forge_tui.config import load_config
from forge_tui.engine.audit import verify
from forge_tui.engine.events import read_events
from forge_tui.fleet import launch
from forge_tui.fleet.certs import make_certs
from forge_tui.fleet.local import LocalFleet, prepare, run_local, stop_processes
from forge_tui.fleet.settings import FleetSettings
from tests.fleet.conftest import Relay
from tests.helpers import SAMPLE, run_cli

ROUND_TIMEOUT = 35.0   # what the killed node's round waits before it goes on without it (a live tiny round takes ~15 s)


def _kill_in_round(fleet: LocalFleet, name: str, round_number: int, killed: list[int]) -> None:
    """kill -9 the whole node (SuperNode and every process under it) once its round is under way."""
    deadline = time.monotonic() + 600
    folder = fleet.run.path / "nodes" / name / "rounds" / f"round-{round_number:04d}"
    while time.monotonic() < deadline and not (folder / "events.jsonl").is_file():
        time.sleep(0.2)
    node = psutil.Process(fleet.processes[name].pid)
    victims = [node, *node.children(recursive=True)]
    for victim in victims:
        victim.kill()
    killed.extend(victim.pid for victim in victims)


def _dataset_strings(shards: list[Path]) -> list[bytes]:
    """Every answer the nodes trained on, as UTF-8 and as JSON would escape it."""
    found = set()
    for shard in shards:
        for line in shard.read_text(encoding="utf-8").splitlines():
            for message in json.loads(line)["messages"]:
                if len(message["content"]) > 20:
                    found.update({message["content"].encode(), json.dumps(message["content"])[1:-1].encode()})
    return sorted(found)


@pytest.mark.model
def test_a_fleet_loses_a_node_mid_round_and_its_run_is_an_ordinary_run(tiny_config: Path, tmp_path: Path, relay_to: list[Relay]):
    config = load_config(tiny_config)
    settings = FleetSettings(run_dir=str(tmp_path / "runs" / "fleet-run"), rounds=3, min_nodes=2, steps_per_round=2,
                             round_timeout=ROUND_TIMEOUT)
    fleet = prepare(config, tiny_config, Path(config.train.dataset), 3, "iid", settings)
    relay = Relay(launch.parse_address(fleet.address)[1])
    relay_to.append(relay)
    fleet.nodes = [replace(node, superlink=f"127.0.0.1:{relay.port}") for node in fleet.nodes]  # the nodes talk through the relay
    killed: list[int] = []
    killer = threading.Thread(target=_kill_in_round, args=(fleet, "node-3", 2, killed), daemon=True)
    killer.start()

    last = run_local(fleet)

    assert last["type"] == "finished", last
    assert killed
    events = read_events(fleet.run.events)
    rounds = {e["round"]: e for e in events if e["type"] == "fleet_round"}
    assert [rounds[r]["nodes"] for r in (1, 2, 3)] == [3, 2, 3]  # round 2 went on without the dead node; it was back for 3
    assert any(e["type"] == "fleet_missed" and e["round"] == 2 and e["reason"] in ("late", "gone") for e in events)
    assert [e["step"] for e in events if e["type"] == "eval"] == [0, 1, 2, 3]
    assert all((fleet.run.path / "rounds" / f"round-{r:04d}" / "adapter_model.safetensors").is_file() for r in (1, 2, 3))

    # Only tensors and numbers crossed: the tensors' names are readable on this plain link, the data is not there.
    wire = relay.wire
    assert b"lora_A" in wire
    assert len(wire) > 3 * 3 * 20_000
    leaked = [text for text in _dataset_strings(sorted((fleet.run.path / "fleet" / "shards").glob("*.jsonl"))) if text in wire]
    assert leaked == []

    # Every update that left a node is the update the coordinator received (same digest), each trail intact.
    received = {e["sha256"] for e in events if e["type"] == "fleet_update"}
    sent = set()
    for trail in [*sorted((fleet.run.path / "nodes").glob("node-*/audit.jsonl")), fleet.run.audit]:
        assert verify(trail)[1] == []
        sent |= {json.loads(line)["sha256"] for line in trail.read_text().splitlines() if '"update_sent"' in line}
    assert received <= sent
    assert len(received) == 8

    runs = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)
    assert any(r["path"] == str(fleet.run.path) and r["state"] == "finished" for r in runs)
    status = json.loads(run_cli("--config", str(tiny_config), "fleet", "status", str(fleet.run.path), "--json").stdout)
    assert (status["state"], status["round"], status["rounds"]) == ("finished", 3, 3)
    assert sorted(n["state"] for n in status["nodes"]) == ["done", "done", "done", "gone"]  # node-3 rejoined under a new id
    assert run_cli("audit", str(fleet.run.path)).returncode == 0
    benched = run_cli("--config", str(tiny_config), "bench", str(fleet.run.path), "--eval", str(SAMPLE / "eval.jsonl"), "--limit", "2",
                      "--json")
    assert benched.returncode == 0, benched.stderr
    assert 0 <= json.loads(benched.stdout)["tuned"]["composite"] <= 100


def test_a_node_whose_key_is_not_registered_is_refused(tmp_path: Path):
    certs = make_certs(tmp_path / "certs", [], ["known", "stranger"])[0]
    home, address = tmp_path / "home", f"127.0.0.1:{launch.free_port()}"
    log = tmp_path / "superlink.log"
    superlink = launch.start(launch.superlink_argv(address, certs), log, home)
    nodes = []
    try:
        launch.wait_for_port(address, superlink, log)
        launch.write_connection(home, address, certs.ca)
        launch.register(home, certs.node_public("known"), "known")
        for name in ("known", "stranger"):
            node = launch.NodeLaunch(address, tmp_path / name, tmp_path / "unused.jsonl", None, launch.free_port(), ca=certs.ca,
                                     key=certs.node_key(name))
            nodes.append(launch.start(node.argv(), tmp_path / name / "supernode.log", home))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(said in log.read_text() for said in ("No SuperNode found", "Activated node_id")):
            time.sleep(0.5)
        text = log.read_text()
    finally:
        stop_processes([superlink, *nodes])
    assert "No SuperNode found with the given public key" in text
    assert text.count("Activated node_id") == 1  # the registered node only
