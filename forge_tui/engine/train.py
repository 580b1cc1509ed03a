"""The training loop: setup, train, save_checkpoint, finish. It speaks through events only.

What runs where (4-bit on CUDA, fp32 LoRA on a CPU) is the plan's (plan.py) and is stated in the
run_started event. AdamW over the adapter, linear warm-up then cosine (a pure function of the step,
so resuming needs no scheduler state), token-weighted gradient accumulation, eval loss on the
held-out split, rehearsal rows against forgetting (rehearsal.py), one seed for everything.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from forge_tui.config import Config
from forge_tui.engine import events as ev
from forge_tui.engine.audit import versions, who
from forge_tui.engine.batches import Encoded, batch_at, collate, encode_for_training, micro_batches, steps_per_epoch
from forge_tui.engine.checkpoint import (
    TrainState,
    adapter_bytes,
    latest_checkpoint,
    load_adapter_weights,
    passed_over,
    restore,
    save_checkpoint,
)
from forge_tui.engine.data import Reading, load_samples
from forge_tui.engine.datacheck import in_eval_split, sample_key
from forge_tui.engine.eta import cached_estimate
from forge_tui.engine.events import read_events
from forge_tui.engine.fsutil import publish_dir, staged
from forge_tui.engine.generation import pad_id
from forge_tui.engine.loss import token_loss_sum
from forge_tui.engine.memory import MemoryEstimate, advice, estimate_for, refusal
from forge_tui.engine.models import load_tokenizer, resolve_model
from forge_tui.engine.plan import Plan, add_adapter, compile_layers, device_name, load_for_training, peak_memory, resolve_plan
from forge_tui.engine.rehearsal import longest_rehearsal, rehearsal_rows
from forge_tui.engine.runner import Echo, RunOwner, owning
from forge_tui.engine.runs import RunDir
from forge_tui.engine.telemetry.guard import Decision
from forge_tui.engine.telemetry.record import FILE as TELEMETRY_FILE
from forge_tui.engine.telemetry.watch import ThermalWatch
from forge_tui.errors import BadInput, ForgeError
from forge_tui.offline import egress_guarded

RECENT_STEPS = 20  # steps the ETA averages over


@dataclass
class Session:
    """The loop's working state between setup and the end of the run."""

    model: Any
    optimizer: Any
    trainable: list[Any]
    train: list[Encoded]
    held: list[Encoded]
    pad_id: int
    plan: Plan
    threads: int
    total: int
    micro_batch: int              # halved on CUDA out-of-memory, grad_accum doubled to match
    grad_accum: int
    watch: ThermalWatch
    step: int = 0
    train_loss: float | None = None
    eval_loss: float | None = None
    step_times: list[float] = field(default_factory=list)
    saved: tuple[int, Path] | None = None   # the step and folder of the newest checkpoint this session wrote

    @cached_property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(e.input_ids) for e in self.train)


def get_lr(step: int, total: int, config: Config) -> float:
    """Linear warm-up to the peak, then cosine down to min_lr_ratio x peak."""
    train = config.train
    warmup = int(train.warmup_ratio * total)
    if step < warmup:
        return train.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = train.min_lr_ratio * train.learning_rate
    return floor + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (train.learning_rate - floor)


def total_steps(config: Config, train_samples: int) -> int:
    """max_steps when set, else the steps `epochs` passes over the training split take."""
    t = config.train
    if t.max_steps:
        return t.max_steps
    return max(1, math.ceil(t.epochs * steps_per_epoch(train_samples, t.micro_batch_size * t.grad_accum)))


def train_batch(model: Any, optimizer: Any, trainable: list[Any], batch: list[Encoded], *, micro_batch: int,
                device: str, pad: int, max_grad_norm: float, kl_weight: float = 1.0) -> tuple[float, int]:
    """One optimizer step over an effective batch: token-weighted gradient accumulation over
    micro-batches (each padded only to its own longest sample), clip, step. Returns the mean loss
    per labelled token and the batch's tokens."""
    import torch

    labelled = sum(max(0, e.label_tokens - (e.labels[0] != -100)) for e in batch)
    total_loss = torch.zeros((), device=device)
    for chunk in micro_batches(batch, micro_batch):
        tensors = {k: v.to(device, non_blocking=True) for k, v in collate(chunk, pad).items()}
        loss_sum, _ = token_loss_sum(model, tensors, kl_weight)
        (loss_sum / max(1, labelled)).backward()
        total_loss += loss_sum.detach()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(total_loss) / max(1, labelled), sum(len(e.input_ids) for e in batch)


