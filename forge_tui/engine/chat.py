"""Chat with a run's models: the base and the tuned model answer from one loaded base model, the
run's adapter switched off for the base side and on for the tuned one (as the benchmark does).

Each side decodes with its own KV cache, one token per step; `answer` runs the sides one after the
other (the command line prints each as it streams) or interleaved, a step each in turn (the console
shows both growing side by side). A side's `seconds` and `first_token_seconds` count its own model
calls and decoding from the question on, so interleaving does not halve either side's tokens/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from forge_tui.errors import BadInput

if TYPE_CHECKING:
    from forge_tui.config import Config
    from forge_tui.engine.runs import RunDir

SIDES = ("base", "tuned")
Messages = Sequence[dict[str, str]]
OnToken = Callable[[str, str], None]     # (side, text)


@dataclass(frozen=True)
class Sampling:
    """Greedy by default; a temperature above 0 samples, from the top-p share of the distribution."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def checked(self) -> Sampling:
        if not 1 <= self.max_new_tokens <= 8192:
            raise BadInput(f"max new tokens {self.max_new_tokens}: choose 1 to 8192")
        if not 0.0 <= self.temperature <= 5.0:
            raise BadInput(f"temperature {self.temperature}: choose 0 (greedy) to 5")
        if not 0.0 < self.top_p <= 1.0:
            raise BadInput(f"top-p {self.top_p}: choose above 0, at most 1")
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Sampling:
        return cls(int(record["max_new_tokens"]), float(record["temperature"]), float(record["top_p"]),
                   int(record.get("seed", 0))).checked()


@dataclass(frozen=True)
class Answer:
    """One side's answer and its timings; `stopped` is eos, length or cancelled."""

    side: str
    answer: str
    tokens: int
    seconds: float
    first_token_seconds: float | None
    stopped: str

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.seconds if self.tokens and self.seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Answer:
        first = record.get("first_token_seconds")
        return cls(str(record["side"]), str(record["answer"]), int(record["tokens"]), float(record["seconds"]),
                   None if first is None else float(first), str(record["stopped"]))


@dataclass
class _Decoder:
    """One side's generation in progress."""

    side: str
    prompt: list[int]
    generated: list[int] = field(default_factory=list)
    shown: str = ""
    cache: Any = None
    busy: float = 0.0
    first: float | None = None
    stopped: str | None = None


