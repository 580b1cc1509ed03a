"""GGUF export: the real embedded model written by the engine and read back by transformers' own GGUF
loader (a runtime no one here wrote), logits within a tolerance that a missing q/k permutation fails
by more than two orders of magnitude; the tiny run through the command line (model and adapter, progress,
audit); and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader

from forge_tui.engine.fsutil import file_sha256, published_file
from forge_tui.engine.gguf_export import Exported, export_gguf_adapter, llama_shape, model_header, model_tensors, permute_rows, write_gguf
from forge_tui.engine.gguf_vocab import pre_tokenizer
from forge_tui.engine.models import load_causal_lm, load_tokenizer
from forge_tui.engine.runs import open_run
from forge_tui.errors import BadInput, ForgeError
from tests.helpers import adapter_tensors, run_cli

PROMPT = [{"role": "system", "content": "You answer operators of a water utility."},
          {"role": "user", "content": "What does a pressure-reducing valve do in a water main, and when is it serviced?"}]


@pytest.fixture(scope="module")
def embedded(embedded_model: Path) -> tuple[object, object]:
    return load_causal_lm(embedded_model).eval(), load_tokenizer(embedded_model)


def _written(embedded_model: Path, model: object, tokenizer: object, out: Path, quant: str) -> Path:
    shape = llama_shape(embedded_model)
    write_gguf(out, model_header(shape, tokenizer, embedded_model, "test", quant),
               model_tensors(dict(model.state_dict()), shape, quant), lambda done, total: None)  # type: ignore[attr-defined]
    return out


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


@pytest.mark.model
def test_transformers_reads_the_real_model_back_with_its_tokenizer(embedded_model: Path, embedded, tmp_path: Path) -> None:
    """f16: every logit within 0.1 of the fp32 model (measured 0.04; the same file without the q/k
    permutation is 32.8 off, greedy agreement 44%), the same token ids and chat template. (q8_0 and
    q4_0 through transformers and llama.cpp: benchmarks/gguf_agreement.py, each load costs ~20 s.)"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = embedded
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=False)
    path = _written(embedded_model, model, tokenizer, tmp_path / "f16.gguf", "f16")
    logits = _logits(AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name).eval(), ids)
    reference = _logits(model, ids)
    assert float((logits - reference).abs().max()) < 0.1
    assert bool((logits.argmax(-1) == reference.argmax(-1)).all())
    read_back = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    assert read_back.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=False) == ids
    assert read_back.chat_template == tokenizer.chat_template
    fields = GGUFReader(path).fields
    assert fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tokenizer.eos_token_id
    assert len(fields["tokenizer.ggml.merges"].data) > 40_000


def test_permute_rows_is_llama_cpp_rotary_layout() -> None:
    """Each head's two halves interleaved: rows [a0 a1 b0 b1] of a head become [a0 b0 a1 b1]."""
    rows = np.arange(8).reshape(8, 1)
    assert permute_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_the_tiny_run_exports_a_model_and_an_adapter_from_the_command_line(tiny_config: Path, trained: Path, tmp_path: Path) -> None:
    model_file, adapter_file = tmp_path / "model.gguf", tmp_path / "adapter.gguf"
    done = run_cli("--config", str(tiny_config), "export", str(trained), "--gguf", str(model_file), "--quant", "q4_0", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["done"] for line in lines[:-1]] == list(range(1, lines[0]["total"] + 1))  # progress, tensor by tensor
    exported = Exported.from_json(lines[-1])
    assert (exported.kind, exported.quant, exported.sha256) == ("model", "q4_0", file_sha256(model_file))
    types = {t.name: t.tensor_type.name for t in GGUFReader(model_file).tensors}
    assert types["token_embd.weight"] == "Q8_0"          # the embedding, also the tied output layer, kept at 8 bits
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.1.ffn_down.weight"] == "Q4_0"
    assert "output.weight" not in types                  # tied: llama.cpp reads token_embd

    adapter = run_cli("--config", str(tiny_config), "export", str(trained), "--gguf-adapter", str(adapter_file))
    assert adapter.returncode == 0, adapter.stderr
    assert "GGUF adapter (f32) written" in adapter.stdout
    reader = GGUFReader(adapter_file)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    tensors = {t.name: t for t in reader.tensors}
    lora = adapter_tensors(trained)
    assert len(tensors) == len(lora)
    b = lora["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].numpy()
    stored = tensors["blk.0.attn_q.weight.lora_b"].data
    assert np.allclose(stored, permute_rows(b, 4))     # q's rows in llama.cpp's rotary layout (4 heads)
    assert not np.allclose(stored, b)
    kinds = [(e["kind"], e.get("gguf_kind")) for e in map(json.loads, (trained / "audit.jsonl").read_text().splitlines())]
    assert kinds[-2:] == [("export", "model"), ("export", "adapter")]

    again = run_cli("--config", str(tiny_config), "export", str(trained), "--gguf", str(model_file))
    assert again.returncode == 2
    assert "exists" in again.stderr
    misused = run_cli("--config", str(tiny_config), "export", str(trained), "--merged", str(tmp_path / "m"), "--quant", "q8_0")
    assert misused.returncode == 2
    assert "--quant is the weight type of --gguf" in misused.stderr
    assert file_sha256(model_file) == exported.sha256   # refused: the file is as it was


def test_an_adapter_llama_cpp_would_apply_wrong_is_refused(trained: Path, tmp_path: Path) -> None:
    settings = json.loads((trained / "adapter" / "adapter_config.json").read_text())
    (trained / "adapter" / "adapter_config.json").write_text(json.dumps({**settings, "use_dora": True}))
    with pytest.raises(BadInput, match="a DoRA adapter"):
        export_gguf_adapter(open_run(trained), tmp_path / "a.gguf", lambda done, total: None)
    assert not (tmp_path / "a.gguf").exists()


def test_architectures_and_rope_it_would_write_wrong_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(BadInput, match="supports LlamaForCausalLM"):
        llama_shape(tmp_path)
    llama3 = {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "num_hidden_layers": 2, "hidden_size": 64,
              "intermediate_size": 128, "vocab_size": 100, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}
    (tmp_path / "config.json").write_text(json.dumps(llama3))
    with pytest.raises(BadInput, match="RoPE scaling 'llama3'"):
        llama_shape(tmp_path)


def test_a_tokenizer_llama_cpp_would_split_differently_is_refused(tmp_path: Path) -> None:
    class Whitespace:  # a pre-tokenizer llama.cpp has no name for: its ids hash to nothing known
        def encode(self, text: str) -> list[int]:
            return [len(word) for word in text.split()]

    with pytest.raises(BadInput, match=r"not one llama\.cpp reads alike"):
        pre_tokenizer(Whitespace(), tmp_path)


def test_a_file_that_appears_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    """Two exports to one name (g pressed twice): the second fails and leaves the first's file."""
    out = tmp_path / "model.gguf"

    def second_export() -> None:
        with published_file(out, 1, "the GGUF model") as staging:
            staging.write_bytes(b"second")
            out.write_bytes(b"first")

    with pytest.raises(ForgeError, match="appeared while this export was written"):
        second_export()
    assert out.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    def killed_mid_write() -> None:
        with published_file(tmp_path / "model.gguf", 1, "the GGUF model") as staging:
            staging.write_bytes(b"GGUF partial")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()
    assert list(tmp_path.iterdir()) == []
