"""The coordinator: Flower's ServerApp running FedAvg (weighted by each node's examples) over the LoRA
tensors, optionally behind Flower's server-side differential privacy (fixed clipping and Gaussian
noise). It owns the fleet's run directory like a runner owns a run: the lock, the event log, the
audit trail (every update received, every aggregate), every round's global adapter under
`rounds/round-NNNN/` and the last one as `adapter/`, so bench, export, Compare and Chat take it as is.

A round waits `round_timeout` seconds at most: a node that is hot, slow or gone misses that round (a
`fleet_missed` event) and is sent the next one if it is connected again by then."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, FedAvgM, Strategy

from forge_tui.config import Config
from forge_tui.engine import events as ev
from forge_tui.engine.audit import versions, who
from forge_tui.engine.models import model_sha256, resolve_model
from forge_tui.engine.plan import add_adapter, load_base, lora_config, peak_memory, resolve_plan
from forge_tui.engine.runner import RunOwner, owning
from forge_tui.engine.runs import RunDir, open_run
from forge_tui.fleet import events as fe
from forge_tui.fleet.node import coordinator_sections
from forge_tui.fleet.settings import FleetSettings
from forge_tui.fleet.wire import summary, to_arrays, to_record, write_adapter
from forge_tui.offline import egress_guarded

app = ServerApp()
REASONS = ("heat", "model", "failed")
UNIFORM = "uniform-weight"   # the weight every update gets under DP


def rounds_folder(run: RunDir) -> Path:
    return run.path / "rounds"


def round_adapter(run: RunDir, round_number: int) -> Path:
    return rounds_folder(run) / f"round-{round_number:04d}"


def _reason(reply: Message) -> str:
    """`gone` when the SuperLink answered for a node that stopped reporting; else the word a node's
    refusal carried (see client_app), or `failed`."""
    if reply.error.code == ErrorCode.NODE_UNAVAILABLE:
        return "gone"
    found = re.search(r"\b(" + "|".join(REASONS) + r")\b", str(reply.error.reason))
    return found.group(1) if found else "failed"


@dataclass(frozen=True)
class Reply:
    """A node's reply that carries results: who sent it, its tensors (if any) and its numbers."""

    node: int
    arrays: ArrayRecord
    metrics: dict[str, float]

    @classmethod
    def of(cls, message: Message) -> Reply:
        content = message.content
        arrays = content.array_records.get("arrays", ArrayRecord())
        metrics = {key: float(value) for key, value in content.metric_records.get("metrics", MetricRecord()).items()
                   if isinstance(value, (int, float))}
        return cls(message.metadata.src_node_id, arrays, metrics)

    @property
    def examples(self) -> int:
        return int(self.metrics.get("num-examples", 0))


def _weighted(replies: list[Reply], key: str, weight: str = "num-examples") -> float | None:
    """`key` averaged over the replies, weighted by `weight` (replies with none left out)."""
    pairs = [(r.metrics[key], int(r.metrics.get(weight, 0))) for r in replies if key in r.metrics]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


