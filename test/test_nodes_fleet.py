"""The fleet on real ROS 2: worker and source lifecycle nodes in separate processes.

One fleet serves the whole module (starting torch processes costs seconds each): robot1 is a
source with neighbours robot2 and robot3 (the 3-node mesh), robot4 is a second source that
shares robot2 and robot3. A random-weight model is enough: what is checked is that the fleet
computes exactly what the model computes offline, frame for frame.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from fleet_harness import Driver, Robot, frames, make_checkpoint
from lifecycle_msgs.msg import Transition

from mdi_exit_ros.model.checkpoint import load_model
from mdi_exit_ros.nodes.engine import Engine

pytestmark = pytest.mark.ros
N_FRAMES = 24
RATE = 10.0


def _inputs(ckpt, pixels: np.ndarray) -> list[torch.Tensor]:
    engine = Engine(str(ckpt), 1)
    return [engine.preprocess(p[:, :, None]) for p in pixels]


def offline(ckpt, pixels: np.ndarray, thresholds) -> tuple[list[int], list[int]]:
    """The model's own early-exit inference on the same frames, one at a time like a robot."""
    model, _ = load_model(str(ckpt))
    preds, exits = [], []
    for x in _inputs(ckpt, pixels):
        p, e, _ = model.infer_early_exit(x, thresholds)
        preds.append(int(p[0]))
        exits.append(int(e[0]))
    return preds, exits


def first_exit_median_threshold(ckpt, pixels: np.ndarray) -> float:
    """A T_e^1 that sends about half the frames out at exit 1, far from every confidence.

    Halfway between the two middle confidences, so float rounding cannot flip a decision.
    """
    model, _ = load_model(str(ckpt))
    with torch.no_grad():
        conf = sorted(float(model.run_task(1, x)[1].softmax(1).max()) for x in
                      _inputs(ckpt, pixels))
    mid = len(conf) // 2
    assert conf[mid] - conf[mid - 1] > 1e-5
    return (conf[mid - 1] + conf[mid]) / 2


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    ckpt = make_checkpoint(tmp / "model.safetensors")
    common = {"model": str(ckpt), "state_period": 0.1, "stats_period": 0.2}
    robots = {
        # Alg. 3 with a short initial mu admits every frame of these short bursts and keeps
        # the thresholds fixed (Alg. 4 would adapt them, as robot4 does).
        "robot1": Robot("robot1", True, {**common, "neighbors": ["robot2", "robot3"],
                                          "admission_mode": "rate", "initial_interval": 0.005,
                                          "qos": "reliable"},
                        tmp),
        "robot2": Robot("robot2", False, {**common, "neighbors": ["robot1", "robot3"]}, tmp),
        "robot3": Robot("robot3", False, {**common, "neighbors": ["robot1", "robot2"]}, tmp),
        "robot4": Robot("robot4", True, {**common, "neighbors": ["robot2", "robot3"],
                                          "admission_mode": "threshold", "qos": "reliable"},
                        tmp),
    }
    driver = Driver()
    try:
        yield driver, robots, ckpt
    finally:
        driver.close()
        codes = {name: robot.stop() for name, robot in robots.items()}
        logs = {name: robot.log.read_text()[-2000:] for name, robot in robots.items()}
        assert all(code == 0 for code in codes.values()), (codes, logs)


def test_lifecycle_refuses_out_of_order_then_comes_up_in_order(fleet) -> None:
    driver, robots, _ = fleet
    assert driver.state("robot2") == "unconfigured"
    assert not driver.transition("robot2", Transition.TRANSITION_ACTIVATE)
    assert driver.state("robot2") == "unconfigured"
    for name in robots:
        driver.bring_up(name)
        assert driver.state(name) == "active"
    assert not driver.transition("robot2", Transition.TRANSITION_CONFIGURE)
    assert driver.state("robot2") == "active"


