"""QoS profiles of the fleet's topics, and matching a camera publisher's QoS.

All MDI-Exit topics are reliable: a task, an ack or a result lost by the middleware would be
a frame lost for good (the task ledger would only notice after a timeout). Camera images are
the exception: their QoS is the camera's choice. `auto` looks up the publishers' QoS on the
graph (as rosbag2 does) and subscribes with a profile that matches all of them: reliable
when every publisher is reliable (measured here: 640x480 bgr8 at 20 fps lost ~55% of frames
into a best-effort subscription and none into a reliable one), best effort otherwise (a
reliable reader cannot match a best-effort writer).
"""

from __future__ import annotations

from collections.abc import Sequence

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from mdi_exit_ros.params import IMAGE_QOS

STATE_DEPTH = 10
DATA_DEPTH = 100


def reliable(depth: int) -> QoSProfile:
    """Reliable, volatile, keep-last `depth`."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST, depth=depth)


def state_qos() -> QoSProfile:
    """NeighborState and WorkerStats: periodic, only the latest few matter."""
    return reliable(STATE_DEPTH)


def data_qos() -> QoSProfile:
    """Tasks, acks, exits and classifications: nothing may be dropped while readers keep up."""
    return reliable(DATA_DEPTH)


def image_qos(choice: str, publisher_reliabilities: Sequence[ReliabilityPolicy] = (),
              depth: int = 10) -> QoSProfile | None:
    """The image subscription's QoS for a `qos` parameter value, keep-last `depth`.

    For `auto`, returns None while no publisher is known (the caller waits for one).
    """
    if choice == "reliable":
        return reliable(depth)
    if choice == "sensor_data":  # its reliability and durability, our depth
        return QoSProfile(reliability=qos_profile_sensor_data.reliability,
                          durability=qos_profile_sensor_data.durability,
                          history=HistoryPolicy.KEEP_LAST, depth=depth)
    if choice == "best_effort":
        return QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT,
                          history=HistoryPolicy.KEEP_LAST, depth=depth)
    if choice != "auto":
        raise ValueError(f"image qos must be one of {IMAGE_QOS}, got {choice!r}")
    if not publisher_reliabilities:
        return None
    if all(r == ReliabilityPolicy.RELIABLE for r in publisher_reliabilities):
        return reliable(depth)
    return QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT,
                      history=HistoryPolicy.KEEP_LAST, depth=depth)
