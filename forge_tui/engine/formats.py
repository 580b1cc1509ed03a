"""Record shapes -> the one chat form (`Sample`), with every problem of a record in words.

A record's shape is told by its keys; a file keeps the shape of its first recognisable record:
- chat (OpenAI chat fine-tuning, TRL conversational): {"messages": [{"role", "content"}, ...], "tools"?}.
  `content` is a string or a list of parts ({"type": "text", "text": ...}; the text parts are
  joined by newlines, image/audio parts refused: the models here are text-only). An assistant
  message's `weight` (0 or 1) says whether it carries loss; `tool_calls` and `tool` messages
  are tool use.
- sharegpt (LLaMA-Factory, Axolotl, FastChat): {"conversations"|"messages": [{"from", "value"}, ...],
  "system"?, "tools"?}; roles human/user, gpt/assistant/model, system, function_call (a JSON
  {"name", "arguments"} the assistant calls) and observation (the tool's answer). Turns
  alternate (human|observation, then gpt|function_call) after an optional system turn.
- alpaca: {"instruction", "input"?, "output", "system"?, "history"? ([[question, answer], ...])}.
- prompt: {"prompt", "completion"}, each a string or a list of messages (TRL); only the
  completion carries loss.
- text: {"text"}: raw text, no chat template.
Other keys are kept as metadata. Trailing turns after the last assistant turn teach nothing and
are left out of the sample; an empty assistant turn stays as context but carries no loss. A column
mapping renames a record's keys before any of this.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

from forge_tui.engine.sample import Format, Message, Problem, Sample

FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages", "tools"),
    "sharegpt": ("conversations", "messages", "system", "tools"),
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "prompt": ("prompt", "completion"),
    "text": ("text",),
}
MAPPABLE = tuple(sorted({name for names in FIELDS.values() for name in names}))  # what a column may be mapped to
EXPECTED = "messages, conversations, instruction+output, prompt+completion or text"

CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "system": "system", "function_call": "assistant",
                  "observation": "tool", "tool": "tool", "function": "tool"}
MEDIA_PARTS = ("image_url", "image", "input_image", "input_audio", "audio", "video", "file")


def detect_format(record: Any) -> Format | None:
    """The shape a record's keys announce."""
    if not isinstance(record, dict):
        return None
    if "conversations" in record:
        return "sharegpt"
    if "messages" in record:
        return "sharegpt" if _style(record["messages"]) is SHAREGPT else "chat"
    if "instruction" in record:
        return "alpaca"
    if "prompt" in record or "completion" in record:
        return "prompt"
    if "text" in record:
        return "text"
    return None


def _type_word(value: Any) -> str:
    if value is None:
        return "null"
    words = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object",
             bytes: "binary data"}
    return words.get(type(value), type(value).__name__)


def _text(record: Mapping[str, Any], key: str, problems: list[str], *, optional: bool = False) -> str:
    """The string under a record's `key`, or "" with a problem noted."""
    if key not in record or (record[key] is None and optional):
        if not optional:
            problems.append(f"missing field {key!r}")
        return ""
    value = record[key]
    if not isinstance(value, str):
        problems.append(f"{key!r} is {_type_word(value)}, expected a string")
        return ""
    if not optional and not value.strip():
        problems.append(f"{key!r} is empty")
    return value


# --------------------------------------------------------------------------- pieces of a turn


def _part(part: Any, where: str, problems: list[str], texts: list[str], calls: list[Mapping[str, Any]]) -> None:
    """One content part: text (OpenAI's `text`, LLaMA-Factory's `value`), reasoning (kept as a
    <think> block), a tool call; a media part is refused."""
    kind = part.get("type") if isinstance(part, dict) else None
    value = part.get("text", part.get("value")) if isinstance(part, dict) else part
    if kind in MEDIA_PARTS:
        problems.append(f"{where} is an {kind} part: this model is text-only, so only text parts can be trained on")
    elif kind == "tool_call":
        calls.extend(_calls(value, where, problems))
    elif kind in ("text", "reasoning", None) and isinstance(value, str):
        texts.append(f"<think>\n{value}\n</think>" if kind == "reasoning" else value)
    else:
        problems.append(f"{where} is not a text part ({{\"type\": \"text\", \"text\": ...}})")


