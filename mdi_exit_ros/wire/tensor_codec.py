"""numpy / torch arrays <-> `mdi_exit_ros/Tensor` messages, without per-element Python.

Why this module exists: a generated message's `uint8[]` setter checks and converts a numpy
array element by element (~130 ms per MB), while an `array.array('B')` is stored as is. So
encoding fills an `array.array` from the array's buffer (one memcpy), and decoding is a
zero-copy `np.frombuffer` view of the received `array.array`.

Every message is validated before it is trusted: data type, rank, each dimension, the total
size cap and `len(data) == prod(shape) * itemsize`. A bad message raises `TensorCodecError`
with the reason and the caller's state is unchanged.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mdi_exit_ros.msg import Tensor, TensorShape

if TYPE_CHECKING:  # torch is optional for users of the wire layer alone
    import torch

# Isaac ROS data_type codes (1..10) plus this package's FLOAT16 extension (11).
DTYPE_CODES: dict[int, np.dtype] = {
    Tensor.INT8: np.dtype("<i1"),
    Tensor.UINT8: np.dtype("<u1"),
    Tensor.INT16: np.dtype("<i2"),
    Tensor.UINT16: np.dtype("<u2"),
    Tensor.INT32: np.dtype("<i4"),
    Tensor.UINT32: np.dtype("<u4"),
    Tensor.INT64: np.dtype("<i8"),
    Tensor.UINT64: np.dtype("<u8"),
    Tensor.FLOAT32: np.dtype("<f4"),
    Tensor.FLOAT64: np.dtype("<f8"),
    Tensor.FLOAT16: np.dtype("<f2"),
}
CODE_OF_DTYPE: dict[np.dtype, int] = {dt: code for code, dt in DTYPE_CODES.items()}

ENCODINGS = ("raw", "fp16")  # plus "ae:<codec id>", validated by prefix


class TensorCodecError(ValueError):
    """A tensor cannot be put on, or taken off, the wire; the message says why."""


@dataclass(frozen=True)
class TensorLimits:
    """Bounds on what a received tensor may claim, so a bad peer cannot make us allocate."""

    max_bytes: int = 64 * 1024 * 1024
    max_rank: int = 8
    max_dim: int = 1 << 24

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_rank", "max_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TensorLimits.{name} must be positive")


DEFAULT_LIMITS = TensorLimits()


def _check_encoding(encoding: str) -> None:
    if encoding in ENCODINGS:
        return
    if encoding.startswith("ae:") and len(encoding) > 3:
        return
    raise TensorCodecError(
        f"unknown tensor encoding {encoding!r} (expected 'raw', 'fp16' or 'ae:<codec id>')")


def _check_shape(shape: tuple[int, ...], itemsize: int, limits: TensorLimits) -> int:
    """Validate dims against the limits and return the byte size they imply."""
    if len(shape) > limits.max_rank:
        raise TensorCodecError(f"tensor rank {len(shape)} exceeds the limit {limits.max_rank}")
    for axis, dim in enumerate(shape):
        if dim > limits.max_dim:
            raise TensorCodecError(
                f"dimension {axis} is {dim}, above the limit {limits.max_dim}")
    nbytes = math.prod(shape) * itemsize
    if nbytes > limits.max_bytes:
        raise TensorCodecError(
            f"tensor of {nbytes} bytes exceeds the size cap of {limits.max_bytes} bytes")
    return nbytes


def to_msg(
    data: np.ndarray,
    name: str = "",
    encoding: str = "raw",
    limits: TensorLimits = DEFAULT_LIMITS,
    out: Tensor | None = None,
) -> Tensor:
    """Encode a numpy array as a Tensor message (dense, little-endian, C order).

    `out` lets a caller reuse a message it owns; it is only written once the array is valid.
    """
    arr = np.asarray(data)
    wire_dtype = arr.dtype.newbyteorder("<")
    code = CODE_OF_DTYPE.get(wire_dtype)
    if code is None:
        raise TensorCodecError(
            f"dtype {arr.dtype} has no Tensor data_type code "
            f"(supported: {', '.join(str(d) for d in DTYPE_CODES.values())})")
    _check_encoding(encoding)
    _check_shape(arr.shape, arr.dtype.itemsize, limits)
    arr = arr.astype(wire_dtype, order="C", copy=False)  # no copy when dense and LE already
    payload = array.array("B")
    payload.frombytes(memoryview(arr).cast("B") if arr.size else b"")

    msg = out if out is not None else Tensor()
    msg.name = name
    msg.shape = TensorShape(rank=arr.ndim, dims=array.array("I", arr.shape))
    msg.data_type = code
    msg.strides = array.array("Q", _c_strides(arr.shape, arr.dtype.itemsize))
    msg.encoding = encoding
    msg.data = payload
    return msg


def _c_strides(shape: tuple[int, ...], itemsize: int) -> list[int]:
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return strides[::-1]


def from_msg(msg: Tensor, limits: TensorLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a Tensor message into a read-only numpy view of its data (no copy).

    Raises TensorCodecError for an unknown data_type or encoding, a rank that disagrees with
    dims, non-dense strides, dims or sizes above `limits`, or a data length that is not
    prod(shape) * itemsize.
    """
    dtype = DTYPE_CODES.get(msg.data_type)
    if dtype is None:
        raise TensorCodecError(f"unknown data_type code {msg.data_type}")
    _check_encoding(msg.encoding)
    shape = tuple(int(d) for d in msg.shape.dims)
    if msg.shape.rank != len(shape):
        raise TensorCodecError(
            f"shape.rank is {msg.shape.rank} but shape.dims has {len(shape)} entries")
    expected = _check_shape(shape, dtype.itemsize, limits)
    if len(msg.data) != expected:
        raise TensorCodecError(
            f"data holds {len(msg.data)} bytes but shape {list(shape)} of {dtype} "
            f"needs {expected}")
    if len(msg.strides) not in (0, len(shape)) or (
            len(msg.strides) and list(msg.strides) != _c_strides(shape, dtype.itemsize)):
        raise TensorCodecError(
            f"strides {list(msg.strides)} are not the dense C-order strides of {list(shape)}")
    view = np.frombuffer(msg.data, dtype=dtype) if expected else np.empty(0, dtype)
    view = view.reshape(shape)
    view.flags.writeable = False
    return view


def torch_to_msg(tensor: torch.Tensor, name: str = "", encoding: str = "raw",
                 limits: TensorLimits = DEFAULT_LIMITS) -> Tensor:
    """Encode a torch tensor (any device; bfloat16 is refused: it has no code)."""
    return to_msg(tensor.detach().cpu().contiguous().numpy(), name, encoding, limits)


def msg_to_torch(msg: Tensor, limits: TensorLimits = DEFAULT_LIMITS) -> torch.Tensor:
    """Decode a Tensor message into a torch tensor that owns its memory (one copy).

    The copy is deliberate: torch wants writable memory, and the message buffer may be
    reused by the middleware.
    """
    import torch

    return torch.from_numpy(np.array(from_msg(msg, limits), copy=True))


def nbytes(msg: Tensor) -> int:
    """Payload size of a Tensor message in bytes (what D_nm's bandwidth term is about)."""
    return len(msg.data)


def describe(msg: Tensor) -> dict[str, Any]:
    """A short, loggable summary of a Tensor message."""
    dtype = DTYPE_CODES.get(msg.data_type)
    return {"name": msg.name, "shape": list(msg.shape.dims),
            "dtype": str(dtype) if dtype is not None else f"code {msg.data_type}",
            "encoding": msg.encoding, "bytes": len(msg.data)}
