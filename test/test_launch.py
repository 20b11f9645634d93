"""The launch files: checked statically always, loaded and run when launch_ros is importable.

`launch` / `launch_ros` come with a ROS 2 install (not with the pip wheels), so the tests
that need them skip without; the static checks (ast) run everywhere.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mdi_exit_ros.tools import fleet_spec
from mdi_exit_ros.tools.procs import spawn_module, stop_all
from mdi_exit_ros.topology import SHIPPED, load_topology, resolve_topology

REPO = Path(__file__).resolve().parent.parent
LAUNCH_DIR = REPO / "launch"
GENERIC = LAUNCH_DIR / "topology.launch.py"
PER_TOPOLOGY = {name: LAUNCH_DIR / f"{name}.launch.py" for name in SHIPPED}
ROBOT = LAUNCH_DIR / "robot.launch.py"
ARGUMENTS = {"topology", "fleet", "robots", "model", "params_file", "use_camera",
             "image_topic", "use_player", "dataset", "rate"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _kw(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


# --------------------------------------------------------------------------------------------
# Static checks (always)


def test_every_launch_file_defines_generate_launch_description() -> None:
    files = sorted(LAUNCH_DIR.glob("*.launch.py"))
    assert {f.name for f in files} == {"topology.launch.py", "robot.launch.py",
                                       *(f"{n}.launch.py" for n in SHIPPED)}
    for f in files:
        funcs = [n.name for n in _tree(f).body if isinstance(n, ast.FunctionDef)]
        assert "generate_launch_description" in funcs, f


def test_generic_launch_declares_its_arguments_with_defaults() -> None:
    declared = {}
    for call in _calls(_tree(GENERIC)):
        if _name(call) == "DeclareLaunchArgument":
            default = _kw(call, "default_value")
            declared[call.args[0].value] = default
    assert set(declared) == ARGUMENTS
    assert declared["topology"].value == "mesh3"
    assert declared["robots"].value == ""  # every robot of the topology
    assert declared["fleet"].value == "/"  # robots in /<robot>, reports on /mdi/*
    assert declared["use_camera"].value == "false"
    assert declared["image_topic"].value == "/camera/image_raw"
    # params_file defaults to share/mdi_exit_ros/config/params.yaml
    src = ast.unparse(declared["params_file"])
    assert "FindPackageShare" in src and "'config'" in src and "'params.yaml'" in src


def test_generic_launch_brings_lifecycle_nodes_up_through_events() -> None:
    calls = _calls(_tree(GENERIC))
    names = [_name(c) for c in calls]
    for needed in ("OpaqueFunction", "LifecycleNode", "EmitEvent", "ChangeState",
                   "OnStateTransition", "RegisterEventHandler", "matches_action",
                   "worker_specs", "player_specs", "load_topology", "resolve_topology"):
        assert needed in names, needed
    src = GENERIC.read_text()
    assert "Transition.TRANSITION_CONFIGURE" in src and "Transition.TRANSITION_ACTIVATE" in src
    node = next(c for c in calls if _name(c) == "LifecycleNode")
    assert ast.unparse(_kw(node, "executable")) == "spec.executable"
    assert ast.unparse(_kw(node, "namespace")) == "spec.namespace"
    assert ast.unparse(_kw(node, "name")) == "spec.name"
    assert ast.unparse(_kw(node, "package")) == "fleet_spec.PACKAGE"
    # activation is keyed to the end of configure, not to any arrival at inactive
    handler = next(c for c in calls if _name(c) == "OnStateTransition"
                   and ast.unparse(_kw(c, "goal_state")) == "'inactive'")
    assert ast.unparse(_kw(handler, "start_state")) == "'configuring'"


@pytest.mark.parametrize("name", SHIPPED)
def test_per_topology_launch_includes_the_generic_one(name: str) -> None:
    tree = _tree(PER_TOPOLOGY[name])
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert consts["TOPOLOGY"] == name
    assert resolve_topology(name).is_file()
    names = [_name(c) for c in _calls(tree)]
    assert "IncludeLaunchDescription" in names
    assert "'topology.launch.py'" in ast.unparse(tree)
    # `--show-args` shows the first declaration of a name: this file's topology comes first
    assert names.index("DeclareLaunchArgument") < names.index("IncludeLaunchDescription")
    declare = next(c for c in _calls(tree) if _name(c) == "DeclareLaunchArgument")
    assert ast.unparse(declare.args[0]) == "'topology'"
    assert ast.unparse(_kw(declare, "default_value")) == "TOPOLOGY"


def test_robot_launch_includes_the_generic_one_for_one_robot() -> None:
    """robot.launch.py adds no node of its own: it passes robot:= as robots:= to
    topology.launch.py (one home for how a robot is started)."""
    tree = _tree(ROBOT)
    calls = _calls(tree)
    names = [_name(c) for c in calls]
    assert "IncludeLaunchDescription" in names and "'topology.launch.py'" in ast.unparse(tree)
    assert "LifecycleNode" not in names and "Node" not in names
    include = next(c for c in calls if _name(c) == "IncludeLaunchDescription")
    assert "'robots': LaunchConfiguration('robot')" in ast.unparse(include)
    declared = {c.args[0].value: _kw(c, "default_value") for c in calls
                if _name(c) == "DeclareLaunchArgument"}
    assert declared == {"robot": None}  # required: no default robot


def test_executables_are_the_ones_cmake_installs() -> None:
    cmake = (REPO / "CMakeLists.txt").read_text()
    installed = dict(re.findall(r'"(\w+)=(mdi_exit_ros[\w.]+)"', cmake))
    for exe, module in fleet_spec.MODULES.items():
        assert installed.get(exe) == module, exe
    topo = load_topology(resolve_topology("mesh3"))
    exes = [s.executable for s in fleet_spec.worker_specs(topo)]
    assert exes == ["source", "worker", "worker"]
    assert [p.executable for p in fleet_spec.player_specs(topo)] == ["image_player"]


def test_installed_launch_files_are_the_source_trees() -> None:
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("mdi_exit_ros")) / "launch"
    for f in LAUNCH_DIR.glob("*.launch.py"):
        installed = share / f.name
        assert installed.is_file(), f"{installed} missing: reinstall the package"
        assert installed.read_text() == f.read_text(), f"{installed} is stale: reinstall"


# --------------------------------------------------------------------------------------------
# With launch_ros


def _need_launch() -> None:
    pytest.importorskip("launch", reason="launch is not installed (it comes with ROS 2, "
                                         "not with the pip wheels)")
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (it comes with "
                                             "ROS 2, not with the pip wheels)")


def _load(path: Path):
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    return get_launch_description_from_python_launch_file(str(path))


@pytest.mark.parametrize("path", [GENERIC, ROBOT, *PER_TOPOLOGY.values()],
                         ids=lambda p: p.name)
def test_launch_description_loads(path: Path) -> None:
    _need_launch()
    from launch import LaunchDescription

    ld = _load(path)
    assert isinstance(ld, LaunchDescription)
    names = {a.name for a in ld.get_launch_arguments()}
    assert ARGUMENTS <= names
    if path == ROBOT:
        assert "robot" in names


def _describe(**arguments: str) -> list:
    """The actions topology.launch.py's OpaqueFunction returns for these arguments."""
    from launch import LaunchContext  # noqa: I001 (the ROS 2 package, not ../launch)

    ld = _load(GENERIC)
    context = LaunchContext()
    for arg in ld.get_launch_arguments():
        context.launch_configurations[arg.name] = ""
    context.launch_configurations.update(arguments)
    opaque = next(e for e in ld.entities if type(e).__name__ == "OpaqueFunction")
    actions = opaque.execute(context)
    for a in actions:
        if hasattr(a, "_perform_substitutions"):
            a._perform_substitutions(context)
    return actions


