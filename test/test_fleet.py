"""`mdi-exit fleet`: options, overrides and the summary as plain functions; then whole runs
over ROS 2 with the real worker and source nodes and the shipped model (start-up through
the lifecycle services, --duration, SIGINT forwarding, a worker that fails to configure)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mdi_exit_ros.msg import WorkerStats
from mdi_exit_ros.tools import fleet, fleet_spec, supervisor
from mdi_exit_ros.tools.fleet import parse_options
from mdi_exit_ros.tools.fleet_spec import (
    coerce,
    format_value,
    parse_override,
    parse_value,
    ros_arguments,
    worker_specs,
)
from mdi_exit_ros.tools.fleet_summary import (
    Departure,
    RunCounts,
    RunTally,
    format_summary,
    summarize,
)
from mdi_exit_ros.tools.procs import spawn_module, stop_all
from mdi_exit_ros.topology import TopologyError, load_topology, parse_topology, resolve_topology

FLEET = "mdi_exit_ros.tools.fleet"

# --------------------------------------------------------------------------------------------
# Overrides and parameters


def test_parse_override() -> None:
    o = parse_override("robot2.compute_slowdown=2.0")
    assert (o.worker, o.name, o.value) == ("robot2", "compute_slowdown", 2.0)
    assert parse_override("*.torch_threads=2").worker == "*"
    assert parse_override("robot1.neighbors=[robot2, robot3]").value == ["robot2", "robot3"]
    assert parse_override("robot1.model=/tmp/m.safetensors").value == "/tmp/m.safetensors"
    for bad in ("robot2.compute_slowdown", "compute_slowdown=2", "=2", ".x=1", "robot2.=1"):
        with pytest.raises(ValueError, match="<worker>.<parameter>=<value>"):
            parse_override(bad)


def test_parse_value_reads_yaml_scalars() -> None:
    assert parse_value("2") == 2 and isinstance(parse_value("2"), int)
    assert parse_value("2.5") == 2.5
    assert parse_value("true") is True
    assert parse_value("threshold") == "threshold"
    assert parse_value("'1.0'") == "1.0"
    assert parse_value("") == ""


def test_integral_values_of_double_parameters_become_floats() -> None:
    out = coerce({"compute_slowdown": 2, "torch_threads": 2, "exit_thresholds": [1, 0.5],
                  "alpha": True, "neighbors": ["a"]})
    assert out == {"compute_slowdown": 2.0, "torch_threads": 2, "exit_thresholds": [1.0, 0.5],
                   "alpha": True, "neighbors": ["a"]}
    assert isinstance(out["compute_slowdown"], float)
    assert isinstance(out["torch_threads"], int)


def test_coerce_widens_worker_doubles_and_keeps_ints() -> None:
    from rclpy.parameter import Parameter

    out = fleet_spec.coerce({"compute_slowdown": 2, "exit_thresholds": [1, 0],
                             "torch_threads": 2})
    assert out == {"compute_slowdown": 2.0, "exit_thresholds": [1.0, 0.0], "torch_threads": 2}
    assert type(out["compute_slowdown"]) is float  # 2 == 2.0: the types are the point
    assert [type(v) for v in out["exit_thresholds"]] == [float, float]
    assert type(out["torch_threads"]) is int
    # the types rclpy infers are the ones the worker declares, so its overrides are accepted
    types = {k: Parameter(k, value=v).type_ for k, v in out.items()}
    assert types == {"compute_slowdown": Parameter.Type.DOUBLE,
                     "exit_thresholds": Parameter.Type.DOUBLE_ARRAY,
                     "torch_threads": Parameter.Type.INTEGER}


@pytest.mark.parametrize("value,text", [
    (True, "true"), (False, "false"), (2.0, "2.0"), (3, "3"), (1e-4, "0.0001"),
    (["robot2", "robot3"], "[robot2, robot3]"), ([10, 30], "[10, 30]"),
    ("fmnist_cnn_ee", "fmnist_cnn_ee"), ("1.0", "'1.0'"), ("true", "'true'"),
    ("/tmp/a b.safetensors", "/tmp/a b.safetensors"),
])
def test_format_value_round_trips_through_yaml(value, text) -> None:
    assert format_value(value) == text
    assert parse_value(text) == value


def test_worker_specs_precedence_model_topology_overrides() -> None:
    topo = parse_topology({"name": "t", "workers": ["a", "b", "c"], "sources": ["a"],
                           "parameters": {"b": {"compute_slowdown": 3, "model": "topo_m"}}})
    specs = {s.robot: s for s in worker_specs(
        topo, model="cli_m", overrides=[parse_override("*.torch_threads=2"),
                                        parse_override("c.model=over_m")])}
    assert specs["a"].executable == "source" and specs["b"].executable == "worker"
    assert specs["a"].parameters == {"model": "cli_m", "neighbors": ["b", "c"],
                                     "torch_threads": 2}
    assert specs["b"].parameters["model"] == "topo_m"  # topology beats --model
    assert specs["b"].parameters["compute_slowdown"] == 3.0
    assert specs["c"].parameters["model"] == "over_m"  # --set beats both
    assert specs["a"].full_name == "/a/worker"
    with pytest.raises(TopologyError, match="'zz' is not a worker"):
        worker_specs(topo, overrides=[parse_override("zz.alpha=0.3")])


def test_ros_arguments_of_a_source_with_a_camera(tmp_path: Path) -> None:
    topo = load_topology(resolve_topology("mesh3"))
    spec = worker_specs(topo, overrides=[parse_override("robot1.compute_slowdown=2")],
                        camera_topic="/camera/image_raw")[0]
    args = ros_arguments(spec, tmp_path / "p.yaml")
    assert args[:5] == ["--ros-args", "-r", "__ns:=/robot1", "-r", "__node:=worker"]
    assert args[5:7] == ["-r", "image:=/camera/image_raw"]
    assert args.index("--params-file") < args.index("-p")  # -p values win
    assert "neighbors:=[robot2, robot3]" in args
    assert "compute_slowdown:=2.0" in args


def test_a_worker_without_outgoing_links_gets_no_neighbours() -> None:
    topo = parse_topology({"workers": ["a", "b"], "arcs": [["a", "b"]]})
    b = worker_specs(topo)[1]
    assert b.parameters["neighbors"] == ["-"]  # "none": ROS cannot type an empty list
    assert "neighbors:=[-]" in ros_arguments(b) or "neighbors:=['-']" in ros_arguments(b)
    assert fleet_spec.launch_parameters(b)["neighbors"] == ["-"]


# --------------------------------------------------------------------------------------------
# Options


def test_default_options() -> None:
    o = parse_options(["mesh3"])
    assert [s.full_name for s in o.workers] == ["/robot1/worker", "/robot2/worker",
                                                "/robot3/worker"]
    assert [(p.full_name, p.parameters["dataset"], p.parameters["rate"], p.parameters["loop"])
            for p in o.players] == [("/robot1/image_player", "fashion-mnist", 20.0, True)]
    assert o.duration is None and o.log_dir is None
    assert o.params_file == fleet_spec.default_params_file() or o.params_file is None


def test_fleet_players_shuffle_datasets_but_not_videos() -> None:
    shuffle = {d: parse_options(["mesh3", "--dataset", d]).players[0].parameters["shuffle"]
               for d in ("fashion-mnist", "cifar10", "folder:/data/cams", "video:/data/run.mp4")}
    assert shuffle == {"fashion-mnist": True, "cifar10": True, "folder:/data/cams": True,
                       "video:/data/run.mp4": False}


def test_player_and_camera_options(tmp_path: Path) -> None:
    o = parse_options(["mesh2", "--dataset", "cifar10", "--rate", "5", "--duration", "3"])
    assert o.players[0].parameters["dataset"] == "cifar10"
    assert o.players[0].parameters["rate"] == 5.0 and o.duration == 3.0
    o = parse_options(["mesh2", "--camera-topic", "/cam/image"])
    assert o.players == []
    assert o.workers[0].remappings == (("image", "/cam/image"),)
    assert o.workers[1].remappings == ()
    assert parse_options(["mesh2", "--no-player"]).players == []


def test_only_starts_the_named_robots_with_their_topology_neighbours() -> None:
    o = parse_options(["mesh5", "--only", "robot3"])
    assert o.robots == ("robot3",)
    assert [(s.full_name, s.executable) for s in o.workers] == [("/robot3/worker", "worker")]
    assert o.workers[0].parameters["neighbors"] == ["robot1", "robot2", "robot4", "robot5"]
    assert o.players == []  # robot3 is no source: its player runs with robot1, elsewhere
    o = parse_options(["mesh5", "--only", "robot2,robot1"])
    assert o.robots == ("robot1", "robot2")  # the topology's order
    assert [s.executable for s in o.workers] == ["source", "worker"]
    assert [p.full_name for p in o.players] == ["/robot1/image_player"]
    assert parse_options(["mesh5"]).robots == tuple(f"robot{i}" for i in range(1, 6))
    o = parse_options(["mesh5", "--only", "robot3", "--set", "robot2.compute_slowdown=2",
                       "--set", "*.torch_threads=1"])
    assert o.warnings == ["--set for robot2 ignored: not started here (--only)"]
    assert o.workers[0].parameters["torch_threads"] == 1


def test_select_robots_names_every_unknown_robot() -> None:
    topo = load_topology(resolve_topology("mesh3"))
    assert fleet_spec.select_robots(topo, " robot3 , robot1") == ("robot1", "robot3")
    assert fleet_spec.select_robots(topo, None) == fleet_spec.select_robots(topo, "")
    with pytest.raises(TopologyError, match=r"'robot7', 'x' are not robots of topology "
                                            r"'mesh3' \(robot1, robot2, robot3\)"):
        fleet_spec.select_robots(topo, ["robot1", "robot7", "x"])


def test_custom_topology_file(tmp_path: Path) -> None:
    f = tmp_path / "chain.yaml"
    f.write_text("workers: [a, b]\narcs: [[a, b]]\nplayer: {dataset: 'folder:/x', rate: 2}\n")
    o = parse_options([str(f), "--log-dir", str(tmp_path / "logs")])
    assert o.topology.name == "chain"
    assert o.players[0].parameters["rate"] == 2.0
    assert o.workers[1].parameters["neighbors"] == ["-"]  # b offloads to nobody
    assert not o.warnings
    assert o.log_dir == tmp_path / "logs"


@pytest.mark.parametrize("argv,message", [
    (["mesh99"], "no topology 'mesh99'"),
    (["mesh3", "--set", "robot9.alpha=0.1"], "'robot9' is not a worker"),
    (["mesh3", "--set", "alpha=0.1"], "<worker>.<parameter>=<value>"),
    (["mesh3", "--duration", "0"], "--duration must be a positive"),
    (["mesh3", "--rate", "-1"], "rate must be a positive"),
    (["mesh3", "--params-file", "/nonexistent.yaml"], "no such file"),
    (["mesh5", "--only", "robot9"], "'robot9' is not a robot of topology 'mesh5'"),
    (["mesh5", "--only", "robot1,robot6"], "'robot6' is not a robot"),
    (["mesh5", "--only", ","], "--only needs robot names"),
    (["mesh3", "--respawn", "-1"], "--respawn must be a number of restarts >= 0"),
])
def test_bad_options_exit_2(argv, message, capsys) -> None:
    assert fleet.main(argv) == 2
    assert message in capsys.readouterr().err


def test_child_commands_run_the_node_modules() -> None:
    o = parse_options(["mesh2"])
    module, args = supervisor.child_command(o.workers[0], Path("/p.yaml"))
    assert module == "mdi_exit_ros.nodes.source"
    assert args[args.index("--params-file") + 1] == "/p.yaml"
    module, args = supervisor.child_command(o.workers[1], Path("/p.yaml"))
    assert module == "mdi_exit_ros.nodes.worker" and "--params-file" in args
    module, args = supervisor.child_command(o.players[0], Path("/p.yaml"))
    assert module == "mdi_exit_ros.nodes.image_player" and "--params-file" not in args
    assert not hasattr(fleet, "STAND_IN")
    with pytest.raises(SystemExit):  # the stand-in option is gone
        fleet.build_parser().parse_args(["mesh2", "--stand-ins"])


# --------------------------------------------------------------------------------------------
# Summary


def test_the_tally_matches_results_with_labels_in_either_order() -> None:
    from mdi_exit_ros.msg import ExitResult, FrameLabel

    def label(sec: int, class_id: int) -> FrameLabel:
        m = FrameLabel(class_id=class_id)
        m.header.stamp.sec, m.header.frame_id = sec, "camera"
        return m

    def result(sec: int, class_id: int, exit_index: int = 1) -> ExitResult:
        m = ExitResult(class_id=class_id, exit_index=exit_index, latency=0.25)
        m.header.stamp.sec, m.header.frame_id = sec, "camera"
        return m

    tally = RunTally(record=True)
    tally.on_label("robot1", label(1, 3), now=10.0)
    tally.on_result("robot1", result(1, 3), now=10.5)  # label first: correct
    tally.on_result("robot1", result(2, 4, exit_index=2), now=11.0)  # result first: wrong
    tally.on_label("robot1", label(2, 5), now=11.5)
    tally.on_result("robot2", result(1, 3), now=12.0)  # another source's frame 1: no label
    tally.on_label("robot1", label(3, -1), now=12.5)  # no ground truth
    tally.on_result("robot1", result(3, 7), now=13.0)
    c = tally.counts
    assert (c.labels, c.classified, c.labelled, c.correct) == (3, 4, 2, 1)
    assert c.exits == {1: 3, 2: 1} and tally.first_frame == 10.0
    assert [r[3] for r in tally.results] == [True, False, None, None]
    assert tally.results[1] == [11.0, 0.25, 2, False, 4]
    assert RunTally().results == [] and not RunTally().record


def test_exit_status_policy() -> None:
    ok, failed, degraded = fleet.EXIT_OK, fleet.EXIT_FAILED, fleet.EXIT_DEGRADED
    assert fleet.exit_status(ok, "", [], [], []) == (ok, "")
    assert fleet.exit_status(ok, "", ["/robot1/worker was killed"], [], ["robot2"]) == (
        failed, "/robot1/worker was killed")
    assert fleet.exit_status(ok, "", [], ["robot1", "robot2"], []) == (
        failed, "no WorkerStats from robot1, robot2")
    assert fleet.exit_status(ok, "", [], [], ["a", "b"]) == (
        degraded, "ran to the end without robots that left: a; b")
    # an earlier failure keeps its code; silence is not news then
    assert fleet.exit_status(fleet.EXIT_INTERRUPTED, "interrupted", ["x"], ["robot1"],
                             ["a"]) == (fleet.EXIT_INTERRUPTED, "interrupted; x")


def _stats(worker: str, source: bool = False, **kw) -> WorkerStats:
    return WorkerStats(worker=worker, is_source=source, **kw)


def test_summary_adds_up_workers_and_links() -> None:
    stats = [
        _stats("robot1", True, tasks_run=50, exits=[10, 5, 0], offload_targets=["robot2"],
               offloads_sent=[12], frames_received=40, frames_admitted=35, frames_dropped=5,
               frames_classified=33, frames_overdue=1, frames_labelled=33, frames_correct=30,
               frames_shed=2, frames_lost=4, frames_lost_in_transport=1, frames_expired=3,
               latency_p50=0.02, latency_p95=0.09, compute_delay=0.01),
        _stats("robot2", tasks_run=20, exits=[0, 8, 10], offload_targets=["robot1"],
               offloads_sent=[2], compute_delay=0.045),
    ]
    counts = RunCounts(labels=41, classified=33, labelled=32, correct=28)
    s = summarize(stats, counts, seconds=12.0, streaming=10.0)
    assert s["exits"] == [10, 13, 10]
    assert s["offloads"] == {"robot1->robot2": 12, "robot2->robot1": 2}
    assert s["frames_admitted"] == 35 and s["frames_dropped"] == 5
    assert s["accuracy"] == pytest.approx(30 / 33)  # the sources' own counts first
    assert s["throughput"] == pytest.approx(3.3)
    text = format_summary(s, "mesh2")
    assert text.startswith("SUMMARY mesh2")
    assert "40 (frames that reached the sources)" in text
    assert "90.91% (30/33)" in text
    assert "exit 1: 10, exit 2: 13, exit 3: 10" in text
    assert "robot1->robot2: 12" in text
    assert "in flight at stop: 2" in text
    assert "dropped            5 (by admission control; shed by the overload guard: 2)" in text
    assert "lost               4 (camera frames that never reached a source; reported by " \
        "DDS: 1)" in text
    assert "expired            3 (answered as expired" in text
    assert "p50 20.0 ms, p95 90.0 ms" in text
    assert "3.30 classified frames/s (over 10.0 s since the first frame)" in text
    assert "tasks run          robot1: 50 (71%), robot2: 20 (29%)" in text
    # Gamma weighted by tasks: (50 x 10 ms + 20 x 45 ms) / 70 = 20 ms; p50 20 ms is 1.0 x
    assert "task time (Gamma)  robot1: 10.0 ms, robot2: 45.0 ms; mean over tasks 20.0 ms" \
        in text
    assert "p95 90.0 ms; p50 = 1.0 x mean task time" in text
    # sources without ground truth: the fleet's own count of labelled results
    for st in stats:
        st.frames_labelled = st.frames_correct = 0
    s = summarize(stats, counts, seconds=10.0)
    assert s["accuracy"] == pytest.approx(28 / 32)
    s = summarize(stats, RunCounts(), seconds=10.0)
    assert "3.30 classified frames/s (over 10.0 s of the run)" in format_summary(s, "mesh2")


def test_summary_names_the_robots_run_here_and_those_that_left() -> None:
    stats = [_stats("robot2", tasks_run=3), _stats("robot3", tasks_run=4)]
    left = [Departure("/robot3/worker", 12.34, -9, back_at=15.0, restart=1),
            Departure("/robot3/worker", 20.0, -9, note="not restarted (all 1 restarts "
                                                             "used)")]
    s = summarize(stats, RunCounts(), 30.0, robots=("robot2", "robot3"),
                  topology_robots=("robot1", "robot2", "robot3"), departures=left)
    text = format_summary(s, "mesh3")
    assert "  robots here        robot2, robot3 (only these; robot1 run elsewhere)" in text
    assert ("  robots that left   /robot3/worker at 12.3 s (exit code -9), back at 15.0 s "
            "(restart 1); /robot3/worker at 20.0 s (exit code -9), not restarted (all 1 "
            "restarts used)") in text
    s = summarize(stats, RunCounts(), 30.0, robots=("robot2", "robot3"),
                  topology_robots=("robot2", "robot3"))
    text = format_summary(s, "mesh3")
    assert "  robots here        robot2, robot3\n" in text
    assert text.endswith("  robots that left   none")


# --------------------------------------------------------------------------------------------
# Whole runs over ROS 2 with the real worker and source nodes (shipped model), each robot a
# process of its own started and driven by `mdi-exit fleet` in another process.


def _run(argv: list[str]) -> subprocess.Popen:
    """`mdi-exit fleet argv`; its children get 30 s to end after SIGINT (10 s by default: a
    loaded machine can need more, and a kill would change the exit code under test)."""
    if "--shutdown-timeout" not in argv and argv and not argv[0].startswith("-"):
        argv = [*argv, "--shutdown-timeout", "30"]
    return spawn_module(FLEET, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True)


def _child_pids(out: str) -> list[int]:
    return [int(p) for p in re.findall(r"pid (\d+)", out)]


def _assert_all_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Every pid ends within `timeout` (an orphan is reaped by init once its parent exits)."""
    assert pids
    assert all(_gone(pid, timeout) for pid in pids), [p for p in pids if not _gone(p, 0.0)]


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)  # polling a condition, bounded: not a check of absence


