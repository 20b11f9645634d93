"""Topic names of a fleet: the one home for them (nodes, tools, launch files, tests).

A fleet lives under a namespace (`fleet`, default `/`): robot `r` runs in `<fleet>/<r>`,
where its own inbound topics are relative names (`tasks`, `task_acks`, `exits`, and a
source's `image`, `image_label`, `classification`), so `-r tasks:=...` remaps them as any
ROS topic. A peer reaches `r` on `<fleet>/<r>/tasks`, and the fleet's reports go to
`<fleet>/mdi/neighbor_state` and `<fleet>/mdi/worker_stats`. Two fleets under different
namespaces share a ROS domain without seeing each other's robots, tasks or reports; the
default `/` keeps the names `/robot1/tasks`, `/mdi/neighbor_state`.

Pure Python (no rclpy): launch files and `mdi-exit fleet` import it in any ROS 2 install.
"""

from __future__ import annotations

from mdi_exit_ros.core.names import is_worker_id

DEFAULT_FLEET = "/"
# A worker's own inbound topics, relative to its namespace <fleet>/<worker id>.
TASKS, ACKS, EXITS = "tasks", "task_acks", "exits"
# A source's camera side, relative to its namespace.
IMAGE, IMAGE_LABEL, CLASSIFICATION = "image", "image_label", "classification"
# The fleet's shared topics, relative to the fleet namespace.
STATE, STATS = "mdi/neighbor_state", "mdi/worker_stats"
NODE_NAME = "worker"  # every robot's worker (or source) node: <fleet>/<robot>/worker


def fleet_namespace(fleet: str) -> str:
    """`fleet` as an absolute namespace ('' and '/' are the root; 'a' is '/a'); ValueError
    unless each of its parts is a name token (a letter, then letters, digits or _)."""
    parts = [p for p in str(fleet).strip().split("/") if p]
    bad = [p for p in parts if not is_worker_id(p)]
    if bad or "//" in str(fleet).strip().strip("/"):
        raise ValueError(f"fleet {fleet!r} is not a namespace like /, /fleet_a or "
                         f"/site/fleet_a (parts: a letter, then letters, digits or _)")
    return "/" + "/".join(parts)


def _join(namespace: str, name: str) -> str:
    return namespace.rstrip("/") + "/" + name


def robot_namespace(fleet: str, robot: str) -> str:
    """The namespace robot `robot` runs in: `<fleet>/<robot>`."""
    return _join(fleet_namespace(fleet), robot)


def peer_topic(worker: str, kind: str, fleet: str = DEFAULT_FLEET) -> str:
    """`<fleet>/<worker>/<kind>`: where `worker` receives tasks, acks or exits."""
    return _join(robot_namespace(fleet, worker), kind)


def state_topic(fleet: str = DEFAULT_FLEET) -> str:
    """The fleet's NeighborState topic (Alg. 2's view of the neighbours)."""
    return _join(fleet_namespace(fleet), STATE)


def stats_topic(fleet: str = DEFAULT_FLEET) -> str:
    """The fleet's WorkerStats topic (monitor, summaries, tests)."""
    return _join(fleet_namespace(fleet), STATS)


def split_namespace(namespace: str) -> tuple[str, str]:
    """(fleet namespace, worker id) of a node's namespace: `/a/robot1` -> ('/a', 'robot1');
    the root namespace gives ('/', '')."""
    parts = [p for p in namespace.split("/") if p]
    if not parts:
        return DEFAULT_FLEET, ""
    return "/" + "/".join(parts[:-1]), parts[-1]
