"""`train --dry-run`: everything a run would check before it starts, and nothing created.

The answer is a `Preflight` record: the dataset's check, the device plan, the memory estimate against
the device's memory, and every reason the run could not start. `train --dry-run --json` prints it and
the console's Train screen reads it back with `Preflight.from_json`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_tui.config import Config
from forge_tui.engine.eta import Estimate
from forge_tui.engine.plan import Plan
from forge_tui.engine.screening import WARNING
from forge_tui.errors import ForgeError

if TYPE_CHECKING:
    from forge_tui.engine.datacheck import CheckReport
    from forge_tui.engine.sample import Sample


@dataclass(frozen=True)
class DatasetBrief:
    """What the dry run says of the dataset."""

    path: str
    samples: int
    problem_count: int
    split: dict[str, int]                                       # train / eval sample counts
    findings: dict[str, int] = field(default_factory=dict)      # screening warnings by kind (not the information)


@dataclass(frozen=True)
class MemoryBrief:
    """The memory estimate against what the device has; verdict ok | warn | fail."""

    verdict: str
    total: int
    available: int
    describe: str


@dataclass(frozen=True)
class Preflight:
    ok: bool
    problems: list[str]
    dataset: DatasetBrief
    plan: Plan | None
    memory: MemoryBrief | None
    eta: Estimate | None = None
    eta_note: str | None = None     # why there is no estimate

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Preflight:
        plan, memory, eta = record.get("plan"), record.get("memory"), record.get("eta")
        return cls(ok=bool(record["ok"]), problems=[str(p) for p in record["problems"]],
                   dataset=DatasetBrief(**record["dataset"]),
                   plan=Plan.from_json(plan) if plan else None, memory=MemoryBrief(**memory) if memory else None,
                   eta=Estimate(**eta) if eta else None, eta_note=record.get("eta_note"))


def _model_folder(config: Config) -> Path | None:
    """The model's folder, to check the data against its chat template (None when it is not there:
    the plan's own check reports that)."""
    from forge_tui.engine.models import resolve_model

    try:
        return resolve_model(config.model.name, config.models.paths)
    except ForgeError:
        return None


# Samples the dry run tokenizes to size the memory estimate (about 6 s on 2 cores): the Train screen
# runs it again after every change to the form. Past them, a sample counts as max_seq_len long.
COUNTED_SAMPLES = 5_000


class LengthCounter:
    """The check's token counting: each sample's length for the first COUNTED_SAMPLES, max_seq_len
    (the memory estimate's worst case) for the rest. It keeps the lengths per split, as training
    will meet them (cut at max_seq_len; None past the counted ones), for the time estimate: the
    samples are tokenized once per dry run."""

    def __init__(self, config: Config, tokenizer: Any) -> None:
        from forge_tui.engine.tokens import token_counter

        self.count, self.data = token_counter(tokenizer), config.data
        self.train: list[int | None] = []
        self.held: list[int | None] = []

    def __call__(self, sample: Sample) -> int:
        from forge_tui.engine.datacheck import in_eval_split, sample_key

        counted = len(self.train) + len(self.held) < COUNTED_SAMPLES
        length = self.count(sample) if counted else self.data.max_seq_len
        side = self.held if in_eval_split(sample_key(sample), self.data.eval_fraction) else self.train
        side.append(min(length, self.data.max_seq_len) if counted else None)
        return length


def _longest(config: Config, report: CheckReport, tokenizer: Any) -> int | None:
    """The longest sample training can meet, in tokens (the dataset's or a rehearsal row); None when
    the lengths are not known (no model to count with)."""
    from forge_tui.engine.rehearsal import longest_rehearsal

    if report.lengths is None or tokenizer is None:
        return None
    return max(report.lengths.max, longest_rehearsal(config.data, tokenizer))


def _eta(config: Config, dataset: Path, plan: Plan, model: Path | None, tokenizer: Any, counted: LengthCounter | None,
         may_probe: bool) -> tuple[Estimate | None, str | None]:
    """The run's time on this device, or why it is not known; a probe that fails (out of memory on
    the GPU, say) costs the dry run its estimate, never its verdict."""
    from forge_tui.engine.eta import forecast

    if model is None or counted is None:
        return None, "no estimate: the model is not here"
    configured = dataclasses.replace(config, train=dataclasses.replace(config.train, dataset=str(dataset)))
    try:
        found = forecast(configured, plan, model, tokenizer, (counted.train, counted.held), may_probe=may_probe)
    except Exception as exc:  # noqa: BLE001 - the estimate is advice: the run's own checks stand
        return None, f"no estimate: the speed probe failed ({type(exc).__name__}: {str(exc)[:120]})"
    return found, None if found else "no estimate: this shape was never measured here (a dry run without --no-probe measures it)"


def preflight(config: Config, dataset: Path, *, may_probe: bool = True) -> Preflight:
    """What `train --dry-run` reports (and the Train screen shows): with no problem, the run's time
    on this device too (`may_probe`: measure the speeds when they are not cached)."""
    from forge_tui.engine.datacheck import check_configured
    from forge_tui.engine.doctor import memory_estimate
    from forge_tui.engine.memory import refusal
    from forge_tui.engine.models import load_tokenizer

    problems: list[str] = []
    model = _model_folder(config)
    tokenizer = load_tokenizer(model) if model else None
    counted = LengthCounter(config, tokenizer) if tokenizer is not None else None
    report = check_configured([dataset], config.data, model=model, token_length=counted)
    problems += [str(p) for p in report.problems]
    hidden = report.problem_count - len(report.problems)
    if hidden:
        problems.append(f"... and {hidden} more dataset problems")
    plan = memory = None
    try:
        plan, found, advised = memory_estimate(config, _longest(config, report, tokenizer))
    except ForgeError as exc:
        problems.append(str(exc))
    else:
        memory = MemoryBrief(found.verdict, found.total, found.available, found.describe())
        if advised:
            problems.append(refusal(found, advised))
    brief = DatasetBrief(str(dataset), report.samples, report.problem_count, report.split, report.finding_kinds(WARNING))
    eta, eta_note = _eta(config, dataset, plan, model, tokenizer, counted, may_probe) if plan is not None and not problems else (None, None)
    return Preflight(ok=not problems, problems=problems, dataset=brief, plan=plan, memory=memory, eta=eta, eta_note=eta_note)
