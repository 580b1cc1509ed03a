"""`forge-tui doctor`: a pre-flight report. Every finding has a status and, when something is off,
the next step. A check that itself fails becomes a `fail` finding; the report always completes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_tui.config import Config
from forge_tui.errors import ForgeError
from forge_tui.units import gib

if TYPE_CHECKING:
    from forge_tui.engine.memory import MemoryEstimate
    from forge_tui.engine.plan import Plan

STATUSES = ("ok", "info", "skip", "warn", "fail")

# The first 4-bit call is where the PyPI aarch64 wheel fails on Jetson, so the smoke test makes one.
SMOKE_TEST = (
    "import torch, bitsandbytes as bnb\n"
    "layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.bfloat16, quant_type='nf4').cuda()\n"
    "out = layer(torch.randn(2, 64, device='cuda', dtype=torch.bfloat16))\n"
    "torch.cuda.synchronize()\n"
    "print(bnb.__version__, bool(torch.isfinite(out).all()))\n"
)
BF16_FALLBACK = 'or train bf16 LoRA without 4-bit: set [model] quantization = "none"'


@dataclass(frozen=True)
class Finding:
    check: str
    status: str                    # ok | info | skip | warn | fail
    detail: str
    next_step: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_torch() -> Finding:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        major, minor = torch.cuda.get_device_capability(0)
        return Finding("torch", "ok", f"torch {torch.__version__}, CUDA {torch.version.cuda}: {name} (sm_{major}{minor})")
    from forge_tui.engine.memory import is_jetson

    if is_jetson():
        return Finding("torch", "fail", f"torch {torch.__version__} sees no CUDA device on this Jetson",
                       "install JetPack's CUDA build of torch (make run JETSON=1 keeps it)")
    return Finding("torch", "info", f"torch {torch.__version__}, no CUDA device: training runs fp32 LoRA on the CPU "
                   "(right for demos and small models)")


def classify_smoke(returncode: int, output: str, jetson: bool) -> Finding:
    """The 4-bit smoke test's outcome in words; Jetson's broken PyPI wheel gets its own advice."""
    if returncode == 0 and output.strip().endswith("True"):
        return Finding("bitsandbytes 4-bit", "ok", f"bitsandbytes {output.split()[0]}: an NF4 layer ran on the GPU")
    last = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "no output")
    if jetson or "named symbol not found" in output or "no kernel image" in output:
        return Finding("bitsandbytes 4-bit", "fail",
                       f"bitsandbytes imports but its first 4-bit call fails ({last}): the PyPI aarch64 wheel has no "
                       "kernels for Jetson's GPU",
                       f"build bitsandbytes from source for compute capability 87 (README: Jetson), {BF16_FALLBACK}")
    return Finding("bitsandbytes 4-bit", "fail", f"the 4-bit smoke test failed: {last}",
                   f"reinstall bitsandbytes for this CUDA, {BF16_FALLBACK}")


def check_bitsandbytes() -> Finding:
    import torch

    if not torch.cuda.is_available():
        return Finding("bitsandbytes 4-bit", "skip", "no CUDA: 4-bit QLoRA is used only on CUDA devices")
    from forge_tui.engine.memory import is_jetson

    try:
        done = subprocess.run([sys.executable, "-c", SMOKE_TEST], capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return Finding("bitsandbytes 4-bit", "fail", "the 4-bit smoke test hung for 5 minutes", BF16_FALLBACK)
    return classify_smoke(done.returncode, done.stdout + done.stderr, is_jetson())


def check_jtop() -> Finding:
    from forge_tui.engine.memory import is_jetson
    from forge_tui.engine.telemetry.jtop_source import JtopUnavailable, connect, default_socket

    try:
        socket = default_socket()
    except ImportError:
        return Finding("jtop service", "fail" if is_jetson() else "skip", "jetson-stats is not installed",
                       "pip install jetson-stats (the jtop client) in Forge's environment" if is_jetson() else None)
    if not is_jetson() and not Path(socket).exists():
        return Finding("jtop service", "skip", "not a Jetson: no jtop service expected")
    try:
        client = connect(1.0, socket)
    except JtopUnavailable as exc:
        return Finding("jtop service", "fail" if is_jetson() else "warn", str(exc), "see the reason; then run `forge-tui doctor` again")
    from jtop import __version__ as client_version

    client.close()
    return Finding("jtop service", "ok", f"answering on {socket} (jetson-stats {client_version} client, versions compatible)")


def check_telemetry(config: Config) -> list[Finding]:
    from forge_tui.engine.telemetry import open_source
    from forge_tui.engine.telemetry.guard import describe

    opened = open_source(config.telemetry.source, interval=config.telemetry.interval, speed=config.telemetry.replay_speed)
    try:
        snapshot = opened.source.sample()
    finally:
        opened.source.close()
    passed = "; ".join(f"{f.source}: {f.reason}" for f in opened.fallbacks)
    found = [Finding("telemetry", "ok", f"source {opened.source.name}" + (f" (passed over {passed})" if passed else ""))]
    if snapshot.headroom is not None:
        found.append(Finding("thermal headroom", "ok", describe(snapshot)))
    else:
        guard = "the thermal guard cannot act" if config.thermal.guard else "the thermal guard is off in the config"
        found.append(Finding("thermal headroom", "warn", f"unknown: no temperature sensor with a trip point; {guard}",
                             "expected in a VM or container; on a device, check that /sys/class/thermal is readable"))
    if snapshot.power_mode is not None:
        clocks = {None: "unknown", True: "on", False: "off"}[snapshot.jetson_clocks]
        advice = None if snapshot.power_mode == "MAXN" else "fastest training: `sudo nvpmodel -m 0` (MAXN) and `sudo jetson_clocks`"
        found.append(Finding("power mode", "info", f"nvpmodel {snapshot.power_mode}, jetson_clocks {clocks}", advice))
    return found


def _model_shape(config: Config) -> tuple[Path, dict[str, Any], int]:
    from forge_tui.engine.models import describe_directory, resolve_model

    path = resolve_model(config.model.name, config.models.paths)
    return path, json.loads((path / "config.json").read_text()), describe_directory(path).parameters or 0


def check_model(config: Config) -> Finding:
    from forge_tui.engine.models import MANIFEST_NAME, verify_manifest

    path, _, parameters = _model_shape(config)
    if (path / MANIFEST_NAME).exists():
        damaged = verify_manifest(path)
        if damaged:
            return Finding("model", "fail", f"{path}: files changed since provisioning: {', '.join(damaged)}",
                           "re-provision: remove the folder and run `forge-tui models fetch`")
    return Finding("model", "ok", f"{path.name}: {parameters / 1e6:.1f} M parameters, safetensors, local")


def memory_estimate(config: Config, longest: int | None = None) -> tuple[Plan, MemoryEstimate, str | None]:
    """(plan, estimate, advice) for `config` at its longest sample (`longest` tokens, at most
    max_seq_len; the full max_seq_len, the worst case a batch can reach, when not known). The
    advice says what would make the run fit; None when it fits."""
    from forge_tui.engine.memory import advice, estimate_for
    from forge_tui.engine.models import resolve_model
    from forge_tui.engine.plan import resolve_plan

    plan = resolve_plan(config)
    model_dir = resolve_model(config.model.name, config.models.paths)
    seq_len = min(longest or config.data.max_seq_len, config.data.max_seq_len)
    found = estimate_for(config, plan, model_dir, seq_len)
    return plan, found, advice(config, plan, model_dir, seq_len, found)


def check_memory(config: Config) -> Finding:
    _, found, advised = memory_estimate(config)
    tight = "tight: close other programs or lower micro_batch_size" if found.verdict == "warn" else None
    return Finding("memory", found.verdict, found.describe(), advised or tight)


def check_disk(config: Config) -> Finding:
    """Room for the kept checkpoints (adapter + AdamW moments) and a merged export of the model."""
    from forge_tui.engine.memory import lora_parameters
    from forge_tui.engine.runs import runs_root

    _, shape, parameters = _model_shape(config)
    adapter = lora_parameters(shape, config.lora.r) * 4
    checkpoints = adapter * 3 * config.train.keep_checkpoints + adapter
    export = parameters * 2
    root = runs_root(config)
    existing = next(p for p in (root, *root.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    detail = (f"{gib(free)} GiB free at {root}; checkpoints need ~{gib(checkpoints, 2)} GiB, "
              f"a merged export ~{gib(export, 2)} GiB")
    if free < checkpoints:
        return Finding("disk", "fail", detail, "free space or set [runs] dir on a larger disk")
    if free < checkpoints + export:
        return Finding("disk", "warn", detail, "enough to train, not to export a merged model")
    return Finding("disk", "ok", detail)


def check_offline() -> Finding:
    from forge_tui.offline import offline_state

    state = offline_state()
    missing = [name for name, ok in state.items() if not ok]
    if missing:
        return Finding("offline", "fail", f"not in force: {', '.join(missing)}", "report this: forge-tui sets them on import")
    return Finding("offline", "ok", f"{len(state)} offline/no-telemetry variables in force; models load from local files only")


def check_egress() -> Finding:
    from forge_tui.offline import egress_guarded, refused_attempts

    if not egress_guarded():
        return Finding("egress guard", "fail", "not installed in this process", "report this: forge-tui installs it on import")
    refused = refused_attempts()
    detail = ("outgoing connections other than loopback and unix sockets are refused in every forge-tui process "
              "and written to the run's audit trail")
    if refused:
        return Finding("egress guard", "warn", f"{detail}; refused here: " + ", ".join(f"{a.target} from {a.caller}" for a in refused))
    return Finding("egress guard", "ok", detail)


def _guarded(name: str, check: Callable[[], Finding | list[Finding]]) -> list[Finding]:
    try:
        found = check()
    except ForgeError as exc:
        return [Finding(name, "fail", str(exc))]
    except Exception as exc:  # noqa: BLE001 - a broken check is a finding, not a crash
        return [Finding(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}")]
    return found if isinstance(found, list) else [found]


def run_doctor(config: Config) -> list[Finding]:
    checks: list[tuple[str, Callable[[], Finding | list[Finding]]]] = [
        ("torch", check_torch), ("bitsandbytes 4-bit", check_bitsandbytes), ("jtop service", check_jtop),
        ("telemetry", lambda: check_telemetry(config)), ("model", lambda: check_model(config)),
        ("memory", lambda: check_memory(config)), ("disk", lambda: check_disk(config)), ("offline", check_offline),
        ("egress guard", check_egress),
    ]
    return [finding for name, check in checks for finding in _guarded(name, check)]