@pytest.mark.parametrize("use_camera", [False, True])
def test_opaque_function_describes_one_lifecycle_node_per_worker(use_camera: bool) -> None:
    _need_launch()
    from launch.actions import RegisterEventHandler
    from launch_ros.actions import LifecycleNode

    actions = _describe(topology="circular3", model="m1", params_file="/nonexistent.yaml",
                        use_camera=str(use_camera).lower(), image_topic="/cam/raw", rate="7")
    nodes = [a for a in actions if isinstance(a, LifecycleNode)]
    assert [(n.node_executable, n.expanded_node_namespace) for n in nodes] == [
        ("source", "/robot1"), ("worker", "/robot2"), ("worker", "/robot3")]
    assert all(n.node_name.endswith("/worker") for n in nodes)
    remaps = [list(n.expanded_remapping_rules or []) for n in nodes]
    assert remaps[0] == ([("image", "/cam/raw")] if use_camera else [])
    assert remaps[1] == remaps[2] == []
    handlers = [a for a in actions if isinstance(a, RegisterEventHandler)]
    # activate-on-configured per worker, plus the player's start for the source
    assert len(handlers) == 3 + (0 if use_camera else 1)


def test_fleet_argument_puts_every_node_under_the_fleet_namespace() -> None:
    _need_launch()
    from launch_ros.actions import LifecycleNode

    actions = _describe(topology="circular3", fleet="/site_a", params_file="/nonexistent.yaml")
    nodes = [a for a in actions if isinstance(a, LifecycleNode)]
    assert [n.expanded_node_namespace for n in nodes] == [
        "/site_a/robot1", "/site_a/robot2", "/site_a/robot3"]