def _content(value: Any, label: str, problems: list[str]) -> tuple[str, tuple[Mapping[str, Any], ...]]:
    """A turn's content (a string or a list of parts) -> its text (parts joined by newlines) and the
    tool calls among its parts."""
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        problems.append(f"{label} is {_type_word(value)}, expected a string or a list of text parts")
        return "", ()
    texts: list[str] = []
    calls: list[Mapping[str, Any]] = []
    for index, part in enumerate(value):
        _part(part, f"{label}[{index}]", problems, texts, calls)
    return "\n".join(texts), tuple(calls)


def _json_value(value: Any, label: str, problems: list[str]) -> Any:
    """A value that may be written as JSON text (ShareGPT's `tools`, `function_call`, `arguments`)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else None
    except json.JSONDecodeError as exc:
        problems.append(f"{label} is not valid JSON ({exc.msg} at column {exc.colno})")
    except (ValueError, RecursionError) as exc:  # too deep, or a number Python will not hold
        problems.append(f"{label} is JSON that cannot be read ({type(exc).__name__})")
    return None


def _call(value: Any, label: str, problems: list[str]) -> dict[str, Any] | None:
    """One tool call, from OpenAI's {"id"?, "type", "function": {...}} or a bare {"name", "arguments"},
    in the form chat templates read: arguments as an object."""
    function = value.get("function", value) if isinstance(value, dict) else None
    if not _named(function):
        problems.append(f"{label} is not a tool call (an object with a function name and arguments)")
        return None
    before = len(problems)
    arguments = _json_value(function.get("arguments", {}), f"{label}.arguments", problems)
    if arguments is not None and not isinstance(arguments, dict) and len(problems) == before:  # (not JSON: said)
        problems.append(f"{label}.arguments is {_type_word(arguments)}, expected an object of named arguments")
    call: dict[str, Any] = {"type": "function", "function": {"name": function["name"], "arguments": arguments or {}}}
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        call["id"] = value["id"]
    return call


def _calls(value: Any, label: str, problems: list[str]) -> tuple[Mapping[str, Any], ...]:
    before = len(problems)
    parsed = _json_value(value, label, problems)
    if parsed is None:
        if len(problems) == before:  # (text that is not JSON was reported as such)
            problems.append(f"{label} holds no tool call")
        return ()
    value = parsed
    items = value if isinstance(value, list) else [value]
    calls = [_call(item, f"{label}[{i}]" if isinstance(value, list) else label, problems) for i, item in enumerate(items)]
    return tuple(call for call in calls if call is not None)


def _named(function: Any) -> TypeGuard[dict[str, Any]]:
    """A function as a tool call or a tool spec names it: an object with a non-empty `name`."""
    return isinstance(function, dict) and isinstance(function.get("name"), str) and bool(function["name"].strip())


def _tool_specs(value: Any, problems: list[str]) -> tuple[Mapping[str, Any], ...]:
    """A record's `tools` (a list, or ShareGPT's JSON text of one) as {"type": "function", "function": spec}."""
    value = _json_value(value, "'tools'", problems)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(spec, dict) for spec in value):
        problems.append(f"'tools' is {_type_word(value)}, expected a list of function specifications")
        return ()
    specs = tuple(spec if "function" in spec else {"type": "function", "function": spec} for spec in value)
    for index, spec in enumerate(specs):
        if not _named(spec["function"]):
            problems.append(f"tools[{index}] is not a function specification (an object with a name)")
    return specs


def _trains(turn: Mapping[str, Any], role: str, label: str, problems: list[str]) -> bool:
    """OpenAI's per-message `weight` (LLaMA-Factory's `loss_weight`): 1, the default, trains on an
    assistant turn, 0 does not; other turns never carry loss."""
    key = "weight" if "weight" in turn else "loss_weight"
    weight = turn.get(key)
    if weight is None:  # absent (a columnar file's missing field reads as null)
        return True
    if weight not in (0, 1) or isinstance(weight, bool):
        problems.append(f"{label}.{key} is {weight!r}; expected 0 or 1")
    elif role != "assistant" and weight:
        problems.append(f"{label}.{key} is 1 on a {role} turn; only assistant turns carry loss")
    return bool(weight != 0)


# --------------------------------------------------------------------------- turns


@dataclass(frozen=True)
class _Style:
    """How a list of turns is written: which keys hold the role and content, and which roles mean what."""

    role_key: str
    content_key: str
    roles: Mapping[str, str]


CHAT = _Style("role", "content", CHAT_ROLES)
SHAREGPT = _Style("from", "value", SHAREGPT_ROLES)


def _style(turns: Any) -> _Style:
    """ShareGPT's from/value when the first turn is written so, else OpenAI's role/content."""
    first = turns[0] if isinstance(turns, list) and turns else None
    return SHAREGPT if isinstance(first, dict) and "from" in first else CHAT


def _turn(turn: Any, label: str, style: _Style, problems: list[str]) -> Message | None:
    if not isinstance(turn, dict):
        problems.append(f"{label} is {_type_word(turn)}, expected an object with {style.role_key} and {style.content_key}")
        return None
    raw = turn.get(style.role_key)
    role = style.roles.get(raw) if isinstance(raw, str) else None
    if role is None:
        shown = "missing" if raw is None else repr(raw)
        problems.append(f"{label}.{style.role_key} is {shown}; expected one of {', '.join(style.roles)}")
        return None
    if raw == "function_call":
        content, calls = "", _calls(turn.get(style.content_key), f"{label}.{style.content_key}", problems)
    else:
        content, calls = _turn_content(turn, label, style, role, problems)
    extra = tuple((key, turn[key]) for key in ("name", "tool_call_id") if isinstance(turn.get(key), str))
    answered = role != "assistant" or bool(content.strip() or calls)  # an empty answer is context, nothing to learn
    return Message(role, content, _trains(turn, role, label, problems) and answered, calls, extra)


def _turn_content(turn: Mapping[str, Any], label: str, style: _Style, role: str,
                  problems: list[str]) -> tuple[str, tuple[Mapping[str, Any], ...]]:
    key = style.content_key
    listed = _calls(turn["tool_calls"], f"{label}.tool_calls", problems) if turn.get("tool_calls") else ()
    value = turn.get(key)
    if value is None and (listed or (key in turn and role == "system")):
        return "", listed  # an assistant turn that only calls tools; a null system prompt
    if key not in turn:
        problems.append(f"missing field {label}.{key}")
        return "", listed
    before = len(problems)
    content, inline = _content(value, f"{label}.{key}", problems)
    calls = listed + inline
    if len(problems) == before and not content.strip() and role == "user" and not calls:
        problems.append(f"{label}.{key} is empty")
    return content, calls


def _alternation(value: list[Any], style: _Style, label: str) -> str | None:
    """ShareGPT's rule: after an optional system turn, human|observation then gpt|function_call, in turn."""
    roles = [style.roles.get(turn[style.role_key]) for turn in value]
    offset = 1 if roles and roles[0] == "system" else 0
    for index in range(offset, len(roles)):
        asking = (index - offset) % 2 == 0
        if (roles[index] in ("user", "tool")) != asking:
            expected = "human or observation" if asking else "gpt or function_call"
            return (f"{label}[{index}] is from {value[index][style.role_key]!r} where a {expected} turn belongs: turns must "
                    "alternate human/observation and gpt/function_call (after an optional system turn)")
    return None


