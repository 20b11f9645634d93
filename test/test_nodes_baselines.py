"""The two baselines of issue #8 as modes of the same nodes, on real ROS 2 (one process per
robot): data-distributed inference (`distribution: data`) and the static pipeline
(`distribution: pipeline` along `pipeline_chain`). Behaviour, not speed: where each frame's
tasks ran, from the results and the counters the robots publish.

One 3-robot mesh serves the module; the mode changes at run time (parameters apply at once).
A random-weight model with 3 exits: a pipeline of three robots runs task k on robot k.
"""

from __future__ import annotations

import pytest
from fleet_harness import ADMIT_EVERY_FRAME, Driver, Robot, frames, make_checkpoint
from test_nodes_fleet import first_exit_median_threshold

from mdi_exit_ros.msg import ExitResult, WorkerStats

pytestmark = pytest.mark.ros
ROBOTS = ("robot1", "robot2", "robot3")
N_FRAMES = 15
RATE = 10.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baselines")
    ckpt = make_checkpoint(tmp / "model.safetensors")
    # A long lease: under a CPU hog a late report must not make a neighbour ineligible
    # (data mode would then keep frames, the pipeline run a stage's task at its sender).
    common = {"model": str(ckpt), "state_period": 0.1, "stats_period": 0.2,
              "neighbor_lease": 30.0, "distribution": "data"}
    robots = {
        # Alg. 3 with a short initial mu and no latency budget admits every frame sent.
        "robot1": Robot("robot1", True, {**common, "neighbors": ["robot2", "robot3"],
                                          **ADMIT_EVERY_FRAME,
                                          "qos": "reliable"}, tmp),
        "robot2": Robot("robot2", False, {**common, "neighbors": ["robot1", "robot3"]}, tmp),
        "robot3": Robot("robot3", False, {**common, "neighbors": ["robot1", "robot2"]}, tmp),
    }
    driver = Driver()
    try:
        for name in robots:
            driver.bring_up(name)
        driver.connect("robot1")
        # every robot has heard the two others (frames and stages go only to live neighbours)
        assert driver.spin_until(lambda: all(
            r in driver.stats and set(driver.stats[r].neighbors_alive) == set(ROBOTS) - {r}
            for r in ROBOTS), 120.0), driver.describe()
        yield driver, ckpt
    finally:
        driver.close()
        codes = {name: robot.stop() for name, robot in robots.items()}
        logs = {name: robot.log.read_text()[-2000:] for name, robot in robots.items()}
        assert all(code == 0 for code in codes.values()), (codes, logs)


def _snapshot(driver: Driver) -> dict[str, WorkerStats]:
    """Every robot's counters from a report made after everything before this call."""
    now = driver.now_ns()
    return {r: driver.stats_after(r, now) for r in ROBOTS}


def _offloads(stats: WorkerStats) -> dict[str, int]:
    return dict(zip(stats.offload_targets, stats.offloads_sent, strict=True))


def _run(driver: Driver, seed: int) -> tuple[list[ExitResult], dict[str, WorkerStats],
                                            dict[str, WorkerStats]]:
    """Publish N_FRAMES frames, wait until every one is answered; the results and every
    robot's counters before and after (settled: nothing left in any queue)."""
    driver.wait_settled("robot1")
    before = _snapshot(driver)
    n0 = len(driver.results["robot1"])
    driver.publish_frames("robot1", frames(N_FRAMES, seed=seed), None, RATE)
    stats = driver.wait_settled("robot1", 120.0)
    assert stats.frames_admitted - before["robot1"].frames_admitted == N_FRAMES  # all admitted
    assert stats.frames_overdue == before["robot1"].frames_overdue  # none lost, re-admitted
    assert driver.spin_until(lambda: all(  # every robot's queues empty again
        driver.stats[r].input_queue + driver.stats[r].output_queue + driver.stats[r].running
        == 0 for r in ROBOTS), 60.0), driver.describe()
    results = driver.results["robot1"][n0:]
    assert len(results) == N_FRAMES and len({r.data_id for r in results}) == N_FRAMES
    return results, before, _snapshot(driver)


def _check_whole_frames(results: list[ExitResult], before: dict[str, WorkerStats],
                        after: dict[str, WorkerStats]) -> None:
    """Data-distributed: each frame's tasks all ran on one robot (the one it exited on)."""
    for r in results:  # moved at most once, from the source to the robot that exited it
        assert r.hops == (0 if r.worker == "robot1" else 1), (r.worker, r.hops)
    for robot in ROBOTS:
        ran = after[robot].tasks_run - before[robot].tasks_run
        assert ran == sum(r.exit_index for r in results if r.worker == robot), robot
    for robot in ("robot2", "robot3"):  # receivers never pass a task on
        assert _offloads(after[robot]) == _offloads(before[robot])
    sent = {m: _offloads(after["robot1"]).get(m, 0) - _offloads(before["robot1"]).get(m, 0)
            for m in ("robot2", "robot3")}
    assert sent == {m: sum(r.worker == m for r in results) for m in ("robot2", "robot3")}
    assert len({r.worker for r in results}) >= 2, sent  # frames spread over robots


def test_data_distributed_with_early_exit(fleet) -> None:
    driver, ckpt = fleet
    t1 = first_exit_median_threshold(ckpt, frames(N_FRAMES, seed=61))
    for robot in ROBOTS:
        driver.set_params(robot, distribution="data", exit_thresholds=[t1, 1.0, 1.0])
    results, before, after = _run(driver, seed=61)
    _check_whole_frames(results, before, after)
    exits = [r.exit_index for r in results]
    assert 1 in exits and 3 in exits and set(exits) <= {1, 3}  # some frames exit early


def test_data_distributed_without_early_exit(fleet) -> None:
    driver, _ = fleet
    for robot in ROBOTS:
        driver.set_params(robot, distribution="data", exit_thresholds=[1.0, 1.0, 1.0])
    results, before, after = _run(driver, seed=62)
    _check_whole_frames(results, before, after)
    assert all(r.exit_index == 3 for r in results)


def test_static_pipeline_runs_task_k_on_robot_k(fleet) -> None:
    driver, _ = fleet
    refused = driver.set_params("robot2", check=False, distribution="pipeline")
    assert not refused[0].successful and "pipeline_chain" in refused[0].reason
    for bad in (["robot1", "robot1"], ["robot1", "9lives"]):
        (result,) = driver.set_params("robot2", check=False, pipeline_chain=bad)
        assert not result.successful and "pipeline_chain" in result.reason, bad
    try:
        for robot in ROBOTS:
            driver.set_params(robot, pipeline_chain=list(ROBOTS), exit_thresholds=[1.0] * 3)
            driver.set_params(robot, distribution="pipeline")
        results, before, after = _run(driver, seed=63)
    finally:
        for robot in ROBOTS:
            driver.set_params(robot, distribution="mdi")
    assert all(r.exit_index == 3 and r.worker == "robot3" and r.hops == 2 for r in results)
    for k, robot in enumerate(ROBOTS):
        assert after[robot].tasks_run - before[robot].tasks_run == N_FRAMES, robot
        assert [a - b for a, b in zip(after[robot].exits, before[robot].exits, strict=True)] \
            == ([0, 0, N_FRAMES] if robot == "robot3" else [0, 0, 0])
        nxt = ROBOTS[k + 1] if k + 1 < len(ROBOTS) else None
        sent = {m: n - _offloads(before[robot]).get(m, 0)
                for m, n in _offloads(after[robot]).items()}
        assert {m: n for m, n in sent.items() if n} == ({nxt: N_FRAMES} if nxt else {}), robot
