"""One device's part of a fleet round: the trainer it already has, from the global adapter, for the
coordinator's number of local steps, on its own data, in an ordinary run directory of its own
(events, audit trail, checkpoints, thermal guard). What it returns is tensors and numbers only.

NODE_DIR/
  node.json          the node's name, dataset and SuperLink (written by `fleet join` / `fleet local`)
  audit.jsonl        every global adapter received and every update sent (round, SHA-256, bytes, where)
  rounds/round-NNNN  one run directory per round it trained
  supernode.log      the SuperNode's output
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_tui.config import Config, config_from_sections, load_config
from forge_tui.engine.audit import AuditLog, who
from forge_tui.engine.events import Record, read_events
from forge_tui.engine.models import model_sha256, resolve_model
from forge_tui.engine.rehearsal import ANSWERS_FILE
from forge_tui.engine.runs import RunDir, create_run
from forge_tui.engine.train import run_training
from forge_tui.fleet.wire import Arrays, read_adapter, summary

# The train settings the coordinator decides for every node (the adapter they share must be trained
# alike); micro-batch, threads and the thermal guard stay each device's own.
COORDINATED_TRAIN = ("learning_rate", "warmup_ratio", "min_lr_ratio", "weight_decay", "max_grad_norm", "grad_accum", "seed")
COORDINATED_DATA = ("max_seq_len", "eval_fraction")


class RoundRefused(Exception):
    """A round this node could not deliver. The message is a short reason word (`heat`, `model`,
    `failed`), the only text a node lets Flower carry back; the details stay in the node's files."""


@dataclass(frozen=True)
class NodePlace:
    """Where one node keeps its data and its records."""

    folder: Path
    dataset: Path
    config_file: Path | None
    superlink: str
    preset: str | None = None     # the node's preset, under its config file
    threads: int = 0              # torch threads, when the node shares its machine (a local fleet); 0: its config's

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> NodePlace:
        config_file = str(node_config.get("config", ""))
        return cls(folder=Path(str(node_config["node-dir"])), dataset=Path(str(node_config["dataset"])),
                   config_file=Path(config_file) if config_file else None, superlink=str(node_config.get("superlink", "")),
                   preset=str(node_config.get("preset", "")) or None, threads=int(str(node_config.get("threads", 0))))

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.folder / "audit.jsonl")

    @property
    def rounds(self) -> Path:
        return self.folder / "rounds"

    def remember_id(self, node_id: int) -> None:
        """The id Flower gave this node (the coordinator's events name nodes by it)."""
        (self.folder / "node-id").write_text(str(node_id))

    def round_folder(self, round_number: int) -> Path:
        """This round's run directory (a round retried after a crash gets a fresh one)."""
        base = self.rounds / f"round-{round_number:04d}"
        attempt, folder = 1, base
        while folder.exists() and any(folder.iterdir()):
            attempt += 1
            folder = base.with_name(f"{base.name}-{attempt}")
        return folder


def coordinator_sections(config: Config) -> dict[str, Any]:
    """What the coordinator sends each round: the model, the adapter's shape, the shared settings."""
    sections = config.sections()
    return {"model": sections["model"], "lora": sections["lora"],
            "train": {key: sections["train"][key] for key in COORDINATED_TRAIN},
            "data": {key: sections["data"][key] for key in COORDINATED_DATA}}


def round_config(place: NodePlace, coordinator: Mapping[str, Any], round_number: int, steps: int) -> Config:
    """This node's config with the coordinator's model, adapter and shared settings, for `steps`
    steps of this round (its own seed per round, so each round draws different batches)."""
    node = load_config(place.config_file, place.preset)
    sections = node.sections()
    sections["model"] = dict(coordinator["model"])
    sections["lora"] = dict(coordinator["lora"])
    sections["data"].update(coordinator["data"])
    sections["train"].update(coordinator["train"])
    sections["train"].update(dataset=str(place.dataset), max_steps=steps, seed=int(coordinator["train"]["seed"]) + round_number,
                             eval_every=0, save_every=0, keep_checkpoints=1)
    if place.threads:
        sections["train"]["threads"] = place.threads
    sections["runs"]["dir"] = str(place.rounds)
    return config_from_sections(sections, place.folder / "node.json", node.preset)


def _check_model(config: Config, expected_sha256: str) -> None:
    if model_sha256(resolve_model(config.model.name, config.models.paths)) != expected_sha256:
        raise RoundRefused("model")


def _rehearsal_inputs(run: RunDir) -> tuple[Any, ...]:
    """What the base model's rehearsal answers depend on: the model, the rehearsal set and settings."""
    sections = run.config().sections()
    return (sections["model"], {k: v for k, v in sections["data"].items() if k.startswith("rehearsal")},
            run.dataset().get("rehearsal"), _created_model(run))


def _created_model(run: RunDir) -> str | None:
    first = run.audit.read_text(encoding="utf-8").splitlines()[:1]
    return json.loads(first[0]).get("model_sha256") if first else None


