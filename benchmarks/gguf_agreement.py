"""GGUF export checked with the runtimes no one here wrote: llama.cpp (llama-cpp-python) and
transformers' GGUF loader, against the merged model in transformers.

    forge-tui train --preset quick --max-steps 10 --run-dir /tmp/quick      # any finished run
    make llama                                                              # llama-cpp-python, once (~12 min)
    .venv/bin/python benchmarks/gguf_agreement.py /tmp/quick [--items 12]

For each quant (f16, q8_0, q4_0): export time and size; llama.cpp's load time, whether its tokenizer
gives transformers' ids on the chat-templated eval items, whether it carries the model's chat
template, its teacher-forced next-token agreement with the merged model over the reference answers,
and its greedy decode speed. Then the adapter GGUF on a base f16 GGUF (written with the same engine
code) against the merged f16 file, and transformers loading the f16 and q8_0 files. Not in the test
suite: llama-cpp-python has no binary wheel here and builds from source in about 12 minutes. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forge_tui.engine.batches import IGNORE  # noqa: E402
from forge_tui.engine.bench import load_items, reference_encoding  # noqa: E402
from forge_tui.engine.export import merged_model  # noqa: E402
from forge_tui.engine.gguf_export import QUANTS, export_gguf, export_gguf_adapter, llama_shape, model_header, model_tensors, write_gguf  # noqa: E402
from forge_tui.engine.models import load_causal_lm, load_tokenizer, resolve_model  # noqa: E402
from forge_tui.engine.runs import open_run  # noqa: E402

DECODE_TOKENS = 64


def reference_logits(model: Any, encodings: list[Any]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(input_ids=torch.tensor([list(e.input_ids)])).logits[0].float().numpy() for e in encodings]


def answer_positions(encoding: Any) -> list[int]:
    """Positions whose next token is a reference-answer token."""
    return [i for i in range(len(encoding.labels) - 1) if encoding.labels[i + 1] != IGNORE]


def llama_cpp_figures(path: Path, tokenizer: Any, encodings: list[Any], reference: list[Any], lora: Path | None = None) -> dict[str, Any]:
    import numpy as np
    from llama_cpp import Llama

    started = time.monotonic()
    llm: Any = Llama(model_path=str(path), lora_path=str(lora) if lora else None, logits_all=True, n_ctx=2048, verbose=False)
    load = time.monotonic() - started
    same_ids = agree = total = 0
    for encoding, logits in zip(encodings, reference, strict=True):
        ids = list(encoding.input_ids)
        same_ids += llm.tokenize(tokenizer.decode(ids).encode(), add_bos=False, special=True) == ids
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[:len(ids)])
        rows = answer_positions(encoding)
        agree += int((scores[rows].argmax(-1) == logits[rows].argmax(-1)).sum())
        total += len(rows)
    return {"load_seconds": round(load, 2), "tokenizer_same": f"{same_ids}/{len(encodings)}",
            "chat_template": llm.metadata.get("tokenizer.chat_template") == tokenizer.chat_template,
            "agreement": round(agree / total, 4), "positions": total, **decode_speed(llm)}


def decode_speed(llm: Any) -> dict[str, Any]:
    """A chat completion through the file's own template: greedy, DECODE_TOKENS tokens."""
    started = time.monotonic()
    reply = llm.create_chat_completion([{"role": "user", "content": "How is chlorine residual kept in a water network?"}],
                                       temperature=0.0, max_tokens=DECODE_TOKENS)
    seconds = time.monotonic() - started
    tokens = reply["usage"]["completion_tokens"]
    return {"decode_tokens_per_s": round(tokens / seconds, 1), "answer": reply["choices"][0]["message"]["content"][:80]}


def transformers_figures(path: Path, tokenizer: Any, encodings: list[Any], reference: list[Any]) -> dict[str, Any]:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    worst, agree, total, same_ids = 0.0, 0, 0, 0
    for encoding, logits in zip(encodings, reference, strict=True):
        ids = list(encoding.input_ids)
        same_ids += loaded(tokenizer.decode(ids), add_special_tokens=False)["input_ids"] == ids
        with torch.no_grad():
            mine = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
        rows = answer_positions(encoding)
        worst = max(worst, float(np.abs(mine[rows] - logits[rows]).max()))
        agree += int((mine[rows].argmax(-1) == logits[rows].argmax(-1)).sum())
        total += len(rows)
    return {"max_logit_difference": round(worst, 4), "agreement": round(agree / total, 4), "tokenizer_same": f"{same_ids}/{len(encodings)}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run of a Llama-architecture model")
    parser.add_argument("--items", type=int, default=12, help="eval items to compare over")
    args = parser.parse_args()
    run = open_run(args.run)
    base_dir = resolve_model(run.config().model.name, run.config().models.paths)
    tokenizer = load_tokenizer(base_dir)
    encodings = [reference_encoding(tokenizer, item) for item in load_items(ROOT / "sample_data/waterworks/eval.jsonl", "eval", args.items)]
    merged, _ = merged_model(run)
    reference = reference_logits(merged.eval(), encodings)
    del merged
    results: dict[str, Any] = {"run": run.name, "model": base_dir.name, "items": len(encodings)}
    with tempfile.TemporaryDirectory() as folder:
        files = {quant: export_gguf(run, Path(folder) / f"{quant}.gguf", quant, lambda done, total: None) for quant in QUANTS}
        adapter = export_gguf_adapter(run, Path(folder) / "adapter.gguf", lambda done, total: None)
        base = Path(folder) / "base-f16.gguf"
        shape = llama_shape(base_dir)
        write_gguf(base, model_header(shape, tokenizer, base_dir, base_dir.name, "f16"),
                   model_tensors(dict(load_causal_lm(base_dir).state_dict()), shape, "f16"), lambda done, total: None)
        for quant, exported in files.items():
            results[quant] = {"mib": round(exported.bytes / 2**20, 1), "export_seconds": exported.seconds,
                              "llama_cpp": llama_cpp_figures(Path(exported.path), tokenizer, encodings, reference)}
            print(quant, json.dumps(results[quant]), flush=True)
        results["adapter"] = {"mib": round(adapter.bytes / 2**20, 1), "export_seconds": adapter.seconds,
                              "llama_cpp_on_base_f16": llama_cpp_figures(base, tokenizer, encodings, reference, Path(adapter.path))}
        print("adapter", json.dumps(results["adapter"]), flush=True)
        for quant in ("f16", "q8_0"):
            results[quant]["transformers"] = transformers_figures(Path(files[quant].path), tokenizer, encodings, reference)
            print(quant, "transformers", json.dumps(results[quant]["transformers"]), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