def _summary_number(out: str, label: str) -> int:
    found = re.search(rf"^  {label}\s+(\d+)", out, re.M)
    assert found, f"no {label!r} line in:\n{out}"
    return int(found.group(1))


def _logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(log_dir.glob("*.log")))


def image_folder(root: Path, per_class: int = 3) -> Path:
    """A tiny labelled image folder (train/test splits, two classes of 28x28 grey PNGs): a
    frame source for the image player where Fashion-MNIST is not installed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("bag", "shirt"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
                Image.fromarray(pixels, "L").save(folder / f"{i}.png")
    return root


@pytest.mark.ros
@pytest.mark.slow
def test_mesh3_runs_the_real_workers_for_a_duration(tmp_path: Path) -> None:
    from mdi_exit_ros.data import dataset_available

    fmnist = dataset_available("fmnist")
    dataset = "fashion-mnist" if fmnist else f"folder:{image_folder(tmp_path / 'images')}"
    log_dir = tmp_path / "logs"
    proc = _run(["mesh3", "--duration", "8", "--rate", "10", "--model", "fmnist_cnn_ee",
                 "--dataset", dataset, "--set", "robot2.compute_slowdown=2",
                 "--set", "*.stats_period=0.5", "--startup-timeout", "120",
                 "--log-dir", str(log_dir)])
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        stop_all([proc], timeout=20)
    assert proc.returncode == 0, out + _logs(log_dir)
    assert "all workers active" in out
    assert "SUMMARY mesh3: 3 workers reported, sources robot1" in out
    classified = _summary_number(out, "classified")
    assert classified >= 5, out + _logs(log_dir)
    assert _summary_number(out, "admitted") >= classified
    # the shipped model's three exits, counted by the real workers
    assert re.search(r"exits\s+exit 1: \d+, exit 2: \d+, exit 3: \d+$", out, re.M), out
    accuracy = re.search(r"accuracy\s+(\d+\.\d\d)% \((\d+)/(\d+)\)", out)
    assert accuracy, out
    if fmnist:  # the shipped model scores ~92.7 % on the test split (docs/MODELS.md)
        assert int(accuracy.group(3)) >= 5 and float(accuracy.group(1)) >= 70.0, out
    assert re.search(r"throughput\s+\d+\.\d\d classified frames/s", out), out
    assert sorted(p.name for p in log_dir.iterdir()) == [
        "robot1.log", "robot1_image_player.log", "robot2.log", "robot3.log"]
    robot2 = (log_dir / "robot2.log").read_text()
    command = robot2.splitlines()[0]
    assert "compute_slowdown:=2.0" in command  # --set reached it, widened to a double
    assert "model:=fmnist_cnn_ee" in command and "'neighbors:=[robot1, robot3]'" in command
    assert "configured robot2: model fmnist_cnn_ee-" in robot2  # the node loaded the model
    assert "neighbours ['robot1', 'robot3']" in robot2
    assert "compute_slowdown" not in (log_dir / "robot3.log").read_text().splitlines()[0]
    _assert_all_gone(_child_pids(out))


@pytest.mark.ros
@pytest.mark.slow
def test_sigint_is_forwarded_and_the_fleet_exits_cleanly(tmp_path: Path) -> None:
    """circular3 until Ctrl-C. robot1 is made 50x slower (its compute is padded with sleep,
    which costs no CPU), so its queue grows and Alg. 2 offloads to its one ring successor."""
    from fleet_harness import Driver

    images = image_folder(tmp_path / "images")
    log_dir = tmp_path / "logs"
    proc = _run(["circular3", "--rate", "20", "--dataset", f"folder:{images}",
                 "--set", "robot1.compute_slowdown=50", "--startup-timeout", "120",
                 "--log-dir", str(log_dir)])
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "running until Ctrl-C" in line:
                running.set()

    def offloaded() -> int:
        stats = driver.stats.get("robot1")
        return sum(stats.offloads_sent) if stats is not None else 0

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    driver = Driver()  # watches /mdi/worker_stats from the test process
    try:
        deadline = time.monotonic() + 180
        while not running.wait(0.5) and proc.poll() is None and time.monotonic() < deadline:
            pass
        assert running.is_set(), "".join(lines) + _logs(log_dir)
        # the player needs a few seconds to start; stop once robot1 has offloaded
        assert driver.spin_until(lambda: offloaded() > 0 or proc.poll() is not None, 90), \
            "".join(lines) + _logs(log_dir)
        proc.send_signal(signal.SIGINT)  # the fleet runs in a session of its own
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        driver.close()
        stop_all([proc], timeout=20)
    out = "".join(lines)
    assert proc.returncode == 0, out + _logs(log_dir)
    assert "stopping (signal)" in out
    assert "SUMMARY circular3: 3 workers reported" in out
    offloads = re.search(r"offloads\s+.*robot1->robot2: (\d+)", out)
    assert offloads and int(offloads.group(1)) > 0, out + _logs(log_dir)
    # a directed ring: robot1 offloads to robot2 only, robot2 to robot3 only
    assert "robot1->robot3" not in out and "robot2->robot1" not in out, out
    assert int(re.search(r"tasks run\s+.*robot2: (\d+)", out).group(1)) > 0, out
    for robot, successor in (("robot1", "robot2"), ("robot2", "robot3"), ("robot3", "robot1")):
        log = (log_dir / f"{robot}.log").read_text()
        assert f"neighbours ['{successor}']" in log, log
    _assert_all_gone(_child_pids(out))


@pytest.mark.ros
@pytest.mark.parametrize(("model", "reason"), [
    ("/nonexistent/model.safetensors", "no such file"),
    ("resnet50_ee_cifar10", "not shipped yet"),  # documented, trained by the user (MODELS.md)
], ids=["missing-file", "unshipped-name"])
def test_a_worker_that_fails_to_configure_is_named(tmp_path: Path, model: str,
                                                   reason: str) -> None:
    proc = _run(["mesh2", "--set", f"robot2.model={model}", "--startup-timeout", "120",
                 "--log-dir", str(tmp_path)])
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        stop_all([proc], timeout=20)
    assert proc.returncode == 1, out
    assert "configure of /robot2/worker failed" in out, out
    assert str(tmp_path / "robot2.log") in out
    assert f"cannot load model '{model}'" in out and reason in out  # from the log's tail
    assert "Traceback" not in out
    assert "/robot1/worker failed" not in out  # robot1 has the shipped model
    assert "image_player" not in out  # nothing was started after the failure
    _assert_all_gone(_child_pids(out))


class _Lines:
    """The fleet's stdout, read on a thread; waits for a line matching a pattern (bounded)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines = proc, []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = re.search(pattern, self.text(), re.M)
                left = deadline - time.monotonic()
                if found or left <= 0 or self.proc.poll() is not None:
                    return found or re.search(pattern, self.text(), re.M)
                self._changed.wait(min(left, 0.5))


