"""`forge-tui serve`: loopback only by default, a page with no remote asset, and a browser session
(the websocket textual-serve's page opens) that really runs the console and takes keys."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp
import psutil
import pytest

from forge_tui.ui.serve import offline_template
from tests.helpers import ROOT, SAMPLE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_page_template_loads_nothing_remote(tmp_path) -> None:
    page = (offline_template(tmp_path) / "app_index.html").read_text()
    assert "googleapis" not in page
    assert "https://" not in page
    assert "js/textual.js" in page


async def _screen_text(ws: Any, wanted: str, seconds: float) -> str:
    seen, deadline = "", time.monotonic() + seconds
    while wanted not in seen and time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if message.type == aiohttp.WSMsgType.BINARY:
            seen += message.data.decode("utf-8", "replace")
    return seen


async def test_serve_binds_loopback_and_runs_the_console_in_a_browser_session(embedded_model) -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "forge_tui", "serve", "--port", str(port),
                               "--dataset", str(SAMPLE / "train.jsonl")], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    page = await (await session.get(f"http://127.0.0.1:{port}/")).text()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the server never answered")
            assert "googleapis" not in page
            assert "textual.js" in page
            listening = {c.laddr.ip for c in psutil.Process(server.pid).net_connections() if c.status == "LISTEN"}
            assert listening == {"127.0.0.1"}
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws?width=80&height=24") as ws:
                assert "Datasets" in await _screen_text(ws, "Datasets", 60)
                await ws.send_json(["stdin", "2"])
                assert "LoRA rank" in await _screen_text(ws, "LoRA rank", 30)
    finally:
        server.terminate()
        server.wait(timeout=30)
