"""The tensor codec: every dtype and shape round-trips; inconsistent messages are refused."""

from __future__ import annotations

import array
import time

import numpy as np
import pytest
import torch

from mdi_exit_ros.msg import Tensor
from mdi_exit_ros.wire import (
    DTYPE_CODES,
    TensorCodecError,
    TensorLimits,
    from_msg,
    msg_to_torch,
    to_msg,
    torch_to_msg,
)

SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4), (1, 3, 8, 8), (2, 1, 1, 1, 1, 3)]


@pytest.mark.parametrize("dtype", sorted({str(d) for d in DTYPE_CODES.values()}))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_every_dtype_and_shape(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    info_max = 100 if np.dtype(dtype).kind in "iu" else 1
    data = (rng.random(shape) * info_max).astype(dtype)
    msg = to_msg(data, name="x")
    assert msg.data_type == next(c for c, d in DTYPE_CODES.items() if d == np.dtype(dtype))
    assert list(msg.shape.dims) == list(shape) and msg.shape.rank == len(shape)
    back = from_msg(msg)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    assert np.array_equal(back, data)


def test_big_endian_and_non_contiguous_inputs_are_normalised() -> None:
    data = np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2]
    back = from_msg(to_msg(data))
    assert np.array_equal(back, data) and back.dtype == np.dtype("<i4")
    assert list(to_msg(data).strides) == [12, 4]


def test_decode_is_a_zero_copy_read_only_view() -> None:
    msg = to_msg(np.arange(10, dtype=np.float32))
    view = from_msg(msg)
    assert not view.flags.writeable
    msg.data[0:4] = array.array("B", np.float32(42).tobytes())
    assert view[0] == 42.0  # the view shares the message's buffer


def test_torch_round_trip_owns_its_memory() -> None:
    t = torch.randn(2, 3, 4)
    back = msg_to_torch(torch_to_msg(t, name="features", encoding="fp16"))
    assert torch.equal(back, t) and back.is_contiguous()
    back.add_(1)  # writable, independent of the message


@pytest.mark.parametrize("bad, reason", [
    (lambda m: setattr(m, "data_type", 99), "unknown data_type code 99"),
    (lambda m: setattr(m, "data_type", 0), "unknown data_type code 0"),
    (lambda m: setattr(m, "encoding", "zip"), "unknown tensor encoding"),
    (lambda m: setattr(m, "encoding", "ae:"), "unknown tensor encoding"),
    (lambda m: m.data.pop(), "data holds 23 bytes"),
    (lambda m: m.data.append(0), "data holds 25 bytes"),
    (lambda m: setattr(m.shape, "rank", 3), "shape.rank is 3"),
    (lambda m: setattr(m, "strides", [4, 4]), "not the dense C-order strides"),
    (lambda m: setattr(m.shape, "dims", [2, 4]), "needs 32"),
])
def test_inconsistent_messages_are_refused(bad, reason: str) -> None:
    msg = to_msg(np.zeros((2, 3), dtype=np.float32))
    bad(msg)
    with pytest.raises(TensorCodecError, match=reason):
        from_msg(msg)


def test_limits_refuse_absurd_claims_before_allocating() -> None:
    msg = to_msg(np.zeros(4, dtype=np.uint8))
    msg.shape.dims = [1 << 30, 1 << 30]
    msg.shape.rank = 2
    with pytest.raises(TensorCodecError, match="above the limit"):
        from_msg(msg)
    limits = TensorLimits(max_bytes=16, max_rank=2, max_dim=100)
    with pytest.raises(TensorCodecError, match="size cap of 16"):
        from_msg(to_msg(np.zeros(5, dtype=np.float32)), limits)
    with pytest.raises(TensorCodecError, match="rank 3 exceeds"):
        from_msg(to_msg(np.zeros((1, 1, 1), dtype=np.uint8)), limits)
    with pytest.raises(TensorCodecError, match="size cap"):
        to_msg(np.zeros(5, dtype=np.float32), limits=limits)
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        TensorLimits(max_bytes=0)


def test_unsupported_dtypes_are_refused_with_the_supported_list() -> None:
    for data in (np.zeros(3, dtype=bool), np.zeros(3, dtype=np.complex64)):
        with pytest.raises(TensorCodecError, match="has no Tensor data_type code"):
            to_msg(data)


def test_out_message_is_untouched_when_the_array_is_refused() -> None:
    out = to_msg(np.ones(3, dtype=np.float32), name="keep")
    with pytest.raises(TensorCodecError):
        to_msg(np.zeros(3, dtype=bool), name="other", out=out)
    assert out.name == "keep" and np.array_equal(from_msg(out), np.ones(3, dtype=np.float32))


def test_encoding_one_megabyte_avoids_per_element_conversion() -> None:
    """Generous bound: the slow setter path costs ~130 ms per MB, the fast one < 1 ms."""
    data = np.random.default_rng(1).standard_normal(1 << 18).astype(np.float32)
    best = min(_timed(lambda: from_msg(to_msg(data))) for _ in range(5))
    assert best < 0.03
    assert isinstance(to_msg(data).data, array.array)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_message_constants_match_isaac_ros_codes() -> None:
    codes = [Tensor.INT8, Tensor.UINT8, Tensor.INT16, Tensor.UINT16, Tensor.INT32,
             Tensor.UINT32, Tensor.INT64, Tensor.UINT64, Tensor.FLOAT32, Tensor.FLOAT64]
    assert codes == list(range(1, 11))
    names = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
             "float32", "float64"]
    assert [DTYPE_CODES[c].name for c in codes] == names
