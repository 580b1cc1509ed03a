"""`fleet`: fine-tuning across devices on Flower. `certs` makes the fleet's TLS certificates and node
keys, `serve` runs the SuperLink and the coordinator, `join` a device's SuperNode, `local` a whole
fleet on this machine, `status` a fleet run's nodes and rounds."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from forge_tui.cli.common import config_flag, detach_flag, interrupt_on_sigterm, json_flag, preset_flag, print_json, print_json_line, usage
from forge_tui.config import Config
from forge_tui.errors import EXIT_FAILURE, EXIT_OK, BadInput

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands, Parser
    from forge_tui.engine.events import Record
    from forge_tui.fleet.settings import FleetSettings
    from forge_tui.fleet.status import FleetStatus

FOLLOW_SECONDS = 0.5


def _settings(args: argparse.Namespace, run_dir: Path | None) -> FleetSettings:
    from forge_tui.fleet.settings import FleetSettings

    return FleetSettings(run_dir=str(run_dir.resolve()) if run_dir else "", rounds=args.rounds, min_nodes=args.min_nodes,
                         steps_per_round=args.steps_per_round, round_timeout=args.round_timeout, dp_noise=args.dp_noise,
                         dp_clip=args.dp_clip, server_lr=args.server_lr).checked()


def _echo(event: Record) -> None:
    from forge_tui.engine.eventtext import describe

    text = describe(event)
    if text and event["type"] != "step":
        print(text, file=sys.stderr, flush=True)


class _Follower:
    """Prints the coordinator's new events as they come."""

    def __init__(self, events: Path) -> None:
        from forge_tui.engine.events import EventTail

        self.tail = EventTail(events)

    def __call__(self, *_: object) -> None:
        for event in self.tail.poll():
            _echo(event)


def _summary(status: FleetStatus) -> dict[str, object]:
    from forge_tui.engine.events import read_events

    rounds = [{key: e[key] for key in ("round", "nodes", "examples", "train_loss", "bytes_in", "bytes_out", "seconds")}
              for e in read_events(Path(status.path) / "events.jsonl") if e["type"] == "fleet_round"]
    evals = dict(status.eval_loss)
    for row in rounds:
        row["eval_loss"] = evals.get(int(row["round"]))
    return {"run": status.path, "state": status.state, "rounds": rounds, "eval_loss_start": evals.get(0),
            "nodes": [{"node": n.node, "name": n.name, "state": n.state, "bytes_sent": n.bytes_sent} for n in status.nodes]}


def _finish(status: FleetStatus, as_json: bool) -> int:
    if as_json:
        print_json_line(_summary(status))
    else:
        print(f"run: {status.path} ({status.state}, {status.round}/{status.rounds} rounds)")
    return EXIT_OK if status.state == "finished" else EXIT_FAILURE


def _local_detached(args: argparse.Namespace, config: Config) -> int:
    """`fleet local` again in its own session (it outlives the terminal or the console that asked),
    into a run directory named now; its output beside it as RUN.log."""
    from forge_tui.engine.children import Launched, forge_argv, start_detached
    from forge_tui.engine.runs import runs_root
    from forge_tui.fleet.shards import split_rows

    split_rows(args.dataset, args.nodes, args.split)  # a dataset that cannot be split is refused here, not in the background
    run = (args.run_dir or runs_root(config) / f"{time.strftime('%Y%m%d-%H%M%S')}-fleet").resolve()
    if run.exists():
        raise BadInput(f"{run}: already exists")
    run.parent.mkdir(parents=True, exist_ok=True)
    command = ["fleet", "local", "--nodes", str(args.nodes), "--dataset", str(args.dataset.resolve()), "--split", args.split,
               "--rounds", str(args.rounds), "--min-nodes", str(args.min_nodes), "--steps-per-round", str(args.steps_per_round),
               "--round-timeout", str(args.round_timeout), "--dp-noise", str(args.dp_noise), "--dp-clip", str(args.dp_clip),
               "--server-lr", str(args.server_lr),
               "--run-dir", str(run), *(["--preset", args.preset] if args.preset else []), *(["--tls"] if args.tls else [])]
    pid = start_detached(forge_argv(args.config, *command), run.with_name(f"{run.name}.log"))
    if args.json:
        print_json(Launched(str(run), pid).to_json())
    else:
        print(run)
        print(f"pid {pid} started in its own session; output in {run.with_name(f'{run.name}.log')}", file=sys.stderr)
    return EXIT_OK


