"""What to start for a topology: executables, namespaces, parameters, remappings.

`ros2 launch mdi_exit_ros topology.launch.py` and `mdi-exit fleet` both turn a topology into
nodes through this module, so a fleet started either way gets the same nodes with the same
parameters. Pure Python + PyYAML (no rclpy, no launch): a launch file imports it in any
ROS 2 install, and the unit tests need no middleware.

Parameter precedence for a worker (lowest first): the params file (config/params.yaml), the
model, the topology's `node_parameters(worker)`, then command-line overrides (`--set`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mdi_exit_ros.params import WORKER_PARAMS, is_double, is_double_array
from mdi_exit_ros.topics import DEFAULT_FLEET, IMAGE, NODE_NAME, fleet_namespace, robot_namespace
from mdi_exit_ros.topology import Topology, TopologyError, config_dir

PACKAGE = "mdi_exit_ros"
PLAYER_NAME = "image_player"
# executable name (lib/mdi_exit_ros/<exe>, `ros2 run`) -> module run by it
MODULES: dict[str, str] = {
    "worker": "mdi_exit_ros.nodes.worker",
    "source": "mdi_exit_ros.nodes.source",
    "image_player": "mdi_exit_ros.nodes.image_player",
}

# Worker parameters declared as double, from the worker's own parameter table. YAML reads
# `2` as an integer; the worker accepts integers for its doubles (params.widen), but the
# image player does not (plain rclpy refuses an INTEGER override for a DOUBLE), so integral
# values given in a topology or with --set are widened to float here, and command lines
# show what the node stores.
WORKER_DOUBLES = frozenset(s.name for s in WORKER_PARAMS if is_double(s))
WORKER_DOUBLE_ARRAYS = frozenset(s.name for s in WORKER_PARAMS if is_double_array(s))
PLAYER_DOUBLES = frozenset({"rate", "wait_timeout"})
# The player in a fleet plays until stopped unless the topology says otherwise.
PLAYER_DEFAULTS: dict[str, Any] = {"loop": True}


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: the same description for a launch action and a command line."""

    robot: str
    executable: str
    name: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...] = ()
    lifecycle: bool = True
    fleet: str = DEFAULT_FLEET  # the fleet namespace; the node runs in <fleet>/<robot>

    @property
    def namespace(self) -> str:
        return robot_namespace(self.fleet, self.robot)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def module(self) -> str:
        return MODULES[self.executable]

    @property
    def label(self) -> str:
        """A short unique name for logs: robot1, robot1_player."""
        return self.robot if self.name == NODE_NAME else f"{self.robot}_{self.name}"


@dataclass
class Override:
    """`--set robot2.compute_slowdown=2.0`: one parameter of one worker (`*` = all)."""

    worker: str
    name: str
    value: Any = field(default=None)


def parse_value(text: str) -> Any:
    """A parameter value as YAML reads it (as `ros2 param set` does): 2 -> int, 2.0 -> float,
    true -> bool, [a, b] -> list, anything else a string."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_override(text: str) -> Override:
    """Parse `worker.param=value`; ValueError with the expected form otherwise."""
    target, sep, value = text.partition("=")
    worker, dot, name = target.strip().partition(".")
    if not sep or not dot or not worker or not name:
        raise ValueError(f"override {text!r} is not of the form <worker>.<parameter>=<value> "
                         "(e.g. robot2.compute_slowdown=2.0; '*' for every worker)")
    return Override(worker, name, parse_value(value))


def coerce(parameters: Mapping[str, Any], doubles: Iterable[str] = WORKER_DOUBLES,
           double_arrays: Iterable[str] = WORKER_DOUBLE_ARRAYS) -> dict[str, Any]:
    """Widen integral values of double (array) parameters to float; keep everything else."""
    doubles, double_arrays = frozenset(doubles), frozenset(double_arrays)
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if key in doubles and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif key in double_arrays and isinstance(value, list):
            value = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                     for v in value]
        out[key] = value
    return out


def default_params_file() -> Path:
    """The installed (or source tree's) config/params.yaml."""
    return config_dir() / "params.yaml"


def select_robots(topology: Topology, only: str | Iterable[str] | None) -> tuple[str, ...]:
    """The robots one machine starts: `only` (`robot1,robot2` or a list) checked against the
    topology, in the topology's order; None or empty means every robot.

    A fleet spread over several computers starts each robot on exactly one of them (`mdi-exit
    fleet --only`, `robot.launch.py`); a misspelt name must fail loudly, or that robot would
    silently run nowhere."""
    if only is None:
        return tuple(topology.workers)
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only)]
    names = [n for n in names if n]
    if not names:
        return tuple(topology.workers)
    unknown = [n for n in names if n not in topology.workers]
    if unknown:
        raise TopologyError(f"{', '.join(map(repr, unknown))} "
                            f"{'is not a robot' if len(unknown) == 1 else 'are not robots'} "
                            f"of topology {topology.name!r} ({', '.join(topology.workers)})")
    return tuple(w for w in topology.workers if w in names)