@dataclass
class RoundBook:
    """What the coordinator writes of each round, in the order the strategy lives it."""

    owner: RunOwner
    settings: FleetSettings
    adapter_config: Path
    started: float = field(default_factory=time.monotonic)
    sent: dict[str, list[Message]] = field(default_factory=dict)
    bytes_out: int = 0
    replied: list[Message] = field(default_factory=list)     # this round's train replies with results
    replies: list[Reply] = field(default_factory=list)
    train_loss: float | None = None
    eval_loss: float | None = None

    def sent_to(self, phase: str, round_number: int, messages: list[Message], arrays: ArrayRecord) -> None:
        nodes = [m.metadata.dst_node_id for m in messages]
        self.sent[phase] = messages
        if phase == "train":
            self.started, self.replied = time.monotonic(), []
            self.bytes_out = arrays.count_bytes() * len(nodes)
            self.owner.emit(fe.RoundStarted(round=round_number, rounds=self.settings.rounds, nodes=nodes))

    def _missed(self, phase: str, round_number: int, replies: list[Message]) -> list[Message]:
        """The replies that carry results; every node sent to that did not deliver is told (an error
        the SuperLink wrote for a node is the node's, found by the message it answers)."""
        sent = self.sent.get(phase, [])
        node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in sent}
        answered = set()
        for reply in replies:
            node = node_of.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)
            answered.add(node)
            if reply.has_error():
                self.owner.emit(fe.NodeMissed(round=round_number, node=node, reason=_reason(reply), phase=phase))
        for message in sent:
            if message.metadata.dst_node_id not in answered:  # no word before the timeout: slow, hot or unreachable
                self.owner.emit(fe.NodeMissed(round=round_number, node=message.metadata.dst_node_id, reason="late", phase=phase))
        return [m for m in replies if not m.has_error()]

    def received(self, round_number: int, replies: list[Message]) -> None:
        self.replied = self._missed("train", round_number, replies)
        self.replies = [Reply.of(m) for m in self.replied]
        for reply in self.replies:
            arrays = to_arrays(reply.arrays)
            digest = summary(arrays)
            self.owner.audit.append("update_received", round=round_number, node=reply.node, **digest, metrics=reply.metrics)
            headroom = reply.metrics.get("thermal-headroom-c")
            self.owner.emit(fe.UpdateReceived(
                round=round_number, node=reply.node, examples=reply.examples, train_loss=reply.metrics.get("train-loss"),
                eval_loss=reply.metrics.get("eval-loss"), headroom_c=None if headroom is None or headroom < 0 else headroom,
                bytes=reply.arrays.count_bytes(), sha256=digest["sha256"]))
        self.train_loss = _weighted(self.replies, "train-loss")
        self._global_eval(round_number - 1, _weighted(self.replies, "start-eval-loss", "eval-examples"))

    def _global_eval(self, round_number: int, loss: float | None) -> None:
        """The global adapter of `round_number` (0: the shared starting adapter) on the nodes'
        held-out splits."""
        if loss is not None:
            self.eval_loss = loss
            self.owner.emit(ev.Eval(step=round_number, eval_loss=loss, eval_tokens=0))

    def aggregated(self, round_number: int, arrays: ArrayRecord | None) -> None:
        """Keep the round's global adapter (when anyone delivered), audit it, tell the round."""
        digest: dict[str, Any] = {}
        if arrays is not None:
            found = to_arrays(arrays)
            digest = summary(found)
            folder = write_adapter(found, self.adapter_config, round_adapter(self.owner.run, round_number))
            self.owner.audit.append("aggregate", round=round_number, nodes=len(self.replied), path=str(folder), **digest,
                                    dp_noise=self.settings.dp_noise, dp_clip=self.settings.dp_clip)
        seconds = round(time.monotonic() - self.started, 1)
        self.owner.emit(fe.RoundDone(
            round=round_number, rounds=self.settings.rounds, nodes=len(self.replied),
            examples=sum(r.examples for r in self.replies), train_loss=self.train_loss,
            bytes_in=sum(r.arrays.count_bytes() for r in self.replies), bytes_out=self.bytes_out,
            sha256=digest.get("sha256"), seconds=seconds))
        if self.train_loss is not None:
            self.owner.emit(ev.Step(step=round_number, total_steps=self.settings.rounds, epoch=0.0, loss=self.train_loss, lr=0.0,
                                    tokens=0, tokens_per_second=0.0, eta_seconds=seconds * (self.settings.rounds - round_number)))

    def evaluated(self, round_number: int, replies: list[Message]) -> None:
        """The last round's global adapter, evaluated by the nodes (earlier rounds' are measured at
        the start of the next round)."""
        valid = [Reply.of(m) for m in self._missed("evaluate", round_number, replies)]
        self._global_eval(round_number, _weighted(valid, "eval-loss", "eval-examples"))


class Recorded(Strategy):
    """A strategy with the coordinator's records around it: replies are recorded as they arrived,
    before the inner strategy (which may clip them for privacy) aggregates them."""

    def __init__(self, inner: Strategy, book: RoundBook) -> None:
        self.inner, self.book = inner, book

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self.book.sent_to("train", server_round, messages, arrays)
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.book.received(server_round, replies)
        settings = self.book.settings
        if settings.private and len(self.book.replied) < settings.min_nodes:
            arrays, metrics = None, None  # DP's noise is sized for min_nodes updates: fewer would be less private
        else:
            for reply in self.book.replied if settings.private else []:
                reply.content.metric_records["metrics"][UNIFORM] = 1.0
            arrays, metrics = self.inner.aggregate_train(server_round, self.book.replied)
        self.book.aggregated(server_round, arrays)
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        if server_round < self.book.settings.rounds:  # measured at the start of the next round instead
            return []
        messages = list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        self.book.sent_to("evaluate", server_round, messages, arrays)
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        if server_round == self.book.settings.rounds:
            self.book.evaluated(server_round, list(replies))
        return None  # the book has told the global eval loss (FedAvg's own would divide by zero held-out samples)

    def summary(self) -> None:
        self.inner.summary()


