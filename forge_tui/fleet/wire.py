"""Adapter tensors as they travel between a node and the coordinator: read from a PEFT folder, hashed
and sized the same way on both ends (so a node's audit entry and the coordinator's name the same
update), and written back as a PEFT folder that bench, export, Compare and Chat load unchanged."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forge_tui.engine.fsutil import publish_dir

if TYPE_CHECKING:
    from flwr.app import ArrayRecord

Arrays = dict[str, np.ndarray]
WEIGHTS = "adapter_model.safetensors"


def read_adapter(folder: Path) -> Arrays:
    """A PEFT adapter's weights by tensor name (safetensors, no torch needed)."""
    from safetensors.numpy import load_file

    return dict(load_file(str(folder / WEIGHTS)))


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """One digest of an update: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def arrays_bytes(arrays: Mapping[str, np.ndarray]) -> int:
    return int(sum(array.nbytes for array in arrays.values()))


def write_adapter(arrays: Mapping[str, np.ndarray], adapter_config: Path, folder: Path) -> Path:
    """A PEFT folder (`adapter_config.json` copied, the weights as safetensors), published whole: a
    reader sees the old folder or the new one, never half of one."""
    from safetensors.numpy import save_file

    staging = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(adapter_config, staging / "adapter_config.json")
    save_file({name: np.ascontiguousarray(array) for name, array in arrays.items()}, str(staging / WEIGHTS))
    return publish_dir(staging, folder)


def to_arrays(record: ArrayRecord) -> Arrays:
    """A Flower ArrayRecord's tensors by name."""
    return {name: array.numpy() for name, array in record.items()}


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """A Flower ArrayRecord of the tensors, in name order on every end (Flower's DP clipping pairs a
    node's tensors with the global ones by position)."""
    from collections import OrderedDict

    from flwr.app import Array, ArrayRecord

    return ArrayRecord(OrderedDict((name, Array(np.ascontiguousarray(arrays[name]))) for name in sorted(arrays)))


def summary(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """What an audit entry says of an update."""
    return {"sha256": arrays_sha256(arrays), "bytes": arrays_bytes(arrays), "tensors": len(arrays)}
