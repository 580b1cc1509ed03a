"""Greedy answers from a chat model, batched: the benchmark's answers and the self-distilled
rehearsal set both come from here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Conversation = Sequence[dict[str, str]]


def prompt_ids(tokenizer: Any, turns: Conversation) -> list[int]:
    """The conversation so far, rendered with the model's chat template and its generation prompt."""
    return list(tokenizer.apply_chat_template(list(turns), tokenize=True, return_dict=False, add_generation_prompt=True))


def pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def generate(model: Any, tokenizer: Any, prompts: Sequence[Conversation], device: str, max_new_tokens: int) -> list[str]:
    """Greedy answers for a batch of conversations (left-padded so every answer starts at the same column)."""
    import torch

    encoded = [prompt_ids(tokenizer, turns) for turns in prompts]
    width = max(map(len, encoded))
    pad = pad_id(tokenizer)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in encoded], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in encoded], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, use_cache=True)
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