@pytest.mark.ros
@pytest.mark.slow
def test_a_killed_robot_leaves_the_fleet_running_and_comes_back_with_respawn(
        tmp_path: Path) -> None:
    """kill -9 of robot3 in a running mesh3 with --respawn 1: the fleet logs the departure,
    restarts robot3 and brings it to active, and the new robot3 runs offloaded tasks again; a
    second kill finds the one restart used, so robot3 stays gone while robot1 and robot2 keep
    classifying. The summary lists both departures; the exit code says the fleet ran degraded.
    robot1 is 50x slower (padding with sleep, no CPU) and runs every frame to the last exit
    (its frames carry T_e = 1), so it always has later tasks to offload to both helpers: with
    the checkpoint's thresholds most frames exit at task 1, which stayed at the source before
    first-task offloading, and a proof run failed when the restarted robot3 got no task."""
    from fleet_harness import Driver

    images = image_folder(tmp_path / "images")
    log_dir = tmp_path / "logs"
    proc = _run(["mesh3", "--rate", "20", "--dataset", f"folder:{images}", "--respawn", "1",
                 "--set", "robot1.compute_slowdown=50",
                 "--set", "robot1.exit_thresholds=[1.0,1.0,1.0]",
                 "--set", "*.stats_period=0.5",
                 "--startup-timeout", "150", "--log-dir", str(log_dir)])
    out = _Lines(proc)
    driver = Driver()
    driver.listen("robot1")

    def tasks_run(robot: str, since: float = 0.0) -> int:
        st = driver.stats.get(robot)
        if st is None or st.header.stamp.sec + st.header.stamp.nanosec * 1e-9 < since:
            return 0
        return int(st.tasks_run)

    def fail(what: str) -> str:
        return f"{what}\n{out.text()}{_logs(log_dir)}"

    try:
        assert out.wait_for(r"running until Ctrl-C", 240), fail("the fleet did not start")
        pid = int(out.wait_for(r"started /robot3/worker \(worker, pid (\d+)\)", 1).group(1))
        assert driver.spin_until(lambda: tasks_run("robot3") > 0, 120), \
            fail("robot3 never ran an offloaded task")

        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        assert out.wait_for(r"/robot3/worker left at [\d.]+ s \(exit code -9\)", 30), \
            fail("the departure was not logged")
        back = out.wait_for(r"/robot3/worker is back \(active\) at [\d.]+ s, pid (\d+) "
                            r"\(restart 1/1\)", 200)
        assert back, fail("robot3 did not come back")
        assert proc.poll() is None, fail("the fleet ended")
        # the new robot3 (stats stamped after the kill) is active and runs tasks again
        assert driver.spin_until(lambda: tasks_run("robot3", since=killed_at) > 0, 120), \
            fail("the restarted robot3 ran no task")
        assert driver.stats["robot3"].lifecycle_state == "active"

        new_pid = int(back.group(1))
        assert new_pid != pid
        os.kill(new_pid, signal.SIGKILL)
        assert out.wait_for(r"/robot3/worker stays gone: not restarted \(all 1 restarts "
                            r"used\)", 30), fail("the second departure was not logged")
        # the fleet goes on without robot3: more frames are classified and robot2 runs tasks
        results, robot2_runs = len(driver.results["robot1"]), tasks_run("robot2")
        assert driver.spin_until(lambda: len(driver.results["robot1"]) >= results + 5
                                 and tasks_run("robot2") > robot2_runs, 90), \
            fail("the fleet stopped classifying without robot3")
        assert proc.poll() is None, fail("the fleet ended")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        out.wait_for(r"exit code \d+$", 10)
    finally:
        driver.close()
        stop_all([proc], timeout=20)
    text = out.text()
    assert proc.returncode == fleet.EXIT_DEGRADED == 3, fail("wrong exit code")
    assert re.search(r"^  robots that left   /robot3/worker at [\d.]+ s \(exit code -9\), "
                     r"back at [\d.]+ s \(restart 1\); /robot3/worker at [\d.]+ s \(exit code "
                     r"-9\), not restarted \(all 1 restarts used\)$", text, re.M), fail("")
    assert "SUMMARY mesh3: 3 workers reported" in text
    assert "ran to the end without robots that left: /robot3/worker" in text
    assert _summary_number(text, "classified") > 0
    log = (log_dir / "robot3.log").read_text()
    assert log.count("$ ") == 2 and "--- [fleet] restart 1" in log  # one log, both runs
    _assert_all_gone(_child_pids(text))