def build_strategy(settings: FleetSettings, book: RoundBook) -> Recorded:
    """FedAvg over every connected node (at least `min_nodes`), weighted by samples (FedAvgM's server
    learning rate when it is not 1: the global adapter moves by that many times the nodes' mean
    update, e.g. the number of nodes to add up updates learned on disjoint data); behind DP when
    asked, with every node weighing the same (a node's clipped update then moves the average by
    1/n at most, which is what the noise is sized for)."""
    shared: dict[str, Any] = {"fraction_train": 1.0, "fraction_evaluate": 1.0, "min_train_nodes": settings.min_nodes,
                              "min_evaluate_nodes": settings.min_nodes, "min_available_nodes": settings.min_nodes,
                              "weighted_by_key": UNIFORM if settings.private else "num-examples"}
    inner: Strategy = FedAvg(**shared) if settings.server_lr == 1.0 else FedAvgM(**shared, server_learning_rate=settings.server_lr)
    if settings.private:
        inner = DifferentialPrivacyServerSideFixedClipping(inner, noise_multiplier=settings.dp_noise, clipping_norm=settings.dp_clip,
                                                           num_sampled_clients=settings.min_nodes)
    return Recorded(inner, book)


def _template(run: RunDir, model: Path) -> Path:
    """adapter_config.json for every round's adapter, from the run's [lora] section."""
    folder = run.path / "fleet"
    folder.mkdir(exist_ok=True)
    config = lora_config(run.config())
    config.base_model_name_or_path = str(model)
    config.save_pretrained(str(folder))
    return folder / "adapter_config.json"


def starting_adapter(config: Config, model: Path) -> ArrayRecord:
    """The adapter every node draws for round 1 (the run's seed + 1), drawn here too, for DP (it clips
    each node's update against what the node started from) and a server learning rate (it steps
    from it). Otherwise round 1 sends nothing and each node draws the same adapter itself."""
    from peft import get_peft_model_state_dict

    first = replace(config, train=replace(config.train, seed=config.train.seed + 1))
    with_adapter = add_adapter(load_base(model, resolve_plan(first)), first)
    return to_record({name: tensor.detach().float().cpu().numpy() for name, tensor in get_peft_model_state_dict(with_adapter).items()})


def _failed(exc: BaseException) -> ev.Event:
    return ev.Error(message=str(exc) or type(exc).__name__)


def coordinate(grid: Grid, settings: FleetSettings) -> None:
    """Run the fleet's rounds and publish the last global adapter as the run's final one."""
    run = open_run(Path(settings.run_dir))
    with owning(run, _failed) as owner:
        owner.audit.append("coordinator_started", **who(), egress_guard=egress_guarded(), versions=versions(), settings=settings.to_json())
        owner.emit(fe.FleetStarted(rounds=settings.rounds, min_nodes=settings.min_nodes, steps_per_round=settings.steps_per_round,
                                   round_timeout=settings.round_timeout, dp_noise=settings.dp_noise, dp_clip=settings.dp_clip,
                                   server_lr=settings.server_lr))
        config = run.config()
        model = resolve_model(config.model.name, config.models.paths)
        book = RoundBook(owner, settings, _template(run, model))
        shared = ConfigRecord({"coordinator": json.dumps(coordinator_sections(config)), "steps": settings.steps_per_round,
                               "model-sha256": model_sha256(model)})
        initial = starting_adapter(config, model) if settings.needs_start else ArrayRecord()
        started = time.monotonic()
        result = build_strategy(settings, book).start(grid=grid, initial_arrays=initial, num_rounds=settings.rounds,
                                                      timeout=settings.round_timeout, train_config=shared, evaluate_config=shared)
        _publish(owner, result.arrays, book, time.monotonic() - started)


def _publish(owner: RunOwner, arrays: ArrayRecord, book: RoundBook, seconds: float) -> None:
    if not len(arrays):
        raise RuntimeError("no node delivered an update in any round; nothing to publish")
    write_adapter(to_arrays(arrays), book.adapter_config, owner.run.adapter)
    owner.emit(ev.Finished(step=book.settings.rounds, adapter=str(owner.run.adapter), train_loss=book.train_loss,
                           eval_loss=book.eval_loss, seconds=round(seconds, 1), peak_memory_bytes=peak_memory("cpu")))


@app.main()
def main(grid: Grid, context: Context) -> None:
    coordinate(grid, FleetSettings.from_run_config(dict(context.run_config)))

