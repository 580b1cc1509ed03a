"""The fleet's parts, each on its own: settings, shards, the update's digest and folder, the
certificates, the TLS rule, the egress guard's one allowed address, the status fold, the refusal
words. No Flower process is started here (tests/fleet/test_local_fleet.py does that)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forge_tui.errors import BadInput
from forge_tui.fleet.certs import CertFolder, make_certs
from forge_tui.fleet.launch import NodeLaunch, require_tls
from forge_tui.fleet.settings import FleetSettings
from forge_tui.fleet.shards import split_rows, write_shards
from forge_tui.fleet.status import FleetStatus, _Reader
from forge_tui.fleet.wire import arrays_sha256, read_adapter, write_adapter
from tests.helpers import ROOT, SAMPLE, run_cli


def test_settings_gather_every_problem_and_travel_as_run_config():
    bad = FleetSettings(run_dir="/r", rounds=0, min_nodes=0, steps_per_round=0, round_timeout=0, dp_noise=1.0, server_lr=0.0)
    assert len(bad.problems()) == 6
    assert FleetSettings(run_dir="/r", server_lr=3.0).needs_start
    assert not FleetSettings(run_dir="/r").needs_start
    with pytest.raises(BadInput, match="--dp-noise and --dp-clip go together"):
        FleetSettings(run_dir="/r", dp_clip=1.0).checked()
    good = FleetSettings(run_dir="/r", rounds=4, dp_noise=0.5, dp_clip=2.0).checked()
    assert good.to_run_config()["steps-per-round"] == 8
    assert FleetSettings.from_run_config(good.to_run_config()) == good
    assert good.private


def _rows(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_iid_shards_hold_every_row_once():
    shards = split_rows(SAMPLE / "train.jsonl", 3, "iid")
    assert sorted(line for shard in shards for line in shard) == sorted(_rows(SAMPLE / "train.jsonl"))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_by_category_shards_never_share_a_category(tmp_path):
    paths = write_shards(SAMPLE / "train.jsonl", 3, "by-category", tmp_path)
    categories = [{json.loads(line)["category"] for line in _rows(path)} for path in paths]
    assert all(categories)
    assert sum(map(len, categories)) == len(set().union(*categories))  # no category in two shards
    assert set().union(*categories) == {"assets", "alarms", "contacts", "procedures", "shifts"}
    assert sum(len(_rows(p)) for p in paths) == len(_rows(SAMPLE / "train.jsonl"))


@pytest.mark.parametrize(("content", "nodes", "how", "message"), [
    ('{"messages": []}\nnot json\n' * 3, 2, "iid", r"data.jsonl:2: not JSON"),
    ('{"category": "a", "messages": []}\n' * 6, 2, "by-category", "1 categories for 2 nodes"),
    ('{"messages": []}\n' * 6, 2, "by-category", "needs a `category` on every row"),
    ('{"messages": []}\n' * 3, 2, "iid", "too few for 2 nodes"),
])
def test_bad_datasets_are_refused_naming_file_and_line(write, content, nodes, how, message):
    with pytest.raises(BadInput, match=message):
        split_rows(write("data.jsonl", content), nodes, how)


def test_an_update_digest_names_every_tensor_byte_and_name(tmp_path):
    arrays = {"a.lora_A.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.lora_B.weight": np.zeros((3, 2), np.float32)}
    digest = arrays_sha256(arrays)
    changed = {**arrays, "a.lora_B.weight": arrays["a.lora_B.weight"] + np.float32(1e-7)}
    renamed = {"b.lora_A.weight": arrays["a.lora_A.weight"], "a.lora_B.weight": arrays["a.lora_B.weight"]}
    assert len({digest, arrays_sha256(changed), arrays_sha256(renamed)}) == 3
    config = tmp_path / "adapter_config.json"
    config.write_text('{"peft_type": "LORA"}')
    folder = write_adapter(arrays, config, tmp_path / "round-0001")
    assert arrays_sha256(read_adapter(folder)) == digest
    assert json.loads((folder / "adapter_config.json").read_text()) == {"peft_type": "LORA"}
    write_adapter(changed, config, folder)  # a round written again replaces the folder whole
    assert arrays_sha256(read_adapter(folder)) == arrays_sha256(changed)


def test_certificates_chain_to_the_fleet_ca_and_node_keys_load_in_flower(tmp_path):
    from cryptography import x509
    from flwr.cli.supernode.register import try_load_public_key

    certs, written = make_certs(tmp_path / "certs", ["coordinator.plant", "10.0.0.5"], ["orin-a", "orin-b"])
    assert {p.name for p in written} >= {"ca.pem", "ca.key", "superlink.pem", "superlink.key", "orin-a.key", "orin-b.pub"}
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises when the CA did not sign it
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"coordinator.plant", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert {"10.0.0.5", "127.0.0.1"} <= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert all(oct(p.stat().st_mode)[-3:] == "600" for p in written if p.suffix == ".key")
    assert try_load_public_key(certs.node_public("orin-a"))
    ca_before = certs.ca.read_bytes()
    _, added = make_certs(tmp_path / "certs", [], ["orin-c"])
    assert [p.name for p in added] == ["orin-c.key", "orin-c.pub"]
    assert certs.ca.read_bytes() == ca_before
    assert CertFolder(tmp_path / "certs").nodes() == ["orin-a", "orin-b", "orin-c"]
    with pytest.raises(BadInput, match="CA exists already"):
        make_certs(tmp_path / "certs", ["other.host"], [])
    with pytest.raises(BadInput, match="a node name is"):
        make_certs(tmp_path / "certs", [], ["../escape"])


def test_tls_is_required_off_loopback(tmp_path):
    require_tls("127.0.0.1:9092", None)
    require_tls("[::1]:9092", None)
    with pytest.raises(BadInput, match="TLS is required"):
        require_tls("10.1.2.3:9092", None)
    with pytest.raises(BadInput, match="not HOST:PORT"):
        require_tls("10.1.2.3", None)
    require_tls("10.1.2.3:9092", CertFolder(tmp_path))


def test_serve_and_join_refuse_a_network_address_without_tls(tmp_path):
    served = run_cli("fleet", "serve", "--address", "0.0.0.0:9092", "--dataset", str(SAMPLE / "train.jsonl"),
                     "--run-dir", str(tmp_path / "run"))
    joined = run_cli("fleet", "join", "192.0.2.10:9092", "--dataset", str(SAMPLE / "train.jsonl"), "--node-dir", str(tmp_path / "n"))
    for done in (served, joined):
        assert done.returncode == 2, done.stderr
        assert "TLS is required" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "n").exists()


def test_a_node_is_started_pinned_to_its_superlink_with_its_settings_read_back_by_flower(tmp_path):
    from flwr.common.config import parse_config_args

    folder = tmp_path / 'a "quoted" node'
    node = NodeLaunch("192.0.2.10:9092", folder, tmp_path / "d.jsonl", None, 9999, ca=tmp_path / "ca.pem", key=tmp_path / "k", threads=1)
    argv = node.argv()
    assert argv[argv.index("--allow") + 1] == "192.0.2.10:9092"
    assert "--insecure" not in argv
    assert argv[argv.index("--root-certificates") + 1] == str(tmp_path / "ca.pem")
    read = parse_config_args([argv[argv.index("--node-config") + 1]])
    assert read["node-dir"] == str(folder)
    assert (read["superlink"], read["threads"]) == ("192.0.2.10:9092", "1")


GUARD_PROBE = """
import socket, sys
from forge_tui.offline import EgressRefused, allow_destination
allow_destination("192.0.2.10", 9092)
def attempt(host, port):
    s = socket.socket(); s.settimeout(0.2)
    try:
        s.connect((host, port))
    except EgressRefused:
        return "refused"
    except OSError:
        return "let through"
    finally:
        s.close()
    return "let through"