@pytest.mark.ros
@pytest.mark.slow
def test_a_fleet_split_over_two_processes_with_only_works_as_one(tmp_path: Path) -> None:
    """Two `mdi-exit fleet mesh3 --only ...` processes on one domain, as on two computers:
    robot1 (the source, 50x slower, every frame run to the last exit, so it has tasks to
    offload) in one, robot2 and robot3 in the other. robot1 offloads
    across to the other process's robots, and each summary covers its own robots only."""
    from fleet_harness import Driver

    images = image_folder(tmp_path / "images")
    common = ["--set", "*.stats_period=0.5", "--startup-timeout", "150"]
    a = _run(["mesh3", "--only", "robot1", "--rate", "20", "--dataset", f"folder:{images}",
              "--set", "robot1.compute_slowdown=50", "--set",
              "robot1.exit_thresholds=[1.0,1.0,1.0]", "--log-dir", str(tmp_path / "a"),
              *common])
    b = _run(["mesh3", "--only", "robot3,robot2", "--log-dir", str(tmp_path / "b"), *common])
    out_a, out_b = _Lines(a), _Lines(b)
    driver = Driver()

    def tasks_run(robot: str) -> int:
        st = driver.stats.get(robot)
        return int(st.tasks_run) if st is not None else 0

    def fail(what: str) -> str:
        return (f"{what}\n--- A\n{out_a.text()}\n--- B\n{out_b.text()}"
                + _logs(tmp_path / "a") + _logs(tmp_path / "b"))

    try:
        for out in (out_a, out_b):
            assert out.wait_for(r"running until Ctrl-C", 240), fail("a fleet did not start")
        assert "this process runs only robot1" in out_a.text()
        assert "started /robot2/worker" not in out_a.text()
        assert "started /robot1/" not in out_b.text()  # neither robot1 nor its player
        assert driver.spin_until(lambda: tasks_run("robot2") > 0 and tasks_run("robot3") > 0,
                                 120), fail("robot1 did not offload to the other process")
        for proc in (a, b):
            proc.send_signal(signal.SIGINT)
        for proc in (a, b):
            proc.wait(timeout=90)
        out_a.wait_for(r"exit code \d+$", 10)
        out_b.wait_for(r"exit code \d+$", 10)
    finally:
        driver.close()
        stop_all([a, b], timeout=20)
    assert a.returncode == 0 and b.returncode == 0, fail("exit codes")
    text_a, text_b = out_a.text(), out_b.text()
    assert "SUMMARY mesh3: 1 workers reported, sources robot1" in text_a
    assert "  robots here        robot1 (only these; robot2, robot3 run elsewhere)" in text_a
    assert re.search(r"offloads\s+.*robot1->robot2: [1-9]", text_a), text_a
    assert _summary_number(text_a, "classified") > 0
    assert "SUMMARY mesh3: 2 workers reported, sources -" in text_b
    assert "  robots here        robot2, robot3 (only these; robot1 run elsewhere)" in text_b
    assert re.search(r"tasks run\s+robot2: [1-9]\d* \(\d+%\), robot3: [1-9]", text_b), text_b
    _assert_all_gone(_child_pids(text_a) + _child_pids(text_b))


