"""The wire layer: numpy/torch tensors <-> ROS 2 messages, and QoS profiles."""

from mdi_exit_ros.wire.tensor_codec import (
    DEFAULT_LIMITS,
    DTYPE_CODES,
    TensorCodecError,
    TensorLimits,
    from_msg,
    msg_to_torch,
    to_msg,
    torch_to_msg,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DTYPE_CODES",
    "TensorCodecError",
    "TensorLimits",
    "from_msg",
    "msg_to_torch",
    "to_msg",
    "torch_to_msg",
]
