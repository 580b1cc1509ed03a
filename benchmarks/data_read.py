"""How fast `data check` reads, and whether its memory stays flat as the file grows.

    python benchmarks/data_read.py [--dir DIR] [--jsonl-mb 100 1000] [--parquet-rows 100000 1000000]
                                   [--tokenizer-rows 200000]

Generates ShareGPT-shaped JSONL files of the given sizes and Parquet files of the given row counts
(distinct conversations, ~500 bytes a row), then runs the real command, `forge-tui data check --json`,
on each in its own process: once without the tokenizer pass (the model's folder hidden from it) and,
for files of at most --tokenizer-rows rows, with it. Prints one JSON line per run: rows, seconds,
rows/s, peak RSS (the child's own, from wait4), and the peak's growth per extra row between the
smaller and the larger file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLANT = ["pump", "valve", "chiller", "boiler", "compressor", "feeder", "clarifier", "blower"]


def record(index: int) -> dict[str, Any]:
    asset = f"{PLANT[index % len(PLANT)]} {index}"
    return {"conversations": [
        {"from": "human", "value": f"What is the inspection interval for {asset} on line {index % 97}, and who signs it off?"},
        {"from": "gpt", "value": f"{asset.capitalize()} is inspected every {index % 30 + 1} days by the shift engineer of "
                                 f"section {index % 13}; the sign-off goes into log book {index % 211}, entry {index}."}],
        "id": f"r{index}"}


def write_jsonl(path: Path, megabytes: int) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8") as handle:
        while handle.tell() < megabytes * 1_000_000:
            handle.write(json.dumps(record(rows)) + "\n")
            rows += 1
    return rows


def write_parquet(path: Path, rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Table.from_pylist([record(0)]).schema
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 50_000):
            writer.write_table(pa.Table.from_pylist([record(i) for i in range(start, min(rows, start + 50_000))], schema))
    return rows


def check(path: Path, rows: int, tokenizer: bool) -> dict[str, Any]:
    env = dict(os.environ)
    if not tokenizer:
        env["FORGE_TUI_CACHE_DIR"] = str(path.parent / "no-model")  # the embedded model is not found: no token pass
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "forge_tui", "data", "check", "--json", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    report = json.loads(out)
    assert report["samples"] == rows, (report["samples"], rows, report["problems"][:3])
    return {"file": path.name, "bytes": path.stat().st_size, "rows": rows, "tokenizer": tokenizer,
            "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "exit": os.waitstatus_to_exitcode(status)}


def growth(small: dict[str, Any], large: dict[str, Any]) -> float:
    """Peak RSS added per extra row, in bytes."""
    return float(round((large["peak_rss_mib"] - small["peak_rss_mib"]) * 1024 * 1024 / (large["rows"] - small["rows"]), 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to write the generated files (default: a temp folder)")
    parser.add_argument("--jsonl-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--parquet-rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--tokenizer-rows", type=int, default=200_000, help="largest file also checked with the tokenizer pass")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="forge-data-read-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = [(folder / f"sharegpt-{mb}mb.jsonl", write_jsonl(folder / f"sharegpt-{mb}mb.jsonl", mb)) for mb in args.jsonl_mb]
    files += [(folder / f"sharegpt-{n}.parquet", write_parquet(folder / f"sharegpt-{n}.parquet", n)) for n in args.parquet_rows]
    results: list[dict[str, Any]] = []
    for tokenizer in (False, True):
        for path, rows in files:
            if tokenizer and rows > args.tokenizer_rows:
                continue
            results.append(check(path, rows, tokenizer))
            print(json.dumps(results[-1]), flush=True)
    for suffix in (".jsonl", ".parquet"):
        runs = [r for r in results if r["file"].endswith(suffix) and not r["tokenizer"]]
        if len(runs) >= 2:
            print(json.dumps({"format": suffix, "rss_bytes_per_extra_row": growth(runs[0], runs[-1]),
                              "rows": [runs[0]["rows"], runs[-1]["rows"]]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
