"""MDI-Exit on ROS 2: early-exit meets model-distributed inference at edge networks."""

__version__ = "0.1.0"