def split_encoded(config: Config, tokenizer: Any) -> tuple[list[Encoded], list[Encoded], int]:
    """The dataset's training and held-out splits, encoded, and how many samples were truncated."""
    samples = load_samples(Path(config.train.dataset), Reading.of(config.data))
    train: list[Encoded] = []
    held: list[Encoded] = []
    for sample in samples:
        (held if in_eval_split(sample_key(sample), config.data.eval_fraction) else train).append(
            encode_for_training(tokenizer, sample, config.data.max_seq_len))
    if not train:
        raise BadInput(f"{config.train.dataset}: no training samples left after the eval split")
    return train, held, sum(e.truncated for e in train + held)


def held_out_loss(model: Any, held: list[Encoded], *, micro_batch: int, pad: int, device: str) -> tuple[float, int]:
    """Mean token loss on the held-out split and the tokens it counted, dropout off; consumes no
    random numbers."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in micro_batches(sorted(held, key=lambda e: len(e.input_ids)), micro_batch):
            tensors = {k: v.to(device) for k, v in collate(chunk, pad).items()}
            loss_sum, n = token_loss_sum(model, tensors)
            total, count = total + float(loss_sum), count + n
    model.train()
    return total / max(1, count), count


class Trainer:
    """One run's training, from a fresh start or its latest complete checkpoint."""

    def __init__(self, owner: RunOwner) -> None:
        self.owner = owner
        self.run = owner.run
        self.emit = owner.emit
        self.config = owner.run.config()
        self.stop_signal = False
        self.started = time.monotonic()

    # ----------------------------------------------------------------- setup
    def _split(self, tokenizer: Any) -> tuple[list[Encoded], list[Encoded]]:
        train, held, truncated = split_encoded(self.config, tokenizer)
        if truncated:
            self.emit(ev.RunWarning(f"{truncated} sample(s) longer than max_seq_len {self.config.data.max_seq_len} were truncated"))
        return train, held

    def _check_memory(self, model_dir: Path, plan: Plan, longest: int) -> MemoryEstimate:
        """Refuse before loading when the estimate exceeds what the device has; the sequence length
        is the longest sample after truncation, rehearsal rows included (the batches are never
        padded beyond it)."""
        found = estimate_for(self.config, plan, model_dir, longest)
        advised = advice(self.config, plan, model_dir, longest, found)
        if advised:
            raise BadInput(refusal(found, advised))
        if found.verdict == "warn":
            self.emit(ev.RunWarning(f"tight on memory: {found.describe()}"))
        return found

    def _setup(self) -> Session:
        """Load data, model and adapter; restore the latest checkpoint if any; announce the run."""
        import torch

        config = self.config
        plan = resolve_plan(config)
        model_dir = resolve_model(config.model.name, config.models.paths)
        checkpoint = latest_checkpoint(self.run.checkpoints)
        for folder, why in passed_over(self.run.checkpoints, checkpoint):
            start = f"{checkpoint.name}" if checkpoint else "the start"
            self.emit(ev.RunWarning(f"checkpoint {folder.name} is damaged ({why}): not used; resuming from {start}"))
        threads = config.train.threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        random.seed(config.train.seed)
        tokenizer = load_tokenizer(model_dir)
        train, held = self._split(tokenizer)
        longest = max(longest_rehearsal(config.data, tokenizer), *(len(e.input_ids) for e in train + held))
        memory = self._check_memory(model_dir, plan, longest)
        model = add_adapter(load_for_training(model_dir, plan), config)
        if checkpoint is None and self.run.start_adapter.is_file():
            load_adapter_weights(model, self.run.start_adapter)
        train = train + rehearsal_rows(config.data, self.run.path, tokenizer, model, plan.device, len(train))
        if plan.compiled:
            compile_layers(model)  # after the rehearsal answers: generation runs uncompiled
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.train.learning_rate, weight_decay=config.train.weight_decay)
        state = self._restore(checkpoint, model, optimizer, threads) if checkpoint is not None else None
        session = Session(model=model, optimizer=optimizer, trainable=trainable, train=train, held=held, pad_id=pad_id(tokenizer),
                          plan=plan, threads=threads, total=total_steps(config, len(train)),
                          micro_batch=state.micro_batch_size if state else config.train.micro_batch_size,
                          grad_accum=state.grad_accum if state else config.train.grad_accum,
                          watch=ThermalWatch(config, self.run.path / TELEMETRY_FILE))
        if state is not None:
            session.step, session.train_loss, session.eval_loss = state.step, state.train_loss, state.eval_loss
        try:
            self._announce(session, str(model_dir), memory, self._estimate(plan, model_dir, train, held) if checkpoint is None else None)
        except BaseException:
            session.watch.close()
            raise
        session.watch.attach(lambda message: self._warn(message, session))
        return session

    def _estimate(self, plan: Plan, model_dir: Path, train: list[Encoded], held: list[Encoded]) -> float | None:
        """The whole run's time from the speeds the dry run measured; advice only: a cache it cannot
        read costs the estimate, never the run."""
        try:
            found = cached_estimate(self.config, plan, model_dir, train, held)
        except Exception:  # noqa: BLE001 - see above
            return None
        return found.seconds if found else None

    def _warn(self, message: str, session: Session) -> None:
        self.emit(ev.RunWarning(message, step=session.step))

    def _restore(self, checkpoint: Path, model: Any, optimizer: Any, threads: int) -> TrainState:
        """The checkpoint's weights, optimizer and RNG state restored; refused when it belongs to
        another config or dataset."""
        state = restore(checkpoint, model, optimizer)
        meta = self.run.meta()
        if state.config_sha256 != meta["config_sha256"] or state.dataset_sha256 != meta["dataset_sha256"]:
            raise BadInput(f"{self.run.path}: the latest checkpoint belongs to another config or dataset; refusing to resume")
        if state.threads != threads:
            self.emit(ev.RunWarning(f"resumed with {threads} threads where the run used {state.threads}: "
                                    "results will not be bit-identical to an uninterrupted run"))
        return state

    def _announce(self, session: Session, model: str, memory: MemoryEstimate, estimate: float | None) -> None:
        plan = session.plan
        self.emit(ev.RunStarted(
            run=self.run.name, mode=plan.mode, device=device_name(plan), precision=plan.precision, model=model,
            total_steps=session.total, start_step=session.step, train_samples=len(session.train), eval_samples=len(session.held),
            effective_batch=session.micro_batch * session.grad_accum, threads=session.threads,
            trainable_parameters=sum(p.numel() for p in session.trainable),
            memory_estimate_bytes=memory.total, memory_available_bytes=memory.available, **session.watch.start_record(),
            setup_seconds=round(time.monotonic() - self.started, 1), estimate_seconds=estimate))

    # ----------------------------------------------------------------- the loop
    def train(self) -> str:
        """Run to the end, a stop request, a thermal stop or an error; returns the final state."""
        self.started = time.monotonic()
        session = self._setup()
        try:
            return self._loop(session, self.started)
        finally:
            session.watch.close()

    def _loop(self, session: Session, started: float) -> str:
        if session.held and session.step == 0:  # the starting point, so the fall of the eval loss shows
            session.eval_loss = self._evaluate(session)
        while session.step < session.total:
            if self._stop_asked():
                return self._stopped(session, self._save(session), "operator")
            decision = session.watch.check()
            if decision.action == "pause" and not self._pause(session, decision):
                return "stopped"
            self._train_step(session)
            if session.held and self._due(session, self.config.train.eval_every):
                session.eval_loss = self._evaluate(session)
            if self._due(session, self.config.train.save_every):
                self._save(session)
        self._write_adapter(session)
        self.emit(ev.Finished(step=session.step, adapter=str(self.run.adapter), train_loss=session.train_loss,
                              eval_loss=session.eval_loss, seconds=round(time.monotonic() - started, 1),
                              peak_memory_bytes=peak_memory(session.plan.device)))
        return "finished"

    def _stop_asked(self) -> bool:
        return self.run.stop_requested() or self.stop_signal

    def _stopped(self, session: Session, checkpoint: Path, reason: str, details: dict[str, Any] | None = None) -> str:
        self.run.stop_flag.unlink(missing_ok=True)
        self.emit(ev.Stopped(step=session.step, checkpoint=str(checkpoint), reason=reason, details=details or {}))
        return "stopped"

    def _pause(self, session: Session, decision: Decision) -> bool:
        """Checkpoint, then wait for the device to cool; False when the run stopped instead of resuming."""
        path = self._save(session)
        self.emit(ev.Paused(step=session.step, reason=decision.reason, details=decision.details))
        outcome = session.watch.wait_until_cool(self._stop_asked)
        if outcome.action == "resume":
            self.emit(ev.Resumed(step=session.step, reason=outcome.reason, details=outcome.details))
            return True
        thermal = outcome.action == "stop"
        paused = {"paused_seconds": outcome.details["paused_seconds"]} if "paused_seconds" in outcome.details else None
        self._stopped(session, path, f"thermal guard: {outcome.reason}" if thermal else "operator",
                      outcome.details if thermal else paused)
        return False

    @staticmethod
    def _due(session: Session, every: int) -> bool:
        return session.step == session.total or bool(every and session.step % every == 0)

    def _train_step(self, session: Session) -> None:
        """One optimizer step at the batch the seeded plan assigns to this step; emits `step`."""
        tick = time.monotonic()
        effective = self.config.train.micro_batch_size * self.config.train.grad_accum
        _, indices = batch_at(session.step, session.lengths, effective, self.config.train.seed)
        lr = get_lr(session.step, session.total, self.config)
        for group in session.optimizer.param_groups:
            group["lr"] = lr
        session.train_loss, tokens = self._optimizer_step(session, [session.train[i] for i in indices])
        session.step += 1
        session.step_times.append(time.monotonic() - tick)
        recent = session.step_times[-RECENT_STEPS:]
        self.emit(ev.Step(step=session.step, total_steps=session.total,
                          epoch=round(session.step / steps_per_epoch(len(session.train), effective), 3),
                          loss=session.train_loss, lr=lr, tokens=tokens,
                          tokens_per_second=round(tokens / session.step_times[-1], 1),
                          eta_seconds=round(sum(recent) / len(recent) * (session.total - session.step), 1)))

    def _optimizer_step(self, session: Session, batch: list[Encoded]) -> tuple[float, int]:
        """One optimizer step over an effective batch; on CUDA out-of-memory, halve the micro-batch
        (the effective batch stays: the step is redone with twice the accumulation)."""
        import torch

        while True:
            try:
                return self._accumulate(session, batch)
            except torch.OutOfMemoryError:
                session.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                if session.micro_batch == 1:
                    raise ForgeError("out of memory at micro-batch 1: lower max_seq_len or use a smaller model; "
                                     "the last checkpoint is intact") from None
                session.micro_batch //= 2
                session.grad_accum *= 2
                self.emit(ev.RunWarning(f"CUDA out of memory: micro-batch halved to {session.micro_batch}, "
                                        f"gradient accumulation {session.grad_accum} (effective batch unchanged)", step=session.step))

    def _accumulate(self, session: Session, batch: list[Encoded]) -> tuple[float, int]:
        return train_batch(session.model, session.optimizer, session.trainable, batch, micro_batch=session.micro_batch,
                           device=session.plan.device, pad=session.pad_id, max_grad_norm=self.config.train.max_grad_norm,
                           kl_weight=self.config.data.rehearsal_weight)

    def _evaluate(self, session: Session) -> float:
        value, count = held_out_loss(session.model, session.held, micro_batch=session.micro_batch, pad=session.pad_id,
                                     device=session.plan.device)
        self.emit(ev.Eval(step=session.step, eval_loss=value, eval_tokens=count))
        return value

    def _save(self, session: Session) -> Path:
        """Checkpoint the current step (once: a pause or stop right after a scheduled save reuses it)."""
        if session.saved and session.saved[0] == session.step:
            return session.saved[1]
        tick = time.monotonic()
        meta = self.run.meta()
        state = TrainState(step=session.step, micro_batch_size=session.micro_batch, grad_accum=session.grad_accum,
                           threads=session.threads, config_sha256=meta["config_sha256"],
                           dataset_sha256=meta["dataset_sha256"], python_rng=random.getstate(),
                           train_loss=session.train_loss, eval_loss=session.eval_loss)
        path = save_checkpoint(self.run.checkpoints, session.step, session.model, session.optimizer, state,
                               self.config.train.keep_checkpoints)
        session.saved = (session.step, path)
        self.emit(ev.Checkpoint(step=session.step, path=str(path), seconds=round(time.monotonic() - tick, 2)))
        return path

    def _write_adapter(self, session: Session) -> None:
        staging = self.run.path / ".tmp-adapter"
        shutil.rmtree(staging, ignore_errors=True)  # a runner killed while writing it
        with staged(staging, adapter_bytes(session.trainable), "the final adapter"):
            session.model.save_pretrained(staging, safe_serialization=True)
            publish_dir(staging, self.run.adapter)


