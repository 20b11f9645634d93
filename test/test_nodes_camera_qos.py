"""`qos: auto` follows the camera (issue #11): a best-effort camera that starts after the
source is classified with no manual step, and a best-effort camera joining a reliable one
makes the source subscribe again, best effort (a reliable reader cannot match it)."""

from __future__ import annotations

import array
from pathlib import Path

import pytest
from fleet_harness import Driver, Robot, frames, make_checkpoint
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from mdi_exit_ros.wire import qos

pytestmark = pytest.mark.ros
BEST_EFFORT = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT,
                         history=HistoryPolicy.KEEP_LAST, depth=10)


def frame_msg(i: int) -> Image:
    pixels = frames(1, seed=i)[0]
    msg = Image(height=28, width=28, encoding="mono8", step=28)
    msg.data = array.array("B", pixels.tobytes())
    msg.header.stamp.sec = 2000 + i
    return msg


def feed_until_received(driver: Driver, pub, source: str, at_least: int) -> int:
    """Publish a frame every 0.1 s until the source has received `at_least` frames in all
    (best effort may lose some: the count, not the number sent, is what is checked)."""
    for i in range(300):
        s = driver.stats.get(source)
        if s is not None and s.frames_received >= at_least:
            return s.frames_received
        pub.publish(frame_msg(i))
        driver.spin_for(0.1)
    raise AssertionError(f"{source} received {driver.stats.get(source)} frames")


def test_qos_auto_follows_the_camera(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    robot = Robot("camq", True, {"model": str(ckpt), "neighbors": ["-"], "stats_period": 0.2,
                                 "admission_mode": "threshold"}, tmp_path, log_level="info")
    driver = Driver()
    try:
        driver.bring_up("camq")  # no camera yet: the source waits for one
        best_effort = driver.node.create_publisher(Image, "/camq/image", BEST_EFFORT)
        assert driver.spin_until(lambda: best_effort.get_subscription_count() > 0)
        received = feed_until_received(driver, best_effort, "camq", 3)
        assert driver.spin_until(lambda: driver.stats["camq"].frames_classified
                                 == driver.stats["camq"].frames_admitted >= 3)

        # A reliable camera alone: a reliable subscription (no frame lost on a busy link).
        driver.node.destroy_publisher(best_effort)
        reliable = driver.node.create_publisher(Image, "/camq/image", qos.reliable(10))
        assert driver.spin_until(lambda: "re-subscribed to /camq/image with reliable QoS"
                                 in robot.log.read_text())
        assert driver.spin_until(lambda: reliable.get_subscription_count() > 0)
        received = feed_until_received(driver, reliable, "camq", received + 3)

        # A best-effort camera joins: the source must drop to best effort to hear it.
        late = driver.node.create_publisher(Image, "/camq/image", BEST_EFFORT)
        assert driver.spin_until(lambda: late.get_subscription_count() > 0)
        feed_until_received(driver, late, "camq", received + 3)
    finally:
        driver.close()
        code = robot.stop()
    log = robot.log.read_text()
    assert "subscribed to /camq/image with best_effort QoS, matching 1 publisher(s)" in log
    assert "re-subscribed to /camq/image with best_effort QoS, matching 2 publisher(s)" in log
    assert code == 0
