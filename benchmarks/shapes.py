"""Model shapes for the benchmarks, as transformers configs: random weights in a real model's shape,
so a benchmark needs no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    # SmolLM2-135M-Instruct, the embedded default.
    "embedded": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
                     max_position_embeddings=8192),
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False, max_position_embeddings=4096),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=False, max_position_embeddings=4096),
}


def save_random_model(shape: str, out: Path, device: str, **overrides: Any) -> int:
    """Build the shape with seeded random weights (bf16 on CUDA, fp32 on CPU), save it as
    safetensors, and return its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = LlamaConfig(**{**SHAPES[shape], "bos_token_id": 1, "eos_token_id": 2, **overrides})
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    model.save_pretrained(out, safe_serialization=True)
    count = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return int(count)


def save_model_with_tokenizer(shape: str, tokenizer_dir: Path, out: Path, device: str) -> int:
    """`save_random_model` sized to a real tokenizer's vocabulary, the tokenizer saved beside it: a
    model folder the whole CLI takes (chat template included). Returns the parameter count."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    count = save_random_model(shape, out, device, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    tokenizer.save_pretrained(out)
    return count
