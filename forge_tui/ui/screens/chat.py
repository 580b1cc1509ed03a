"""Chat: ask the base and the tuned model the same questions and watch both answers stream side by side.

The model lives in a child process (`forge-tui chat RUN --serve`, engine/chat_child.py) that loads it
once; this screen writes questions to it and a thread worker reads its replies. The child exits when
this console does; if it dies, the screen says so and the next question starts a new one.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.events import Resize
from textual.widgets import Header, Input, Label, Static

from forge_tui.config import Config
from forge_tui.engine.chat import SIDES, Answer, Sampling
from forge_tui.engine.chat_child import Answered, ChatChild, Failed, Ready, Reply, Token
from forge_tui.engine.children import forge_argv
from forge_tui.engine.corrections import Correction
from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import list_runs, newest
from forge_tui.errors import BadInput, ForgeError
from forge_tui.paths import log_dir
from forge_tui.ui.base import ForgeScreen
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.screens.choice import ChoiceScreen
from forge_tui.ui.screens.correction import CorrectionScreen

NARROW = 100          # below this many columns the two answers stack
BASE_ONLY = "base"    # the model choice that is no run


def timing(answer: Answer) -> str:
    """'42 tokens · 21.3 tok/s · first token 0.31 s' (and why it stopped, unless at its end)."""
    rate = answer.tokens_per_second
    parts = [f"{answer.tokens} tokens", f"{rate:.1f} tok/s" if rate else "",
             f"first token {answer.first_token_seconds:.2f} s" if answer.first_token_seconds is not None else "",
             {"length": "cut at max tokens", "cancelled": "cancelled"}.get(answer.stopped, "")]
    return " · ".join(part for part in parts if part)


def sampling_from(temperature: str, top_p: str, max_new_tokens: str, seed: int) -> Sampling:
    """The settings row's text as Sampling; BadInput naming the field that is not a number in range."""
    try:
        values = float(temperature or 0), float(top_p or 1), int(max_new_tokens or 256)
    except ValueError:
        raise BadInput("temperature and top-p are numbers, max tokens a whole number") from None
    return Sampling(values[2], values[0], values[1], seed).checked()


