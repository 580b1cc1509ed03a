"""The Flower ClientApp a SuperNode runs for each message: `train` (one round of local training from
the global adapter) and `evaluate` (the global adapter's held-out loss). Replies hold an ArrayRecord
of adapter tensors and a MetricRecord of numbers, nothing else: a failure is told as one short word
(`RoundRefused`), never as text that could quote the data.

Importing forge_tui installs the egress guard in this process too (it talks to its SuperNode on
loopback only)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from forge_tui.fleet.node import NodePlace, RoundRefused, evaluate_round, train_round
from forge_tui.fleet.wire import Arrays, to_arrays, to_record

app = ClientApp()


def _asked(msg: Message) -> tuple[int, dict[str, Any], Arrays]:
    config = msg.content.config_records["config"]
    return int(str(config["server-round"])), json.loads(str(config["coordinator"])), to_arrays(msg.content.array_records["arrays"])


def _reply(msg: Message, metrics: dict[str, float], arrays: Arrays | None = None) -> Message:
    content = RecordDict({"metrics": MetricRecord(dict(metrics))})
    if arrays is not None:
        content["arrays"] = to_record(arrays)
    return Message(content, reply_to=msg)


def _refusal(context: Context, exc: Exception) -> RoundRefused:
    """What Flower carries back of a failure: the reason word, or `failed`; the details go to the
    node's own audit trail when it has one (and to the round's event log)."""
    refusal = exc if isinstance(exc, RoundRefused) else RoundRefused("failed")
    with contextlib.suppress(Exception):
        NodePlace.from_node_config(context.node_config).audit.append("round_failed", reason=str(refusal),
                                                                    details=f"{type(exc).__name__}: {exc}")
    return refusal


@app.train()
def train(msg: Message, context: Context) -> Message:
    try:
        place = NodePlace.from_node_config(context.node_config)
        place.remember_id(context.node_id)
        round_number, coordinator, arrays = _asked(msg)
        config = msg.content.config_records["config"]
        update, metrics = train_round(place, round_number, arrays, coordinator, int(str(config["steps"])), str(config["model-sha256"]))
    except Exception as exc:  # noqa: BLE001 - only the reason word may leave the node
        raise _refusal(context, exc) from None
    return _reply(msg, metrics, update)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    try:
        round_number, coordinator, arrays = _asked(msg)
        metrics = evaluate_round(NodePlace.from_node_config(context.node_config), round_number, arrays, coordinator)
    except Exception as exc:  # noqa: BLE001 - only the reason word may leave the node
        raise _refusal(context, exc) from None
    return _reply(msg, metrics)
