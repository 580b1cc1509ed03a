"""Samples -> token ids with assistant-only labels -> a seeded, length-grouped batch plan.

The plan is a pure function of (seed, epoch), so a resumed run rebuilds exactly the batches it would
have seen: the data-order position in a checkpoint is just the optimizer step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from forge_tui.engine.data import Sample
from forge_tui.engine.tokens import encode_sample, render

IGNORE = -100
GROUP_FACTOR = 16  # samples are length-sorted within windows of this many effective batches

T = TypeVar("T")


@dataclass(frozen=True)
class Encoded:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool
    distill: bool = False  # scored against the base model's distribution rather than the labels

    @property
    def label_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def encode_for_training(tokenizer: Any, sample: Sample, max_seq_len: int) -> Encoded:
    """Token ids with labels on the assistant turns that carry loss (a `text` sample learns every token).

    Each assistant turn's span is found by rendering the conversation up to the turn with the
    generation prompt, then through the turn: the template must render prefixes as prefixes, which
    is checked rather than assumed. The span starts where the rendered turn first differs from the
    generation prompt: a template may open a tool call without the newline its prompt ends with,
    and a tokenizer may merge that newline into the answer's first token, which must be learned.
    """
    ids = encode_sample(tokenizer, sample)
    if sample.fmt == "text":
        labels = list(ids)
    else:
        turns = sample.as_dicts()
        labels = [IGNORE] * len(ids)
        for index, message in enumerate(sample.messages):
            if message.role != "assistant" or not message.train:
                continue
            start = _shared(ids, render(tokenizer, turns[:index], sample, generation_prompt=True)) if index else 0
            through = render(tokenizer, turns[: index + 1], sample)
            if ids[: len(through)] != through:
                raise ValueError(f"{sample.where}: the chat template does not render prefixes stably")
            labels[start:len(through)] = ids[start:len(through)]
    truncated = len(ids) > max_seq_len
    return Encoded(tuple(ids[:max_seq_len]), tuple(labels[:max_seq_len]), truncated)


def _shared(ids: list[int], prefix: list[int]) -> int:
    """How many leading tokens `ids` has in common with `prefix`."""
    return next((i for i, (a, b) in enumerate(zip(ids, prefix, strict=False)) if a != b), min(len(ids), len(prefix)))


def steps_per_epoch(samples: int, effective_batch: int) -> int:
    return max(1, math.ceil(samples / effective_batch))


@lru_cache(maxsize=2)
def epoch_plan(lengths: tuple[int, ...], effective_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The effective batches of one epoch, as lists of sample indices (cached: the loop asks for
    one step's batch at a time, and a plan is a sort of the whole dataset).

    Shuffle with (seed, epoch); sort by length inside windows of GROUP_FACTOR batches so each batch
    holds similar lengths (little padding); then shuffle the batch order so lengths do not trend.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = effective_batch * GROUP_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + effective_batch] for i in range(0, len(chunk), effective_batch))
    rng.shuffle(batches)
    return batches


def batch_at(step: int, lengths: tuple[int, ...], effective_batch: int, seed: int) -> tuple[int, list[int]]:
    """(epoch, sample indices) of optimizer step `step` (0-based)."""
    per_epoch = steps_per_epoch(len(lengths), effective_batch)
    epoch, position = divmod(step, per_epoch)
    return epoch, epoch_plan(lengths, effective_batch, seed, epoch)[position]


def micro_batches(items: Sequence[T], micro_batch_size: int) -> list[list[T]]:
    """`items` cut into consecutive micro-batches of at most `micro_batch_size`."""
    return [list(items[i:i + micro_batch_size]) for i in range(0, len(items), micro_batch_size)]


def collate(encoded: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest sample in the micro-batch; pads carry no loss and no attention.
    The positions that carry loss are worked out here, on the CPU, so the loss never waits on
    the accelerator to learn how many there are."""
    import torch

    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, item in enumerate(encoded):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    distill = torch.tensor([item.distill for item in encoded], dtype=torch.bool)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, **label_positions(labels, distill)}


def label_positions(labels: Any, distill: Any | None = None) -> dict[str, Any]:
    """Flat indices into the (rows x (width - 1)) next-token grid of the positions that carry loss:
    `hard` ones score against their label, `soft` ones (rows where `distill` is set) against the
    base model's distribution."""
    import torch

    labelled = labels[:, 1:] != IGNORE
    soft = labelled & distill[:, None] if distill is not None else torch.zeros_like(labelled)
    return {"hard": (labelled & ~soft).flatten().nonzero().squeeze(1), "soft": soft.flatten().nonzero().squeeze(1)}
