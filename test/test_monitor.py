"""`mdi-exit monitor`: aggregation and rendering as plain functions, then one run over ROS 2
against a real source node in another process (terminal snapshot and /diagnostics)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from mdi_exit_ros.msg import NeighborState, WorkerStats
from mdi_exit_ros.tools.monitor import (
    ERROR,
    OK,
    STALE,
    WARN,
    FleetView,
    diagnostic_entries,
    format_counts,
    render,
    to_diagnostic_array,
    worker_status,
)
from mdi_exit_ros.tools.procs import spawn_module, stop_all
from mdi_exit_ros.wire.qos import reliable


def stats(worker: str, **fields) -> WorkerStats:
    defaults = dict(lifecycle_state="active", model_id="m-1", input_queue=2, output_queue=1,
                    compute_delay=0.004, tasks_run=40, tasks_received=5,
                    offload_targets=["robot2", "robot3"], offloads_sent=[7, 3],
                    exits=[20, 10, 4], exit_thresholds=[0.8, 0.8, 0.0])
    return WorkerStats(worker=worker, **{**defaults, **fields})


def source_stats(worker: str = "robot1", admitted: int = 100, **fields) -> WorkerStats:
    values = dict(is_source=True, frames_received=admitted + 10, frames_admitted=admitted,
                  frames_dropped=10, frames_classified=admitted - 2, frames_labelled=80,
                  frames_correct=72, frames_lost=3, frames_lost_in_transport=1,
                  admission_mode="rate", admission_interval=0.05,
                  latency_p50=0.030, latency_p95=0.120)
    return stats(worker, **{**values, **fields})


def test_format_counts() -> None:
    assert format_counts([300, 100, 50]) == "300/100/50"
    assert format_counts([]) == "-"


def test_view_keeps_the_latest_report_and_derives_rates() -> None:
    view = FleetView()
    view.on_stats(source_stats(admitted=100), now=10.0)
    view.on_stats(stats("robot2"), now=10.1)
    view.on_stats(source_stats(admitted=140), now=12.0)
    e = view.workers["robot1"]
    assert list(view.workers) == ["robot1", "robot2"]
    assert e.get("frames_admitted") == 140
    assert e.admitted_rate() == pytest.approx(20.0)
    assert e.accuracy() == pytest.approx(0.9)
    assert e.offloads() == {"robot2": 7, "robot3": 3}
    assert view.workers["robot2"].admitted_rate() is None  # one report only
    # NeighborState is newer than the stats: its queues win
    view.on_state(NeighborState(worker="robot2", lifecycle_state="inactive", input_queue=9,
                                output_queue=4, compute_delay=0.01), now=10.5)
    assert view.workers["robot2"].latest("input_queue") == 9
    assert view.workers["robot2"].latest("lifecycle_state") == "inactive"


def test_status_levels() -> None:
    view = FleetView()
    view.on_stats(stats("ok"), now=100.0)
    view.on_stats(stats("busy", output_queue=51), now=100.0)
    view.on_stats(stats("late"), now=97.5)
    view.on_stats(stats("gone"), now=90.0)
    view.on_state(NeighborState(worker="silent"), now=100.0)  # state but never stats
    levels = {n: worker_status(e, 100.0, t_o=50)[0] for n, e in view.workers.items()}
    assert levels == {"ok": OK, "busy": WARN, "late": WARN, "gone": STALE, "silent": STALE}
    assert "over T_O=50" in worker_status(view.workers["busy"], 100.0, t_o=50)[1]
    assert worker_status(view.workers["busy"], 100.0, t_o=60)[0] == OK


def test_a_worker_that_cannot_run_tasks_is_an_error() -> None:
    view = FleetView()
    view.on_stats(stats("stuck", health="4 task(s) queued, none finished for 12 s",
                        output_queue=70), now=100.0)
    level, message = worker_status(view.workers["stuck"], 100.0, t_o=50)
    assert (level, message) == (ERROR, "active: 4 task(s) queued, none finished for 12 s")
    assert "ERROR" in render(view, now=100.0).splitlines()[2]
    (entry,) = diagnostic_entries(view, now=100.0)
    assert entry.level == ERROR and dict(entry.values)["tasks_failed"] == "0"


def test_render_shows_workers_and_sources() -> None:
    view = FleetView()
    view.on_stats(source_stats(admitted=100), now=0.0)
    view.on_stats(source_stats(admitted=120), now=1.0)
    view.on_stats(stats("robot2", output_queue=70), now=1.0)
    text = render(view, now=1.5)
    lines = text.splitlines()
    row1 = next(line for line in lines if line.startswith("robot1*"))
    assert row1.split()[:4] == ["robot1*", "active", "2", "1"]
    assert "4.0" in row1 and "20/10/4" in row1  # Gamma_n ms, exits
    row2 = next(line for line in lines if line.startswith("robot2 "))
    assert "active!" in row2  # O_n 70 over T_O 50
    src = next(line for line in lines if line.startswith("robot1 "))
    assert "μ 50.0 ms" in src and "20.0" in src and "90.0%" in src
    assert "30.0" in src and "120.0" in src  # latency p50/p95 in ms
    header = next(line for line in lines if line.startswith("source"))
    assert src.split()[header.split().index("lost") + 2] == "3"  # +2: "μ 50.0 ms" is 3 words
    stale = render(view, now=10.0)
    assert "STALE" in stale
    assert "waiting for /mdi/worker_stats" in render(FleetView())
    view.on_stats(stats("robot10"), now=1.0)
    names = [line.split()[0] for line in render(view, now=1.5).splitlines()[2:5]]
    assert names == ["robot1*", "robot2", "robot10"]


def test_threshold_mode_shows_T_e() -> None:
    view = FleetView()
    view.on_stats(source_stats(admission_mode="threshold"), now=0.0)
    assert "T_e 0.80/0.80/0.00" in render(view, now=0.1)


def test_diagnostics_carry_level_name_and_counters() -> None:
    view = FleetView()
    view.on_stats(source_stats(), now=5.0)
    view.on_stats(stats("robot2"), now=1.0)
    entries = {d.name: d for d in diagnostic_entries(view, now=5.5)}
    assert set(entries) == {"mdi_exit/robot1", "mdi_exit/robot2"}
    d = entries["mdi_exit/robot1"]
    assert (d.level, d.hardware_id) == (OK, "robot1")
    values = dict(d.values)
    assert values["tasks_run"] == "40" and values["offloads_to_robot2"] == "7"
    assert values["exit_3"] == "4" and values["frames_admitted"] == "100"
    assert values["accuracy"] == "0.9000"
    assert values["frames_lost"] == "3" and values["frames_lost_in_transport"] == "1"
    assert entries["mdi_exit/robot2"].level == STALE
    msg = to_diagnostic_array(entries.values())
    assert isinstance(msg, DiagnosticArray)
    assert [s.level for s in msg.status] == [DiagnosticStatus.OK, DiagnosticStatus.STALE]
    assert msg.status[0].values[0].key == "lifecycle_state"


@pytest.mark.ros
def test_monitor_once_and_diagnostics_from_a_running_source(tmp_path: Path) -> None:
    """A real source process (shipped model) classifies three frames; `mdi-exit monitor
    --once` in a third process shows it and publishes its counters on /diagnostics."""
    from fleet_harness import Driver, Robot, frames

    # control_period: no Alg. 3 step during the test, so mu stays initial_interval (50 ms)
    robot = Robot("robotm", True, {"neighbors": ["robotn"], "stats_period": 0.5,
                                   "qos": "reliable", "control_period": 3600.0,
                                   "initial_interval": 0.05, "slow_start": False,
                                   "latency_budget": 3600.0}, tmp_path)
    driver = Driver()
    arrays: list[DiagnosticArray] = []
    driver.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append,
                                    reliable(10))
    monitor = None
    try:
        driver.bring_up("robotm")
        driver.connect("robotm")
        driver.publish_frames("robotm", frames(3), [1, 2, 3], rate=5.0)
        stats = driver.wait_settled("robotm")
        assert stats.frames_classified == 3, robot.log.read_text()
        # --expect 1: print once robotm reported; --diagnostics-subscribers 1: publish only
        # after our subscription matched and fail unless it acknowledged the snapshot.
        monitor = spawn_module("mdi_exit_ros.tools.monitor",
                               ["--once", "--wait", "60", "--period", "0.2", "--expect", "1",
                                "--diagnostics-subscribers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = monitor.communicate(timeout=90)
        # Acknowledged means our reader has the snapshot: it is delivered on the next spins.
        # (Arrays the monitor published while it waited may show robotm STALE: it knew it
        # from NeighborState before its first WorkerStats.)
        driver.spin_until(lambda: any(s.name == "mdi_exit/robotm"
                                      and s.level == DiagnosticStatus.OK
                                      for a in arrays for s in a.status), 30.0)
        assert monitor.returncode == 0, out
        row = next(line for line in out.splitlines() if line.startswith("robotm*"))
        assert row.split()[1] == "active"
        assert row.split()[8] == "/".join(  # exits column: where the 3 frames exited
            str(sum(r.exit_index == k for r in driver.results["robotm"])) for k in (1, 2, 3))
        assert "μ 50.0 ms" in out
        ours = [s for a in arrays for s in a.status if s.name == "mdi_exit/robotm"
                and s.level == DiagnosticStatus.OK]
        assert ours, f"no OK DiagnosticStatus for robotm in {len(arrays)} arrays"
        status = ours[-1]
        assert status.hardware_id == "robotm"
        assert status.level == DiagnosticStatus.OK
        values = {kv.key: kv.value for kv in status.values}
        assert {"tasks_run", "exit_1", "exit_2", "exit_3"} <= set(values)
        assert "exit_4" not in values  # the shipped model has three exits
        assert values["frames_admitted"] == values["frames_classified"] == "3"
        assert values["model_id"].startswith("fmnist_cnn_ee-")
        assert values["lifecycle_state"] == "active"
    finally:
        if monitor is not None:
            stop_all([monitor], timeout=10)
        driver.close()
        code = robot.stop()
    assert code == 0, robot.log.read_text()  # ended cleanly on SIGINT


@pytest.mark.ros
def test_monitor_once_without_a_fleet_says_so() -> None:
    proc = spawn_module("mdi_exit_ros.tools.monitor", ["--once", "--wait", "1"],
                        env={"ROS_DOMAIN_ID": "231"},  # a domain with no fleet on it
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no WorkerStats on /mdi/worker_stats within 1 s" in out


@pytest.mark.ros
def test_monitor_once_fails_when_its_diagnostics_reader_never_appears(tmp_path: Path) -> None:
    """Asked for a /diagnostics subscriber that never comes, --once says so and exits 1.

    The one wait this test cannot avoid: absence shows only when --wait has run out (20 s,
    far beyond discovery, so robotq has reported by then)."""
    from fleet_harness import Driver, Robot

    robot = Robot("robotq", False, {"stats_period": 0.2}, tmp_path)
    driver = Driver()
    try:
        driver.bring_up("robotq")
        driver.close()  # no /diagnostics reader of ours on the domain
        proc = spawn_module("mdi_exit_ros.tools.monitor",
                            ["--once", "--wait", "20", "--expect", "1",
                             "--diagnostics-subscribers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=60)
    finally:
        code = robot.stop()
    assert proc.returncode == 1, out
    assert "robotq" in out  # the snapshot is still printed
    assert "only 0 of 1 /diagnostics subscribers matched within 20 s" in out
    assert code == 0
