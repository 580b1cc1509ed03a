"""The training loop: setup, train, save_checkpoint, finish. It speaks through events only.

CUDA: 4-bit NF4 QLoRA through bitsandbytes (double quantisation, bf16 compute) with gradient
checkpointing. CPU: fp32 LoRA (bf16 matmuls are ~25x slower on CPUs without native bf16). What runs
is stated in the run_started event. AdamW over the adapter, linear warm-up then cosine (a pure
function of the step, so resuming needs no scheduler state), token-weighted gradient accumulation,
eval loss on the held-out split, one seed for everything.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from forge_tui.config import Config
from forge_tui.engine import events as ev
from forge_tui.engine.audit import AuditLog, record_event, versions, who
from forge_tui.engine.batches import Encoded, batch_at, collate, encode_for_training, micro_batches, steps_per_epoch
from forge_tui.engine.checkpoint import TrainState, latest_checkpoint, restore, save_checkpoint
from forge_tui.engine.data import Message, Sample, load_samples
from forge_tui.engine.generation import generate, pad_id
from forge_tui.engine.loss import base_model, token_loss_sum
from forge_tui.engine.datacheck import in_eval_split, sample_key
from forge_tui.engine.fsutil import publish_dir, write_durably
from forge_tui.engine.memory import MemoryEstimate, estimate
from forge_tui.engine.models import describe_directory, load_causal_lm, load_tokenizer, resolve_model
from forge_tui.engine.runs import RunDir, RunnerLock, rehearsal_file
from forge_tui.engine.telemetry.guard import Decision
from forge_tui.engine.telemetry.watch import ThermalWatch
from forge_tui.errors import BadInput, ForgeError
from forge_tui.offline import Attempt, egress_guarded, on_refused


@dataclass(frozen=True)
class Plan:
    """How this machine will run the config: resolved from the `auto` settings."""

    device: str
    quantized: bool
    dtype: str
    checkpointing: bool
    compiled: bool = False

    @property
    def mode(self) -> str:
        return "qlora-nf4" if self.quantized else "lora"

    @property
    def precision(self) -> str:
        precision = f"nf4 weights, {self.dtype} compute" if self.quantized else self.dtype
        return precision + (", compiled" if self.compiled else "")


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
    step: int = 0
    train_loss: float | None = None
    eval_loss: float | None = None
    step_times: list[float] = field(default_factory=list)
    saved: tuple[int, Path] | None = None   # the step and folder of the newest checkpoint this session wrote

    @cached_property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(e.input_ids) for e in self.train)


def resolve_plan(config: Config) -> Plan:
    import torch

    model = config.model
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if model.device == "auto" else model.device
    if device == "cuda" and not cuda:
        raise BadInput("[model] device = cuda, but torch sees no CUDA device")
    quantized = model.quantization == "nf4" or (model.quantization == "auto" and device == "cuda")
    dtype = ("bf16" if device == "cuda" else "fp32") if model.compute_dtype == "auto" else model.compute_dtype
    checkpointing = model.gradient_checkpointing == "on" or (model.gradient_checkpointing == "auto" and device == "cuda")
    compiled = model.compile == "on" or (model.compile == "auto" and device == "cuda" and has_triton())
    return Plan(device, quantized, dtype, checkpointing, compiled)


def get_lr(step: int, total: int, config: Config) -> float:
    """Linear warm-up to the peak, then cosine down to min_lr_ratio x peak."""
    train = config.train
    warmup = int(train.warmup_ratio * total)
    if step < warmup:
        return train.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = train.min_lr_ratio * train.learning_rate
    return floor + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (train.learning_rate - floor)


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def load_base(path: Path, plan: Plan) -> Any:
    """The base model as the plan says: NF4 4-bit (bitsandbytes) or plain weights, on its device."""
    if plan.quantized:
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch_dtype(plan.dtype))
        device_map = {"": 0} if plan.device == "cuda" else {"": "cpu"}
        return load_causal_lm(path, quantization_config=quant, dtype=torch_dtype(plan.dtype), device_map=device_map)
    return load_causal_lm(path, dtype=torch_dtype(plan.dtype)).to(plan.device)


def load_for_training(path: Path, plan: Plan) -> Any:
    """The base model ready for an adapter: frozen, checkpointed as planned, in train mode.

    No `prepare_model_for_kbit_training`: it upcasts norms, embeddings and head to fp32, which puts
    the whole residual stream and attention in fp32 (twice the activation memory, no bf16 attention
    kernels). Here compute stays in the plan's dtype; the adapter's own weights are fp32 (peft's
    default), so its updates keep their precision.
    """
    model = load_base(path, plan)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if plan.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()  # from_pretrained returns eval mode; checkpointing is silently off in it
    return model


def has_triton() -> bool:
    """Inductor's GPU code generator; some Jetson torch builds ship without it."""
    return importlib.util.find_spec("triton") is not None


