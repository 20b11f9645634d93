"""Start one robot of a topology on this machine: for a fleet spread over several computers.

    ros2 launch mdi_exit_ros robot.launch.py topology:=mesh5 robot:=robot3
    ros2 launch mdi_exit_ros robot.launch.py topology:=mesh5 robot:=robot1 \\
        use_camera:=true image_topic:=/camera/image_raw

The robot's worker (or, for a source, its source node and its image player or camera remap)
is brought to active exactly as topology.launch.py does for a whole fleet: this file only
includes it with robots:=<robot>. Every other argument of topology.launch.py applies (model,
params_file, use_camera, image_topic, use_player, dataset, rate). Every computer must use the
same ROS_DOMAIN_ID and the same topology; see docs/USAGE.md, "A fleet on several computers".
"""

# ruff: noqa: I001  (`launch` is the ROS 2 package, not this repo's launch/ folder)
from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def _check_one_robot(context: LaunchContext) -> list:
    """Refuse robot:= naming none or several robots (the topology checks that it is one of
    its robots) before the include below starts anything."""
    robot = LaunchConfiguration("robot").perform(context).strip()
    if not robot or "," in robot:
        raise RuntimeError(f"robot:={robot!r} must name exactly one robot of the topology; "
                           "for several use topology.launch.py robots:=robot1,robot2")
    return []


def generate_launch_description() -> LaunchDescription:
    generic = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topology.launch.py")
    return LaunchDescription([
        DeclareLaunchArgument(
            "robot", description="The one robot of the topology to start here (e.g. robot3)"),
        OpaqueFunction(function=_check_one_robot),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(generic),
                                 launch_arguments={"robots": LaunchConfiguration("robot")}.items()),
    ])
