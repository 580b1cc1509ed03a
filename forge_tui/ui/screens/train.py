"""Train: the run's settings as a form, checked as they are typed, then a detached launch.

Every change is validated at once by the config loader (in this process: no heavy imports); a valid
form is then checked as `forge-tui train --dry-run` would (dataset, device plan, memory estimate
against the device's memory) in a child process, half a second after the last keystroke. Launch runs
`forge-tui train --detach`: the runner lives in its own session, so closing this console, or losing
the SSH link, does not stop it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Header, Input, Label, Select, Static

from forge_tui.config import PRESETS, Config, load_config
from forge_tui.engine.children import Launched
from forge_tui.engine.memory import device_preset
from forge_tui.engine.models import list_models
from forge_tui.engine.preflight import MemoryBrief, Preflight
from forge_tui.engine.runs import RunDir
from forge_tui.errors import ForgeError
from forge_tui.ui.base import ForgeScreen
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.jobs import launch_training, map_arguments, preflight, stop_questions
from forge_tui.ui.screens.datasets import dataset_label
from forge_tui.ui.trainform import FIELDS, Checked, Field, check_form, field_doc, form_values
from forge_tui.units import about, gib

PREFLIGHT_DELAY = 0.5
DETACHED_NOTE = "The run goes on in its own process if this console closes or the SSH link drops; reopen to attach."


def memory_markup(memory: MemoryBrief) -> str:
    """'5.5 of 22.9 GiB' with a bar, coloured by the verdict."""
    colour = {"ok": "$success", "warn": "$warning", "fail": "$error"}[memory.verdict]
    share = min(1.0, memory.total / max(1, memory.available))
    bar = "█" * round(20 * share) + "░" * (20 - round(20 * share))
    return (f"memory [{colour}]{gib(memory.total)}[/] of {gib(memory.available)} GiB available\n"
            f"[{colour}]{bar}[/] {memory.verdict}")


def plan_markup(found: Preflight) -> str:
    plan = found.plan
    lines = []
    if plan:
        extras = [x for x, on_ in (("4-bit NF4", plan.quantized), ("checkpointed", plan.checkpointing),
                                   ("compiled", plan.compiled)) if on_]
        lines.append(f"device {plan.device} {plan.dtype}" + (f", {', '.join(extras)}" if extras else ""))
    if found.memory:
        lines.append(memory_markup(found.memory))
    if found.eta:
        lines.append(f"time [b]{about(found.eta.seconds)}[/b] on this device")
    elif found.eta_note:
        lines.append(f"time unknown: {escape(found.eta_note)}")
    data = found.dataset
    lines.append(f"dataset {data.samples} samples: {data.split['train']} train / {data.split['eval']} eval")
    if data.findings:
        kinds = ", ".join(f"{count} {kind}" for kind, count in data.findings.items())
        lines.append(f"[$warning]screening: {escape(kinds)}[/]; read them on Datasets (1) before launching")
    return "\n".join(lines)


class TrainScreen(ForgeScreen):
    """Settings for a new run, and its launch."""

    AUTO_FOCUS = None  # the screen keys (1-5) work until a field is entered (tab)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "launch", "Launch", id="train.launch", priority=True),
        Binding("escape", "leave_field", "Leave field", id="train.leave"),
        Binding("ctrl+r", "reset", "Preset values", id="train.reset", priority=True),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.dataset: Path | None = None
        self.checked: Checked | None = None
        self.found: Preflight | None = None    # the last dry run's answer, for the form as it is now
        self.launching = False
        self._pending: Timer | None = None
        self.initial_preset, self.preset_why = device_preset()
        self.measuring = False
        self.measured: Checked | None = None    # the form the last probe was for

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="train-body"):
            with VerticalScroll(id="train-form"):
                yield Static("", id="train-dataset")
                yield self._row(Field("preset", "preset", tuple(PRESETS)), self.initial_preset)
                yield Static(self.preset_why, id="train-preset-why")
                values = self._initial_values()
                for field in FIELDS:
                    yield self._row(field, values[field.key])
            with Vertical(id="train-side"):
                yield Static("", id="train-plan")
                yield Static("", id="train-problems")
                yield Button("Launch  ctrl+l", id="launch", variant="primary", compact=True)
                yield Static(DETACHED_NOTE, id="train-note")
                yield Static("", id="train-help")
        yield footer()

    def _initial_values(self) -> dict[str, str]:
        """The form under the device's preset; the console's own config if its file no longer loads
        (edited since the console started: the form's check then says what is wrong)."""
        try:
            return form_values(load_config(self.config.source, self.initial_preset))
        except ForgeError:
            return form_values(self.config)

    def _row(self, field: Field, value: str) -> Horizontal:
        if field.key == "model.name":
            names = [m.name for m in list_models(self.config.models.paths)]
            choices = names if value in names else [value, *names]
            widget: Input | Select[str] = Select([(n, n) for n in choices], value=value, allow_blank=False,
                                                 compact=True, id=field.id)
        elif isinstance(field.kind, tuple):
            widget = Select([(c, c) for c in field.kind], value=value, allow_blank=False, compact=True, id=field.id)
        else:
            widget = Input(value, compact=True, id=field.id, type="integer" if field.kind is int else "text")
        return Horizontal(Label(field.label, classes="field-label"), widget, classes="field-row")

    def on_mount(self) -> None:
        self.sub_title = nav("train")

    def on_screen_resume(self) -> None:
        chosen = self.console.dataset
        if chosen != self.dataset or self.checked is None:
            self.dataset = chosen
            label = escape(dataset_label(chosen)) if chosen else "none: pick one on Datasets (1)"
            self.query_one("#train-dataset", Static).update(f"[b]dataset[/b] {label}")
            self.revalidate()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """The focused setting's documentation under the plan."""
        fields = {f.id: f for f in FIELDS}
        field = fields.get(event.widget.id or "")
        self.query_one("#train-help", Static).update(f"{field.label}: {escape(field_doc(field.key))}" if field else "")

    # ------------------------------------------------------------------ checking
    def _field(self, field: Field) -> Input | Select[str]:
        return self.query_one(f"#{field.id}", Input | Select)  # type: ignore[arg-type]

    def values(self) -> dict[str, str]:
        return {field.key: str(self._field(field).value) for field in FIELDS}

    def preset(self) -> str:
        return str(self.query_one("#f-preset", Select).value)

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event: Input.Changed | Select.Changed) -> None:
        if event.control.id == "f-preset":
            self.action_reset()
        else:
            self.revalidate()

    def action_reset(self) -> None:
        """Every field back to the preset's value (under the config file)."""
        try:
            values = form_values(load_config(self.config.source, self.preset()))
        except ForgeError as exc:
            self._show_problems([str(exc)])
            return
        for field in FIELDS:
            self._field(field).value = values[field.key]
        self.revalidate()

    def revalidate(self) -> None:
        """Check the form now; schedule the dry run once typing pauses."""
        self.checked = checked = check_form(self.values(), self.config.source, self.preset())
        self.found = None
        for field in FIELDS:
            row = self._field(field).parent
            if isinstance(row, Horizontal):
                row.set_class(field.key in checked.errors, "invalid")
        problems = [f"{f.label}: {checked.errors[f.key]}" for f in FIELDS if f.key in checked.errors] + checked.general
        if self.dataset is None:
            problems.append("no dataset chosen: pick one on Datasets (1)")
        self._show_problems(problems)
        self.query_one("#train-plan", Static).update("")
        if self._pending is not None:
            self._pending.stop()
        dataset = self.dataset
        if checked.ok and dataset is not None:
            self.query_one("#train-plan", Static).update("checking dataset, device and memory ...")
            self._pending = self.set_timer(PREFLIGHT_DELAY, lambda: self.dry_run(dataset, checked, self.preset()))

    def _show_problems(self, problems: list[str], *, blocking: bool = True) -> None:
        """List what is wrong; `blocking` problems (the form's, the dry run's) disable the launch."""
        text = "\n".join(f"[$error]•[/] {escape(p)}" for p in problems)
        self.query_one("#train-problems", Static).update(text)
        self.query_one("#launch", Button).disabled = (blocking and bool(problems)) or self.launching

    @work(thread=True, exclusive=True, group="preflight", exit_on_error=False, description="the dry run")
    def dry_run(self, dataset: Path, checked: Checked, preset: str) -> None:
        self.settle(lambda: preflight(self.config, dataset, preset, self._arguments(checked, dataset)),
                    lambda found: self._show_found(checked, found),
                    lambda reason: self._check_failed(checked, reason))

    def _arguments(self, checked: Checked, dataset: Path) -> list[str]:
        """The form's settings, and the column mapping chosen for this dataset on Datasets."""
        return checked.settings() + map_arguments(self.console.mappings.get(dataset, {}))

    def _show_found(self, checked: Checked, found: Preflight) -> None:
        if checked is not self.checked:
            return  # the form changed while this was checked
        self.found = found
        self.query_one("#train-plan", Static).update(plan_markup(found))
        self._show_problems(found.problems)
        if found.ok and found.eta is None and self.dataset is not None and not self.measuring and checked is not self.measured:
            self.measuring, self.measured = True, checked   # one probe at a time, once for a form
            waiting = dataclasses.replace(found, eta_note=None)
            self.query_one("#train-plan", Static).update(plan_markup(waiting) + "\ntime: measuring this device ...")
            self.measure(self.dataset, checked, self.preset())

    @work(thread=True, group="probe", exit_on_error=False, description="measuring this device's speed")
    def measure(self, dataset: Path, checked: Checked, preset: str) -> None:
        """The dry run again with the speed probe (~30 s on a 2-core CPU for the quick preset); its
        speeds are cached, so the form's next checks say the time at once."""
        def measured(found: Preflight) -> None:
            """Only the plan is shown again (with its time): the problems shown meanwhile (a launch's
            refusal) stay."""
            self.measuring = False
            if checked is self.checked:
                self.found = found
                self.query_one("#train-plan", Static).update(plan_markup(found))
            elif self.checked is not None and self.checked.ok and not self.launching:
                self.revalidate()   # the form changed meanwhile: check it as it is now

        def failed(reason: str) -> None:
            self.measuring = False
            if checked is self.checked and self.found is not None and not self.launching:
                self.query_one("#train-plan", Static).update(plan_markup(self.found) + f"\ntime unknown: {escape(reason)}")

        self.settle(lambda: preflight(self.config, dataset, preset, self._arguments(checked, dataset), probe=True),
                    measured, failed)

    def _check_failed(self, checked: Checked, reason: str) -> None:
        if checked is self.checked:
            self.query_one("#train-plan", Static).update("")
            self._show_problems([f"the check failed: {reason}"])

    # ------------------------------------------------------------------ launching
    def action_leave_field(self) -> None:
        self.set_focus(None)

    @on(Button.Pressed, "#launch")
    def action_launch(self) -> None:
        checked, dataset = self.checked, self.dataset
        if self.launching or checked is None or not checked.ok or dataset is None:
            self.notify("fix the marked settings first" if dataset else "pick a dataset first (1)", severity="warning")
            return
        if self.found is not None and not self.found.ok:
            self.notify("this run cannot start: " + self.found.problems[0], severity="error")
            return
        self.launching = True
        self.query_one("#launch", Button).disabled = True
        self.query_one("#train-note", Static).update("launching ...")
        if self.measuring:
            stop_questions("probe")   # the run is the measurement now: a probe beside it would only slow it
        self.launch(dataset, checked, self.preset())

    @work(thread=True, group="launch", exit_on_error=False, description="the launch")
    def launch(self, dataset: Path, checked: Checked, preset: str) -> None:
        self.settle(lambda: launch_training(self.config, dataset, preset, self._arguments(checked, dataset)),
                    self._launched, self._launch_failed)

    def _launched(self, launched: Launched) -> None:
        self._launch_over()
        run = RunDir(Path(launched.run))
        self.notify(f"{run.name} started in its own process (pid {launched.pid})", title="Launched")
        self.console.attach(run)

    def _launch_failed(self, reason: str) -> None:
        self._launch_over()
        self._show_problems([f"launch refused: {reason}"], blocking=False)  # the operator may try again

    def _launch_over(self) -> None:
        """The launch key works again, whatever became of the launch."""
        self.launching = False
        self.query_one("#train-note", Static).update(DETACHED_NOTE)
        self.query_one("#launch", Button).disabled = False