def compile_layers(model: Any) -> None:
    """torch.compile each decoder layer with dynamic shapes (batch lengths vary). The layers share
    one code object and their parameters are graph inputs, so one compile serves them all; it
    fuses the norms, activations and casts between the matmuls, and cuts the Python overhead of
    the adapter's many small modules, which otherwise bounds a GPU step. A layer that fails to
    compile runs eagerly (suppress_errors) rather than ending the run."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    for layer in base_model(model).get_decoder().layers:
        layer.compile(dynamic=True)


def add_adapter(model: Any, config: Config) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.train.seed)  # the adapter's initial weights come from the seed
    lora = config.lora
    targets: Any = "all-linear" if list(lora.target_modules) == ["all-linear"] else list(lora.target_modules)
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=targets, task_type="CAUSAL_LM", bias="none")
    model = get_peft_model(model, peft_config)
    model.train()
    return model


REHEARSAL_BATCH = 16
REHEARSAL_TOKENS = 64


def distilled(encoded: Encoded) -> Encoded:
    """A self-distilled rehearsal row: scored by KL from the base model at every position, prompt
    included, so the adapter is held to the base model's reading of general text, not only to its
    answers."""
    return replace(encoded, labels=encoded.input_ids, distill=True)


def whole_sentences(text: str) -> str:
    """An answer cut off by the token limit, trimmed back to its last complete sentence."""
    text = text.strip()
    if not text or text[-1] in ".!?":
        return text
    end = max(text.rfind(mark) for mark in ".!?")
    return text[: end + 1] if end >= 8 else text


def peak_memory(device: str) -> int:
    import resource

    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


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


class Trainer:
    """One run's training, from a fresh start or its latest complete checkpoint."""

    def __init__(self, run: RunDir, log: ev.EventLog, *, echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.run = run
        self.log = log
        self.echo = echo
        self.config = run.config()
        self.audit = AuditLog(run.audit)
        self.stop_signal = False

    # ----------------------------------------------------------------- events
    def emit(self, event: ev.Event) -> None:
        record = self.log.emit(event)
        record_event(self.audit, record)
        if self.echo:
            self.echo(record)

    # ----------------------------------------------------------------- setup
    def _split(self, tokenizer: Any) -> tuple[list[Encoded], list[Encoded]]:
        config = self.config
        samples = load_samples(Path(config.train.dataset), config.data.max_record_mib * 1024 * 1024)
        train, held = [], []
        for sample in samples:
            (held if in_eval_split(sample_key(sample), config.data.eval_fraction) else train).append(
                encode_for_training(tokenizer, sample, config.data.max_seq_len))
        truncated = sum(e.truncated for e in train + held)
        if truncated:
            self.emit(ev.Warning(f"{truncated} sample(s) longer than max_seq_len {config.data.max_seq_len} were truncated"))
        if not train:
            raise BadInput(f"{config.train.dataset}: no training samples left after the eval split")
        return train, held

    def _rehearsal(self, tokenizer: Any, model: Any, device: str, domain: int) -> list[Encoded]:
        """General conversations making up `rehearsal_share` of the training split (the set repeated
        in file order as needed), against forgetting what the base model knew."""
        data = self.config.data
        path = rehearsal_file(data.rehearsal)
        if path is None or domain == 0:
            return []
        samples = load_samples(path, data.max_record_mib * 1024 * 1024)
        self_distilled = data.rehearsal_answers == "base"
        if self_distilled:
            samples = self._distilled(samples, model, tokenizer, device)
        general = [encode_for_training(tokenizer, sample, data.max_seq_len) for sample in samples]
        general = [distilled(e) for e in general] if self_distilled else general
        count = round(domain * data.rehearsal_share / (1 - data.rehearsal_share))
        return [general[i % len(general)] for i in range(count)] if general else []

    def _distilled(self, samples: list[Sample], model: Any, tokenizer: Any, device: str) -> list[Sample]:
        """The rehearsal questions with the base model's own greedy answers (self-distillation: the
        run rehearses what the model already says, not new facts). Written once into the run
        directory, so a resumed run trains on exactly the same conversations."""
        cache = self.run.path / "rehearsal-answers.jsonl"
        if cache.is_file():
            answers = [json.loads(line)["answer"] for line in cache.read_text(encoding="utf-8").splitlines()]
        else:
            model.eval()
            with model.disable_adapter():
                answers = [answer for start in range(0, len(samples), REHEARSAL_BATCH)
                           for answer in generate(model, tokenizer, [s.as_dicts()[:-1] for s in samples[start:start + REHEARSAL_BATCH]],
                                                  device, REHEARSAL_TOKENS)]
            model.train()
            write_durably(cache, "".join(json.dumps({"answer": a}, ensure_ascii=False) + "\n" for a in answers))
        return [replace(sample, messages=(*sample.messages[:-1], Message("assistant", whole_sentences(answer))))
                for sample, answer in zip(samples, answers, strict=True) if answer.strip()]

    def total_steps(self, train_samples: int) -> int:
        t = self.config.train
        if t.max_steps:
            return t.max_steps
        return max(1, math.ceil(t.epochs * steps_per_epoch(train_samples, t.micro_batch_size * t.grad_accum)))

    def _check_memory(self, model_dir: Path, plan: Plan, longest: int) -> MemoryEstimate:
        """Refuse before loading when the estimate exceeds what the device has; the sequence length
        is the longest sample after truncation (the batches are never padded beyond it)."""
        info = describe_directory(model_dir)
        t = self.config.train
        found = estimate(model_dir, info.parameters or 0, device=plan.device, quantized=plan.quantized, dtype=plan.dtype,
                         r=self.config.lora.r, micro_batch=t.micro_batch_size, seq_len=longest,
                         checkpointing=plan.checkpointing)
        if found.total > found.available:
            raise BadInput(f"not enough memory: {found.describe()}; lower micro_batch_size or max_seq_len, or use 4-bit")
        if found.total > 0.85 * found.available:
            self.emit(ev.Warning(f"tight on memory: {found.describe()}"))
        return found

    # ----------------------------------------------------------------- the loop
    def train(self) -> str:
        """Run to the end, a stop request, a thermal stop or an error; returns the final state."""
        started = time.monotonic()
        session = self._setup()
        try:
            return self._loop(session, started)
        finally:
            self.watch.close()

    def _loop(self, session: Session, started: float) -> str:
        if session.held and session.step == 0:  # the starting point, so the fall of the eval loss shows
            session.eval_loss = self._evaluate(session)
        while session.step < session.total:
            if self._stop_asked():
                return self._stopped(session, self._save(session), "operator")
            decision = self.watch.check()
            if decision.action == "pause" and not self._pause(session, decision):
                return "stopped"
            self._train_step(session)
            if session.held and self._due(session, self.config.train.eval_every):
                session.eval_loss = self._evaluate(session)
            if self._due(session, self.config.train.save_every):
                self._save(session)
        self._write_adapter(session.model)
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
        outcome = self.watch.wait_until_cool(self._stop_asked)
        if outcome.action == "resume":
            self.emit(ev.Resumed(step=session.step, reason=outcome.reason, details=outcome.details))
            return True
        thermal = outcome.action == "stop"
        self._stopped(session, path, f"thermal guard: {outcome.reason}" if thermal else "operator",
                      outcome.details if thermal else None)
        return False

    @staticmethod
    def _due(session: Session, every: int) -> bool:
        return session.step == session.total or bool(every and session.step % every == 0)

    def _setup(self) -> Session:
        """Load data, model and adapter; restore the latest checkpoint if any; announce the run."""
        import torch

        config = self.config
        plan = resolve_plan(config)
        model_dir = resolve_model(config.model.name, config.models.paths)
        checkpoint = latest_checkpoint(self.run.checkpoints)
        threads = config.train.threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        random.seed(config.train.seed)
        tokenizer = load_tokenizer(model_dir)
        train, held = self._split(tokenizer)
        memory = self._check_memory(model_dir, plan, max(len(e.input_ids) for e in train + held))
        model = add_adapter(load_for_training(model_dir, plan), config)
        train = train + self._rehearsal(tokenizer, model, plan.device, len(train))
        if plan.compiled:
            compile_layers(model)  # after the rehearsal answers: generation runs uncompiled
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.train.learning_rate, weight_decay=config.train.weight_decay)
        session = Session(model=model, optimizer=optimizer, trainable=trainable, train=train, held=held, pad_id=pad_id(tokenizer),
                          plan=plan, threads=threads, total=self.total_steps(len(train)))
        self.micro_batch, self.grad_accum = config.train.micro_batch_size, config.train.grad_accum
        if checkpoint is not None:
            state = restore(checkpoint, model, optimizer)
            self._check_state(state, threads)
            session.step, session.train_loss, session.eval_loss = state.step, state.train_loss, state.eval_loss
            self.micro_batch, self.grad_accum = state.micro_batch_size, state.grad_accum
        self.watch = ThermalWatch(config)
        self.emit(ev.RunStarted(
            run=self.run.name, mode=plan.mode, device=torch.cuda.get_device_name(0) if plan.device == "cuda" else "cpu",
            precision=plan.precision, model=str(model_dir), total_steps=session.total, start_step=session.step,
            train_samples=len(train), eval_samples=len(held), effective_batch=self.micro_batch * self.grad_accum,
            threads=threads, trainable_parameters=sum(p.numel() for p in trainable),
            memory_estimate_bytes=memory.total, memory_available_bytes=memory.available, **self.watch.start_record()))
        self.watch.attach(lambda message: self.emit(ev.Warning(message, step=session.step)))
        return session

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
        recent = session.step_times[-20:]
        self.emit(ev.Step(step=session.step, total_steps=session.total,
                          epoch=round(session.step / steps_per_epoch(len(session.train), effective), 3),
                          loss=session.train_loss, lr=lr, tokens=tokens,
                          tokens_per_second=round(tokens / session.step_times[-1], 1),
                          eta_seconds=round(sum(recent) / len(recent) * (session.total - session.step), 1)))

    def _check_state(self, state: TrainState, threads: int) -> None:
        meta = self.run.meta()
        if state.config_sha256 != meta["config_sha256"] or state.dataset_sha256 != meta["dataset_sha256"]:
            raise BadInput(f"{self.run.path}: the latest checkpoint belongs to another config or dataset; refusing to resume")
        if state.threads != threads:
            self.emit(ev.Warning(f"resumed with {threads} threads where the run used {state.threads}: "
                                 "results will not be bit-identical to an uninterrupted run"))

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
                if self.micro_batch == 1:
                    raise ForgeError("out of memory at micro-batch 1: lower max_seq_len or use a smaller model; "
                                     "the last checkpoint is intact") from None
                self.micro_batch //= 2
                self.grad_accum *= 2
                self.emit(ev.Warning(f"CUDA out of memory: micro-batch halved to {self.micro_batch}, "
                                     f"gradient accumulation {self.grad_accum} (effective batch unchanged)", step=session.step))

    def _accumulate(self, session: Session, batch: list[Encoded]) -> tuple[float, int]:
        return train_batch(session.model, session.optimizer, session.trainable, batch, micro_batch=self.micro_batch,
                           device=session.plan.device, pad=session.pad_id, max_grad_norm=self.config.train.max_grad_norm,
                           kl_weight=self.config.data.rehearsal_weight)

    def _evaluate(self, session: Session) -> float:
        """Mean token loss on the held-out split, dropout off; consumes no random numbers."""
        import torch

        session.model.eval()
        total, count = 0.0, 0
        ordered = sorted(session.held, key=lambda e: len(e.input_ids))
        with torch.no_grad():
            for chunk in micro_batches(ordered, self.micro_batch):
                tensors = {k: v.to(session.plan.device) for k, v in collate(chunk, session.pad_id).items()}
                loss_sum, n = token_loss_sum(session.model, tensors)
                total, count = total + float(loss_sum), count + n
        session.model.train()
        value = total / max(1, count)
        self.emit(ev.Eval(step=session.step, eval_loss=value, eval_tokens=count))
        return value

    def _save(self, session: Session) -> Path:
        """Checkpoint the current step (once: a pause or stop right after a scheduled save reuses it)."""
        if session.saved and session.saved[0] == session.step:
            return session.saved[1]
        tick = time.monotonic()
        meta = self.run.meta()
        state = TrainState(step=session.step, micro_batch_size=self.micro_batch, grad_accum=self.grad_accum,
                           threads=session.threads, config_sha256=meta["config_sha256"],
                           dataset_sha256=meta["dataset_sha256"], python_rng=random.getstate(),
                           train_loss=session.train_loss, eval_loss=session.eval_loss)
        path = save_checkpoint(self.run.checkpoints, session.step, session.model, session.optimizer, state,
                               self.config.train.keep_checkpoints)
        session.saved = (session.step, path)
        self.emit(ev.Checkpoint(step=session.step, path=str(path), seconds=round(time.monotonic() - tick, 2)))
        return path

    def _write_adapter(self, model: Any) -> None:
        staging = self.run.path / ".tmp-adapter"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        publish_dir(staging, self.run.adapter)


