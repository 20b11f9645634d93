"""The `device` parameter in a real worker/source process: a device that does not exist
fails configure with the reason logged, and the node stays unconfigured and usable."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet_harness import Driver, Robot, make_checkpoint
from lifecycle_msgs.msg import Transition

from mdi_exit_ros.model.device import cuda_device_count

pytestmark = pytest.mark.ros
MISSING = "cuda:7"


@pytest.mark.parametrize("source", [False, True], ids=["worker", "source"])
def test_configure_refuses_a_missing_device(tmp_path: Path, source: bool) -> None:
    if cuda_device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    name = "robotdev" + ("s" if source else "w")
    robot = Robot(name, source, {"model": str(ckpt), "device": MISSING}, tmp_path)
    driver = Driver()
    try:
        assert driver.state(name) == "unconfigured"
        assert not driver.transition(name, Transition.TRANSITION_CONFIGURE)
        assert driver.state(name) == "unconfigured"
        # still usable: name a device that exists and configure again
        driver.set_params(name, device="cpu")
        assert driver.transition(name, Transition.TRANSITION_CONFIGURE)
        assert driver.state(name) == "inactive"
        refused = driver.set_params(name, check=False, device="auto")[0]  # configure-only
        assert not refused.successful and "takes effect on configure" in refused.reason
    finally:
        driver.close()
        robot.stop()
    log = robot.log.read_text()
    assert f"'{MISSING}' does not exist" in log, log