@pytest.mark.ros
@pytest.mark.slow
def test_a_restart_that_fails_leaves_the_robot_gone_and_the_fleet_running(
        tmp_path: Path) -> None:
    """robot2's model file disappears after start-up, so its restart cannot configure: the
    fleet says why, gives up after its one restart, runs on with robot1 and ends with 3."""
    import shutil

    from fleet_harness import Driver

    from mdi_exit_ros.model.checkpoint import shipped_path

    model = tmp_path / "robot2_model.safetensors"
    shutil.copy(shipped_path("fmnist_cnn_ee"), model)
    log_dir = tmp_path / "logs"
    proc = _run(["mesh2", "--no-player", "--respawn", "1", "--set", f"robot2.model={model}",
                 "--set", "*.stats_period=0.5", "--startup-timeout", "120",
                 "--log-dir", str(log_dir)])
    out = _Lines(proc)
    driver = Driver()

    def fail(what: str) -> str:
        return f"{what}\n{out.text()}{_logs(log_dir)}"

    try:
        assert out.wait_for(r"running until Ctrl-C", 240), fail("the fleet did not start")
        pid = int(out.wait_for(r"started /robot2/worker \(worker, pid (\d+)\)", 1).group(1))
        model.unlink()
        os.kill(pid, signal.SIGKILL)
        assert out.wait_for(r"restart 1/1 of /robot2/worker failed: configure of "
                            r"/robot2/worker failed \(the node refused it\)", 150), fail("")
        assert out.wait_for(r"/robot2/worker stays gone: restart 1/1 failed", 60), fail("")
        assert proc.poll() is None, fail("the fleet ended")
        # robot1 runs on: its stats keep coming, stamped after robot2 gave up
        gave_up = time.time()
        assert driver.spin_until(lambda: "robot1" in driver.stats and (
            driver.stats["robot1"].header.stamp.sec > gave_up), 30), fail("robot1 is silent")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        out.wait_for(r"exit code \d+$", 10)
    finally:
        driver.close()
        stop_all([proc], timeout=20)
    text = out.text()
    assert proc.returncode == fleet.EXIT_DEGRADED, fail("wrong exit code")
    assert re.search(r"^  robots that left   /robot2/worker at [\d.]+ s \(exit code -9\), "
                     r"restart 1/1 failed$", text, re.M), text
    assert f"cannot load model '{model}'" in (log_dir / "robot2.log").read_text()
    _assert_all_gone(_child_pids(text))


def test_the_exit_watchdog_ends_a_hung_exit_with_the_stacks() -> None:
    """A process that does not exit within the watchdog's time is ended with 1, and every
    thread's stack is on its stderr (where a node's or the fleet's log gets it)."""
    code = ("from mdi_exit_ros import exit_watchdog; import time; exit_watchdog.arm(0.5); "
            "time.sleep(60)")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=50)
    assert proc.returncode == 1 and time.monotonic() - started < 50
    err = proc.stderr.decode(errors="replace")
    assert "Timeout (0:00:00.500000)!" in err and "most recent call first" in err, err
    quick = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "pass")],
                           capture_output=True, timeout=50)
    assert quick.returncode == 0 and not quick.stderr  # a prompt exit is not touched
