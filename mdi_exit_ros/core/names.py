"""Worker ids: the one rule for names that become topic names (topologies, the wire).

A worker id is a ROS namespace token and part of every per-peer topic (`/<id>/tasks`,
`/<id>/task_acks`, `/<id>/exits`), so a name that arrives in a message is checked against this
rule before any topic is built from it: rclpy raises on an invalid topic name.
"""

from __future__ import annotations

import re

MAX_WORKER_ID_LENGTH = 64
WORKER_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def is_worker_id(name: object) -> bool:
    """True for a letter followed by letters, digits or '_', at most 64 characters."""
    return (isinstance(name, str) and len(name) <= MAX_WORKER_ID_LENGTH
            and WORKER_ID.fullmatch(name) is not None)