def _failed(run: RunDir) -> Callable[[BaseException], ev.Event]:
    """The error event a failing runner leaves: the message, the step it had reached and the
    checkpoint it can resume from."""
    def failure(exc: BaseException) -> ev.Event:
        last = latest_checkpoint(run.checkpoints)
        return ev.Error(message=str(exc) or type(exc).__name__, step=reached_step(read_events(run.events)),
                        last_checkpoint=str(last) if last else None)
    return failure


def reached_step(events: list[ev.Record]) -> int | None:
    """The step this runner had reached: its last `step` event, or the step it started from."""
    started = max((i for i, e in enumerate(events) if e["type"] == "run_started"), default=None)
    if started is None:
        return None
    steps = [e["step"] for e in events[started:] if e["type"] == "step"]
    return int(steps[-1] if steps else events[started]["start_step"])


def run_training(run: RunDir, echo: Echo | None = None) -> str:
    """Own the run, train it, and return its final state; SIGTERM asks for a checkpoint and a stop."""
    with owning(run, _failed(run), echo) as owner:
        owner.audit.append("runner_started", **who(), egress_guard=egress_guarded(), versions=versions())
        trainer = Trainer(owner)
        previous = signal.signal(signal.SIGTERM, lambda *_: setattr(trainer, "stop_signal", True))
        try:
            return trainer.train()
        finally:
            signal.signal(signal.SIGTERM, previous)
