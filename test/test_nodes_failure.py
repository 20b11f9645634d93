"""Robots leave at any time: a worker killed mid-stream loses no admitted frame.

robot1 (a slow source) offloads to robot2 and robot3; robot3 is killed with SIGKILL while it
holds tasks. Its senders keep every task robot3 accepted until robot3 says it is done with
the frame (custody), and take back both those and the unacked ones when robot3's lease runs
out. Every admitted frame must still be answered exactly once, none via its deadline.
"""

from __future__ import annotations

import signal
import time

import pytest
from fleet_harness import ADMIT_EVERY_FRAME, Driver, Robot, frames, make_checkpoint
from lifecycle_msgs.msg import Transition

from mdi_exit_ros.msg import WorkerStats
from mdi_exit_ros.wire import qos

pytestmark = pytest.mark.ros
N_FRAMES = 40


@pytest.fixture()
def start_fleet(tmp_path):
    """Start robot1 (a slow source) with neighbours robot2 and a much slower robot3."""
    started: list[tuple[Driver, dict[str, Robot]]] = []

    def start(robot3_slowdown: float, frame_deadline: float):
        ckpt = make_checkpoint(tmp_path / "model.safetensors")
        common = {"model": str(ckpt), "state_period": 0.1, "stats_period": 0.2,
                  "neighbor_lease": 1.0, "exit_thresholds": [1.0, 1.0, 1.0]}
        robots = {
            "robot1": Robot("robot1", True, {
                **common, "neighbors": ["robot2", "robot3"], "compute_slowdown": 120.0,
                **ADMIT_EVERY_FRAME,
                "frame_deadline": frame_deadline, "qos": "reliable"}, tmp_path),
            "robot2": Robot("robot2", False, {**common, "compute_slowdown": 240.0}, tmp_path),
            "robot3": Robot("robot3", False, {**common, "compute_slowdown": robot3_slowdown},
                            tmp_path),
        }
        driver = Driver()
        started.append((driver, robots))
        for name in robots:
            driver.bring_up(name)
        driver.connect("robot1")
        return driver, robots

    try:
        yield start
    finally:
        for driver, robots in started:
            driver.close()
            for robot in robots.values():
                robot.stop()


def _feed_until(driver: Driver, predicate, max_frames: int, seed: int) -> int:
    """Publish frames one by one at 20 Hz until predicate() holds; returns how many were sent.

    Whether and when a neighbour gets a task depends on timing (Alg. 2 is partly random and
    reads queue reports that are up to a period old), so the test feeds the fleet until the
    situation it needs exists instead of assuming a fixed number of frames creates it.
    """
    sent = 0
    while sent < max_frames and not predicate():
        driver.publish_frames("robot1", frames(1, seed=seed + sent), None, 20.0)
        sent += 1
    return sent


def _holds_tasks(driver: Driver, worker: str) -> bool:
    """The worker accepted tasks it has not finished (queued or running)."""
    stats = driver.stats.get(worker)
    return stats is not None and stats.tasks_received > stats.tasks_run


def test_a_killed_worker_loses_no_admitted_frame(start_fleet) -> None:
    """Its senders kept a copy of every task it had not finished (custody) and run them
    again once its lease ran out: no frame needs its deadline (120 s) to be answered."""
    # robot3 needs ~3 s per task, so a task it accepted is still unfinished when it is killed.
    driver, robots = start_fleet(robot3_slowdown=1000.0, frame_deadline=120.0)
    sent = _feed_until(driver, lambda: _holds_tasks(driver, "robot3"), 120, seed=7)
    assert _holds_tasks(driver, "robot3"), \
        f"robot3 never held an unfinished task in {sent} frames; {driver.describe()}"
    taken_back = {w: driver.stats[w].tasks_taken_back for w in ("robot1", "robot2")}
    detected: list[float] = []  # when a sender first took a task back from robot3

    def on_stats(msg: WorkerStats) -> None:
        if msg.worker in taken_back and msg.tasks_taken_back > taken_back[msg.worker] \
                and not detected:
            detected.append(time.monotonic())

    driver.node.create_subscription(WorkerStats, "/mdi/worker_stats", on_stats,
                                    qos.state_qos())
    killed = time.monotonic()
    robots["robot3"].proc.send_signal(signal.SIGKILL)
    # 10 frames/s: robot1 takes the tasks back while frames arrive; its camera reader keeps
    # the last 10 frames, and a CI run at 20/s lost 8 there while robot1 was busy
    driver.publish_frames("robot1", frames(max(N_FRAMES - sent, 10), seed=8), None, 10.0)
    # Settled: every frame sent was admitted or dropped, and every admitted one answered,
    # with every published answer received here (one per frame, so no duplicates).
    stats = driver.wait_settled("robot1", 90.0)
    recovered = time.monotonic()
    print(f"\nSIGKILL of robot3 holding tasks: taken back after "
          f"{detected[0] - killed if detected else float('nan'):.2f} s (lease 1.0 s, reports "
          f"every 0.2 s); all {stats.frames_admitted} admitted frames answered "
          f"{recovered - killed:.1f} s after the kill; lost 0, answered twice 0, re-admitted "
          f"{stats.frames_overdue}")
    ids = [r.data_id for r in driver.results["robot1"]]
    assert len(set(ids)) == len(ids) == stats.frames_admitted  # each frame answered once
    assert stats.frames_overdue == 0  # re-issued by the senders, not re-admitted
    # Something was really recovered: tasks taken back from robot3 by robot1 or robot2.
    assert stats.tasks_taken_back + driver.stats["robot2"].tasks_taken_back > 0


