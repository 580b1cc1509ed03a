"""`export RUN --merged DIR`: the base model with the run's adapter merged in, as a plain model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from forge_tui.engine.audit import AuditLog, adapter_sha256, who
from forge_tui.engine.fsutil import is_out_of_space, out_of_space, publish_dir, remove_stale, require_space
from forge_tui.engine.models import load_causal_lm, load_tokenizer, quiet_libraries, resolve_model
from forge_tui.engine.runs import RunDir, require_finished
from forge_tui.engine.safety import check_adapter
from forge_tui.errors import BadInput


def export_merged(run: RunDir, out: Path) -> Path:
    """Merge in full precision (fp32 on CPU) and write safetensors + tokenizer; atomic by rename.
    The destination is checked (writable, room for the model) before the model loads."""
    quiet_libraries()  # before peft imports bitsandbytes
    from peft import PeftModel

    adapter = require_finished(run)
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out}: exists and is not an empty folder; choose a new one")
    config = run.config()
    base_dir = resolve_model(config.model.name, config.models.paths)
    staging = _staging(out, needed=_weights_bytes(base_dir))
    try:
        base = load_causal_lm(base_dir)
        check_adapter(adapter, base)
        merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
        merged.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(base_dir).save_pretrained(staging)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if is_out_of_space(exc, out.parent, _weights_bytes(base_dir)):
            raise out_of_space(out.parent, _weights_bytes(base_dir), "the merged model") from None
        raise
    published = publish_dir(staging, out)
    AuditLog(run.audit).append("export", **who(), merged=str(published), adapter_sha256=adapter_sha256(adapter))
    return published


def _weights_bytes(model_dir: Path) -> int:
    """The merged model's size on disk: the base's weights as they are stored (fp32 here)."""
    return sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))


def _staging(out: Path, needed: int) -> Path:
    """A fresh staging folder beside `out` (stale ones of killed exports removed first), once the
    destination is known to be writable and roomy enough: refused before any model is loaded."""
    parent = out.parent
    if not parent.is_dir():
        raise BadInput(f"{parent}: no such folder for the merged model")
    remove_stale(parent, f".tmp-{out.name}-")
    staging = parent / f".tmp-{out.name}-{os.getpid()}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise BadInput(f"{parent}: cannot write the merged model here: {exc.strerror}") from None
    try:
        require_space(parent, needed, "the merged model")
    except BaseException:
        staging.rmdir()
        raise
    return staging