def run_training(run: RunDir, echo: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Hold the run's lock, train, and record any failure as an error event (then re-raise)."""
    lock = RunnerLock(run)
    log = ev.EventLog(run.events)
    trainer = Trainer(run, log, echo=echo)
    trainer.audit.append("runner_started", **who(), egress_guard=egress_guarded(), versions=versions())
    stop_watching = on_refused(lambda attempt: _refused(trainer, attempt))
    previous = signal.signal(signal.SIGTERM, lambda *_: setattr(trainer, "stop_signal", True))
    try:
        return trainer.train()
    except BaseException as exc:
        last = latest_checkpoint(run.checkpoints)
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
        if not isinstance(exc, KeyboardInterrupt):
            trainer.emit(ev.Error(message=message, last_checkpoint=str(last) if last else None))
        raise
    finally:
        stop_watching()
        signal.signal(signal.SIGTERM, previous)
        log.close()
        lock.release()


def _refused(trainer: Trainer, attempt: Attempt) -> None:
    """An outgoing connection from inside the run (a library phoning home): in the audit trail, and
    in the event log for the operator."""
    trainer.audit.append("egress_refused", **attempt.to_json())
    trainer.emit(ev.Warning(message=f"refused an outgoing connection to {attempt.target} (from {attempt.caller})"))

