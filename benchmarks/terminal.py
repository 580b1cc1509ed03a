"""A program on a pseudo-terminal, as an operator's terminal would run it: a thread drains its output
and notes when a marker first appears (the first frame)."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, *, size: tuple[int, int] = (80, 24),
                 marker: bytes | None = None) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.master, self.marker = master, marker
        self.started = time.monotonic()
        self.marked_at: float | None = None
        self.bytes = 0
        self._tail = b""
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True, cwd=cwd)
        os.close(slave)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            if self.marker and self.marked_at is None:
                self._tail = (self._tail + chunk)[-65536:]
                if self.marker in self._tail:
                    self.marked_at = time.monotonic()

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def close(self) -> None:
        self.press("\x11")  # ctrl+q
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.master)