@pytest.mark.parametrize("robots,expected,player", [
    ("robot3", [("worker", "/robot3")], False),
    ("robot1", [("source", "/robot1")], True),
    ("robot4, robot1", [("source", "/robot1"), ("worker", "/robot4")], True),
])
def test_robots_argument_starts_only_those_robots(robots: str, expected: list,
                                                  player: bool) -> None:
    """What robot.launch.py robot:=X passes on: only X's node (and, for a source, the player
    started once it is active), with the topology's neighbours of X."""
    _need_launch()
    from launch.actions import RegisterEventHandler
    from launch_ros.actions import LifecycleNode

    actions = _describe(topology="mesh5", robots=robots, params_file="/nonexistent.yaml")
    nodes = [a for a in actions if isinstance(a, LifecycleNode)]
    assert [(n.node_executable, n.expanded_node_namespace) for n in nodes] == expected
    handlers = [a for a in actions if isinstance(a, RegisterEventHandler)]
    assert len(handlers) == len(expected) + (1 if player else 0)
    worker = fleet_spec.worker_specs(load_topology(resolve_topology("mesh5")),
                                     robots=[expected[-1][1][1:]])[0]
    assert worker.parameters["neighbors"] == [f"robot{i}" for i in range(1, 6)
                                              if f"robot{i}" != worker.robot]


def test_robots_argument_refuses_an_unknown_robot() -> None:
    _need_launch()
    with pytest.raises(ValueError, match="'robot9' is not a robot of topology 'mesh5'"):
        _describe(topology="mesh5", robots="robot9")


def test_robot_launch_refuses_several_robots() -> None:
    _need_launch()
    from launch import LaunchContext  # noqa: I001 (the ROS 2 package, not ../launch)

    ld = _load(ROBOT)
    check = next(e for e in ld.entities if type(e).__name__ == "OpaqueFunction")
    for bad in ("robot1,robot2", ""):
        context = LaunchContext()
        context.launch_configurations["robot"] = bad
        with pytest.raises(RuntimeError, match="exactly one robot"):
            check.execute(context)
    context = LaunchContext()
    context.launch_configurations["robot"] = "robot3"
    assert check.execute(context) == []


