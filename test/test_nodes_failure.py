"""Robots leave at any time: a worker killed mid-stream loses no admitted frame.

robot1 (a slow source) offloads to robot2 and robot3; robot3 is killed with SIGKILL while it
holds tasks. Unacked tasks come back to robot1 through the offload ledger (lease expiry),
and frames robot3 had accepted go overdue at the source and are admitted again. Every
admitted frame must still be answered exactly once.
"""

from __future__ import annotations

import signal

import pytest
from fleet_harness import Driver, Robot, frames, make_checkpoint
from lifecycle_msgs.msg import Transition

pytestmark = pytest.mark.ros
N_FRAMES = 40


@pytest.fixture()
def fleet(tmp_path):
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    common = {"model": str(ckpt), "state_period": 0.1, "stats_period": 0.2,
              "neighbor_lease": 1.0, "exit_thresholds": [1.0, 1.0, 1.0]}
    robots = {
        "robot1": Robot("robot1", True, {**common, "neighbors": ["robot2", "robot3"],
                                          "compute_slowdown": 30.0, "admission_mode": "rate",
                                          "initial_interval": 0.005, "frame_deadline": 4.0,
                                          "qos": "reliable"}, tmp_path),
        "robot2": Robot("robot2", False, {**common, "compute_slowdown": 60.0}, tmp_path),
        # A very slow robot3 keeps accepted tasks queued, so it dies holding some.
        "robot3": Robot("robot3", False, {**common, "compute_slowdown": 400.0}, tmp_path),
    }
    driver = Driver()
    try:
        for name in robots:
            driver.bring_up(name)
        driver.listen("robot1")
        driver.wait_for_subscriber("robot1")
        yield driver, robots
    finally:
        driver.close()
        for robot in robots.values():
            robot.stop()


def _holds_tasks(driver: Driver, worker: str) -> bool:
    """The worker accepted tasks it has not finished (queued or running)."""
    stats = driver.stats.get(worker)
    return stats is not None and stats.tasks_received > stats.tasks_run


def test_a_killed_worker_loses_no_admitted_frame(fleet) -> None:
    driver, robots = fleet
    driver.publish_frames("robot1", frames(N_FRAMES // 2, seed=7), None, 20.0)
    assert driver.spin_until(lambda: _holds_tasks(driver, "robot3"), 30.0), \
        "robot3 never held an unfinished task: nothing to lose"
    robots["robot3"].proc.send_signal(signal.SIGKILL)
    driver.publish_frames("robot1", frames(N_FRAMES // 2, seed=8), None, 20.0)
    assert driver.spin_until(lambda: len(driver.results["robot1"]) >= N_FRAMES, 90.0), \
        f"{len(driver.results['robot1'])} of {N_FRAMES} frames answered"
    driver.spin_until(lambda: False, 2.0)  # a duplicate answer would show up now
    ids = sorted(r.data_id for r in driver.results["robot1"])
    assert ids == list(range(N_FRAMES))
    stats = driver.stats["robot1"]
    assert stats.frames_admitted == N_FRAMES and stats.frames_classified == N_FRAMES
    # Something was really recovered: tasks taken back from robot3, or frames re-admitted.
    assert stats.tasks_taken_back + stats.frames_overdue > 0


def test_a_deactivated_worker_hands_its_queue_to_neighbours(fleet) -> None:
    """Deactivate robot3 while it holds queued tasks: they move on, and nothing is lost."""
    driver, robots = fleet
    sent = 0
    while sent < 80 and not (driver.stats.get("robot3") is not None
                             and driver.stats["robot3"].input_queue > 0):
        driver.publish_frames("robot1", frames(4, seed=100 + sent), None, 20.0)
        sent += 4
    assert driver.stats["robot3"].input_queue > 0, "robot3 never queued a task to hand over"
    assert driver.transition("robot3", Transition.TRANSITION_DEACTIVATE)
    assert driver.state("robot3") == "inactive"
    driver.publish_frames("robot1", frames(10, seed=99), None, 20.0)
    sent += 10
    assert driver.spin_until(lambda: len(driver.results["robot1"]) >= sent, 90.0), \
        f"{len(driver.results['robot1'])} of {sent} frames answered"
    driver.spin_until(lambda: False, 2.0)
    assert sorted(r.data_id for r in driver.results["robot1"]) == list(range(sent))
    assert driver.stats["robot1"].frames_overdue == 0  # handed over, not lost and re-admitted
    robot3 = driver.stats["robot3"]
    assert robot3.lifecycle_state == "inactive"
    assert robot3.input_queue == 0 and robot3.output_queue == 0
    assert robot3.tasks_evacuated >= 1
