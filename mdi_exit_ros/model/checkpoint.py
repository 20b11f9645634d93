"""Checkpoints that are safe to load from strangers: safetensors + JSON metadata.

No pickle anywhere: tensors are read by the safetensors parser, the metadata is
one JSON string in the safetensors header (key ``"mdi_exit"``), and the
architecture is rebuilt by *our* registered builder from the recorded name and
keyword arguments (JSON values only).  Before any weight is loaded:

* the file must parse (a truncated or garbled file is refused),
* the metadata must be complete and of a known format version,
* ``model_id`` = "<arch>-<first 12 hex of sha256 over the tensors>" must match
  the tensors (a flipped byte is refused),
* tensor names and shapes must match the architecture (checked on the "meta"
  device first, so a hostile file cannot make us allocate a huge model).

Every refusal raises :class:`CheckpointError` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .builders import MODEL_BUILDERS, build_model
from .early_exit import EarlyExitModel

FORMAT_NAME = "mdi-exit-checkpoint"
FORMAT_VERSION = 1
META_KEY = "mdi_exit"
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
MAX_FILE_BYTES = 2 * 1024**3
REQUIRED_META = (
    "format", "format_version", "arch", "arch_kwargs", "num_exits", "input_spec",
    "class_names", "model_id", "codecs", "dtype",
)  # fmt: skip

# Shipped checkpoints: load_model(name) -> CHECKPOINT_DIR / file
SHIPPED = {
    "fmnist_cnn_ee": "fmnist_cnn_ee.safetensors",
    "mobilenet_v2_ee_cifar10": "mobilenet_v2_ee_cifar10.safetensors",
}
# Names of models documented but not shipped (yet): name -> why and how to get the file.
NOT_SHIPPED = {
    "resnet50_ee_cifar10": (
        "its checkpoint is not shipped yet: training it takes about 8 hours on a CPU. Train it "
        "with `mdi-exit train --model resnet50_ee ...` as docs/MODELS.md (section "
        "'ResNet-50-EE on CIFAR-10') says, then give the .safetensors file's path as the model"
    ),
}


class CheckpointError(ValueError):
    """A checkpoint file was refused; the message says why."""


_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(b"\0" + str(t.dtype).encode() + b"\0")
        h.update(json.dumps(list(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def make_model_id(arch: str, tensors: Mapping[str, torch.Tensor]) -> str:
    return f"{arch}-{tensors_digest(tensors)[:12]}"


def _storage_tensors(model: EarlyExitModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.contiguous().clone()
    return out


def save_checkpoint(
    model: EarlyExitModel, path: str | Path, meta: Mapping | None = None,
    dtype: str = "float16",
) -> dict:
    """Write ``model`` to ``path`` (safetensors), floats stored as ``dtype``.

    ``meta`` adds/overrides metadata (e.g. ``exit_accuracy``, ``thresholds``,
    ``dataset``); the model's own description, the format and ``model_id`` are
    always written.  Returns the metadata written.  The write is atomic.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}")
    tensors = _storage_tensors(model, _DTYPES[dtype])
    full = dict(model.metadata())
    full.update(dict(meta or {}))
    full.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        arch=model.arch,
        arch_kwargs=model.info.arch_kwargs,
        num_exits=model.num_exits,
        input_spec=model.input_spec.to_dict(),
        class_names=model.class_names,
        codecs=model.codec_configs(),
        dtype=dtype,
        model_id=make_model_id(model.arch, tensors),
    )
    text = json.dumps(full, sort_keys=True, allow_nan=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={META_KEY: text})
    os.chmod(tmp, 0o644)  # a shipped file, readable by all
    os.replace(tmp, path)
    return full


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata of a checkpoint, validated, without loading tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    if raw is None:
        raise CheckpointError(f"{path}: no '{META_KEY}' metadata; not an mdi-exit checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: metadata must be a JSON object")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {missing}")
    if meta["format"] != FORMAT_NAME or meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format {meta['format']!r} v{meta['format_version']!r} not supported "
            f"(expected {FORMAT_NAME!r} v{FORMAT_VERSION})"
        )
    if meta["arch"] not in MODEL_BUILDERS:
        raise CheckpointError(f"{path}: unknown architecture {meta['arch']!r}")
    if not isinstance(meta["arch_kwargs"], dict):
        raise CheckpointError(f"{path}: arch_kwargs must be an object")
    return meta