def cmd_local(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import RunDir
    from forge_tui.fleet.local import prepare, run_local
    from forge_tui.fleet.status import fleet_status

    if args.nodes < 1:
        raise BadInput("--nodes must be at least 1")
    if args.min_nodes > args.nodes:
        raise BadInput(f"--min-nodes {args.min_nodes} is more than the fleet's {args.nodes} nodes: no round could start")
    _settings(args, args.run_dir)  # every problem said before anything starts
    if args.detach:
        return _local_detached(args, config)
    fleet = prepare(config, args.config, args.dataset, args.nodes, args.split, _settings(args, args.run_dir), tls=args.tls)
    interrupt_on_sigterm()
    print(f"fleet run: {fleet.run.path} ({args.nodes} nodes on {fleet.address}{', TLS' if args.tls else ''})", file=sys.stderr)
    follow = _Follower(fleet.run.events)
    run_local(fleet, follow)
    follow()
    return _finish(fleet_status(RunDir(fleet.run.path)), args.json)


def _dataset(args: argparse.Namespace, config: Config) -> Path:
    found = args.dataset or (Path(config.train.dataset) if config.train.dataset else None)
    if found is None:
        raise BadInput("the coordinator needs held-out data for bench: pass --dataset PATH (it is never sent to the nodes)")
    return found


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import create_run
    from forge_tui.fleet import launch
    from forge_tui.fleet.certs import CertFolder
    from forge_tui.fleet.local import check_coordinator, ended, fleet_folder, stop_processes
    from forge_tui.fleet.status import fleet_status

    certs = CertFolder(args.certs).require() if args.certs else None
    launch.require_tls(args.address, certs)
    if certs is not None and not certs.nodes():
        raise BadInput(f"{args.certs / 'nodes'}: no node keys, so no node could join; make them with "
                       f"`forge-tui fleet certs {args.certs} --node NAME`")
    settings = _settings(args, args.run_dir)
    run = create_run(config, _dataset(args, config), Path(settings.run_dir) if settings.run_dir else None)
    settings = type(settings)(**{**settings.to_json(), "run_dir": str(run.path)})
    home, log = fleet_folder(run) / "flwr-home", fleet_folder(run) / "superlink.log"
    interrupt_on_sigterm()
    superlink = launch.start(launch.superlink_argv(args.address, certs), log, home)
    follow = _Follower(run.events)
    try:
        launch.wait_for_port(args.address, superlink, log)
        launch.write_connection(home, args.address, certs.ca if certs else None)
        for name in certs.nodes() if certs is not None else []:
            launch.register(home, CertFolder(args.certs).node_public(name), name)
            print(f"registered node {name}", file=sys.stderr)
        launch.submit(home, launch.write_app(fleet_folder(run) / "app", settings))
        submitted = time.monotonic()
        print(f"fleet run: {run.path}; SuperLink on {args.address}{' (TLS, node keys)' if certs else ''}; waiting for nodes",
              file=sys.stderr)
        while ended(run) is None and superlink.poll() is None:
            check_coordinator(run, submitted, log)
            follow()
            time.sleep(FOLLOW_SECONDS)
        follow()
    finally:
        stop_processes([superlink])
    return _finish(fleet_status(run), args.json)


def cmd_join(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.children import forge_argv, start_detached
    from forge_tui.engine.runs import dataset_manifest
    from forge_tui.fleet import launch
    from forge_tui.fleet.certs import CertFolder, check_node_name
    from forge_tui.fleet.local import stop_processes
    from forge_tui.fleet.node import NodePlace, write_node_record

    name = check_node_name(args.name or socket.gethostname())
    certs = CertFolder(args.certs) if args.certs else None
    launch.require_tls(args.superlink, certs)
    if certs and not (certs.ca.is_file() and certs.node_key(name).is_file()):
        raise BadInput(f"{args.certs}: needs ca.pem and nodes/{name}.key (from `forge-tui fleet certs` on the coordinator)")
    dataset_manifest(args.dataset, config)  # a dataset with problems is refused before anything starts
    folder = (args.node_dir or _default_node_dir(name)).resolve()
    if args.detach:
        argv = forge_argv(args.config, "fleet", "join", args.superlink, "--dataset", str(args.dataset.resolve()), "--name", name,
                          "--node-dir", str(folder), *(["--certs", str(args.certs.resolve())] if certs else []),
                          *(["--preset", args.preset] if args.preset else []))
        folder.mkdir(parents=True, exist_ok=True)
        pid = start_detached(argv, folder / "join.log")
        if args.json:
            print_json_line({"node": name, "folder": str(folder), "pid": pid})
        else:
            print(f"node {name} joined (pid {pid}); log: {folder / 'join.log'}")
        return EXIT_OK
    place = NodePlace(folder, args.dataset.resolve(), args.config.resolve() if args.config else None, args.superlink, args.preset)
    write_node_record(place, name)
    node = launch.NodeLaunch(args.superlink, folder, place.dataset, place.config_file, launch.free_port(),
                             ca=certs.ca if certs else None, key=certs.node_key(name) if certs else None, preset=args.preset)
    interrupt_on_sigterm()
    process = launch.start(node.argv(), folder / "supernode.log", folder / "flwr-home")
    print(f"node {name}: SuperNode started for {args.superlink}; log: {folder / 'supernode.log'}", file=sys.stderr)
    try:
        code = process.wait()
    finally:
        stop_processes([process])
    if code != 0:
        print(f"forge-tui: error: the SuperNode exited with code {code}; see {folder / 'supernode.log'}", file=sys.stderr)
    return EXIT_OK if code == 0 else EXIT_FAILURE


def _default_node_dir(name: str) -> Path:
    from platformdirs import user_data_path

    return user_data_path("forge-tui") / "fleet" / name


def cmd_certs(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.fleet.certs import make_certs

    certs, written = make_certs(args.folder, args.host or [], args.node or [])
    if args.json:
        print_json({"folder": str(certs.folder), "written": [str(p) for p in written], "nodes": certs.nodes()})
    else:
        for path in written:
            print(path)
        if not args.host and any(path.name == "superlink.pem" for path in written):
            print("note: the SuperLink's certificate names this machine's loopback only; for nodes elsewhere make it "
                  "with --host NAME (the name or address they reach it by)", file=sys.stderr)
        print("give each node ca.pem and its nodes/NAME.key; keep ca.key off the network", file=sys.stderr)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.runs import find_run
    from forge_tui.fleet.status import fleet_status, is_fleet_run, newest_fleet_run
    from forge_tui.units import figure, human_bytes

    run = find_run(args.run, config) if args.run else newest_fleet_run(config)
    if not is_fleet_run(run.path):
        raise BadInput(f"{run.path}: not a fleet run")
    status = fleet_status(run)
    if args.json:
        print_json(status.to_json())
        return EXIT_OK
    print(f"{status.name}: {status.state}, round {status.round}/{status.rounds}, "
          f"{human_bytes(status.bytes_in)} in, {human_bytes(status.bytes_out)} out{', DP on' if status.private else ''}")
    for node in status.nodes:
        print(f"  {node.name or node.node!s:<22} {node.state:<15} round {node.round:>3}  {node.samples:>5} samples  "
              f"loss {figure(node.loss, 4)}  sent {human_bytes(node.bytes_sent)}")
    return EXIT_OK


def _round_flags(parser: Parser) -> None:
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default 3)")
    parser.add_argument("--min-nodes", type=int, default=2, help="nodes a round needs at least (default 2)")
    parser.add_argument("--steps-per-round", type=int, default=8, help="local optimizer steps per node per round (default 8)")
    parser.add_argument("--round-timeout", type=float, default=600.0, help="seconds a round waits for a node (default 600)")
    parser.add_argument("--run-dir", type=Path, help="the coordinator's run directory (default: a new one in the runs folder)")
    parser.add_argument("--dp-noise", type=float, default=0.0, help="differential privacy: noise multiplier (with --dp-clip)")
    parser.add_argument("--dp-clip", type=float, default=0.0, help="differential privacy: clipping norm of each update")
    parser.add_argument("--server-lr", type=float, default=1.0,
                        help="server learning rate (FedAvgM): the global adapter moves by this x the mean update (default 1: FedAvg)")


def register(commands: Commands) -> None:
    common, as_json, preset = config_flag(), json_flag(), preset_flag("settings under the config file (e.g. quick on a CPU)")
    fleet = commands.add_parser("fleet", help="fine-tune across devices on Flower: certs, serve, join, local, status")
    fleet.set_defaults(handler=lambda args, config: usage(fleet))
    sub = fleet.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(fleet))
    certs = sub.add_parser("certs", parents=[common, as_json], help="make the fleet's CA, SuperLink certificate and node keys")
    certs.add_argument("folder", type=Path)
    certs.add_argument("--host", action="append", help="a name or address nodes reach the SuperLink by (repeatable)")
    certs.add_argument("--node", action="append", help="a node name to make a key pair for (repeatable)")
    certs.set_defaults(handler=cmd_certs)
    serve = sub.add_parser("serve", parents=[common, as_json, preset], help="the SuperLink and the coordinator (FedAvg over LoRA tensors)")
    serve.add_argument("--address", default="127.0.0.1:9092", help="HOST:PORT to listen on (TLS needed beyond loopback)")
    serve.add_argument("--certs", type=Path, help="the folder `fleet certs` made: TLS and registered node keys")
    serve.add_argument("--dataset", type=Path, help="held-out data kept here for bench (never sent); default: the config's")
    _round_flags(serve)
    serve.set_defaults(handler=cmd_serve)
    join = sub.add_parser("join", parents=[common, as_json, preset, detach_flag()],
                          help="this device's SuperNode: train rounds on local data")
    join.add_argument("superlink", metavar="HOST:PORT")
    join.add_argument("--dataset", type=Path, required=True, help="this device's data (it never leaves the device)")
    join.add_argument("--name", help="this node's name (default: the host name)")
    join.add_argument("--certs", type=Path, help="a folder with the fleet's ca.pem and nodes/NAME.key")
    join.add_argument("--node-dir", type=Path, help="where the node keeps its rounds and audit trail")
    join.set_defaults(handler=cmd_join)
    local = sub.add_parser("local", parents=[common, as_json, preset, detach_flag()],
                           help="a whole fleet on this machine (real processes, loopback)")
    local.add_argument("--nodes", type=int, default=3, help="SuperNodes to start (default 3)")
    local.add_argument("--dataset", type=Path, required=True, help="a JSON-lines dataset to split across the nodes")
    local.add_argument("--split", default="iid", choices=["iid", "by-category"], help="how to split it (default iid)")
    local.add_argument("--tls", action="store_true", help="TLS and registered node keys on loopback, as in the field")
    _round_flags(local)
    local.set_defaults(handler=cmd_local)
    status = sub.add_parser("status", parents=[common, as_json], help="a fleet run's nodes, rounds and bytes")
    status.add_argument("run", nargs="?", help="run name or directory (default: the newest fleet run)")
    status.set_defaults(handler=cmd_status)