def _turns(value: Any, key: str, style: _Style, problems: list[str]) -> list[Message]:
    """The list of turns under `key`, in `style`, checked turn by turn."""
    if not isinstance(value, list):
        problems.append(f"'{key}' is {_type_word(value)}, expected an array of turns")
        return []
    if not value:
        problems.append(f"'{key}' is empty")
        return []
    found = [_turn(turn, f"{key}[{index}]", style, problems) for index, turn in enumerate(value)]
    return [m for m in found if m is not None]


# --------------------------------------------------------------------------- shapes


def _chat(record: Mapping[str, Any], problems: list[str]) -> list[Message]:
    return _turns(record["messages"], "messages", CHAT, problems)


def _sharegpt(record: Mapping[str, Any], problems: list[str]) -> list[Message]:
    key = "conversations" if "conversations" in record else "messages"
    value = record[key]
    style = _style(value)
    messages = _turns(value, key, style, problems)
    if not problems:
        broken = _alternation(value, style, key)
        if broken:
            problems.append(broken)
    messages = [m for m in messages if m.role != "system" or m.content.strip()]  # an empty system prompt is none
    system = _text(record, "system", problems, optional=True)
    if system.strip() and not (messages and messages[0].role == "system"):
        messages.insert(0, Message("system", system))
    return messages


def _alpaca(record: Mapping[str, Any], problems: list[str]) -> list[Message]:
    instruction = _text(record, "instruction", problems)
    extra = _text(record, "input", problems, optional=True)
    output = _text(record, "output", problems)
    system = _text(record, "system", problems, optional=True)
    messages = [Message("system", system)] if system.strip() else []
    messages.extend(_history(record.get("history"), problems))
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return [*messages, Message("user", prompt), Message("assistant", output)]