def worker_specs(topology: Topology, model: str | None = None,
                 overrides: Iterable[Override] = (),
                 camera_topic: str | None = None,
                 robots: Iterable[str] | None = None,
                 fleet: str = DEFAULT_FLEET) -> list[NodeSpec]:
    """The worker / source node of every robot (or of `robots`, see `select_robots`), in the
    topology's order, in fleet namespace `fleet` (ValueError if it is not one).

    With `camera_topic`, each source's relative `image` subscription is remapped to it.
    """
    chosen = select_robots(topology, robots)
    fleet = fleet_namespace(fleet)
    overrides = list(overrides)
    for o in overrides:
        if o.worker != "*" and o.worker not in topology.workers:
            raise TopologyError(f"override {o.worker}.{o.name}: {o.worker!r} is not a worker "
                                f"of topology {topology.name!r} ({', '.join(topology.workers)})")
    specs = []
    for w in chosen:
        # the default fleet is the node's own default: command lines stay as they were
        params: dict[str, Any] = {} if fleet == DEFAULT_FLEET else {"fleet": fleet}
        if model:
            params["model"] = model
        params.update(topology.node_parameters(w))
        for o in overrides:
            if o.worker in ("*", w):
                params[o.name] = o.value
        source = topology.is_source(w)
        remaps = ((IMAGE, camera_topic),) if source and camera_topic else ()
        specs.append(NodeSpec(robot=w, executable="source" if source else "worker",
                              name=NODE_NAME, parameters=coerce(params), remappings=remaps,
                              fleet=fleet))
    return specs


def player_specs(topology: Topology, dataset: str | None = None,
                 rate: float | None = None,
                 robots: Iterable[str] | None = None,
                 fleet: str = DEFAULT_FLEET) -> list[NodeSpec]:
    """An image player in the namespace of every source (of those among `robots`), from the
    topology's `player`."""
    chosen = select_robots(topology, robots)
    fleet = fleet_namespace(fleet)
    params: dict[str, Any] = {**PLAYER_DEFAULTS, **topology.player}
    if dataset:
        params["dataset"] = dataset
    if rate is not None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of frames per second, not {rate}")
        params["rate"] = rate
    # A fleet plays a dataset in a shuffled order, so live accuracy mixes every class from the
    # first frames (CIFAR-10's tars are stored class by class); a video plays as recorded.
    params.setdefault("shuffle", not str(params.get("dataset", "")).startswith("video:"))
    params = coerce(params, PLAYER_DOUBLES, ())
    return [NodeSpec(robot=s, executable="image_player", name=PLAYER_NAME,
                     parameters=dict(params), lifecycle=False, fleet=fleet)
            for s in topology.sources if s in chosen]


def format_value(value: Any) -> str:
    """A value for `-p name:=value` (parsed as YAML by rcl): flow style, one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def ros_arguments(spec: NodeSpec, params_file: str | Path | None = None) -> list[str]:
    """`--ros-args` of a node started by hand, the way launch_ros would start it."""
    args = ["--ros-args", "-r", f"__ns:={spec.namespace}", "-r", f"__node:={spec.name}"]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for key, value in spec.parameters.items():
        if isinstance(value, list) and not value:
            continue  # rcl cannot type an empty list; the node keeps its default
        args += ["-p", f"{key}:={format_value(value)}"]
    return args


def launch_parameters(spec: NodeSpec) -> dict[str, Any]:
    """`spec.parameters` for a launch_ros action: without empty lists, which rcl cannot type
    (the node keeps its default, as with `ros_arguments`)."""
    return {k: v for k, v in spec.parameters.items() if not (isinstance(v, list) and not v)}
