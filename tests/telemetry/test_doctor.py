"""`forge-tui doctor`: every finding has a status and a next step when something is off."""

from __future__ import annotations

import json
from pathlib import Path

from forge_tui.engine.doctor import STATUSES, classify_smoke
from tests.helpers import run_cli


def _findings(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, dict]]:
    result = run_cli("doctor", "--json", *args, env=env)
    assert "Traceback" not in result.stderr
    return result.returncode, {f["check"]: f for f in json.loads(result.stdout)}


def test_this_cpu_machine(embedded_model: Path) -> None:
    code, found = _findings()
    assert code == 0
    assert all(f["status"] in STATUSES for f in found.values())
    assert found["torch"]["status"] == "info"
    assert "no CUDA" in found["torch"]["detail"]
    assert found["bitsandbytes 4-bit"]["status"] == "skip"
    assert found["offline"]["status"] == "ok"
    assert found["model"]["status"] == "ok"
    assert found["disk"]["status"] == "ok"
    assert "GiB free" in found["disk"]["detail"]
    assert found["memory"]["status"] in ("ok", "warn")
    assert "estimated peak" in found["memory"]["detail"]
    assert found["thermal headroom"]["status"] in ("ok", "warn")
    assert all(f["next_step"] for f in found.values() if f["status"] in ("warn", "fail"))


def test_jtop_service_answering(jtop_service: Path, embedded_model: Path) -> None:
    _, found = _findings(env={"FORGE_TUI_JTOP_SOCKET": str(jtop_service)})
    assert found["jtop service"]["status"] == "ok"
    assert str(jtop_service) in found["jtop service"]["detail"]
    assert found["telemetry"]["detail"].startswith("source jtop")
    assert found["power mode"]["detail"] == "nvpmodel MAXN, jetson_clocks on"


def test_a_missing_model_is_a_failure_with_a_next_step(tmp_path: Path) -> None:
    config = tmp_path / "forge.toml"
    config.write_text(f'[model]\nname = "{tmp_path / "nowhere"}"\n')
    code, found = _findings("--config", str(config))
    assert code == 1
    assert found["model"]["status"] == "fail"
    assert "nowhere" in found["model"]["detail"]


def test_the_jetson_pypi_wheel_failure_gets_its_own_advice() -> None:
    output = "Error named symbol not found at line 449 in file /src/csrc/ops.cu\n"
    finding = classify_smoke(1, output, jetson=True)
    assert finding.status == "fail"
    assert "compute capability 87" in finding.next_step
    assert 'quantization = "none"' in finding.next_step
    assert classify_smoke(0, "0.50.2 True\n", jetson=False).status == "ok"
    assert classify_smoke(1, "RuntimeError: CUDA error: out of memory\n", jetson=False).detail.endswith("out of memory")
