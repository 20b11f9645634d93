"""ROS 2 nodes: thin adapters between topics/parameters/lifecycle and core/model."""