def _build(meta: dict, path: Path, device: str | None = None) -> EarlyExitModel:
    try:
        if device == "meta":
            with torch.device("meta"):
                return build_model(meta["arch"], **meta["arch_kwargs"])
        return build_model(meta["arch"], **meta["arch_kwargs"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path}: cannot build {meta['arch']} from its arguments ({e})"
        ) from e


def _check_shapes(expected: Mapping[str, torch.Tensor], shapes: Mapping[str, list[int]],
                  path: Path) -> None:
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    wrong = sorted(
        f"{k}: file {list(shapes[k])} vs model {list(expected[k].shape)}"
        for k in set(expected) & set(shapes)
        if list(shapes[k]) != list(expected[k].shape)
    )
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if wrong:
            parts.append(f"shape mismatch {wrong[:5]}{' ...' if len(wrong) > 5 else ''}")
        raise CheckpointError(f"{path}: tensors do not match the architecture: " + "; ".join(parts))


def load_checkpoint(path: str | Path) -> tuple[EarlyExitModel, dict]:
    """Load, verify and rebuild: returns (fp32 model in eval mode, metadata)."""
    path = Path(path)
    meta = read_metadata(path)
    skeleton = _build(meta, path, device="meta")
    expected = skeleton.state_dict()
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            shapes = {k: list(f.get_slice(k).get_shape()) for k in names}
            _check_shapes(expected, shapes, path)
            tensors = {k: f.get_tensor(k) for k in names}
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{path}: tensor data unreadable or truncated ({e})") from e
    digest_id = make_model_id(meta["arch"], tensors)
    if digest_id != meta["model_id"]:
        raise CheckpointError(
            f"{path}: tensors do not match the recorded model_id "
            f"({meta['model_id']} recorded, {digest_id} computed): file altered or corrupt"
        )
    for k, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {k} has NaN or infinite values")
    model = _build(meta, path)
    state = {k: (t.float() if t.is_floating_point() else t) for k, t in tensors.items()}
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    for k, t in state.items():
        if t.is_floating_point() != dtypes[k].is_floating_point:
            raise CheckpointError(
                f"{path}: tensor {k} has dtype {t.dtype}, model wants {dtypes[k]}"
            )
        state[k] = t.to(dtypes[k])
    model.load_state_dict(state, strict=True)
    model.eval()
    model.info.extra = {k: v for k, v in meta.items() if k not in REQUIRED_META}
    model.info.extra["model_id"] = meta["model_id"]
    return model, meta


def update_metadata(path: str | Path, changes: Mapping) -> dict:
    """Rewrite a verified checkpoint with some metadata keys changed (e.g. thresholds).

    The tensors are copied unchanged, so ``model_id`` stays the same; identity keys
    (format, arch, tensors' description) cannot be changed this way.
    """
    path = Path(path)
    load_checkpoint(path)  # verify before touching anything
    protected = set(REQUIRED_META)
    bad = sorted(set(changes) & protected)
    if bad:
        raise ValueError(f"cannot change {bad} without retraining")
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()[META_KEY])
    meta.update(dict(changes))
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp),
              metadata={META_KEY: json.dumps(meta, sort_keys=True, allow_nan=False)})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return meta


def shipped_path(name: str) -> Path:
    return CHECKPOINT_DIR / SHIPPED[name]


def available_models() -> list[str]:
    """Shipped checkpoint names whose file is present."""
    return sorted(n for n in SHIPPED if shipped_path(n).is_file())


def load_model(name_or_path: str | Path) -> tuple[EarlyExitModel, dict]:
    """Load a shipped checkpoint by name (e.g. "fmnist_cnn_ee") or any file by path."""
    s = str(name_or_path)
    if s in NOT_SHIPPED:
        raise CheckpointError(f"model {s!r} is not available: {NOT_SHIPPED[s]}")
    if s in SHIPPED:
        p = shipped_path(s)
        if not p.is_file():
            raise CheckpointError(f"shipped model {s!r} is not installed ({p} missing)")
        return load_checkpoint(p)
    p = Path(s)
    if p.suffix != ".safetensors" and not p.exists():
        raise CheckpointError(
            f"{s!r} is neither a shipped model ({sorted(SHIPPED)}) nor an existing file"
        )
    return load_checkpoint(p)
