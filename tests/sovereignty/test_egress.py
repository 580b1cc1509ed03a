"""The egress guard: nothing but loopback and unix sockets leaves a forge-tui process, whatever
library tries; each attempt is refused, recorded with where it came from, and (inside a run) written
to the run's audit trail and event log. (The quick pipeline end to end runs in a network namespace
with no network at all: tests/e2e/test_quick_training.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

from forge_tui.engine.events import read_events
from forge_tui.offline import Attempt, EgressRefused, egress_guarded, on_refused, refused_attempts
from tests.helpers import ROOT, run_cli


def test_the_guard_is_installed_by_importing_forge_tui() -> None:
    assert egress_guarded()
    found = subprocess.run([sys.executable, "-c", "import forge_tui.offline as o; print(o.egress_guarded())"],
                           capture_output=True, text=True, cwd=ROOT, check=False)
    assert found.stdout.strip() == "True"


@pytest.mark.parametrize(("attempt", "target", "call"), [
    (lambda: socket.create_connection(("192.0.2.10", 443), timeout=1), "192.0.2.10:443", "connect"),
    (lambda: socket.create_connection(("telemetry.example.com", 443), timeout=1), "telemetry.example.com", "getaddrinfo"),
    (lambda: urllib.request.urlopen("http://[2001:db8::1]:8080/", timeout=1), "2001:db8::1:8080", "connect"),
    (lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"q", ("198.51.100.53", 53)), "198.51.100.53:53", "sendto"),
    (lambda: socket.socket().connect_ex(("203.0.113.9", 80)), "203.0.113.9:80", "connect_ex"),
])
def test_outgoing_connections_are_refused_and_recorded_with_their_caller(attempt, target: str, call: str) -> None:
    seen: list[Attempt] = []
    stop = on_refused(seen.append)
    try:
        with pytest.raises((EgressRefused, urllib.error.URLError)):
            attempt()
    finally:
        stop()
    assert [(a.target, a.call) for a in seen] == [(target, call)]
    assert seen[0].caller.startswith(__file__)
    assert refused_attempts()[-1] == seen[0]


def test_loopback_and_unix_sockets_pass(tmp_path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: server.accept()[0].sendall(b"hi"), daemon=True).start()
    with socket.create_connection(server.getsockname(), timeout=5) as client:
        assert client.recv(2) == b"hi"
    with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5):
        pass
    path = str(tmp_path / "s")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
    server.close()
    listener.close()


PHONE_HOME = """
import sys, threading, time, socket
def phone_home():
    while "forge_tui.engine.train" not in sys.modules:
        time.sleep(0.05)
    time.sleep(1)
    try:
        socket.create_connection(("203.0.113.77", 443), timeout=2)
    except OSError:
        pass
threading.Thread(target=phone_home, daemon=True).start()
"""


def test_an_attempt_from_inside_a_run_is_refused_and_logged(tiny_config, tmp_path) -> None:
    """A library in the runner that phones home mid-run (a thread started at interpreter start-up,
    as a sitecustomize would): refused, in the audit trail and the event log; the run still finishes."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PHONE_HOME)
    run = tmp_path / "runs" / "phoned"
    result = run_cli("--config", str(tiny_config), "train", "--run-dir", str(run),
                     env={"PYTHONPATH": f"{hook}{os.pathsep}{ROOT}"})
    assert result.returncode == 0, result.stderr
    audit = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    refused = [entry for entry in audit if entry["kind"] == "egress_refused"]
    assert [(e["target"], e["call"]) for e in refused] == [("203.0.113.77:443", "connect")]
    assert refused[0]["caller"].startswith(str(hook / "sitecustomize.py"))
    warnings = [e["message"] for e in read_events(run / "events.jsonl") if e["type"] == "warning"]
    assert any("refused an outgoing connection to 203.0.113.77:443" in w for w in warnings)
    assert audit[-1]["kind"] == "finished"
    assert run_cli("audit", str(run)).returncode == 0


def test_a_command_tells_the_operator_what_it_refused() -> None:
    code = ("import socket, sys\nfrom forge_tui.cli import main\ntry:\n"
            "    socket.create_connection(('192.0.2.5', 80), timeout=1)\nexcept OSError:\n    pass\nsys.exit(main(['doctor']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert "forge-tui: refused an outgoing connection to 192.0.2.5:80 (from <string>:4)" in result.stderr
    assert "WARN  egress guard" in result.stdout
    assert "192.0.2.5:80" in result.stdout
