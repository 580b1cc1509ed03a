"""`export RUN --gguf FILE` and `export RUN --gguf-adapter FILE`: a finished run as files llama.cpp runs.

The merged model is written tensor by tensor with the `gguf` package (no llama.cpp checkout): names
from gguf's Llama tensor map, q/k rows permuted into llama.cpp's rotary layout (its converter does the
same; transformers' GGUF loader undoes it), 1-D tensors in f32, matrices in the chosen type. The
adapter alone is llama.cpp's LoRA adapter format (`general.type = adapter`, `blk.N.*.lora_a/_b`, the
alpha), for `--lora` on a base GGUF. Both are written to a temporary file beside the destination,
fsynced and renamed; the audit trail records the file's SHA-256.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_tui.errors import BadInput

if TYPE_CHECKING:  # the CLI reads QUANTS at start-up: nothing heavy is imported at the top
    from forge_tui.engine.runs import RunDir

QUANTS = ("f16", "q8_0", "q4_0")
SUPPORTED = ("LlamaForCausalLM",)
Progress = Callable[[int, int], None]   # (tensors written, tensors in all)


@dataclass(frozen=True)
class Exported:
    """What `export --gguf/--gguf-adapter --json` prints last: the file, its kind, size and hash."""

    path: str
    kind: str            # model | adapter
    quant: str           # f16 | q8_0 | q4_0 | f32 (an adapter)
    bytes: int
    sha256: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Exported:
        return cls(**{key: record[key] for key in ("path", "kind", "quant", "bytes", "sha256", "seconds")})


@dataclass(frozen=True)
class LlamaShape:
    """The hyperparameters llama.cpp needs, from the base model's config.json."""

    layers: int
    heads: int
    kv_heads: int
    hidden: int
    ffn: int
    context: int
    vocab: int
    head_dim: int
    rope_theta: float
    eps: float


def llama_shape(model_dir: Path) -> LlamaShape:
    """Refuses what this exporter would write wrong: another architecture, scaled RoPE."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    names = config.get("architectures") or ["(none)"]
    if names[0] not in SUPPORTED:
        raise BadInput(f"{path}: architecture {names[0]}; the GGUF export supports {', '.join(SUPPORTED)}. "
                       "Use export --merged and llama.cpp's convert_hf_to_gguf.py for others")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise BadInput(f"{path}: RoPE scaling {rope.get('rope_type', rope.get('type'))!r} is not written by this exporter; "
                       "use export --merged and llama.cpp's convert_hf_to_gguf.py")
    heads = int(config["num_attention_heads"])
    return LlamaShape(layers=int(config["num_hidden_layers"]), heads=heads,
                      kv_heads=int(config.get("num_key_value_heads") or heads), hidden=int(config["hidden_size"]),
                      ffn=int(config["intermediate_size"]), context=int(config.get("max_position_embeddings", 2048)),
                      vocab=int(config["vocab_size"]), head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
                      rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                      eps=float(config.get("rms_norm_eps", 1e-6)))


def permute_rows(weights: Any, heads: int) -> Any:
    """llama.cpp's rotary layout: within each head, the two rotated halves interleaved (the rows of
    q_proj and k_proj, or of a LoRA B matrix feeding them)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def rotary_heads(hf_name: str, shape: LlamaShape) -> int | None:
    """The heads to permute a tensor's rows by: q_proj by the query heads, k_proj by the key/value heads."""
    if ".q_proj." in hf_name:
        return shape.heads
    if ".k_proj." in hf_name:
        return shape.kv_heads
    return None


def gguf_name(hf_name: str, shape: LlamaShape) -> str:
    import gguf

    name = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, shape.layers).get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise BadInput(f"{hf_name}: a tensor the Llama GGUF layout has no place for")
    return name


