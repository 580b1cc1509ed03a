"""`export RUN --merged DIR`: the base model with the run's adapter merged in, as a plain model (the
GGUF files are in gguf_export.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forge_tui.engine.audit import AuditLog, adapter_sha256, who
from forge_tui.engine.fsutil import check_destination, publish_dir, staged
from forge_tui.engine.models import describe_directory, load_causal_lm, load_tokenizer, quiet_libraries, resolve_model
from forge_tui.engine.runs import RunDir, require_finished
from forge_tui.engine.safety import check_adapter
from forge_tui.errors import BadInput


def export_merged(run: RunDir, out: Path) -> Path:
    """Merge in full precision (fp32 on CPU) and write safetensors + tokenizer; atomic by rename.
    The destination is checked (writable, room for the model) before the model loads."""
    require_finished(run)
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out}: exists and is not an empty folder; choose a new one")
    base_dir = resolve_model(run.config().model.name, run.config().models.paths)
    check_destination(out, "the merged model")
    staging = out.parent / f".tmp-{out.name}-{os.getpid()}"
    with staged(staging, _merged_bytes(base_dir), "the merged model"):
        merged, adapter = merged_model(run)
        merged.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(base_dir).save_pretrained(staging)
        published = publish_dir(staging, out)
    AuditLog(run.audit).append("export", **who(), merged=str(published), adapter_sha256=adapter_sha256(adapter))
    return published


def merged_model(run: RunDir) -> tuple[Any, Path]:
    """The base model (fp32) with the run's adapter merged in (checked against it first), and the adapter's folder."""
    quiet_libraries()  # before peft imports bitsandbytes
    from peft import PeftModel

    adapter = require_finished(run)
    base = load_causal_lm(resolve_model(run.config().model.name, run.config().models.paths))
    check_adapter(adapter, base)
    return PeftModel.from_pretrained(base, adapter).merge_and_unload(), adapter


def _merged_bytes(model_dir: Path) -> int:
    """The merged model's size on disk: every parameter in fp32, as the merge loads them."""
    return (describe_directory(model_dir).parameters or 0) * 4


