"""The first training conversations of the sample site written in the shapes other tools use, so the
Datasets screen shows each being read into the same chat form (tests check they are):

- formats/sharegpt.json         ShareGPT (LLaMA-Factory, Axolotl): `conversations` of {from, value},
                                the system prompt in a top-level `system`
- formats/openai-parts.jsonl    OpenAI chat fine-tuning: content as text parts, `weight` on answers
- formats/faq.csv               a spreadsheet export in no known shape (`question`, `answer`): the
                                Datasets screen's `m` (or `--map question=instruction --map
                                answer=output`) reads it
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

SHOWN = 40
SHAREGPT_ROLE = {"user": "human", "assistant": "gpt"}


def _sharegpt(turns: list[dict[str, str]]) -> dict[str, Any]:
    system = [t["content"] for t in turns if t["role"] == "system"]
    record: dict[str, Any] = {"conversations": [{"from": SHAREGPT_ROLE[t["role"]], "value": t["content"]}
                                                for t in turns if t["role"] != "system"]}
    return {**record, "system": system[0]} if system else record


def _openai(turns: list[dict[str, str]]) -> dict[str, Any]:
    return {"messages": [{"role": t["role"], "content": [{"type": "text", "text": t["content"]}],
                          **({"weight": 1} if t["role"] == "assistant" else {})} for t in turns]}


def _csv(rows: list[list[dict[str, Any]]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["question", "answer"])
    writer.writerows([t[0]["content"], t[1]["content"]] for t in rows if [m["role"] for m in t] == ["user", "assistant"])
    return out.getvalue()


def format_outputs(train: list[dict[str, Any]]) -> dict[str, str]:
    """The files, from the training conversations (each {"messages": [...]})."""
    conversations = [row["messages"] for row in train[:SHOWN]]
    return {
        "formats/sharegpt.json": json.dumps([_sharegpt(t) for t in conversations], indent=1, ensure_ascii=False) + "\n",
        "formats/openai-parts.jsonl": "".join(json.dumps(_openai(t), ensure_ascii=False) + "\n" for t in conversations),
        "formats/faq.csv": _csv(conversations),
    }
