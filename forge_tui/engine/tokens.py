"""Turning samples into token ids with the model's own chat template, and what that template can
render (tool use)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from forge_tui.engine.data import Sample
from forge_tui.engine.fsutil import read_json_object
from forge_tui.errors import BadInput


class TemplateRefused(BadInput):
    """The model's chat template will not render a sample (it raised: a role it does not take, turns
    in an order it refuses): bad input at the sample's location."""

    def __init__(self, sample: Sample, reason: str) -> None:
        self.reason = f"the chat template refuses this conversation: {reason}"
        super().__init__(f"{sample.where}: {self.reason}")


def render(tokenizer: Any, turns: Sequence[dict[str, Any]], sample: Sample, *, generation_prompt: bool = False) -> list[int]:
    """Token ids of `turns` through the chat template, with the sample's tools when it has some."""
    from jinja2 import TemplateError

    try:
        return list(tokenizer.apply_chat_template(list(turns), tools=list(sample.tools) or None, tokenize=True,
                                                  return_dict=False, add_generation_prompt=generation_prompt))
    except (TemplateError, ValueError, TypeError) as exc:  # (TypeError: a value the template's tojson cannot write)
        raise TemplateRefused(sample, str(exc) or type(exc).__name__) from None


def encode_sample(tokenizer: Any, sample: Sample) -> list[int]:
    """Token ids of a sample as the model will see it: the chat template for conversations,
    raw text plus end-of-sequence for `text` records."""
    if sample.fmt == "text":
        return [*tokenizer(sample.messages[0].content)["input_ids"], tokenizer.eos_token_id]
    return render(tokenizer, sample.as_dicts(), sample)


def token_counter(tokenizer: Any) -> Callable[[Sample], int]:
    return lambda sample: len(encode_sample(tokenizer, sample))


def model_token_counter(model: Path | None) -> Callable[[Sample], int] | None:
    """Each sample's length in the tokens of the model in that folder (None without one)."""
    if model is None:
        return None
    from forge_tui.engine.models import load_tokenizer

    return token_counter(load_tokenizer(model))


def renders_tools(template: str | None) -> bool:
    """Whether a chat template reads the `tools` it is given (checked in the template's own Jinja, the
    engine transformers renders it with): one that does not would drop the function specs silently."""
    if not template:
        return False
    from jinja2 import Environment, TemplateSyntaxError, meta

    try:
        return "tools" in meta.find_undeclared_variables(Environment().parse(template))
    except TemplateSyntaxError:
        return False


def model_template(model_dir: Path) -> str | None:
    """A model folder's default chat template, read from its files (no tokenizer load): the
    `chat_template.jinja` file, else `tokenizer_config.json`'s `chat_template` (a string, or named
    templates of which `default` or the first is used)."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        template = read_json_object(model_dir / "tokenizer_config.json").get("chat_template")
    except (OSError, ValueError):
        return None
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) else None


def tool_refusal(model_dir: Path) -> Callable[[Sample], str | None]:
    """Why a sample cannot be trained on with this model's chat template (tool use it cannot render),
    or None."""
    if renders_tools(model_template(model_dir)):
        return lambda sample: None
    reason = (f"this conversation uses tools (function calls, tool results or tool specs), but the chat template of "
              f"{model_dir.name} has no tool support; train a model whose template renders tools, or leave such "
              "conversations out")
    return lambda sample: reason if sample.uses_tools else None
