"""Turning samples into token ids with the model's own chat template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forge_tui.engine.data import Sample


def encode_sample(tokenizer: Any, sample: Sample) -> list[int]:
    """Token ids of a sample as the model will see it: the chat template for conversations,
    raw text plus end-of-sequence for `text` records."""
    if sample.fmt == "text":
        return [*tokenizer(sample.messages[0].content)["input_ids"], tokenizer.eos_token_id]
    return list(tokenizer.apply_chat_template(sample.as_dicts(), tokenize=True, return_dict=False))


def token_counter(tokenizer: Any) -> Callable[[Sample], int]:
    return lambda sample: len(encode_sample(tokenizer, sample))