def _image_folder(root: Path) -> Path:
    """Two classes of 28x28 grey PNGs with train/test splits: frames without a dataset."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("bag", "shirt"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, size=(28, 28), dtype=np.uint8),
                                "L").save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.ros
@pytest.mark.slow
def test_mesh3_launch_runs_and_stops_cleanly(tmp_path: Path) -> None:
    """Run the installed mesh3.launch.py with the launch library: the installed `source`,
    `worker` and `image_player` executables, the shipped model, frames from a tiny folder."""
    _need_launch()
    from ament_index_python.packages import get_package_prefix, get_package_share_directory
    from fleet_harness import Driver

    prefix = Path(get_package_prefix("mdi_exit_ros"))
    for exe in ("source", "worker", "image_player"):
        assert os.access(prefix / "lib" / "mdi_exit_ros" / exe, os.X_OK), exe
    launch_file = Path(get_package_share_directory("mdi_exit_ros")) / "launch" / "mesh3.launch.py"
    images = _image_folder(tmp_path / "images")
    log_path = tmp_path / "launch.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-P", "-c", _RUNNER, str(launch_file), "rate:=10",
                             f"dataset:=folder:{images}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = Driver()
    mon = None
    try:
        driver.listen("robot1")
        # frames flow from the player through the source's model to robot1/classification
        assert driver.spin_until(lambda: len(driver.results["robot1"]) >= 3, 120), \
            log_path.read_text()
        mon = spawn_module("mdi_exit_ros.tools.monitor", ["--once", "--expect", "3", "--wait",
                                                          "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = mon.communicate(timeout=90)
        assert mon.returncode == 0, out + log_path.read_text()
        for robot in ("robot1", "robot2", "robot3"):
            assert re.search(rf"^{robot}\*?\s+active", out, re.M), out
        assert all(r.class_id >= 0 and r.worker in ("robot1", "robot2", "robot3")
                   for r in driver.results["robot1"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
        text = log_path.read_text()
        assert text.count("configured, activating") == 3, text
        assert text.count("model fmnist_cnn_ee-") == 3, text  # each real node loaded it
        assert "image_player" in text and "process has died" not in text, text
        pids = [int(p) for p in re.findall(r"process started with pid \[(\d+)\]", text)]
        assert len(pids) == 4, text  # source, two workers, the player
        assert text.count("process has finished cleanly") == 4, text
        deadline = time.monotonic() + 10.0
        while _alive(pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded poll until the orphans are reaped
        assert not _alive(pids), _alive(pids)
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)  # nothing of the launch is left
    finally:
        driver.close()
        if mon is not None:
            stop_all([mon], timeout=10)
        log.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


_RUNNER = (  # runs one launch file as `ros2 launch` would (no ros2cli here)
    "import sys, launch\n"
    "from launch.launch_description_sources import AnyLaunchDescriptionSource\n"
    "args = sys.argv[2:]\n"
    "ls = launch.LaunchService(argv=args, noninteractive=True)\n"
    "ls.include_launch_description(launch.LaunchDescription([\n"
    "    launch.actions.IncludeLaunchDescription(AnyLaunchDescriptionSource(sys.argv[1]),\n"
    "        launch_arguments=[tuple(a.split(':=', 1)) for a in args])]))\n"
    "sys.exit(ls.run())\n")


@pytest.mark.ros
@pytest.mark.slow
def test_robot_launch_runs_one_robot_per_launch(tmp_path: Path) -> None:
    """Two robots of one topology from two `robot.launch.py` runs, as on two computers: the
    source (50x slower, so it offloads) with its player in one, the helper in the other. Both
    come up active, and the helper runs the source's tasks across the launches."""
    _need_launch()
    from ament_index_python.packages import get_package_share_directory
    from fleet_harness import Driver

    launch_file = Path(get_package_share_directory("mdi_exit_ros")) / "launch" / "robot.launch.py"
    images = _image_folder(tmp_path / "images")
    topology = tmp_path / "pair.yaml"
    topology.write_text("name: pair\nworkers: [robot1, robot2]\nsources: [robot1]\n"
                        "links: full\nparameters:\n  robot1: {compute_slowdown: 50.0}\n"
                        f"player: {{dataset: 'folder:{images}', rate: 20.0}}\n")
    procs, logs = {}, {}
    for robot in ("robot1", "robot2"):
        logs[robot] = tmp_path / f"launch_{robot}.log"
        with open(logs[robot], "w") as log:
            procs[robot] = subprocess.Popen(
                [sys.executable, "-P", "-c", _RUNNER, str(launch_file),
                 f"topology:={topology}", f"robot:={robot}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = Driver()

    def text() -> str:
        return "\n".join(f"--- {r}\n{p.read_text()}" for r, p in logs.items())

    try:
        assert driver.spin_until(lambda: all(
            r in driver.stats and driver.stats[r].lifecycle_state == "active"
            for r in ("robot1", "robot2")), 180), text()
        assert driver.spin_until(lambda: driver.stats["robot2"].tasks_run > 0, 120), text()
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            assert proc.wait(timeout=60) == 0, text()
    finally:
        driver.close()
        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    one, two = logs["robot1"].read_text(), logs["robot2"].read_text()
    assert "started here: robot1" in one and "started here: robot2" in two
    # robot1's launch: its source and its player; robot2's: its worker only
    assert len(re.findall(r"process started with pid", one)) == 2, one
    assert "image_player" in one
    assert len(re.findall(r"process started with pid", two)) == 1, two
    assert "image_player" not in two
    assert "/robot1/worker configured, activating" in one
    assert "/robot2/worker configured, activating" in two
    assert one.count("configured, activating") == two.count("configured, activating") == 1


def _alive(pids: list[int]) -> list[int]:
    """The pids that still exist."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive
