"""Where inference and training run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

One resolver for ``mdi-exit eval``/``train`` and the worker nodes, so that all refuse a
device that does not exist the same way (a clear :class:`DeviceError`, never torch's
lazy failure at the first tensor copy) and agree on when fp16 is used.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA_RE = re.compile(r"cuda(?::(\d+))?")


class DeviceError(ValueError):
    """The requested device is malformed or not present on this machine."""


def cuda_device_count() -> int:
    """CUDA devices torch can use here (0 on a CPU-only build or without a driver)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: str, cuda_count: int | None = None) -> torch.device:
    """The torch device for ``spec``; ``auto`` = the first CUDA device if torch sees one.

    ``cuda_count`` is how many CUDA devices exist (default: ask torch); passing it lets
    the choice be checked on a machine without a GPU.
    """
    text = str(spec).strip().lower()
    count = cuda_device_count() if cuda_count is None else int(cuda_count)
    if text == "auto":
        return torch.device("cuda:0" if count > 0 else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA_RE.fullmatch(text)
    if match is None:
        raise DeviceError(f"device {spec!r} is not one of {DEVICE_CHOICES}")
    index = int(match.group(1) or 0)
    if count == 0:
        raise DeviceError(
            f"device {spec!r} does not exist: torch sees no CUDA device here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            f"use cpu or auto")
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: torch sees {count} CUDA "
                          f"device(s), cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def use_fp16(device: torch.device, meta: Mapping | None = None) -> bool:
    """fp16 compute on CUDA when the checkpoint allows it.

    A checkpoint allows it when its weights are stored as float16 (their precision is
    already fp16's) and its metadata does not set ``"fp16_inference": false``. On CPU
    fp16 is slower than fp32, so never.
    """
    if device.type != "cuda":
        return False
    meta = meta or {}
    return meta.get("dtype") == "float16" and meta.get("fp16_inference", True) is not False


def autocast(device: torch.device, fp16: bool) -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA (weights stay fp32, convolutions run in fp16), else nothing."""
    if fp16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
