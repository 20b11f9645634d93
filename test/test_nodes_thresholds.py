"""Exit thresholds without a sentinel, on a real worker process through its parameter
services (what `ros2 param set` calls): `threshold_source` says which T_e^k are in force,
setting `exit_threshold` or `exit_thresholds` puts it in force, `checkpoint` goes back."""

from __future__ import annotations

import pytest
from fleet_harness import Driver, Robot, make_checkpoint
from rcl_interfaces.srv import GetParameters

from mdi_exit_ros.model.checkpoint import load_model

pytestmark = pytest.mark.ros
ROBOT = "robot5"


def _source(driver: Driver) -> str:
    client = driver.node.create_client(GetParameters, f"/{ROBOT}/worker/get_parameters")
    try:
        reply = driver.call(client, GetParameters.Request(names=["threshold_source"]))
    finally:
        driver.node.destroy_client(client)
    return reply.values[0].string_value


def _in_force(driver: Driver) -> list[float]:
    """The T_e^k the worker reports (WorkerStats) after now."""
    stats = driver.stats_after(ROBOT, driver.now_ns())
    return [round(v, 6) for v in stats.exit_thresholds]


def test_threshold_source_follows_what_is_set(tmp_path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    _, meta = load_model(str(ckpt))
    k = 3
    suggested = [round(float(v), 6) for v in
                 (list(meta.get("thresholds") or [0.9] * k) + [1.0] * k)[:k]]
    # given at start: exit_threshold is the one in force
    robot = Robot(ROBOT, False, {"model": str(ckpt), "neighbors": ["-"], "stats_period": 0.2,
                                 "exit_threshold": 0.25}, tmp_path)
    driver = Driver()
    try:
        driver.bring_up(ROBOT)
        assert _source(driver) == "exit_threshold" and _in_force(driver) == [0.25] * k

        driver.set_params(ROBOT, exit_thresholds=[0.1, 0.2, 0.3])  # in force at once
        assert _source(driver) == "exit_thresholds"
        assert _in_force(driver) == [0.1, 0.2, 0.3]

        driver.set_params(ROBOT, threshold_source="checkpoint")  # back to the checkpoint's
        assert _in_force(driver) == suggested

        driver.set_params(ROBOT, exit_threshold=0.75)
        assert _source(driver) == "exit_threshold" and _in_force(driver) == [0.75] * k

        # -1 used to mean "the checkpoint's": now it is out of range and refused
        bad = driver.set_params(ROBOT, check=False, exit_threshold=-0.1)
        assert not bad[0].successful
        assert _source(driver) == "exit_threshold" and _in_force(driver) == [0.75] * k
    finally:
        driver.close()
        code = robot.stop()
    assert code == 0, robot.log.read_text()


def test_a_source_naming_an_unset_parameter_is_refused(tmp_path) -> None:
    robot = Robot("robot4", False, {"neighbors": ["-"]}, tmp_path)
    driver = Driver()
    try:
        bad = driver.set_params("robot4", check=False, threshold_source="exit_thresholds")
        assert not bad[0].successful and "needs exit_thresholds set" in bad[0].reason
    finally:
        driver.close()
        code = robot.stop()
    assert code == 0, robot.log.read_text()
