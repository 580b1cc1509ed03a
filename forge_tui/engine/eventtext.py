"""Events in words: one line (or two) per event, as the CLI prints them and the console's Monitor logs
them. The one place an event's wording lives. Lines are short enough for the Monitor's log, where
they wrap at 80 columns; paths are left to the run directory's layout (runs.py), which the CLI names
once, but for the resume hint (a run may live outside the runs folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from forge_tui.engine.events import Record
from forge_tui.units import figure, gib, human_bytes

SWITCH = {None: "unknown", True: "on", False: "off"}


def _device(event: Record) -> str:
    headroom = event.get("thermal_headroom_c")
    return (f"telemetry {event.get('telemetry_source') or 'none'}: power mode {event.get('power_mode') or 'unknown'}, "
            f"jetson_clocks {SWITCH[event.get('jetson_clocks')]}, "
            f"thermal headroom {'unknown' if headroom is None else f'{headroom:.1f} °C'}, "
            f"guard {'on' if event.get('thermal_guard') else 'off'}")


def _started(e: Record) -> str:
    return (f"run {e['run']}: {e['mode']} on {e['device']} ({e['precision']}), steps {e['start_step']}->{e['total_steps']}, "
            f"{e['train_samples']} train / {e['eval_samples']} eval samples, {e['trainable_parameters']:,} trainable parameters, "
            f"{e['threads']} threads; memory estimate {gib(e['memory_estimate_bytes'], 2)} of "
            f"{gib(e['memory_available_bytes'], 2)} GiB available\n" + _device(e))


def _step(e: Record) -> str:
    return (f"step {e['step']:>5}/{e['total_steps']}  epoch {e['epoch']:.2f}  loss {e['loss']:.4f}  lr {e['lr']:.2e}  "
            f"{e['tokens_per_second']:.0f} tok/s  eta {e['eta_seconds']:.0f}s")


def _error(e: Record) -> str:
    last = e.get("last_checkpoint")
    return f"error: {e['message']}" + (f" (last checkpoint {last})" if last else "")


def _stopped(e: Record) -> str:
    reason = e.get("reason", "operator")
    why = "" if reason == "operator" else f" ({reason})"
    return f"stopped at step {e['step']}{why}; resume with: forge-tui resume {Path(e['checkpoint']).parents[1]}"


def _finished(e: Record) -> str:
    return (f"finished at step {e['step']}: eval loss {figure(e.get('eval_loss'), 4)}, {e['seconds']:.0f} s, "
            f"peak memory {gib(e['peak_memory_bytes'], 2)} GiB")


def _bench_result(e: Record) -> str:
    low, high = e["ci95"]
    return f"benchmark: composite {e['base']:.1f} -> {e['tuned']:.1f} ({e['delta']:+.1f}, 95% CI {low:+.1f}..{high:+.1f})"


def short_node(node: int) -> str:
    """A Flower node id (64 bits) as the fleet's lines show it."""
    return f"#{str(node)[-6:]}"


def _fleet_started(e: Record) -> str:
    privacy = f", DP noise {e['dp_noise']} clip {e['dp_clip']}" if e.get("dp_noise") else ""
    return (f"fleet: {e['rounds']} rounds of {e['steps_per_round']} steps, at least {e['min_nodes']} nodes, "
            f"round timeout {e['round_timeout']:.0f} s{privacy}")


def _fleet_update(e: Record) -> str:
    headroom = e.get("headroom_c")
    return (f"round {e['round']}: node {short_node(e['node'])} sent {human_bytes(e['bytes'])} ({e['examples']} samples), "
            f"loss {figure(e.get('train_loss'), 4)}, eval {figure(e.get('eval_loss'), 4)}"
            + (f", headroom {headroom:.1f} °C" if headroom is not None else ""))


def _fleet_round(e: Record) -> str:
    return (f"round {e['round']}/{e['rounds']} aggregated from {e['nodes']} node(s): loss {figure(e.get('train_loss'), 4)}, "
            f"{human_bytes(e['bytes_in'])} in, {human_bytes(e['bytes_out'])} out, {e['seconds']:.0f} s")


_TEXT: dict[str, Callable[[Record], str]] = {
    "run_started": _started,
    "step": _step,
    "eval": lambda e: f"eval loss {e['eval_loss']:.4f} at step {e['step']}",
    "checkpoint": lambda e: f"checkpoint at step {e['step']} ({e['seconds']} s)",
    "warning": lambda e: f"warning: {e['message']}",
    "error": _error,
    "paused": lambda e: f"paused at step {e['step']}: {e['reason']}",
    "resumed": lambda e: f"resumed at step {e['step']}: {e['reason']}",
    "stopped": _stopped,
    "finished": _finished,
    "bench_started": lambda e: f"benchmark started: {e['items']} items",
    "bench_progress": lambda e: f"benchmark: {e['done']}/{e['total']} items answered by both models ({e['seconds']:.0f} s)",
    "bench_failed": lambda e: f"benchmark failed: {e['message']}",
    "bench_result": _bench_result,
    "fleet_started": _fleet_started,
    "fleet_round_started": lambda e: f"round {e['round']}/{e['rounds']} sent to {len(e['nodes'])} node(s)",
    "fleet_update": _fleet_update,
    "fleet_missed": lambda e: f"round {e['round']}: node {short_node(e['node'])} missed the {e.get('phase', 'train')} ({e['reason']})",
    "fleet_round": _fleet_round,
}


def describe(event: Record) -> str | None:
    """The event in words; None for an event with no wording (a benchmark item, an unknown type). An
    event missing fields (written by another version) is shown as its fields, never an exception."""
    kind = str(event.get("type"))
    text = _TEXT.get(kind)
    if text is None:
        return None
    try:
        return text(event)
    except (KeyError, TypeError, ValueError, IndexError):
        fields = ", ".join(f"{key} {value}" for key, value in event.items() if key not in ("type", "time"))
        return f"{kind}: {fields}"
