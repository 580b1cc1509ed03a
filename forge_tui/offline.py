"""Offline and no-telemetry settings for the Hugging Face stack, and the egress guard.

The settings must be in the environment before `transformers` or `huggingface_hub` is first
imported: both read them at import time. The guard refuses, in-process, every outgoing connection
but loopback and unix sockets, whatever library makes it, and records each attempt.
`forge_tui/__init__.py` does both on import, so every entry point (CLI, TUI, runner, benchmark) has
them before anything else of ours runs. (`models fetch` downloads with pip in a child process.)
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OFFLINE_VARIABLES: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    "FLWR_TELEMETRY_ENABLED": "0",  # Flower reports usage to its servers unless told not to,
    "FLWR_DISABLE_UPDATE_CHECK": "1",  # and asks them for a newer version
}


def enforce_offline_environment() -> None:
    """Set every offline/no-telemetry variable, overriding values that would re-enable the network."""
    os.environ.update(OFFLINE_VARIABLES)


def offline_state() -> dict[str, bool]:
    """Which offline variables are in force in this process (for `doctor` and tests)."""
    return {name: os.environ.get(name) == value for name, value in OFFLINE_VARIABLES.items()}


# --------------------------------------------------------------------------- the egress guard

class EgressRefused(ConnectionRefusedError):
    """An outgoing connection the guard refused (a ConnectionRefusedError, so libraries treat it as
    the network being down, which it is for them)."""


@dataclass(frozen=True)
class Attempt:
    """One refused attempt: what it tried to reach, and the code that tried."""

    target: str        # host:port, or the host name it tried to resolve
    call: str          # connect | connect_ex | sendto | sendmsg | getaddrinfo
    caller: str        # file:line of the first frame outside the socket machinery

    def to_json(self) -> dict[str, str]:
        return {"target": self.target, "call": self.call, "caller": self.caller}


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""})
_SOCKET_MACHINERY = ("socket.py", "ssl.py", "asyncio", "selectors.py", "urllib", "http/", "requests/", "httpx", "httpcore",
                     "aiohttp", "offline.py")
_attempts: list[Attempt] = []
_allowed: set[tuple[str, int]] = set()   # (host, port) a fleet node may reach: its SuperLink, nothing else
_sinks: list[Callable[[Attempt], None]] = []
_original: dict[str, Any] = {}


def is_loopback(host: str) -> bool:
    """A loopback address or name (unix sockets never reach this check)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def allow_destination(host: str, port: int) -> None:
    """Let this process reach one more address, by name or number (a fleet node's SuperLink): only
    that port on that host; name lookups only for that name."""
    _allowed.add((host.lower().strip("[]"), port))


def _permitted(host: str, port: Any) -> bool:
    return is_loopback(host) or (host.lower().strip("[]"), port) in _allowed


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None and any(part in frame.f_code.co_filename for part in _SOCKET_MACHINERY):
        frame = frame.f_back  # type: ignore[assignment]
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"


def _refuse(target: str, call: str) -> None:
    attempt = Attempt(target, call, _caller())
    _attempts.append(attempt)
    sinks = list(_sinks)  # a copy: a run may stop watching while a library thread is being refused
    for sink in sinks:
        # A broken sink must not let the connection through; the attempt stays in `refused_attempts`.
        with contextlib.suppress(Exception):
            sink(attempt)
    raise EgressRefused(f"forge-tui refused an outgoing connection to {target} (data stays on this device)")


def _host_port(address: Any) -> tuple[str, Any]:
    return (str(address[0]), address[1]) if isinstance(address, tuple) and address else (str(address), None)


def _checked(call: str, address_at: int) -> Callable[..., Any]:
    """A socket method that refuses internet addresses (AF_INET/AF_INET6) other than loopback."""
    original = getattr(socket.socket, call)

    def guarded(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and len(args) > address_at and args[address_at] is not None:
            host, port = _host_port(args[address_at])
            if not _permitted(host, port):
                _refuse(f"{host}:{port}", call)
        return original(self, *args)

    return guarded


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    """Name lookups leave the device too (DNS): only numeric addresses, loopback names and an allowed
    destination's name resolve; the addresses an allowed name resolves to are allowed on its port."""
    name = (host.decode() if isinstance(host, bytes) else str(host or "")).lower()
    ports = {port for allowed, port in _allowed if allowed == name}
    if not is_loopback(name) and not ports:
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            _refuse(name, "getaddrinfo")
    found = _original["getaddrinfo"](host, *args, **kwargs)
    _allowed.update((str(entry[4][0]), port) for entry in found for port in ports)
    return found


def install_egress_guard() -> None:
    """Refuse, in this process, every outgoing connection but loopback and unix sockets, and record
    each attempt. Idempotent. Incoming connections (a `serve` on loopback) are not affected."""
    if _original:
        return
    _original["getaddrinfo"] = socket.getaddrinfo
    for call, address_at in (("connect", 0), ("connect_ex", 0), ("sendto", -1), ("sendmsg", 2)):
        _original[call] = getattr(socket.socket, call)
        setattr(socket.socket, call, _checked(call, address_at) if address_at >= 0 else _checked_sendto())
    socket.getaddrinfo = _guarded_getaddrinfo


def _checked_sendto() -> Callable[..., Any]:
    """sendto(data, address) or sendto(data, flags, address): the address is the last argument."""
    original = _original["sendto"]

    def guarded(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and len(args) >= 2:
            host, port = _host_port(args[-1])
            if not _permitted(host, port):
                _refuse(f"{host}:{port}", "sendto")
        return original(self, *args)

    return guarded


def egress_guarded() -> bool:
    return bool(_original) and socket.getaddrinfo is _guarded_getaddrinfo


def refused_attempts() -> list[Attempt]:
    """Every attempt refused in this process so far."""
    return list(_attempts)


def on_refused(sink: Callable[[Attempt], None]) -> Callable[[], None]:
    """Call `sink` with each refused attempt from now on (the runner writes them to the run's audit
    log); returns the function that stops it."""
    _sinks.append(sink)
    return lambda: _sinks.remove(sink) if sink in _sinks else None