def _reuse_rehearsal_answers(earlier: list[RunDir], run: RunDir) -> None:
    """The base model's answers to the rehearsal questions are the same every round: copied from the
    last earlier round that made them from the same model and rehearsal set (a node folder may have
    served another fleet) instead of generated again."""
    wanted = _rehearsal_inputs(run)
    for previous in reversed(earlier):
        answers = previous.path / ANSWERS_FILE
        if answers.is_file() and _rehearsal_inputs(previous) == wanted:
            shutil.copyfile(answers, run.path / ANSWERS_FILE)
            return


def _last(events: list[Record], kind: str) -> Record:
    return next((e for e in reversed(events) if e["type"] == kind), {})


def train_round(place: NodePlace, round_number: int, arrays: Arrays, coordinator: Mapping[str, Any], steps: int,
                model_sha: str) -> tuple[Arrays, dict[str, float]]:
    """Train one round from `arrays` (empty in round 1: every node draws the same seeded adapter) and
    return the new adapter and the round's numbers, `start-eval-loss` among them: the held-out loss
    of the adapter it received (the trainer measures it before its first step), which is how the
    coordinator learns the previous round's global eval loss without a round trip of its own. The
    update is audited before it leaves."""
    config = round_config(place, coordinator, round_number, steps)
    _check_model(config, model_sha)
    earlier = round_runs(place)
    run = create_run(config, place.dataset, place.round_folder(round_number))
    _reuse_rehearsal_answers(earlier, run)
    place.audit.append("global_adapter_received", round=round_number, source=place.superlink, **summary(arrays))
    if arrays:
        from safetensors.numpy import save_file

        save_file(arrays, str(run.start_adapter))
    outcome = run_training(run)
    events = read_events(run.events)
    if outcome != "finished":
        stopped = _last(events, "stopped").get("reason", "")
        raise RoundRefused("heat" if str(stopped).startswith("thermal") else "failed")
    update = read_adapter(run.adapter)
    finished, started = _last(events, "finished"), _last(events, "run_started")
    first_eval = next((e for e in events if e["type"] == "eval"), finished)
    headroom = started.get("thermal_headroom_c")
    metrics = {"num-examples": int(started.get("train_samples", 0)), "eval-examples": int(started.get("eval_samples", 0)),
               "train-loss": float(finished.get("train_loss") or 0.0),
               "eval-loss": float(finished.get("eval_loss") or 0.0), "start-eval-loss": float(first_eval.get("eval_loss") or 0.0),
               "thermal-headroom-c": float(-1 if headroom is None else headroom), "seconds": float(finished.get("seconds", 0.0))}
    place.audit.append("update_sent", round=round_number, destination=place.superlink, run=run.name, **summary(update),
                       metrics=metrics)
    return update, metrics


def evaluate_round(place: NodePlace, round_number: int, arrays: Arrays, coordinator: Mapping[str, Any]) -> dict[str, float]:
    """The global adapter's loss on this node's held-out split (nothing is trained or kept)."""
    import torch

    from forge_tui.engine.checkpoint import put_adapter_tensors
    from forge_tui.engine.generation import pad_id
    from forge_tui.engine.models import load_tokenizer
    from forge_tui.engine.plan import add_adapter, load_for_training, resolve_plan
    from forge_tui.engine.train import held_out_loss, split_encoded

    config = round_config(place, coordinator, round_number, 1)
    plan = resolve_plan(config)
    model_dir = resolve_model(config.model.name, config.models.paths)
    tokenizer = load_tokenizer(model_dir)
    _, held, _ = split_encoded(config, tokenizer)
    place.audit.append("global_adapter_received", round=round_number, source=place.superlink, phase="evaluate", **summary(arrays))
    if not held:
        return {"num-examples": 0, "eval-examples": 0, "eval-loss": 0.0}
    model = add_adapter(load_for_training(model_dir, plan), config)
    if put_adapter_tensors(model, {name: torch.from_numpy(array.copy()) for name, array in arrays.items()}):
        raise RoundRefused("model")  # tensors this node's adapter does not have: another model or adapter shape
    loss, tokens = held_out_loss(model, held, micro_batch=config.train.micro_batch_size, pad=pad_id(tokenizer), device=plan.device)
    place.audit.append("evaluated", round=round_number, eval_loss=loss, eval_tokens=tokens, examples=len(held))
    return {"num-examples": len(held), "eval-examples": len(held), "eval-loss": loss}


def write_node_record(place: NodePlace, name: str) -> None:
    """node.json: what `fleet status` and the console show of this node."""
    place.folder.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "dataset": str(place.dataset.resolve()), "superlink": place.superlink, "created": time.time()}
    (place.folder / "node.json").write_text(json.dumps(record, indent=2))
    place.audit.append("node_started", **who(), name=name, dataset=record["dataset"], superlink=place.superlink)


def round_runs(place: NodePlace) -> list[RunDir]:
    return [RunDir(path) for path in sorted(place.rounds.glob("round-*")) if (path / "run.json").is_file()]
