"""Assistant-only labels, the batch plan and the schedule."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from forge_tui.config import Config, TrainConfig
from forge_tui.engine.batches import IGNORE, batch_at, encode_for_training, epoch_plan, steps_per_epoch
from forge_tui.engine.data import Format, Message, Sample
from forge_tui.engine.train import get_lr


def _sample(*turns: tuple[str, str], fmt: Format = "chat") -> Sample:
    return Sample(tuple(Message(r, c) for r, c in turns), fmt, Path("f.jsonl"), 1)


def test_loss_is_only_on_assistant_turns(embedded_model) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    sample = _sample(("user", "Which pump is P-101?"), ("assistant", "Intake pump 1."), ("user", "And P-102?"), ("assistant", "Pump 2."))
    encoded = encode_for_training(tokenizer, sample, 512)
    learned = tokenizer.decode([t for t in encoded.labels if t != IGNORE])
    assert "Intake pump 1." in learned
    assert "Pump 2." in learned
    assert "P-101" not in learned
    assert "user" not in learned
    assert "system" not in learned
    assert encoded.input_ids == tuple(tokenizer.apply_chat_template(sample.as_dicts(), tokenize=True, return_dict=False))

    text = encode_for_training(tokenizer, _sample(("assistant", "raw words"), fmt="text"), 512)
    assert IGNORE not in text.labels
    assert text.input_ids[-1] == tokenizer.eos_token_id
    short = encode_for_training(tokenizer, sample, 10)
    assert short.truncated
    assert len(short.input_ids) == 10


def test_each_epoch_covers_every_sample_once_with_similar_lengths_per_batch() -> None:
    lengths = tuple((i * 37) % 300 + 10 for i in range(1000))
    plan = epoch_plan(lengths, 8, seed=1, epoch=0)
    assert sorted(i for batch in plan for i in batch) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plan) / len(plan)
    assert spread < 40  # a random batch of 8 would span ~200 tokens
    assert epoch_plan(lengths, 8, seed=1, epoch=0) == plan != epoch_plan(lengths, 8, seed=1, epoch=1)
    assert batch_at(steps_per_epoch(1000, 8) + 3, lengths, 8, 1) == (1, epoch_plan(lengths, 8, 1, 1)[3])


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    config = Config(train=TrainConfig(learning_rate=1e-3, warmup_ratio=0.1, min_lr_ratio=0.1))
    rates = [get_lr(s, 100, config) for s in range(100)]
    assert rates[0] < rates[5] < rates[9] == 1e-3
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert abs(rates[-1] - 1e-4) < 2e-6


def test_tool_use_renders_through_a_template_with_tools_and_weights_choose_the_labels(embedded_model) -> None:
    from transformers import AutoTokenizer

    from forge_tui.engine.formats import normalise_record

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    tokenizer.chat_template = (Path(__file__).resolve().parent.parent / "fixtures" / "tool_template.jinja").read_text()
    call = json.dumps({"name": "get_rate", "arguments": {"pair": "EURNOK"}})
    record = {"conversations": [{"from": "human", "value": "Rate for EURNOK?"}, {"from": "function_call", "value": call},
                                {"from": "observation", "value": "11.7"}, {"from": "gpt", "value": "It is 11.7 today."}],
              "tools": json.dumps([{"name": "get_rate", "parameters": {"type": "object"}}])}
    sample, problems = normalise_record(record, 1, Path("glaive.json"), None)
    assert problems == []
    encoded = encode_for_training(tokenizer, sample, 1024)
    shown = tokenizer.decode(list(encoded.input_ids))
    assert '<tools>{"type": "function", "function": {"name": "get_rate"' in shown
    assert "<tool_response>\n11.7\n</tool_response>" in shown
    learned = tokenizer.decode([t for t in encoded.labels if t != IGNORE])
    # the template opens the call without the newline its generation prompt ends with: the whole call is learned
    assert str(learned).startswith('<tool_call>\n{"name": "get_rate", "arguments": {"pair": "EURNOK"}}\n</tool_call>')
    assert "It is 11.7 today." in learned
    assert "Rate for EURNOK?" not in learned
    assert "<tool_response>" not in learned

    weighted = Sample((Message("user", "q1"), Message("assistant", "wrong answer", train=False),
                       Message("user", "q2"), Message("assistant", "right answer")), "chat", Path("w.jsonl"), 1)
    learned = tokenizer.decode([t for t in encode_for_training(tokenizer, weighted, 1024).labels if t != IGNORE])
    assert "right answer" in learned
    assert "wrong" not in learned