def _history(value: Any, problems: list[str]) -> list[Message]:
    """Alpaca's `history`: earlier [question, answer] pairs of the conversation."""
    if value is None:
        return []
    pairs = value if isinstance(value, list) else None
    if pairs is None or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) for t in p) for p in pairs):
        problems.append("'history' must be a list of [question, answer] pairs of strings")
        return []
    return [Message(role, text) for pair in pairs for role, text in zip(("user", "assistant"), pair, strict=True)]


def _prompt(record: Mapping[str, Any], problems: list[str]) -> list[Message]:
    prompt = _side(record, "prompt", "user", problems)
    completion = _side(record, "completion", "assistant", problems)
    # only the completion carries loss: assistant turns inside a conversational prompt are context
    return [replace(m, train=False) for m in prompt] + completion


def _side(record: Mapping[str, Any], key: str, role: str, problems: list[str]) -> list[Message]:
    """A prompt or completion: a string (one `role` turn) or a list of messages (TRL's conversational form)."""
    value = record.get(key)
    if isinstance(value, list):
        return _turns(value, key, CHAT, problems)
    return [Message(role, _text(record, key, problems))]


def _plain_text(record: Mapping[str, Any], problems: list[str]) -> list[Message]:
    return [Message("assistant", _text(record, "text", problems))]


_BUILDERS: dict[str, Callable[[Mapping[str, Any], list[str]], list[Message]]] = {
    "chat": _chat, "sharegpt": _sharegpt, "alpaca": _alpaca, "prompt": _prompt, "text": _plain_text}


def _learnable(messages: list[Message], problems: list[str]) -> tuple[Message, ...]:
    """The conversation through its last assistant turn (what follows teaches nothing), refused when
    no assistant turn carries loss."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    if last < 0:
        problems.append("conversation has no assistant turn (nothing to learn from)")
    elif not any(m.train for m in messages if m.role == "assistant"):
        problems.append("no assistant turn carries loss (each is empty or has weight 0): nothing to learn from")
    return tuple(messages[: last + 1])


def mapped(record: dict[str, Any], columns: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """The record with its keys renamed by a column mapping, or why that cannot be done."""
    if not columns:
        return record, None
    moved = {key for key in columns if key in record}
    clash = next((k for k in moved if columns[k] in record and columns[k] not in moved), None)
    if clash is not None:
        return record, f"column {clash!r} is mapped to {columns[clash]!r}, which the record also has"
    return {columns.get(key, key): value for key, value in record.items()}, None


def _unsupported(record: Mapping[str, Any]) -> str | None:
    """Data for another kind of training, said as such rather than as a shape it does not match."""
    keys = record.keys()
    if {"chosen", "rejected"} <= keys or {"chosen_messages", "rejected_messages"} <= keys:
        return ("preference data (chosen and rejected answers) is for preference tuning such as DPO; supervised "
                "fine-tuning needs one answer per conversation")
    media = next((key for key in ("images", "videos", "audios") if record.get(key)), None)
    return f"record has {media}: this model is text-only" if media else None


def normalise_record(record: Any, line: int, file: Path, file_format: Format | None,
                     columns: Mapping[str, str] | None = None) -> tuple[Sample | None, list[Problem]]:
    """Validate one record against its file's format and build the Sample."""
    if not isinstance(record, dict):
        return None, [Problem(file, line, f"record is {_type_word(record)}, expected an object")]
    record, clash = mapped(record, columns or {})
    fmt = detect_format(record)
    unsupported = clash or _unsupported(record)
    if unsupported:
        return None, [Problem(file, line, unsupported)]
    if fmt is None:
        keys = ", ".join(sorted(record)) or "none"
        return None, [Problem(file, line, f"record has keys [{keys}]; expected {EXPECTED} "
                              "(or map its columns: --map KEY=FIELD, [data] columns)")]
    if file_format is not None and fmt != file_format:
        return None, [Problem(file, line, f"record is in {fmt} format but this file is in {file_format} format (mixed formats)")]
    found: list[str] = []
    built = _BUILDERS[fmt](record, found)
    messages = _learnable(built, found) if fmt != "text" and not found else tuple(built)  # (no follow-on problems)
    tools = _tool_specs(record["tools"], found) if fmt in ("chat", "sharegpt") and "tools" in record else ()
    if found:
        return None, [Problem(file, line, message) for message in found]
    used = set(FIELDS[fmt])
    meta = {key: value for key, value in record.items() if key not in used}
    return Sample(messages, fmt, file, line, meta, tools), []
