"""Start an MDI-Exit fleet from a topology YAML: one lifecycle worker per robot.

    ros2 launch mdi_exit_ros topology.launch.py topology:=mesh3
    ros2 launch mdi_exit_ros topology.launch.py topology:=/path/to/fleet.yaml model:=my_model
    ros2 launch mdi_exit_ros topology.launch.py use_camera:=true image_topic:=/camera/image_raw
    ros2 launch mdi_exit_ros topology.launch.py topology:=mesh5 robots:=robot1,robot2
    ros2 launch mdi_exit_ros topology.launch.py fleet:=/site_a   # a second fleet, same domain

`robots` (comma-separated, empty = all) starts only those robots of the topology, for a fleet
spread over several computers; robot.launch.py is the one-robot form of it.

Each robot gets the node <fleet>/<robot>/worker (fleet:=, default /; executable `source`
for the topology's sources, `worker` otherwise) with parameters [params_file, model, the
topology's per-worker values].
Every node is configured as soon as it is up and activated when it reaches `inactive`; an
image player starts in each source's namespace once that source is active (unless
use_camera:=true, which remaps the sources' `image` to image_topic instead).

The topology is read at launch time (OpaqueFunction) with the same code as `mdi-exit fleet`
(mdi_exit_ros.tools.fleet_spec), so both start identical nodes.
"""

# ruff: noqa: I001  (`launch` is the ROS 2 package, not this repo's launch/ folder)
from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from mdi_exit_ros.tools import fleet_spec
from mdi_exit_ros.topology import load_topology, resolve_topology

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _flag(context: LaunchContext, name: str, default: bool) -> bool:
    """A boolean launch argument; '' means the default."""
    text = LaunchConfiguration(name).perform(context).strip().lower()
    if not text:
        return default
    if text not in TRUE + FALSE:
        raise RuntimeError(f"launch argument {name}:={text} is not a boolean (true/false)")
    return text in TRUE


def _configure_then_activate(node: LifecycleNode, full_name: str) -> list:
    """configure now; activate once configure has brought the node to inactive."""
    return [
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
            entities=[
                LogInfo(msg=f"{full_name} configured, activating"),
                EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=Transition.TRANSITION_ACTIVATE)),
            ])),
        node,
        EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                    transition_id=Transition.TRANSITION_CONFIGURE)),
    ]


def _start_once_active(source: LifecycleNode, player: Node) -> RegisterEventHandler:
    """Start `player` the first time `source` becomes active (not again on re-activation)."""
    started = []

    def start(_context: LaunchContext) -> list:
        if started:
            return []
        started.append(True)
        return [player]

    return RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=source, start_state="activating", goal_state="active",
        entities=[OpaqueFunction(function=start)]))


def _launch_fleet(context: LaunchContext) -> list:
    """Read the topology and describe its nodes (runs when the launch is executed)."""
    topology = load_topology(resolve_topology(LaunchConfiguration("topology").perform(context)))
    robots = fleet_spec.select_robots(topology, LaunchConfiguration("robots").perform(context))
    fleet = LaunchConfiguration("fleet").perform(context).strip()
    model = LaunchConfiguration("model").perform(context).strip() or None
    params_file = LaunchConfiguration("params_file").perform(context).strip()
    use_camera = _flag(context, "use_camera", False)
    use_player = _flag(context, "use_player", not use_camera)
    image_topic = LaunchConfiguration("image_topic").perform(context).strip()
    dataset = LaunchConfiguration("dataset").perform(context).strip() or None
    rate_text = LaunchConfiguration("rate").perform(context).strip()
    try:
        rate = float(rate_text) if rate_text else None
    except ValueError:
        raise RuntimeError(f"launch argument rate:={rate_text} is not a number") from None
    if use_camera and not image_topic:
        raise RuntimeError("use_camera:=true needs image_topic:=<camera image topic>")

    actions: list = [LogInfo(msg=f"MDI-Exit topology {topology.name}: workers "
                                 f"{', '.join(topology.workers)}, sources "
                                 f"{', '.join(topology.sources)}; started here: "
                                 f"{', '.join(robots)}")]
    base: list = []
    if params_file:
        if os.path.isfile(params_file):
            base.append(params_file)
        else:
            actions.append(LogInfo(msg=f"params_file {params_file} not found: workers start "
                                       "with their built-in defaults"))
    workers = fleet_spec.worker_specs(topology, model,
                                      camera_topic=image_topic if use_camera else None,
                                      robots=robots, fleet=fleet)
    players = {p.robot: p for p in fleet_spec.player_specs(topology, dataset, rate, robots,
                                                           fleet)}
    for spec in workers:
        node = LifecycleNode(
            package=fleet_spec.PACKAGE, executable=spec.executable, name=spec.name,
            namespace=spec.namespace, parameters=[*base, fleet_spec.launch_parameters(spec)],
            remappings=list(spec.remappings), output="screen")
        actions += _configure_then_activate(node, spec.full_name)
        if use_player and not use_camera and spec.robot in players:
            p = players[spec.robot]
            player = Node(package=fleet_spec.PACKAGE, executable=p.executable, name=p.name,
                          namespace=p.namespace, parameters=[fleet_spec.launch_parameters(p)],
                          output="screen")
            actions.append(_start_once_active(node, player))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument(
            "topology", default_value="mesh3",
            description="Shipped topology (local, mesh2, mesh3, circular3, mesh5, chain5) or a "
                        "YAML path"),
        DeclareLaunchArgument(
            "fleet", default_value="/",
            description="Fleet namespace: robots run in <fleet>/<robot> and report on "
                        "<fleet>/mdi/*, so fleets under different namespaces share a ROS "
                        "domain"),
        DeclareLaunchArgument(
            "robots", default_value="",
            description="Comma-separated robots of the topology to start on this machine "
                        "(e.g. robot1,robot2); empty = all"),
        DeclareLaunchArgument(
            "model", default_value="",
            description="Model of every worker (shipped name or checkpoint); empty = "
                        "params_file's"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution(
                [FindPackageShare(fleet_spec.PACKAGE), "config", "params.yaml"]),
            description="Worker parameters YAML"),
        DeclareLaunchArgument(
            "use_camera", default_value="false",
            description="true: the sources read image_topic instead of an image player"),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="Camera image topic of the sources when use_camera:=true"),
        DeclareLaunchArgument(
            "use_player", default_value="",
            description="Start an image player per source (default: true unless use_camera)"),
        DeclareLaunchArgument(
            "dataset", default_value="",
            description="Image player dataset (fashion-mnist, cifar10, folder:<path>, "
                        "video:<path>); empty = the topology's"),
        DeclareLaunchArgument(
            "rate", default_value="",
            description="Image player frames per second; empty = the topology's"),
        OpaqueFunction(function=_launch_fleet),
    ])