class ChatScreen(ForgeScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel/leave", id="chat.cancel"),
        Binding("f2", "new", "New chat", id="chat.new"),
        Binding("c", "correct", "Correct", id="chat.correct"),
        Binding("m", "model", "Model", id="chat.model"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.run: RunDir | None = None
        self.chosen = False                    # a model was picked (or defaulted): no second default
        self.child: ChatChild | None = None
        self.ready: Ready | None = None
        self.asking: int | None = None
        self.histories: dict[str, list[dict[str, str]]] = {side: [] for side in SIDES}
        self.transcripts: dict[str, list[str]] = {side: [] for side in SIDES}
        self.pending: dict[str, str] = {}      # text of the answers being generated

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("choosing a model ...", id="chat-status")
        with Horizontal(id="chat-settings"):
            yield Label("system ")
            yield Input(placeholder="system prompt (optional)", id="chat-system", compact=True)
            yield Label(" temp ")
            yield Input("0", id="chat-temperature", compact=True)
            yield Label(" top-p ")
            yield Input("1", id="chat-top-p", compact=True)
            yield Label(" max ")
            yield Input("256", id="chat-max", compact=True)
        with Horizontal(id="chat-answers"):
            for side in SIDES:
                with VerticalScroll(id=f"chat-{side}-pane", classes="chat-pane"):
                    yield Static(f"[b]{side}[/b]", id=f"chat-{side}")
        yield Input(placeholder="ask a question, enter sends (escape cancels an answer, f2 starts over)", id="chat-question",
                    compact=True)
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("chat")

    def on_screen_resume(self) -> None:
        if not self.chosen:
            self.chosen = True
            self.pick_default()
        self.query_one("#chat-question").focus()

    def on_resize(self, event: Resize) -> None:
        self.query_one("#chat-answers").set_class(event.size.width < NARROW, "stacked")

    def on_unmount(self) -> None:
        self._close_child()

    # ------------------------------------------------------------------ the model
    @work(thread=True, exclusive=True, group="chat-pick", exit_on_error=False, description="choosing a model to chat with")
    def pick_default(self) -> None:
        """The attached run when it is finished; else the newest finished run; else the base model alone."""
        finished = self._finished_runs()
        attached = self.console.attached_run()
        run = attached if attached in finished else (finished[0] if finished else None)
        self.app.call_from_thread(self.use, run)

    def _finished_runs(self) -> list[RunDir]:
        """Finished runs, newest first (each run's log read: call from a thread worker)."""
        return [s.run for s in newest(list_runs(self.config)) if s.state == "finished"]

    def use(self, run: RunDir | None) -> None:
        """Chat with `run` (None: the base model alone); a new child, a new conversation."""
        self._close_child()
        self.run = run
        self.action_new()
        self._status(f"loading {run.name if run else 'the base model'} ...")
        argv = forge_argv(self.config.source, "chat", *([str(run.path)] if run else ["--base-only"]), "--serve")
        log_dir().mkdir(parents=True, exist_ok=True)
        self.child = ChatChild(argv, log_dir() / "chat-child.log")
        self.follow(self.child)

    @work(thread=True, group="chat-replies", exit_on_error=False, description="reading the chat process's answers")
    def follow(self, child: ChatChild) -> None:
        for reply in child.replies():
            self.app.call_from_thread(self._reply, child, reply)
        child.wait()
        self.app.call_from_thread(self._exited, child)

    def _close_child(self) -> None:
        child, self.child, self.ready, self.asking = self.child, None, None, None
        if child is not None:
            child.close()

    def _exited(self, child: ChatChild) -> None:
        if child is not self.child:
            return  # one this screen closed itself
        self.child, self.ready, self.asking = None, None, None
        self._status(f"the chat process exited: {child.last_error()}. m picks a model to start it again")

    # ------------------------------------------------------------------ replies
    def _reply(self, child: ChatChild, reply: Reply) -> None:
        if child is not self.child:
            return
        if isinstance(reply, Ready):
            self.ready = reply
            sides = " and ".join(reply.sides)
            self._status(f"{reply.name}: {sides} on {reply.device}, loaded in {reply.load_seconds:.1f} s. Ask below")
        elif isinstance(reply, Token) and reply.ask == self.asking:
            self.pending[reply.side] = self.pending.get(reply.side, "") + reply.text
            self._draw(reply.side)
        elif isinstance(reply, Answered) and reply.ask == self.asking:
            self._answered(reply.answer)
        elif isinstance(reply, Failed) and reply.ask in (self.asking, None):
            self._failed(reply.message)

    def _answered(self, answer: Answer) -> None:
        side = answer.side
        self.pending.pop(side, None)
        self.histories[side].append({"role": "assistant", "content": answer.answer})
        self.transcripts[side].append(f"[b]{side}[/b] {escape(answer.answer)}\n[dim]{escape(timing(answer))}[/dim]")
        self._draw(side)
        if not self.pending:
            self.asking = None

    def _failed(self, message: str) -> None:
        """The question was not answered: it leaves the histories (so the next one follows the last answer)."""
        for side in list(self.pending):
            if self.histories[side] and self.histories[side][-1]["role"] == "user":
                self.histories[side].pop()
            self.transcripts[side].append(f"[$error]not answered: {escape(message)}[/]")
        self.pending.clear()
        self.asking = None
        for side in SIDES:
            self._draw(side)
        self.notify(message, title="The question was not answered", severity="error")

    # ------------------------------------------------------------------ asking
    @on(Input.Submitted, "#chat-question")
    def _ask(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        if self.child is None:
            self.notify("no model loaded: m picks one", severity="warning")
            return
        if self.asking is not None:
            self.notify("an answer is still coming: escape cancels it", severity="warning")
            return
        try:
            sampling = self._sampling()
        except BadInput as exc:
            self.notify(str(exc), title="Settings", severity="error")
            return
        event.input.value = ""
        self._send(question, sampling)

    def _send(self, question: str, sampling: Sampling) -> None:
        assert self.child is not None
        system = self.query_one("#chat-system", Input).value.strip()
        sides = self.ready.sides if self.ready else (SIDES if self.run else SIDES[:1])
        for side in sides:
            if system and not self.histories[side]:
                self.histories[side].append({"role": "system", "content": system})
            self.histories[side].append({"role": "user", "content": question})
            self.transcripts[side].append(f"[b $accent]you[/] {escape(question)}")
            self.pending[side] = ""
            self._draw(side)
        try:
            self.asking = self.child.ask({side: self.histories[side] for side in sides}, sampling)
        except ForgeError as exc:
            self.pending.clear()
            self.notify(str(exc), title="The question was not sent", severity="error")

    def _sampling(self) -> Sampling:
        value = {name: self.query_one(f"#chat-{name}", Input).value.strip() for name in ("temperature", "top-p", "max")}
        return sampling_from(value["temperature"], value["top-p"], value["max"], self.config.train.seed)

    # ------------------------------------------------------------------ drawing
    def _draw(self, side: str) -> None:
        parts = list(self.transcripts[side])
        if side in self.pending:
            parts.append(f"[b]{side}[/b] {escape(self.pending[side])}▌")
        title = f"[b]{side}[/b]" + ("" if side == "base" or self.run is None else f" ({escape(self.run.name)})")
        self.query_one(f"#chat-{side}", Static).update("\n\n".join(parts) or title)
        self.query_one(f"#chat-{side}-pane", VerticalScroll).scroll_end(animate=False)

    def _status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(escape(text))
        self.query_one("#chat-tuned-pane").display = self.run is not None

    # ------------------------------------------------------------------ actions
    def action_cancel(self) -> None:
        """Stop the answers being generated; with none, leave the field (so 1-6 switch screens)."""
        if self.asking is not None:
            self._cancel()
        else:
            self.set_focus(None)

    def _cancel(self) -> None:
        """Ask the child to stop the current answers (a child that just died is told by `_exited`)."""
        if self.child is not None and self.asking is not None:
            with contextlib.suppress(ForgeError):
                self.child.cancel(self.asking)

    def action_new(self) -> None:
        self._cancel()
        self.asking = None
        self.pending.clear()
        for side in SIDES:
            self.histories[side].clear()
            self.transcripts[side].clear()
            self._draw(side)

    def action_correct(self) -> None:
        """The last answer of the tuned model (the base model's when chatting with it alone), to rewrite."""
        side = "tuned" if self.run is not None else "base"
        history = self.histories[side]
        if self.asking is not None or len(history) < 2 or history[-1]["role"] != "assistant":
            self.notify("nothing to correct yet: ask a question and let the answer finish", severity="warning")
            return
        question = Correction(tuple(history[:-1]), history[-1]["content"], "", "chat")
        self.app.push_screen(CorrectionScreen(self.config, self.run, question))

    def action_model(self) -> None:
        self.pick_run()

    @work(thread=True, exclusive=True, group="chat-pick", exit_on_error=False, description="listing runs to chat with")
    def pick_run(self) -> None:
        finished = self._finished_runs()
        options = [(str(run.path), f"{run.name} (base and tuned)") for run in finished] + [(BASE_ONLY, "the base model alone")]
        by_path = {str(run.path): run for run in finished}

        def chosen(key: str | None) -> None:
            if key is not None:
                self.use(by_path.get(key))

        self.app.call_from_thread(self.app.push_screen, ChoiceScreen("Chat with", options), chosen)