class ChatModel:
    """A model per side. The same PEFT model for both sides is the base model with the adapter,
    switched off for the base side; two models are the base and a merged copy (see load_chat_model)."""

    def __init__(self, models: Mapping[str, Any], tokenizer: Any, device: str, name: str) -> None:
        self.models, self.tokenizer, self.device, self.name = dict(models), tokenizer, device, name
        self.sides = tuple(side for side in SIDES if side in self.models)
        self.stop_ids = _stop_ids(self.models["base"], tokenizer)

    def answer(self, conversations: Mapping[str, Messages], sampling: Sampling, on_token: OnToken,
               cancelled: Callable[[], bool] = lambda: False, *, interleave: bool = False,
               on_answer: Callable[[Answer], None] = lambda answer: None) -> list[Answer]:
        """Each side's answer to its own conversation; `on_token` hears every piece of text as it comes,
        `on_answer` each side's answer as soon as that side stops."""
        from forge_tui.engine.generation import prompt_ids

        decoders = [_Decoder(side, prompt_ids(self.tokenizer, conversations[side])) for side in self.sides if side in conversations]
        generator = self._generator(sampling)
        turns = [decoders] if interleave else [[decoder] for decoder in decoders]
        for group in turns:
            while any(d.stopped is None for d in group):
                for decoder in group:
                    if decoder.stopped is None and self._step(decoder, sampling, generator, on_token, cancelled):
                        on_answer(_answer(decoder))
        return [_answer(d) for d in decoders]

    def _generator(self, sampling: Sampling) -> Any:
        import torch

        return torch.Generator(device=self.device).manual_seed(sampling.seed)

    def _step(self, decoder: _Decoder, sampling: Sampling, generator: Any, on_token: OnToken, cancelled: Callable[[], bool]) -> bool:
        """One forward pass (the whole prompt first, then one token), one token chosen and shown;
        whether the side has stopped."""
        if cancelled():
            decoder.stopped = "cancelled"
            return True
        started = time.perf_counter()
        token = self._next_token(decoder, sampling, generator)
        if token in self.stop_ids:
            decoder.stopped = "eos"
        else:
            decoder.generated.append(token)
            text = self.tokenizer.decode(decoder.generated, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # a character split across tokens waits for its last byte
                piece, decoder.shown = text[len(decoder.shown):], text
                if piece:
                    on_token(decoder.side, piece)
            if len(decoder.generated) >= sampling.max_new_tokens:
                decoder.stopped = "length"
        if decoder.stopped is not None:
            _flush(decoder, self.tokenizer, on_token)
        decoder.busy += time.perf_counter() - started
        if decoder.first is None and decoder.generated:
            decoder.first = decoder.busy
        return decoder.stopped is not None

    def _next_token(self, decoder: _Decoder, sampling: Sampling, generator: Any) -> int:
        import torch

        ids = decoder.prompt if decoder.cache is None else decoder.generated[-1:]
        model = self.models[decoder.side]
        with torch.no_grad(), self._adapter(decoder.side):
            out = model(input_ids=torch.tensor([ids], device=self.device), cache=decoder.cache, use_cache=True,
                             logits_to_keep=1)
        decoder.cache = out.cache
        return pick(out.logits[0, -1].float(), sampling, generator)

    def _adapter(self, side: str) -> Any:
        from contextlib import nullcontext

        shared = side == "base" and self.models["base"] is self.models.get("tuned")
        return self.models["base"].disable_adapter() if shared else nullcontext()


def _flush(decoder: _Decoder, tokenizer: Any, on_token: OnToken) -> None:
    """Text held back for a character's last byte that never came: shown as it decodes."""
    text = tokenizer.decode(decoder.generated, skip_special_tokens=True)
    if len(text) > len(decoder.shown):
        on_token(decoder.side, text[len(decoder.shown):])
        decoder.shown = text


def _answer(decoder: _Decoder) -> Answer:
    return Answer(decoder.side, decoder.shown.strip(), len(decoder.generated), round(decoder.busy, 3),
                  None if decoder.first is None else round(decoder.first, 3), decoder.stopped or "eos")


def pick(logits: Any, sampling: Sampling, generator: Any) -> int:
    """Greedy at temperature 0; otherwise a draw from the smallest set of tokens holding top_p of the mass."""
    import torch

    if sampling.temperature == 0:
        return int(logits.argmax())
    probabilities = torch.softmax(logits / sampling.temperature, dim=-1)
    ordered, order = probabilities.sort(descending=True)
    keep = ordered.cumsum(0) - ordered < sampling.top_p   # the first token is always kept
    ordered = ordered * keep
    choice = torch.multinomial(ordered / ordered.sum(), 1, generator=generator)
    return int(order[choice])


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {int(i) for i in ids if i is not None}


def load_chat_model(config: Config, run: RunDir | None) -> ChatModel:
    """The run's base model with its adapter, or (no run) the configured model alone. On a CPU with
    full-precision weights and room for a second copy, the tuned side gets the adapter merged into a
    copy: a decoding step then costs what the plain model's does (about 30% less than through the
    adapter's extra layers, measured in benchmarks/chat_latency.py)."""
    from forge_tui.engine.models import resolve_model
    from forge_tui.engine.plan import load_for_answers
    from forge_tui.engine.runs import require_finished

    if run is None:
        model, tokenizer, device = load_for_answers(config, None)
        return ChatModel({"base": model}, tokenizer, device, resolve_model(config.model.name, config.models.paths).name)
    model, tokenizer, device = load_for_answers(run.config(), require_finished(run))
    if device != "cpu" or not room_for_copy(model):
        return ChatModel({"base": model, "tuned": model}, tokenizer, device, run.name)
    return ChatModel(merged_pair(model), tokenizer, device, run.name)


def room_for_copy(model: Any) -> bool:
    """Full-precision weights (a 4-bit model cannot be merged exactly) and twice their size free."""
    import psutil

    parameters = list(model.parameters())
    if not all(p.is_floating_point() for p in parameters):  # bitsandbytes' 4-bit weights are packed integers
        return False
    size = sum(p.numel() * p.element_size() for p in parameters)
    return bool(psutil.virtual_memory().available > 2 * size)


def merged_pair(model: Any) -> dict[str, Any]:
    """The base model (the adapter's layers taken out, its weights untouched) and a copy with the adapter merged in."""
    import copy

    tuned = copy.deepcopy(model).merge_and_unload()
    return {"base": model.unload(), "tuned": tuned}

