"""A dataset split across a local fleet's nodes, each node's shard its own file: `iid` deals the
rows out in a seeded shuffle; `by-category` gives each node whole categories (the rows' `category`
field), the greediest way to balance rows, so a node only ever sees its own categories' facts."""

from __future__ import annotations

import json
import random
from pathlib import Path

from forge_tui.errors import BadInput

SPLITS = ("iid", "by-category")


def _rows(dataset: Path) -> list[tuple[str, dict[str, object]]]:
    """(line, parsed row) for every non-blank line of a JSON-lines file; BadInput naming the line."""
    if dataset.is_dir() or dataset.suffix != ".jsonl":
        raise BadInput(f"{dataset}: a local fleet splits one JSON-lines file (.jsonl); convert other formats first")
    rows = []
    for number, line in enumerate(dataset.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{dataset}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{dataset}:{number}: a row must be a JSON object")
        rows.append((line, row))
    return rows


def _by_category(dataset: Path, rows: list[tuple[str, dict[str, object]]], nodes: int) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for line, row in rows:
        category = row.get("category")
        if not isinstance(category, str) or not category:
            raise BadInput(f"{dataset}: --split by-category needs a `category` on every row (the first without one: {line[:60]})")
        groups.setdefault(category, []).append(line)
    if len(groups) < nodes:
        raise BadInput(f"{dataset}: {len(groups)} categories for {nodes} nodes; use fewer nodes or --split iid")
    shards: list[list[str]] = [[] for _ in range(nodes)]
    for _, lines in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        min(shards, key=len).extend(lines)
    return shards


def split_rows(dataset: Path, nodes: int, how: str, seed: int = 0) -> list[list[str]]:
    """The lines of each node's shard."""
    if how not in SPLITS:
        raise BadInput(f"--split {how}: one of {', '.join(SPLITS)}")
    rows = _rows(dataset)
    if len(rows) < nodes * 2:
        raise BadInput(f"{dataset}: {len(rows)} rows are too few for {nodes} nodes")
    if how == "by-category":
        return _by_category(dataset, rows, nodes)
    lines = [line for line, _ in rows]
    random.Random(seed).shuffle(lines)
    return [lines[index::nodes] for index in range(nodes)]


def write_shards(dataset: Path, nodes: int, how: str, folder: Path, seed: int = 0) -> list[Path]:
    """Each node's shard as `folder/node-K.jsonl`."""
    return write_shard_files(split_rows(dataset, nodes, how, seed), folder)


def write_shard_files(shards: list[list[str]], folder: Path) -> list[Path]:
    """Shards split already, as `folder/node-K.jsonl`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, lines in enumerate(shards, start=1):
        path = folder / f"node-{index}.jsonl"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        paths.append(path)
    return paths
