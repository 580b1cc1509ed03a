"""A tokenizer as llama.cpp reads it from a GGUF file: the token list and types, the merges, the
pre-tokenizer's name, the special tokens and the chat template, all from the local model folder.

llama.cpp does not read a pre-tokenizer's definition: it recognises the tokenizer by name. Its own
converter names it by hashing the ids of one probe text (`PROBE`) and looking the hash up in a table;
we do the same, with the entries of that table a Llama-architecture model can carry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from forge_tui.errors import BadInput

# llama.cpp's probe text (convert_hf_to_gguf.py, get_vocab_base_pre): its tokens' hash names the pre-tokenizer.
PROBE = ("\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 "
         "3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天\uff5e ------======= нещо на "
         "Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, "
         "'D you like some tea? We'Ve a'lL")

# The probe's hash -> llama.cpp's name, for the byte-level BPE tokenizers Llama-architecture models use.
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",          # SmolLM, SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",       # Llama 3.x
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",       # Llama 3 derivatives
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}

# gguf.TokenType values (llama.cpp's llama_token_type)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


def pre_tokenizer(tokenizer: Any, model_dir: Path) -> str:
    """llama.cpp's name for this tokenizer's pre-tokenizer; a tokenizer it would not read alike is refused."""
    digest = hashlib.sha256(str(tokenizer.encode(PROBE)).encode()).hexdigest()
    name = PRE_TOKENIZERS.get(digest)
    if name is None:
        raise BadInput(f"{model_dir}: its tokenizer is not one llama.cpp reads alike (the GGUF export supports the "
                       f"byte-level BPE tokenizers {', '.join(sorted(set(PRE_TOKENIZERS.values())))}); "
                       "export --merged and convert with llama.cpp's own tools")
    return name


def require_bpe(model_dir: Path) -> None:
    """Only byte-level BPE tokenizers (tokenizer.json of model type BPE) are written; SentencePiece is not."""
    path = model_dir / "tokenizer.json"
    try:
        kind = json.loads(path.read_text(encoding="utf-8"))["model"]["type"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInput(f"{path}: no readable tokenizer.json; the GGUF export needs the model's fast tokenizer") from None
    if kind != "BPE":
        raise BadInput(f"{path}: a {kind} tokenizer; the GGUF export writes byte-level BPE tokenizers only")


def token_list(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every id's token text and type, as llama.cpp's converter writes them: ids the tokenizer has no
    token for are `[PADn]` (unused), added special tokens are control tokens."""
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(UNUSED)
        elif index in added:
            tokens.append(token)
            types.append(CONTROL if added[index].special else USER_DEFINED)
        else:
            tokens.append(token)
            types.append(NORMAL)
    return tokens, types


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer starts a plain text with its beginning-of-sequence token (llama.cpp asks)."""
    ids = tokenizer("a")["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def add_tokenizer(writer: Any, tokenizer: Any, model_dir: Path, vocab_size: int) -> None:
    """The tokenizer's GGUF metadata: model, pre-tokenizer, tokens, types, merges, special ids, whether
    BOS is added, and the chat template the run was trained with."""
    import gguf

    require_bpe(model_dir)
    tokens, types = token_list(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(tokenizer, model_dir))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True)
    special.chat_template = tokenizer.chat_template
    if "bos" not in special.add_special_token:  # read from tokenizer.json's post-processor when it says
        special.add_special_token["bos"] = adds_bos(tokenizer)
    special.add_to_gguf(writer, quiet=True)
