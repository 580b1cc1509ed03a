"""Fixtures of the fleet tests: a recording relay between the nodes and the SuperLink."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest


class Relay:
    """A TCP relay on loopback that forwards every connection to `target` and keeps every byte that
    crossed it, both ways: what an eavesdropper on a plain link would see."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.captured: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def wire(self) -> bytes:
        with self._lock:
            return b"".join(self.captured)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    self.captured.append(data)
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def relay_to() -> Iterator[list[Relay]]:
    """relay_to.append(Relay(port)) ... closed at the end of the test."""
    relays: list[Relay] = []
    yield relays
    for relay in relays:
        relay.close()
