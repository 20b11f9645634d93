"""Two fleets on one ROS domain at once, in real processes: each keeps to its namespace.

Fleet /fleet_a is robot1 (a source) and robot2; fleet /fleet_b is robot1 (a source, the same
id) and robot3. With names built from worker ids alone the two robot1 would share their
camera, exits and classification topics, and every robot would hear the other fleet's
NeighborState. Checked on what the nodes publish: each source counts exactly the frames sent
to it and answers each once, from its own fleet; each robot hears exactly its own fleet's
neighbours (WorkerStats.neighbors_alive) and offloads only there, and no robot received more tasks
than its own fleet sent it.
"""

from __future__ import annotations

import pytest
from fleet_harness import ADMIT_EVERY_FRAME, Driver, Robot, frames, make_checkpoint
from lifecycle_msgs.msg import Transition

pytestmark = pytest.mark.ros
FLEETS = {"/fleet_a": ("robot1", "robot2"), "/fleet_b": ("robot1", "robot3")}
N_FRAMES = 12


def heard(driver: Driver, expected: dict[str, list[str]]) -> bool:
    return all(w in driver.stats and list(driver.stats[w].neighbors_alive) == n
               for w, n in expected.items())


def test_two_fleets_share_a_domain_without_seeing_each_other(tmp_path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    common = {"model": str(ckpt), "state_period": 0.1, "stats_period": 0.2,
              "neighbors": ["*"]}  # any worker heard: a leak between fleets would be used
    robots: list[Robot] = []
    drivers: dict[str, Driver] = {}
    try:
        for fleet, (source, worker) in FLEETS.items():
            robots.append(Robot(source, True, {
                **common, **ADMIT_EVERY_FRAME,
                "qos": "reliable", "exit_thresholds": [1.0, 1.0, 1.0],  # 3 tasks a frame
                "compute_slowdown": 60.0}, tmp_path, fleet=fleet))  # slow: it offloads
            robots.append(Robot(worker, False, common, tmp_path, fleet=fleet))
            drivers[fleet] = Driver(fleet)
        for fleet, names in FLEETS.items():
            for name in names:
                drivers[fleet].bring_up(name)
        for fleet, (source, worker) in FLEETS.items():
            d = drivers[fleet]
            expected = {source: [worker], worker: [source]}
            assert d.spin_until(lambda d=d, e=expected: heard(d, e)), d.describe()
            d.connect(source)
        sent = {}
        for fleet, (source, _) in FLEETS.items():  # both fleets busy at once
            sent[fleet] = drivers[fleet].publish_frames(
                source, frames(N_FRAMES, seed=len(sent)), None, 20.0)
        for fleet, (source, worker) in FLEETS.items():
            d = drivers[fleet]
            stats = d.wait_settled(source, 120.0)  # received == the frames sent to it
            assert stats.frames_received == N_FRAMES == stats.frames_classified
            assert sorted((r.header.stamp.sec, r.header.stamp.nanosec)
                          for r in d.results[source]) == sorted(sent[fleet])
            assert {r.worker for r in d.results[source]} <= {source, worker}
        for fleet, (source, worker) in FLEETS.items():
            d = drivers[fleet]
            since = d.now_ns()
            src, wrk = d.stats_after(source, since), d.stats_after(worker, since)
            assert list(src.neighbors_alive) == [worker] and list(wrk.neighbors_alive) == [source]
            assert set(d.stats) == {source, worker}, d.describe()  # only its own reports
            # Tasks only within the fleet: every task a robot received was sent to it by its
            # own fleet's robot (a leak from the other fleet's robot1 would exceed that).
            to_worker = dict(zip(src.offload_targets, src.offloads_sent, strict=True))
            to_source = dict(zip(wrk.offload_targets, wrk.offloads_sent, strict=True))
            assert set(to_worker) == {worker} and set(to_source) <= {source}, d.describe()
            assert 0 < wrk.tasks_received <= to_worker[worker], d.describe()
            assert src.tasks_received <= to_source.get(source, 0), d.describe()
    finally:
        for d in drivers.values():
            d.close()
        codes = [r.stop() for r in robots]
    assert codes == [0] * len(robots), [r.log.read_text()[-1500:] for r in robots]


def test_a_worker_outside_its_fleet_namespace_refuses_to_configure(tmp_path) -> None:
    """In /robot9 with fleet /fleet_c, peers would send to /fleet_c/robot9/tasks, which it
    does not hear: configure fails with the reason, and the node stays unconfigured."""
    robot = Robot("robot9", False, {"fleet": "/fleet_c", "neighbors": ["-"]}, tmp_path,
                  log_level="info")
    driver = Driver()
    try:
        assert not driver.transition("robot9", Transition.TRANSITION_CONFIGURE)
        assert driver.state("robot9") == "unconfigured"
    finally:
        driver.close()
        code = robot.stop()
    log = robot.log.read_text()
    assert code == 0, log
    assert "but its fleet is /fleet_c" in log and "set fleet:=/" in log, log
