"""The Fast DDS profiles in config/fastdds/: each one loaded by a real worker process (the
variables set as docs/RELIABILITY.md says), which must come up active and publish, with no
error from Fast DDS's XML parser in its log; the churn profile's short lease must show (a
robot killed with SIGKILL leaves the ROS graph within seconds, not the default 20 s). Broken
profiles are the controls: they show that the log check and the writer profile really bite."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdi_exit_ros.tools.procs import spawn_module, stop_all
from mdi_exit_ros.topology import config_dir

REPO = Path(__file__).resolve().parent.parent
PROFILES = ("churn", "capped_link")
DEFAULT_LEASE = 20.0  # Fast DDS's participant lease without a profile, s
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FASTDDS_ERROR = re.compile(r"\[\w+ Error\]")  # e.g. [XMLPARSER Error], [RTPS_WRITER Error]

pytestmark = pytest.mark.ros


def installed(name: str) -> Path:
    return config_dir() / "fastdds" / f"{name}.xml"


def test_profiles_are_installed_with_the_package() -> None:
    for name in PROFILES:
        source = REPO / "config" / "fastdds" / f"{name}.xml"
        assert installed(name).is_file(), f"{installed(name)} missing: reinstall the package"
        assert installed(name).read_text() == source.read_text(), "stale: reinstall"


class Worker:
    """One worker process with a Fast DDS profile; its log (stdout + stderr) in a file."""

    def __init__(self, robot: str, profile: Path, log_dir: Path) -> None:
        self.robot, self.log = robot, log_dir / f"{robot}.log"
        self._file = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        env = {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile),  # Fast DDS 3 (Kilted)
               "FASTRTPS_DEFAULT_PROFILES_FILE": str(profile),  # Fast DDS 2.14 (Jazzy)
               "RMW_FASTRTPS_USE_QOS_FROM_XML": "1"}
        self.proc = spawn_module(
            "mdi_exit_ros.nodes.worker",
            ["--ros-args", "-r", f"__ns:=/{robot}", "-r", "__node:=worker",
             "-p", "stats_period:=0.2", "-p", "neighbors:=[-]"],
            env=env, stdout=self._file, stderr=subprocess.STDOUT)

    def text(self) -> str:
        self._file.flush()
        return ANSI.sub("", self.log.read_text(errors="replace"))

    def stop(self) -> None:
        stop_all([self.proc], timeout=20)
        self._file.close()


@pytest.fixture
def driver() -> Iterator:
    from fleet_harness import Driver

    d = Driver()
    yield d
    d.close()


def _bring_up_and_check(driver, worker: Worker) -> None:
    driver.bring_up(worker.robot)
    assert driver.state(worker.robot) == "active", worker.text()
    # its writers work under the profile: WorkerStats from it reach this process
    assert driver.spin_until(lambda: worker.robot in driver.stats, 30), worker.text()
    assert driver.stats[worker.robot].lifecycle_state == "active"


def _in_graph(driver, robot: str) -> bool:
    return ("worker", f"/{robot}") in driver.node.get_node_names_and_namespaces()


@pytest.mark.parametrize("name", PROFILES)
def test_a_worker_comes_up_active_with_the_profile(name: str, driver, tmp_path: Path) -> None:
    worker = Worker(f"fastdds_{name}", installed(name), tmp_path)
    try:
        _bring_up_and_check(driver, worker)
        log = worker.text()
        assert not FASTDDS_ERROR.search(log), log  # Fast DDS took the XML without complaint
        assert f"{worker.robot} active" in log
    finally:
        worker.stop()


def test_with_the_churn_profile_a_killed_robot_leaves_the_graph_within_its_lease(
        driver, tmp_path: Path) -> None:
    """The profile's 3 s lease (announced by the robot itself) is what the others apply: a
    robot killed without a goodbye is gone from the graph long before the default 20 s."""
    worker = Worker("fastdds_churn_kill", installed("churn"), tmp_path)
    try:
        _bring_up_and_check(driver, worker)
        assert driver.spin_until(lambda: _in_graph(driver, worker.robot), 10)
        killed = time.monotonic()
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        assert driver.spin_until(lambda: not _in_graph(driver, worker.robot),
                                 DEFAULT_LEASE / 2), worker.text()
        assert time.monotonic() - killed < DEFAULT_LEASE / 2
    finally:
        worker.stop()


def test_control_a_malformed_profile_shows_as_an_error_in_the_log(driver,
                                                                  tmp_path: Path) -> None:
    """Fast DDS ignores a profile it cannot parse and says so only in the log (the node still
    comes up): this is why the tests above read the log."""
    bad = tmp_path / "bad.xml"
    bad.write_text(installed("churn").read_text().replace("leaseDuration>", "leaseTime>"))
    worker = Worker("fastdds_bad_xml", bad, tmp_path)
    try:
        _bring_up_and_check(driver, worker)
        log = worker.text()
        assert "[XMLPARSER Error]" in log and FASTDDS_ERROR.search(log), log
    finally:
        worker.stop()


def test_control_the_capped_writer_profile_is_applied(driver, tmp_path: Path) -> None:
    """With RMW_FASTRTPS_USE_QOS_FROM_XML=1 every writer takes the profile's publish mode: a
    flow controller name that does not exist makes the node's first writer fail, so the
    working profile above really sends through its flow controller."""
    bad = tmp_path / "no_controller.xml"
    bad.write_text(installed("capped_link").read_text().replace(
        "<flow_controller_name>mdi_exit_link_cap", "<flow_controller_name>no_such_cap"))
    worker = Worker("fastdds_bad_cap", bad, tmp_path)
    try:
        assert worker.proc.wait(timeout=60) != 0, worker.text()
        assert "could not create data writer" in worker.text()
    finally:
        worker.stop()
