"""What `mdi-exit bench` relies on, with real nodes over ROS 2: a device profile's service
times pad every task (a frame's latency is at least the sum of its tasks' service times), a
task whose real compute exceeds its service time is counted in WorkerStats.tasks_overrun
(what makes a benchmark point invalid), and the `local` topology runs as one robot with
`mdi-exit fleet --record`."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fleet_harness import ADMIT_EVERY_FRAME, Driver, Robot, frames, make_checkpoint, spawn_bench

from mdi_exit_ros.tools.fleet_summary import STATS_FIELDS
from mdi_exit_ros.tools.procs import spawn_module, stop_all

pytestmark = pytest.mark.ros
SERVICE = 0.25  # s per task: far above the random model's real compute, under any load
N_FRAMES = 3


def test_service_times_pad_every_task_and_overruns_are_counted(tmp_path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    robot = Robot("robot1", True, {
        "model": str(ckpt), "neighbors": ["-"], **ADMIT_EVERY_FRAME,
        "qos": "reliable", "stats_period": 0.2,
        "exit_thresholds": [1.0, 1.0, 1.0],  # no early exit: every frame runs all 3 tasks
        "service_times": [SERVICE] * 3}, tmp_path)
    driver = Driver()
    try:
        driver.bring_up("robot1")
        driver.connect("robot1")
        driver.publish_frames("robot1", frames(N_FRAMES), None, 20.0)
        stats = driver.wait_settled("robot1", 120.0)
        results = list(driver.results["robot1"])
        assert len(results) == N_FRAMES
        assert all(r.exit_index == 3 for r in results)
        # each frame waited for its own three padded tasks at least
        assert min(r.latency for r in results) >= 3 * SERVICE - 0.01, \
            [r.latency for r in results]
        assert stats.tasks_run == 3 * N_FRAMES and stats.tasks_overrun == 0

        # a profile faster than this machine: no task can be padded, each one is counted
        driver.set_params("robot1", service_times=[1e-7] * 3)
        driver.publish_frames("robot1", frames(N_FRAMES, seed=1), None, 20.0)
        after = driver.wait_settled("robot1", 120.0)
        assert after.tasks_run == 6 * N_FRAMES
        assert after.tasks_overrun == 3 * N_FRAMES

        # refused: one value per task, each > 0 (nothing changes)
        for bad in ([0.1, 0.1], [0.0, 0.1, 0.1], [0.1, float("nan"), 0.1]):
            (result,) = driver.set_params("robot1", check=False, service_times=bad)
            assert not result.successful and "service_times" in result.reason, bad
    finally:
        driver.close()
        code = robot.stop()
    assert code == 0, robot.log.read_text()[-2000:]


def test_slow_start_begins_at_the_service_times_of_the_profile(tmp_path) -> None:
    """With a device profile the source's first mu is what one robot of that profile needs
    per frame (the sum of the service times: no early exit), not this machine's speed."""
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    robot = Robot("robot1", True, {
        "model": str(ckpt), "neighbors": ["-"], "admission_mode": "rate",
        "initial_interval": 0.005, "qos": "reliable", "stats_period": 0.2,
        "slow_start": True,
        # no camera frame, no step: the first step keeps mu (no frame to admit faster)
        "control_period": 3600.0,
        "exit_thresholds": [1.0, 1.0, 1.0],  # not the checkpoint's: every task runs
        "service_times": [SERVICE] * 3}, tmp_path)
    driver = Driver()
    try:
        driver.bring_up("robot1")
        stats = driver.stats_after("robot1", driver.now_ns())
        assert stats.admission_interval == pytest.approx(3 * SERVICE)
    finally:
        driver.close()
        code = robot.stop()
    assert code == 0, robot.log.read_text()[-2000:]


def test_local_topology_runs_one_robot_and_records_the_run(tmp_path) -> None:
    """`mdi-exit fleet local`: the source alone classifies frames; --record keeps every
    result and report, which is what the bench measures."""
    record = tmp_path / "record.json"
    proc = spawn_module("mdi_exit_ros.tools.fleet", [
        "local", "--duration", "12", "--rate", "5", "--record", str(record),
        "--log-dir", str(tmp_path / "logs"), "--set", "robot1.stats_period=0.2",
        "--set", "robot1.service_times=[0.05, 0.05, 0.05]"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        stop_all([proc])
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "SUMMARY local: 1 workers reported, sources robot1" in text
    data = json.loads(record.read_text())
    assert data["topology"] == "local" and data["robots"] == ["robot1"]
    assert data["stats_fields"] == list(STATS_FIELDS)
    workers = {row[1] for row in data["stats"]}
    assert workers == {"robot1"}
    assert data["results"], text
    assert data["summary"]["frames_classified"] >= len(data["results"]) > 0
    assert all(r[2] >= 1 and r[1] >= 0.05 for r in data["results"])  # exit, padded latency
    assert data["first_frame"] is not None and data["stopped"] > data["first_frame"]


def _started_under(root: Path, exclude: int) -> list[int]:
    """PIDs of the processes (but `exclude`) whose command line names `root` (the fleet: its
    topology file) or whose stdout is a file under it (robots, players: their logs)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == exclude:
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        try:
            out = os.readlink(d / "fd" / "1")
        except OSError:
            out = ""
        if str(root) in cmd or out.startswith(str(root)):
            pids.append(int(d.name))
    return pids


def test_a_stopped_bench_stops_its_fleet_and_keeps_what_it_measured(tmp_path) -> None:
    """SIGTERM (or Ctrl-C) to `mdi-exit bench` while a point runs: the point's fleet gets
    SIGINT and stops its robots, nothing it started is left running, the CSV holds the
    point (invalid: its fleet was stopped) and the bench exits with 130."""
    from mdi_exit_ros.data.registry import dataset_available
    from mdi_exit_ros.tools.bench_fleet import FLEET_STOP_WAIT

    if not dataset_available("fmnist"):
        pytest.skip("Fashion-MNIST is not on this machine (make data)")
    scenario = {
        "name": "stopcheck", "description": "one long local point, stopped while it runs",
        "profile": {"name": "stop-check", "mflops_per_s": 40.0},
        "model": "fmnist_cnn_ee", "dataset": "fashion-mnist",
        "warmup": 60.0, "measure": 120.0, "seed": 1,
        "fixed": {"offered_rate": 5.0, "thresholds": [1.0], "policies": ["local"]},
    }
    bench, out = spawn_bench(scenario, tmp_path)
    try:
        deadline = time.monotonic() + 120.0
        active = False
        while not active and bench.poll() is None and time.monotonic() < deadline:
            logs = list(out.glob("runs/*/logs/robot1.log"))
            active = bool(logs) and "robot1 active" in logs[0].read_text(errors="replace")
            time.sleep(0.2)  # polling a log file for a line, bounded by the deadline
        assert active, "robot1 never became active"
        started = _started_under(out, bench.pid)
        assert len(started) >= 3, started  # the fleet, robot1, its image player
        bench.send_signal(signal.SIGTERM)
        text, _ = bench.communicate(timeout=FLEET_STOP_WAIT + 60.0)
    finally:
        stop_all([bench])
    log = text.decode(errors="replace")
    assert bench.returncode == 130, log
    assert "stopped by signal 15 after 1 of 1 points" in log
    assert _started_under(out, bench.pid) == [], log  # the fleet ended its robots
    with open(out / "runs.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["valid"] == "False" and "exited with code 130" in row["invalid_reason"], row
