"""Start the chain5 fleet (config/topologies/chain5.yaml).

Same arguments as topology.launch.py:

    ros2 launch mdi_exit_ros chain5.launch.py
    ros2 launch mdi_exit_ros chain5.launch.py model:=fmnist_cnn_ee rate:=30.0
"""

# ruff: noqa: I001  (`launch` is the ROS 2 package, not this repo's launch/ folder)
from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

TOPOLOGY = "chain5"


def generate_launch_description() -> LaunchDescription:
    generic = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topology.launch.py")
    return LaunchDescription([
        # declared first, so `--show-args` shows this file's topology, not the generic default
        DeclareLaunchArgument("topology", default_value=TOPOLOGY,
                              description="Fixed by this file; topology.launch.py takes any"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(generic),
                                 launch_arguments={"topology": TOPOLOGY}.items()),
    ])