def tensor_type(name: str, dims: tuple[int, ...], quant: str) -> Any:
    """f32 for vectors; the chosen type for matrices, except that q4_0 keeps the embedding (also the
    output layer when tied) at q8_0, as published Q4 files do, and rows not a whole number of blocks
    fall back to f16, as llama.cpp's converter does."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if len(dims) == 1:
        return GGMLQuantizationType.F32
    wanted = {"f16": GGMLQuantizationType.F16, "q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}[quant]
    if quant == "q4_0" and name in ("token_embd.weight", "output.weight"):
        wanted = GGMLQuantizationType.Q8_0
    if dims[-1] % GGML_QUANT_SIZES[wanted][0]:
        return GGMLQuantizationType.F16
    return wanted


def stored_bytes(dims: tuple[int, ...], qtype: Any) -> int:
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[qtype]
    count = 1
    for dim in dims:
        count *= dim
    return count // block * size


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Planned:
    """One tensor of the file: its GGUF name, shape and type, and how to produce its data."""

    name: str
    dims: tuple[int, ...]
    qtype: Any
    data: Callable[[], Any]


def write_gguf(out: Path, header: Callable[[Any], None], tensors: list[Planned], progress: Progress) -> None:
    """Header, then every tensor's info, then the tensors one at a time (a model is never in memory twice)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(out, "llama")
    try:
        header(writer)
        for tensor in tensors:
            writer.add_tensor_info(tensor.name, tensor.dims, np.dtype(np.float32), stored_bytes(tensor.dims, tensor.qtype),
                                   raw_dtype=tensor.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for done, tensor in enumerate(tensors, 1):
            writer.write_tensor_data(gguf.quants.quantize(tensor.data(), tensor.qtype))
            progress(done, len(tensors))
    finally:
        writer.close()


def model_header(shape: LlamaShape, tokenizer: Any, model_dir: Path, title: str, quant: str) -> Callable[[Any], None]:
    def header(writer: Any) -> None:
        import gguf

        from forge_tui.engine.gguf_vocab import add_tokenizer

        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(title)
        writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                              "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[quant])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_context_length(shape.context)
        writer.add_embedding_length(shape.hidden)
        writer.add_feed_forward_length(shape.ffn)
        writer.add_block_count(shape.layers)
        writer.add_head_count(shape.heads)
        writer.add_head_count_kv(shape.kv_heads)
        writer.add_rope_freq_base(shape.rope_theta)
        writer.add_layer_norm_rms_eps(shape.eps)
        writer.add_vocab_size(shape.vocab)
        writer.add_rope_dimension_count(shape.head_dim)
        if shape.head_dim != shape.hidden // shape.heads:
            writer.add_key_length(shape.head_dim)
            writer.add_value_length(shape.head_dim)
        add_tokenizer(writer, tokenizer, model_dir, shape.vocab)

    return header


def model_tensors(state: dict[str, Any], shape: LlamaShape, quant: str) -> list[Planned]:
    """The merged model's tensors in file order (rotary tables and tied copies left out)."""
    planned = []
    for hf_name, tensor in state.items():
        if "rotary_emb" in hf_name or (hf_name == "lm_head.weight" and _tied(state)):
            continue
        name = gguf_name(hf_name, shape)
        dims = tuple(tensor.shape)
        planned.append(Planned(name, dims, tensor_type(name, dims, quant), _rows_of(tensor, rotary_heads(hf_name, shape))))
    return planned


def _tied(state: dict[str, Any]) -> bool:
    """The output layer shares the embedding's storage (llama.cpp then reads token_embd for both)."""
    head, embed = state.get("lm_head.weight"), state.get("model.embed_tokens.weight")
    return head is None or embed is None or head.data_ptr() == embed.data_ptr()


def _rows_of(tensor: Any, heads: int | None) -> Callable[[], Any]:
    def data() -> Any:
        array = tensor.detach().float().cpu().numpy()
        return permute_rows(array, heads) if heads else array

    return data


# --------------------------------------------------------------------------- the two exports


def export_gguf(run: RunDir, out: Path, quant: str, progress: Progress) -> Exported:
    """The run's merged model as one GGUF file."""
    from forge_tui.engine.export import merged_model
    from forge_tui.engine.gguf_vocab import pre_tokenizer, require_bpe
    from forge_tui.engine.models import load_tokenizer, resolve_model

    started = time.monotonic()
    out = _destination(out)
    base_dir = resolve_model(run.config().model.name, run.config().models.paths)
    shape = llama_shape(base_dir)
    tokenizer = load_tokenizer(base_dir)
    require_bpe(base_dir)
    pre_tokenizer(tokenizer, base_dir)  # refused before minutes of merging, not after
    merged, adapter = merged_model(run)
    state = dict(merged.state_dict())
    tensors = model_tensors(state, shape, quant)
    header = model_header(shape, tokenizer, base_dir, f"{base_dir.name} + {run.name}", quant)
    return _published(run, out, ("model", quant), header, tensors, adapter, started, progress)


def export_gguf_adapter(run: RunDir, out: Path, progress: Progress) -> Exported:
    """The run's LoRA adapter alone, in llama.cpp's adapter format (f32)."""
    from forge_tui.engine.models import resolve_model

    started = time.monotonic()
    out = _destination(out)
    base_dir = resolve_model(run.config().model.name, run.config().models.paths)
    shape = llama_shape(base_dir)
    adapter, lora = plain_lora(run, base_dir)
    tensors = adapter_tensors(adapter, shape)

    def header(writer: Any) -> None:
        import gguf

        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_name(f"{run.name} (LoRA on {base_dir.name})")
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora["lora_alpha"]))

    return _published(run, out, ("adapter", "f32"), header, tensors, adapter, started, progress)