def test_a_deactivated_worker_hands_its_queue_to_neighbours(start_fleet) -> None:
    """Deactivate robot3 while it holds queued tasks: they move on, and nothing is lost."""
    # A deadline far beyond any task's time: a frame can only go overdue if a task is lost.
    driver, robots = start_fleet(robot3_slowdown=1000.0, frame_deadline=120.0)

    def robot3_queued() -> bool:
        stats = driver.stats.get("robot3")
        return stats is not None and stats.input_queue > 0

    sent = _feed_until(driver, robot3_queued, 160, seed=100)
    assert robot3_queued(), f"robot3 never queued a task in {sent} frames; {driver.describe()}"
    assert driver.transition("robot3", Transition.TRANSITION_DEACTIVATE)
    assert driver.state("robot3") == "inactive"
    driver.publish_frames("robot1", frames(10, seed=99), None, 20.0)
    stats = driver.wait_settled("robot1", 90.0)
    ids = [r.data_id for r in driver.results["robot1"]]
    assert len(set(ids)) == len(ids) == stats.frames_admitted  # each frame answered once
    assert stats.frames_overdue == 0  # handed over, not lost and re-admitted
    robot3 = driver.stats_after("robot3", driver.now_ns())
    assert robot3.lifecycle_state == "inactive"
    assert robot3.input_queue == 0 and robot3.output_queue == 0
    assert robot3.tasks_evacuated >= 1


def test_a_worker_started_mid_stream_gets_work(tmp_path) -> None:
    """robot3 joins while robot1 (slow, neighbours '*') is busy: robot1 learns of it from its
    NeighborState and offloads to it. Measured: activation to its first task received."""
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    common = {"model": str(ckpt), "state_period": 0.1, "stats_period": 0.2,
              "exit_thresholds": [1.0, 1.0, 1.0]}
    robots = {"robot1": Robot("robot1", True, {
        **common, "neighbors": ["*"], "compute_slowdown": 120.0, **ADMIT_EVERY_FRAME,
        "frame_deadline": 120.0,
        "qos": "reliable"}, tmp_path)}
    driver = Driver()
    try:
        driver.bring_up("robot1")
        driver.connect("robot1")
        robots["robot3"] = Robot("robot3", False, common, tmp_path)
        driver.bring_up("robot3")
        active = time.monotonic()

        def robot3_got_work() -> bool:
            stats = driver.stats.get("robot3")
            return stats is not None and stats.tasks_received > 0

        seed = 500
        while not robot3_got_work() and time.monotonic() - active < 30.0:
            driver.publish_frames("robot1", frames(1, seed=seed), None, 20.0)
            seed += 1
        first_task = time.monotonic() - active
        assert robot3_got_work(), driver.describe()
        stats = driver.wait_settled("robot1", 120.0)
        print(f"\nrobot3 joined mid-stream: first task {first_task:.2f} s after it was "
              f"active (stats every 0.2 s); {stats.frames_admitted} frames all answered")
        assert first_task <= 10.0  # 3 s is the goal; the measured value is in RELIABILITY.md
    finally:
        driver.close()
        for robot in robots.values():
            robot.stop()


def test_frames_that_run_out_of_deadlines_are_answered_as_expired(tmp_path) -> None:
    """Overload: a source whose one task takes ~3 s, deadlines of 0.5 s and no re-admission
    (max_readmissions 0): late frames are answered once, as expired, and counted; none is
    dropped, none admitted again into the queue that made it late."""
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    robot = Robot("robot1", True, {
        "model": str(ckpt), "stats_period": 0.2, "neighbors": ["-"], "compute_slowdown": 1000.0,
        "exit_thresholds": [0.0, 0.0, 0.0], "admission_mode": "threshold", "qos": "reliable",
        "frame_deadline": 0.5, "max_readmissions": 0}, tmp_path)
    driver = Driver()
    try:
        driver.bring_up("robot1")
        driver.connect("robot1")
        driver.publish_frames("robot1", frames(6, seed=40), None, 20.0)
        stats = driver.wait_settled("robot1", 120.0)
    finally:
        driver.close()
        robot.stop()
    results = driver.results["robot1"]
    expired = [r for r in results if r.class_name == "expired"]
    # The overload guard (core.has_room) may refuse the last frames once the source has
    # measured its ~3 s tasks: those were never admitted, and are counted.
    admitted = stats.frames_admitted
    assert admitted + stats.frames_dropped == 6 and admitted >= 2, driver.describe()
    assert admitted == stats.frames_classified == len(results)
    assert len({r.data_id for r in results}) == admitted  # one result per frame
    assert stats.frames_expired == len(expired) >= admitted - 2, driver.describe()
    assert all(r.class_id == -1 and r.exit_index == 0 for r in expired)
    assert stats.frames_overdue >= len(expired)
