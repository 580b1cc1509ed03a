"""`export RUN --merged DIR`: the base model with the run's adapter merged in, as a plain model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from forge_tui.engine.audit import AuditLog, adapter_sha256, who
from forge_tui.engine.fsutil import publish_dir
from forge_tui.engine.models import load_causal_lm, load_tokenizer, resolve_model
from forge_tui.engine.runs import RunDir, require_finished
from forge_tui.engine.safety import check_adapter
from forge_tui.errors import BadInput


def export_merged(run: RunDir, out: Path) -> Path:
    """Merge in full precision (fp32 on CPU) and write safetensors + tokenizer; atomic by rename."""
    from peft import PeftModel

    adapter = require_finished(run)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out}: exists and is not an empty folder; choose a new one")
    config = run.config()
    base_dir = resolve_model(config.model.name, config.models.paths)
    base = load_causal_lm(base_dir)
    check_adapter(adapter, base)
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    staging = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging, safe_serialization=True)
    load_tokenizer(base_dir).save_pretrained(staging)
    published = publish_dir(staging, out)
    AuditLog(run.audit).append("export", **who(), merged=str(published), adapter_sha256=adapter_sha256(adapter))
    return published