def plain_lora(run: RunDir, base_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The finished run's adapter and its config, checked against the base model's layers (built on
    the meta device from its config: no weights are read); DoRA and rank-stabilised LoRA are refused,
    llama.cpp's adapter loader applies neither."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from forge_tui.engine.fsutil import read_json_object
    from forge_tui.engine.runs import require_finished
    from forge_tui.engine.safety import check_adapter

    adapter = require_finished(run)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            AutoConfig.from_pretrained(base_dir, local_files_only=True))
    check_adapter(adapter, skeleton)
    config = read_json_object(adapter / "adapter_config.json")
    for flag, name in (("use_dora", "DoRA"), ("use_rslora", "rank-stabilised LoRA")):
        if config.get(flag):
            raise BadInput(f"{adapter / 'adapter_config.json'}: a {name} adapter; llama.cpp's adapter format takes plain LoRA "
                           "(export --gguf merges any adapter)")
    return adapter, config


def adapter_tensors(adapter: Path, shape: LlamaShape) -> list[Planned]:
    """`blk.N.<tensor>.weight.lora_a` (rank x in) and `.lora_b` (out x rank), B's rows permuted for q/k."""
    from gguf import GGMLQuantizationType
    from safetensors.torch import load_file

    tensors = load_file(adapter / "adapter_model.safetensors")
    planned = []
    for key in sorted(tensors):
        if ".lora_A." not in key:
            continue
        hf_name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        name = gguf_name(hf_name, shape)
        a, b = tensors[key], tensors[key.replace(".lora_A.", ".lora_B.")]
        for suffix, tensor, heads in ((".lora_a", a, None), (".lora_b", b, rotary_heads(hf_name, shape))):
            planned.append(Planned(name + suffix, tuple(tensor.shape), GGMLQuantizationType.F32, _rows_of(tensor, heads)))
    return planned


def _destination(out: Path) -> Path:
    from forge_tui.engine.fsutil import check_destination

    out = out.resolve()
    if out.exists():
        raise BadInput(f"{out}: exists; choose a new file name (an export never overwrites)")
    check_destination(out, "the GGUF file")
    return out


def _published(run: RunDir, out: Path, what: tuple[str, str], header: Callable[[Any], None], tensors: list[Planned],
               adapter: Path, started: float, progress: Progress) -> Exported:
    """Write `out` (its kind and quant in `what`; the disk checked for its tensors and 64 MiB of
    metadata), then record it, with its size and hash, in the run's audit trail."""
    from forge_tui.engine.audit import AuditLog, adapter_sha256, who
    from forge_tui.engine.fsutil import file_sha256, published_file

    needed = sum(stored_bytes(t.dims, t.qtype) for t in tensors) + (64 << 20)
    with published_file(out, needed, f"the GGUF {what[0]}") as staging:
        write_gguf(staging, header, tensors, progress)
    exported = Exported(str(out), *what, out.stat().st_size, file_sha256(out), round(time.monotonic() - started, 1))
    AuditLog(run.audit).append("export", **who(), gguf=exported.path, gguf_kind=exported.kind, quant=exported.quant,
                               bytes=exported.bytes, sha256=exported.sha256, adapter_sha256=adapter_sha256(adapter))
    return exported
