"""The record shapes other tools write (ShareGPT, OpenAI content parts and weights, tool calls, TRL's
conversational prompt/completion, alpaca with system and history), each read into the one chat form
or refused at FILE:LINE. The fixtures follow those tools' own documentation and demo files, awkward
cases included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from forge_tui.config import MAPPABLE
from forge_tui.engine.data import DEFAULT_READING, Message, Problem, Reading, Sample, read_samples
from forge_tui.engine.formats import FIELDS
from forge_tui.engine.tokens import model_template, renders_tools, tool_refusal

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GLAIVE_TOOLS = json.dumps([{"name": "get_rate", "description": "exchange rate",
                            "parameters": {"type": "object", "properties": {"pair": {"type": "string"}}}}])


def _jsonl(*rows: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _read(path: Path, reading: Reading = DEFAULT_READING) -> tuple[list[Sample], list[Problem]]:
    items = list(read_samples(path, reading))
    return [i for i in items if isinstance(i, Sample)], [i for i in items if isinstance(i, Problem)]


def _turns(sample: Sample) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in sample.messages]


def _sharegpt(*turns: tuple[str, str], **extra: object) -> dict:
    return {"conversations": [{"from": who, "value": value} for who, value in turns], **extra}


def test_sharegpt_as_the_trainers_write_it(write) -> None:
    path = write("sharegpt.json", json.dumps([
        _sharegpt(("human", "What feeds P-101?"), ("gpt", "The intake well."), system="You answer plant questions."),
        _sharegpt(("system", "Be brief."), ("user", "P-102?"), ("model", "Standby pump."), ("human", "Thanks, and P-103?")),
        {"messages": [{"from": "human", "value": "Who signs off?"}, {"from": "gpt", "value": "The shift engineer."}],
         "system": "", "id": "x7"},
    ], indent=1))
    samples, problems = _read(path)
    assert problems == []
    assert [s.fmt for s in samples] == ["sharegpt"] * 3
    assert _turns(samples[0]) == [("system", "You answer plant questions."), ("user", "What feeds P-101?"),
                                  ("assistant", "The intake well.")]
    # the unanswered last question teaches nothing: the sample ends at the last answer
    assert _turns(samples[1]) == [("system", "Be brief."), ("user", "P-102?"), ("assistant", "Standby pump.")]
    assert _turns(samples[2]) == [("user", "Who signs off?"), ("assistant", "The shift engineer.")]  # empty system: none
    assert samples[2].meta == {"id": "x7"}
    assert [s.line for s in samples] == [2, 15, 35]  # where each record opens


@pytest.mark.parametrize(("record", "fragment"), [
    (_sharegpt(("human", "a"), ("human", "b"), ("gpt", "c")),
     "conversations[1] is from 'human' where a gpt or function_call turn belongs: turns must alternate"),
    (_sharegpt(("gpt", "hello"), ("human", "b")), "conversations[0] is from 'gpt' where a human or observation turn belongs"),
    (_sharegpt(("human", "a"), ("bard", "b")), "conversations[1].from is 'bard'; expected one of human, user, gpt"),
    (_sharegpt(("human", ""), ("gpt", "b")), "conversations[0].value is empty"),
    (_sharegpt(("human", "a")), "conversation has no assistant turn (nothing to learn from)"),
    (_sharegpt(("human", "a"), ("gpt", " ")), "no assistant turn carries loss (each is empty or has weight 0)"),
    ({"conversations": "human: hi"}, "'conversations' is a string, expected an array of turns"),
    ({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": 3}]},
     "conversations[1].value is a number, expected a string or a list of text parts"),
])
def test_sharegpt_that_cannot_be_trained_on_is_refused_at_its_line(write, record, fragment) -> None:
    path = write("bad.jsonl", _jsonl(_sharegpt(("human", "fine"), ("gpt", "yes")), record))
    samples, problems = _read(path)
    assert len(samples) == 1
    assert [p.line for p in problems] == [2]
    assert fragment in problems[0].message, problems[0].message


def test_an_empty_answer_mid_conversation_is_context_not_a_lesson(write) -> None:
    samples, problems = _read(write("d.jsonl", _jsonl(_sharegpt(("human", "a"), ("gpt", ""), ("human", "b"), ("gpt", "c")))))
    assert problems == []
    assert [m.train for m in samples[0].messages if m.role == "assistant"] == [False, True]


def test_sharegpt_tool_use_becomes_tool_calls_and_tool_results(write) -> None:
    call = json.dumps({"name": "get_rate", "arguments": {"pair": "EURNOK"}})
    record = _sharegpt(("human", "Rate?"), ("function_call", call), ("observation", '{"rate": 11.7}'), ("gpt", "11.7"),
                       tools=GLAIVE_TOOLS)
    no_tools = _sharegpt(("human", "Hi"), ("gpt", "Hello"), tools="[]")  # glaive's demo: "[]" when none
    samples, problems = _read(write("glaive.json", json.dumps([record, no_tools])))
    assert problems == []
    tooled, plain = samples
    assert tooled.uses_tools
    assert not plain.uses_tools
    assert tooled.tools == ({"type": "function", "function": json.loads(GLAIVE_TOOLS)[0]},)
    assert [m.role for m in tooled.messages] == ["user", "assistant", "tool", "assistant"]
    assert tooled.messages[1].tool_calls == ({"type": "function", "function": {"name": "get_rate", "arguments": {"pair": "EURNOK"}}},)
    assert tooled.messages[2].content == '{"rate": 11.7}'


def test_openai_tool_calls_with_arguments_as_json_text(write) -> None:
    record = {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5C"},
        {"role": "assistant", "content": "5C in Oslo."}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "parallel_tool_calls": False}
    bad = {"messages": [{"role": "user", "content": "x"},
                        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{city"}}]}]}
    samples, problems = _read(write("openai.jsonl", _jsonl(record, bad)))
    (sample,) = samples
    assert sample.messages[1].tool_calls == ({"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}},
                                              "id": "c1"},)
    assert sample.messages[2].as_dict() == {"role": "tool", "content": "5C", "tool_call_id": "c1"}
    assert sample.meta == {"parallel_tool_calls": False}
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [(2, "messages[1].tool_calls[0].arguments is not valid JSON")]


def test_content_parts_are_joined_and_media_is_refused_as_text_only(write) -> None:
    parts = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Line A"}, {"type": "text", "text": "Line B"}]},
        {"role": "assistant", "content": [{"type": "reasoning", "value": "A then B"}, {"type": "text", "value": "Both."}]}]}
    image = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                        {"type": "image_url", "image_url": {"url": "data:..."}}]},
                          {"role": "assistant", "content": "A gauge."}]}
    images = {"messages": [{"role": "user", "content": "<image>Which valve?"}, {"role": "assistant", "content": "V-3"}],
              "images": ["valve.jpg"]}
    samples, problems = _read(write("parts.jsonl", _jsonl(parts, image, images)))
    assert _turns(samples[0]) == [("user", "Line A\nLine B"), ("assistant", "<think>\nA then B\n</think>\nBoth.")]
    assert [str(p).split(": ", 1)[1] for p in problems] == [
        "messages[0].content[1] is an image_url part: this model is text-only, so only text parts can be trained on",
        "record has images: this model is text-only"]


def test_weights_choose_the_assistant_turns_that_carry_loss(write) -> None:
    weighted = {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "wrong", "weight": 0},
                             {"role": "user", "content": "q2"}, {"role": "assistant", "content": "right", "weight": 1}]}
    factory = {"messages": [{"role": "user", "content": [{"type": "text", "value": "hi"}], "loss_weight": 0.0},
                            {"role": "assistant", "content": [{"type": "text", "value": "Hello"}], "loss_weight": 1.0}]}
    bad = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]},
           {"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]},
           {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}]
    samples, problems = _read(write("w.jsonl", _jsonl(weighted, factory, *bad)))
    assert [m.train for m in samples[0].messages if m.role == "assistant"] == [False, True]
    assert _turns(samples[1]) == [("user", "hi"), ("assistant", "Hello")]
    assert [(p.line, p.message) for p in problems] == [
        (3, "messages[1].weight is 2; expected 0 or 1"),
        (4, "messages[0].weight is 1 on a user turn; only assistant turns carry loss"),
        (5, "no assistant turn carries loss (each is empty or has weight 0): nothing to learn from")]


def test_conversational_prompt_and_completion_train_on_the_completion_only(write) -> None:
    record = {"prompt": [{"role": "system", "content": "Plant assistant."}, {"role": "user", "content": "P-101?"},
                         {"role": "assistant", "content": "Intake pump."}, {"role": "user", "content": "Its spare?"}],
              "completion": [{"role": "assistant", "content": "P-102."}]}
    mixed = {"prompt": [{"role": "user", "content": "Shift?"}], "completion": "Nights."}
    samples, problems = _read(write("trl.jsonl", _jsonl(record, mixed)))
    assert problems == []
    assert [(m.role, m.train) for m in samples[0].messages] == [
        ("system", False), ("user", False), ("assistant", False), ("user", False), ("assistant", True)]
    assert _turns(samples[1]) == [("user", "Shift?"), ("assistant", "Nights.")]


def test_alpaca_with_system_and_history(write) -> None:
    record = {"instruction": "And its spare?", "input": "", "output": "P-102.", "system": "Plant assistant.",
              "history": [["Which pump feeds line 1?", "P-101."]]}
    samples, problems = _read(write("alpaca.json", json.dumps([record, {**record, "history": [["only one"]]}])))
    assert _turns(samples[0]) == [("system", "Plant assistant."), ("user", "Which pump feeds line 1?"), ("assistant", "P-101."),
                                  ("user", "And its spare?"), ("assistant", "P-102.")]
    assert [p.message for p in problems] == ["'history' must be a list of [question, answer] pairs of strings"]


def test_preference_data_is_named_as_such(write) -> None:
    dpo = {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"},
           "rejected": {"from": "gpt", "value": "b"}}
    _, problems = _read(write("dpo.json", json.dumps([dpo])))
    assert problems[0].message.startswith("preference data (chosen and rejected answers) is for preference tuning")


def test_a_column_mapping_reads_any_keys_and_is_checked(write) -> None:
    path = write("qa.jsonl", _jsonl({"question": "P-101?", "answer": "Intake pump.", "site": "north"}))
    _, problems = _read(path)
    assert "record has keys [answer, question, site]" in problems[0].message
    assert "--map KEY=FIELD" in problems[0].message
    samples, problems = _read(path, Reading(columns={"question": "instruction", "answer": "output"}))
    assert problems == []
    assert _turns(samples[0]) == [("user", "P-101?"), ("assistant", "Intake pump.")]
    assert samples[0].meta == {"site": "north"}
    clash = write("clash.jsonl", _jsonl({"question": "q", "instruction": "i", "output": "o"}))
    _, problems = _read(clash, Reading(columns={"question": "instruction"}))
    assert problems[0].message == "column 'question' is mapped to 'instruction', which the record also has"


def test_the_config_takes_every_field_the_shapes_read_and_refuses_others() -> None:
    from forge_tui.config import ConfigError, parse_config

    for field in {name for names in FIELDS.values() for name in names}:
        assert parse_config(f'[data]\ncolumns = {{ q = "{field}" }}\n', Path("c.toml")).data.columns == {"q": field}
    with pytest.raises(ConfigError, match=r"q = 'question': a column maps to one of completion, conversations"):
        parse_config('[data]\ncolumns = { q = "question" }\n', Path("c.toml"))
    assert "question" not in MAPPABLE


def test_a_template_without_tools_refuses_tool_use_and_one_with_them_accepts_it(tmp_path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}))
    tooled = tmp_path / "tooled"
    tooled.mkdir()
    (tooled / "chat_template.jinja").write_text((FIXTURES / "tool_template.jinja").read_text())
    assert not renders_tools(model_template(plain))
    assert renders_tools(model_template(tooled))
    assert not renders_tools(model_template(tmp_path))  # no template at all
    sample = Sample((), "chat", Path("f.jsonl"), 1, tools=({"type": "function", "function": {"name": "f"}},))
    reason = tool_refusal(plain)(sample)
    assert reason is not None
    assert "the chat template of plain has no tool support" in reason
    assert tool_refusal(tooled)(sample) is None
    assert tool_refusal(plain)(Sample((), "chat", Path("f.jsonl"), 1)) is None


def test_a_benchmark_item_with_tool_use_is_refused_at_its_line() -> None:
    from forge_tui.engine.bench import to_item
    from forge_tui.errors import BadInput

    call = {"type": "function", "function": {"name": "f", "arguments": {}}}
    sample = Sample((Message("user", "q"), Message("assistant", "", tool_calls=(call,)), Message("tool", "1"),
                     Message("assistant", "one")), "chat", Path("eval.jsonl"), 7)
    with pytest.raises(BadInput, match=r"eval.jsonl:7: a benchmark item is a question and its answer; tool use is not scored"):
        to_item(sample, "eval")


@pytest.mark.parametrize(("record", "fragment"), [
    (_sharegpt(("human", "q"), ("function_call", "null"), ("observation", "r"), ("gpt", "a")), "conversations[1].value holds no tool call"),
    (_sharegpt(("human", "q"), ("function_call", '{"name": "f", "arguments": [1, 2]}'), ("observation", "r"), ("gpt", "a")),
     "conversations[1].value.arguments is an array, expected an object of named arguments"),
    (_sharegpt(("human", "q"), ("function_call", '{"name": "f", "arguments": "5"}'), ("observation", "r"), ("gpt", "a")),
     "conversations[1].value.arguments is a number, expected an object of named arguments"),
    (_sharegpt(("human", "q"), ("function_call", '{"name": " ", "arguments": {}}'), ("observation", "r"), ("gpt", "a")),
     "conversations[1].value is not a tool call"),
    (_sharegpt(("human", "q"), ("function_call", "[" * 100_000 + "]" * 100_000), ("observation", "r"), ("gpt", "a")),
     "conversations[1].value is JSON that cannot be read (RecursionError)"),
    (_sharegpt(("human", "q"), ("gpt", "a"), tools=[{"function": 5}]), "tools[0] is not a function specification"),
])
def test_tool_shapes_that_no_template_could_render_are_refused(write, record, fragment) -> None:
    _, problems = _read(write("calls.jsonl", _jsonl(record)))
    assert [p.line for p in problems] == [1], problems
    assert fragment in problems[0].message, problems


def test_an_empty_system_turn_leaves_the_top_level_system_prompt(write) -> None:
    record = {"conversations": [{"from": "system", "value": ""}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
              "system": "Plant assistant."}
    (sample,), _ = _read(write("s.jsonl", _jsonl(record)))
    assert _turns(sample) == [("system", "Plant assistant."), ("user", "q"), ("assistant", "a")]


def test_mappings_may_swap_columns_but_not_read_one_field_from_two(write) -> None:
    from forge_tui.config import ConfigError, parse_config

    swapped = write("swap.jsonl", _jsonl({"instruction": "the answer", "output": "the question"}))
    (sample,), problems = _read(swapped, Reading(columns={"instruction": "output", "output": "instruction"}))
    assert problems == []
    assert _turns(sample) == [("user", "the question"), ("assistant", "the answer")]
    with pytest.raises(ConfigError, match="two columns map to 'output'; one field is read from one column"):
        parse_config('[data]\ncolumns = { answer = "output", notes = "output", question = "instruction" }\n', Path("c.toml"))


def test_the_sample_digest_sees_tool_calls_and_weights(write) -> None:
    from forge_tui.engine.datacheck import check_dataset, sample_key

    def call(city: str) -> dict:
        calls = [{"type": "function", "function": {"name": "w", "arguments": {"city": city}}}]
        return {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": calls},
                             {"role": "tool", "content": "5C"}, {"role": "assistant", "content": "5C."}]}

    def weighted(weight: int) -> dict:
        return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1", "weight": weight},
                             {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}

    samples, _ = _read(write("k.jsonl", _jsonl(call("Oslo"), call("Bergen"), weighted(0), weighted(1))))
    assert len({sample_key(s) for s in samples}) == 4
    plain = Sample((Message("user", "q"), Message("assistant", "a")), "chat", Path("f.jsonl"), 1)
    before = hashlib.blake2b(json.dumps(["chat", [["user", "q"], ["assistant", "a"]]]).encode(), digest_size=16).digest()
    assert sample_key(plain) == before  # a plain sample keeps its digest: the split of existing data does not move
    report = check_dataset([write("secret.jsonl", _jsonl({"messages": [
        {"role": "user", "content": "Mail it"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "send", "arguments": {
            "to": "jane.doe@example.com", "key": "AKIAIOSFODNN7EXAMPLE"}}}]},
        {"role": "tool", "content": "sent"}, {"role": "assistant", "content": "Sent."}]}))])
    assert report.finding_kinds() == {"secret": 1, "personal data": 1}


def test_a_template_that_raises_is_a_problem_at_the_line_and_an_answer_first_conversation_encodes(write, embedded_model) -> None:
    from transformers import AutoTokenizer

    from forge_tui.engine.batches import IGNORE, encode_for_training
    from forge_tui.engine.datacheck import check_dataset
    from forge_tui.engine.tokens import token_counter

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    opening = {"messages": [{"role": "assistant", "content": "Shift report ready."}, {"role": "user", "content": "Read it"},
                            {"role": "assistant", "content": "All pumps normal."}]}
    (sample,), _ = _read(write("first.jsonl", _jsonl(opening)))
    learned = tokenizer.decode([t for t in encode_for_training(tokenizer, sample, 256).labels if t != IGNORE])
    assert "Shift report ready." in learned
    assert "All pumps normal." in learned
    tokenizer.chat_template = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}"
                               "{% endif %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
    path = write("sys.jsonl", _jsonl({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                                   {"role": "assistant", "content": "a"}]}, opening))
    report = check_dataset([path], token_length=token_counter(tokenizer))
    assert [(p.line, p.message) for p in report.problems] == [
        (1, "the chat template refuses this conversation: System role not supported")]
    assert report.samples == 1
