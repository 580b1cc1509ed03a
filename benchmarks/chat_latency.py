"""Chat latency on this machine: the child's model load time, time to first token and tokens/s per
side, for the engine's two ways to serve the tuned side (a merged copy, and the adapter switched on
and off on one model), with the plain model alone as the peer; then the GGUF export time per quant.

    forge-tui train --preset quick --max-steps 10 --run-dir /tmp/quick      # any finished run
    .venv/bin/python benchmarks/chat_latency.py /tmp/quick [--questions 6] [--tokens 64]

Each configuration answers the same eval questions greedily (sides one after the other, as the
command line does; --interleave for the console's way), --tokens new tokens at most. Load time is
measured in a fresh process (`forge-tui chat RUN --serve` until its `ready` line), as the console
pays it. Targets: first token under 1 s after load, at least 20 tokens/s per side. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forge_tui.engine.bench import load_items  # noqa: E402
from forge_tui.engine.chat import SIDES, ChatModel, Sampling, merged_pair  # noqa: E402
from forge_tui.engine.children import forge_argv  # noqa: E402
from forge_tui.engine.gguf_export import QUANTS, export_gguf  # noqa: E402
from forge_tui.engine.plan import load_for_answers  # noqa: E402
from forge_tui.engine.runs import RunDir, open_run  # noqa: E402


def child_load_seconds(run: RunDir) -> float:
    """A fresh chat child from start to its `ready` line."""
    started = time.monotonic()
    child = subprocess.Popen(forge_argv(None, "chat", str(run.path), "--serve"), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    assert child.stdin is not None
    for line in child.stdout:
        if json.loads(line).get("type") == "ready":
            break
    seconds = time.monotonic() - started
    child.stdin.close()
    child.wait()
    return seconds


def serve_figures(model: ChatModel, questions: list[list[dict[str, str]]], tokens: int, interleave: bool) -> dict[str, Any]:
    sampling = Sampling(max_new_tokens=tokens)
    rates: dict[str, list[float]] = {side: [] for side in model.sides}
    firsts: dict[str, list[float]] = {side: [] for side in model.sides}
    model.answer(dict.fromkeys(model.sides, questions[0]), Sampling(max_new_tokens=4), lambda side, text: None)  # warm-up
    for question in questions:
        for answer in model.answer(dict.fromkeys(model.sides, question), sampling, lambda side, text: None, interleave=interleave):
            rates[answer.side].append(answer.tokens_per_second or 0.0)
            firsts[answer.side].append(answer.first_token_seconds or 0.0)
    return {side: {"tokens_per_s": round(statistics.median(rates[side]), 1),
                   "first_token_s": round(statistics.median(firsts[side]), 3)} for side in model.sides}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--interleave", action="store_true", help="the sides take turns token by token, as on the console")
    args = parser.parse_args()
    run = open_run(args.run)
    items = load_items(ROOT / "sample_data/waterworks/eval.jsonl", "eval", args.questions)
    questions = [list(item.prompt) for item in items]
    results: dict[str, Any] = {"run": run.name, "questions": len(questions), "max_new_tokens": args.tokens,
                               "interleave": args.interleave, "child_load_seconds": round(child_load_seconds(run), 2)}
    print("child load", results["child_load_seconds"], "s", flush=True)
    for name in ("merged copy", "adapter toggled", "plain model alone"):
        model, tokenizer, device = load_for_answers(run.config(), None if name == "plain model alone" else run.adapter)
        models = merged_pair(model) if name == "merged copy" else (
            {"base": model, "tuned": model} if name == "adapter toggled" else {"base": model})
        results[name] = serve_figures(ChatModel(models, tokenizer, device, run.name), questions, args.tokens, args.interleave)
        print(name, json.dumps(results[name]), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        exports = {quant: export_gguf(run, Path(folder) / f"{quant}.gguf", quant, lambda done, total: None) for quant in QUANTS}
    results["gguf_export"] = {quant: {"seconds": e.seconds, "mib": round(e.bytes / 2**20, 1)} for quant, e in exports.items()}
    print("gguf export", json.dumps(results["gguf_export"]), flush=True)
    for side in SIDES:
        rate = results["merged copy"][side]["tokens_per_s"]
        print(f"{side}: {rate} tok/s ({rate / 20:.2f}x the 20 tok/s target), first token "
              f"{results['merged copy'][side]['first_token_s']} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