for host, port in (("192.0.2.10", 9092), ("192.0.2.10", 9093), ("192.0.2.11", 9092)):
    print(host, port, attempt(host, port))
try:
    socket.getaddrinfo("example.com", 443)
except EgressRefused:
    print("lookup refused")
"""


def test_the_egress_guard_lets_a_node_reach_its_superlink_and_nothing_else():
    done = subprocess.run([sys.executable, "-c", GUARD_PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.stdout.splitlines() == ["192.0.2.10 9092 let through", "192.0.2.10 9093 refused", "192.0.2.11 9092 refused",
                                        "lookup refused"], done.stderr


def _fold(*events: dict) -> FleetStatus:
    reader = _Reader(FleetStatus(name="r", path="/r", state="running"))
    for event in events:
        reader.read(event)
    reader.status.nodes = sorted(reader.by_id.values(), key=lambda n: n.node)
    return reader.status


def test_the_status_fold_tells_each_nodes_state():
    update = {"type": "fleet_update", "round": 1, "examples": 50, "train_loss": 1.5, "eval_loss": 1.6, "headroom_c": 30.0,
              "bytes": 1000, "sha256": "x"}
    status = _fold({"type": "fleet_started", "rounds": 3, "dp_noise": 0.0},
                   {"type": "fleet_round_started", "round": 1, "rounds": 3, "nodes": [1, 2, 3]},
                   {**update, "node": 1}, {**update, "node": 2},
                   {"type": "fleet_missed", "round": 1, "node": 3, "reason": "heat"},
                   {"type": "fleet_round", "round": 1, "bytes_in": 2000, "bytes_out": 0},
                   {"type": "eval", "step": 1, "eval_loss": 1.55},
                   {"type": "fleet_round_started", "round": 2, "rounds": 3, "nodes": [1, 3]},
                   {**update, "round": 2, "node": 3})
    states = {n.node: n.state for n in status.nodes}
    assert states == {1: "training", 2: "gone", 3: "idle"}
    assert (status.round, status.rounds, status.bytes_in, status.eval_loss) == (1, 3, 2000, [(1, 1.55)])
    assert [n.bytes_sent for n in status.nodes] == [1000, 1000, 1000]
    assert FleetStatus.from_json(json.loads(json.dumps(status.to_json()))) == status
    heat = _fold({"type": "fleet_round_started", "round": 1, "rounds": 1, "nodes": [7]},
                 {"type": "fleet_missed", "round": 1, "node": 7, "reason": "heat"})
    assert heat.nodes[0].state == "paused by heat"


def test_flower_starts_its_app_processes_through_the_guarded_shims(tmp_path):
    import shutil

    from forge_tui.fleet.launch import flower_env

    env = flower_env(tmp_path / "home")
    for name, role in (("flower-superexec", "superexec"), ("flwr-clientapp", "clientapp"), ("flwr-serverapp", "serverapp")):
        found = shutil.which(name, path=env["PATH"])
        assert found == str(tmp_path / "home" / "bin" / name)
        assert f"-m forge_tui.fleet.flower_main {role} --" in Path(found).read_text()
    assert env["FLWR_HOME"] == str(tmp_path / "home")
    assert (env.get("FLWR_TELEMETRY_ENABLED"), env.get("FLWR_DISABLE_UPDATE_CHECK")) == ("0", "1")


def test_a_node_and_a_coordinator_load_only_forge_apps():
    from flwr.clientapp.client_app import LoadClientAppError

    from forge_tui.fleet.flower_main import pinned_loader

    loaded: list[str] = []

    def load_app(reference: str, error: type[Exception], *rest: object) -> str:
        loaded.append(reference)
        return "app"

    load = pinned_loader("clientapp", load_app)
    assert load("forge_tui.fleet.client_app:app", LoadClientAppError, "/dir") == "app"
    with pytest.raises(LoadClientAppError, match=r"refused 'evil\.app:app'"):
        load("evil.app:app", LoadClientAppError, "/dir")
    assert loaded == ["forge_tui.fleet.client_app:app"]


@pytest.mark.parametrize(("client", "path", "answered"), [
    ("192.0.2.50", "/v1/fleet/pull-messages", True),
    ("192.0.2.50", "/v1/control/start-run", False),
    ("192.0.2.50", "/v1/control/register-node", False),
    ("192.0.2.50", "/v1/runtime/pull-task-input", False),
    ("127.0.0.1", "/v1/control/start-run", True),
])
async def test_other_machines_reach_the_fleet_api_only(client, path, answered):
    from forge_tui.fleet.flower_main import FleetOnly

    sent: list[dict] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message):
        sent.append(message)

    await FleetOnly(app)({"type": "http", "path": path, "client": (client, 40000)}, None, send)
    assert sent[0]["status"] == (200 if answered else 403)