def test_every_admitted_frame_is_answered_once_as_the_model_would(fleet) -> None:
    driver, robots, ckpt = fleet
    pixels = frames(N_FRAMES, seed=1)
    t1 = first_exit_median_threshold(ckpt, pixels)
    thresholds = [t1, 0.5, 1.0]
    for name in robots:
        results = driver.set_params(name, exit_thresholds=thresholds)
        assert all(r.successful for r in results), results
    driver.listen("robot1")
    driver.wait_for_subscriber("robot1")
    labels = [int(i % 10) for i in range(N_FRAMES)]
    stamps = driver.publish_frames("robot1", pixels, labels, RATE)
    assert driver.spin_until(lambda: len(driver.results["robot1"]) >= N_FRAMES, 60.0), \
        f"got {len(driver.results['robot1'])} of {N_FRAMES} results"
    driver.spin_until(lambda: False, 1.0)  # a duplicate would arrive now
    results = driver.results["robot1"]
    assert len(results) == N_FRAMES
    by_stamp = {(r.header.stamp.sec, r.header.stamp.nanosec): r for r in results}
    assert sorted(by_stamp) == sorted(stamps)
    assert sorted(r.data_id for r in results) == list(range(N_FRAMES))
    preds, exits = offline(ckpt, pixels, thresholds)
    got = [by_stamp[s] for s in stamps]
    assert [r.exit_index for r in got] == exits, [(r.exit_index, r.confidence) for r in got]
    assert [r.class_id for r in got] == preds
    assert {1, 3} <= set(exits)  # both an early and the last exit were taken
    assert all(r.source == "robot1" for r in got)
    # The source knows the labels: accuracy in its stats equals what the results say.
    assert driver.spin_until(lambda: driver.stats.get("robot1") is not None
                             and driver.stats["robot1"].frames_labelled == N_FRAMES, 10.0)
    stats = driver.stats["robot1"]
    assert stats.frames_correct == sum(p == y for p, y in zip(preds, labels, strict=True))
    assert stats.frames_admitted == stats.frames_classified == N_FRAMES


def _offloads(driver: Driver, worker: str) -> int:
    assert driver.spin_until(lambda: worker in driver.stats, 10.0), f"no stats from {worker}"
    stats = driver.stats[worker]
    return sum(stats.offloads_sent)


def _run_batch(driver: Driver, source: str, n: int, rate: float) -> None:
    before = len(driver.results[source])
    driver.publish_frames(source, frames(n, seed=int(time.time())), None, rate)
    assert driver.spin_until(lambda: len(driver.results[source]) >= before + n, 90.0)
    driver.spin_until(lambda: False, 0.5)  # let the stats catch up


def test_offloading_follows_the_slow_worker(fleet) -> None:
    driver, _, _ = fleet
    for name in ("robot1", "robot2", "robot3"):
        driver.set_params(name, exit_thresholds=[1.0, 1.0, 1.0])  # every frame runs 3 tasks
    driver.listen("robot1")

    # 120x: robot1 alone cannot keep up with 20 frames/s even on a fast, idle machine.
    driver.set_params("robot1", compute_slowdown=120.0)
    start = _offloads(driver, "robot1")
    _run_batch(driver, "robot1", 20, 20.0)
    slow_source = _offloads(driver, "robot1") - start

    driver.set_params("robot1", compute_slowdown=1.0)
    for name in ("robot2", "robot3"):
        driver.set_params(name, compute_slowdown=120.0)
    start = _offloads(driver, "robot1")
    _run_batch(driver, "robot1", 20, 20.0)
    slow_neighbours = _offloads(driver, "robot1") - start
    for name in ("robot2", "robot3"):
        driver.set_params(name, compute_slowdown=1.0)

    assert slow_source >= 10, slow_source
    assert slow_neighbours <= slow_source // 4, (slow_source, slow_neighbours)


def test_exit_threshold_changes_at_run_time_and_bad_values_are_refused(fleet) -> None:
    driver, _, _ = fleet
    bad = driver.set_params("robot1", exit_threshold=1.5)
    assert not bad[0].successful and "exit_threshold" in bad[0].reason + "range"
    bad = driver.set_params("robot1", exit_thresholds=[0.5, 0.5])
    assert not bad[0].successful and "3 values" in bad[0].reason
    bad = driver.set_params("robot1", alpha=0.05)  # alpha must stay above beta
    assert not bad[0].successful and "alpha" in bad[0].reason

    def histogram(n_before: int) -> list[int]:
        results = driver.results["robot1"][n_before:]
        return [sum(r.exit_index == k for r in results) for k in (1, 2, 3)]

    driver.set_params("robot1", exit_thresholds=[0.0, 0.0, 0.0])
    n = len(driver.results["robot1"])
    _run_batch(driver, "robot1", 10, 20.0)
    assert histogram(n) == [10, 0, 0]

    ok = driver.set_params("robot1", exit_thresholds=[1.0, 1.0, 1.0])
    assert ok[0].successful
    n = len(driver.results["robot1"])
    _run_batch(driver, "robot1", 10, 20.0)
    assert histogram(n) == [0, 0, 10]


def test_a_second_source_receives_only_its_own_results(fleet) -> None:
    driver, _, _ = fleet
    driver.listen("robot4")
    driver.wait_for_subscriber("robot4")
    n1 = len(driver.results["robot1"])
    driver.publish_frames("robot4", frames(12, seed=4), None, 20.0)
    assert driver.spin_until(lambda: len(driver.results["robot4"]) >= 12, 60.0)
    driver.spin_until(lambda: False, 1.0)
    assert len(driver.results["robot4"]) == 12
    assert all(r.source == "robot4" for r in driver.results["robot4"])
    assert sorted(r.data_id for r in driver.results["robot4"]) == list(range(12))
    assert len(driver.results["robot1"]) == n1  # robot1 got nothing of robot4's
