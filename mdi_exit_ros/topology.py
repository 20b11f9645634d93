"""Fleet topologies from YAML: which robots, who neighbours whom, who is a source.

One reader for both ways of starting a fleet, so they cannot disagree: the launch files
(`ros2 launch mdi_exit_ros mesh5.launch.py`) and `mdi-exit fleet <topology.yaml>` both turn a
topology into the same nodes with the same parameters. Pure Python + PyYAML (no rclpy), so a
launch file can import it in any ROS 2 install.

Format (see config/topologies/*.yaml)::

    name: mesh3
    description: 3-Node-Mesh, every worker a one-hop neighbour of every other
    workers: [robot1, robot2, robot3]
    sources: [robot1]              # workers that own data (a camera or the image player)
    links: full                    # 'full', 'ring' (directed: each sends to the next),
                                   # or a list of [a, b] pairs (undirected)
    arcs: [[robot1, robot2]]       # optional directed links (a offloads to b only)
    parameters:                    # per-worker parameter overrides (optional)
      robot2: {compute_slowdown: 2.0}
    player:                        # image player per source (optional)
      dataset: fashion-mnist
      rate: 20.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mdi_exit_ros.core.names import MAX_WORKER_ID_LENGTH, is_worker_id
from mdi_exit_ros.params import NO_NEIGHBOR

SHIPPED = ("local", "mesh2", "mesh3", "circular3", "mesh5", "chain5")


class TopologyError(ValueError):
    """A topology file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Topology:
    """A validated fleet description."""

    name: str
    workers: tuple[str, ...]
    sources: tuple[str, ...]
    adjacency: Mapping[str, tuple[str, ...]]
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    player: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def neighbors(self, worker: str) -> list[str]:
        """Workers `worker` may offload to (one hop), in the order the workers are listed."""
        if worker not in self.workers:
            raise TopologyError(f"{worker!r} is not a worker of topology {self.name!r}")
        return list(self.adjacency[worker])

    def is_source(self, worker: str) -> bool:
        return worker in self.sources

    def node_parameters(self, worker: str) -> dict[str, Any]:
        """ROS parameters for `worker`: its allowed neighbours plus the topology's overrides."""
        params: dict[str, Any] = {"neighbors": self.neighbors(worker) or [NO_NEIGHBOR]}
        params.update(self.parameters.get(worker, {}))
        return params


def _fail(path: str, problem: str) -> TopologyError:
    return TopologyError(f"{path}: {problem}")


def _pairs(value: Any, key: str, workers: tuple[str, ...], path: str) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise _fail(path, f"{key} must be a list of [a, b] pairs")
    pairs = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _fail(path, f"{key} entry {pair!r} is not a pair [a, b]")
        a, b = pair
        for end in (a, b):
            if end not in workers:
                raise _fail(path, f"{key} entry {pair!r} names {end!r}, which is not a worker")
        if a == b:
            raise _fail(path, f"{key} entry {pair!r} connects a worker to itself")
        pairs.append((a, b))
    return pairs


def _adjacency(data: dict, workers: tuple[str, ...], path: str) -> dict[str, tuple[str, ...]]:
    """Directed one-hop adjacency from `links` (full, ring or undirected pairs) and `arcs`."""
    links = data.get("links", "full" if "arcs" not in data else [])
    arcs: set[tuple[str, str]] = set()
    if links == "full":
        arcs |= {(a, b) for a in workers for b in workers if a != b}
    elif links == "ring":
        n = len(workers)
        arcs |= {(workers[i], workers[(i + 1) % n]) for i in range(n) if n > 1}
    else:
        for a, b in _pairs(links, "links", workers, path):
            arcs |= {(a, b), (b, a)}
    arcs |= set(_pairs(data.get("arcs", []), "arcs", workers, path))
    return {w: tuple(m for m in workers if (w, m) in arcs) for w in workers}


def parse_topology(data: Any, path: str = "<topology>") -> Topology:
    """Validate a topology mapping (as loaded from YAML)."""
    if not isinstance(data, dict):
        raise _fail(path, "expected a mapping at the top level")
    unknown = set(data) - {"name", "description", "workers", "sources", "links", "arcs",
                           "parameters", "player"}
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}")
    workers = data.get("workers")
    if not isinstance(workers, list) or not workers:
        raise _fail(path, "workers must be a non-empty list of worker ids")
    for w in workers:
        if not is_worker_id(w):
            raise _fail(path, f"worker id {w!r} is not a valid ROS name (a letter, then "
                        f"letters, digits or _; at most {MAX_WORKER_ID_LENGTH})")
    if len(set(workers)) != len(workers):
        raise _fail(path, "worker ids must be unique")
    workers_t = tuple(workers)
    sources = data.get("sources", [workers[0]])
    if not isinstance(sources, list) or not sources:
        raise _fail(path, "sources must be a non-empty list of workers")
    for s in sources:
        if s not in workers_t:
            raise _fail(path, f"source {s!r} is not a worker")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _fail(path, "parameters must map worker ids to parameter mappings")
    for w, p in parameters.items():
        if w not in workers_t:
            raise _fail(path, f"parameters given for {w!r}, which is not a worker")
        if not isinstance(p, dict):
            raise _fail(path, f"parameters of {w!r} must be a mapping")
    player = data.get("player") or {}
    if not isinstance(player, dict):
        raise _fail(path, "player must be a mapping of image_player parameters")
    return Topology(
        name=str(data.get("name") or Path(path).stem),
        workers=workers_t,
        sources=tuple(sources),
        adjacency=_adjacency(data, workers_t, path),
        parameters={w: dict(p) for w, p in parameters.items()},
        player=dict(player),
        description=str(data.get("description", "")),
    )


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read topology file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(str(path), f"not valid YAML ({exc})") from exc
    return parse_topology(data, str(path))


def config_dir() -> Path:
    """The package's config/ folder: the install share dir, or the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("mdi_exit_ros")) / "config"
    except (ImportError, LookupError, OSError):
        return Path(__file__).resolve().parent.parent / "config"


def resolve_topology(name_or_path: str) -> Path:
    """A shipped topology name (e.g. 'mesh5') or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    shipped = config_dir() / "topologies" / f"{name_or_path}.yaml"
    if not shipped.exists():
        raise TopologyError(
            f"no topology {name_or_path!r}: give a YAML path or one of {', '.join(SHIPPED)}")
    return shipped
