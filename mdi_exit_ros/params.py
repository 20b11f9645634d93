"""The worker's and source's ROS parameters: one table with defaults, ranges and docs.

One table declares every parameter with a descriptor (as Nav2 does), so `ros2 param
describe` shows its range and meaning, docs/USAGE.md's parameter table is generated from it
(`python -m mdi_exit_ros.params --write docs/USAGE.md`; a test fails when they differ), and
validation of `ros2 param set` lives in one place. Every parameter applies at once unless the
table says read-only or configure-only. Paper defaults (Sec. V) are the defaults here and in
config/params.yaml. This module is pure Python (no rclpy): launch files, `mdi-exit fleet` and
the docs read parameter types from it; `nodes/ros_params.py` declares the table on a node.

Integers are accepted for double parameters (`-p compute_slowdown:=4`, `ros2 param set ...
compute_slowdown 4`) and stored as doubles: rclpy alone refuses them.

No value inside a parameter's range has a special meaning: what would be one is a setting of
its own (`threshold_source: checkpoint` for the checkpoint's thresholds, an unset `seed` for
one from the OS, `link_bandwidth: .inf` for an unlimited link). Setting `exit_threshold` or
`exit_thresholds` puts it in force and says so in `threshold_source` (a pre-set callback adds
that change, as ROS 2 suggests for dependent parameters); `ros2 param set ... threshold_source
checkpoint` goes back to the checkpoint's.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdi_exit_ros.core.admission import DEFAULT_MAX_QUEUE
from mdi_exit_ros.core.confidence import CONFIDENCE_FNS
from mdi_exit_ros.core.exit_policy import CHECKPOINT, DEFAULT_T_O, THRESHOLD_SOURCES
from mdi_exit_ros.core.names import is_worker_id

ANY_NEIGHBOR = "*"  # neighbors: ["*"] = any discovered worker
NO_NEIGHBOR = "-"  # neighbors: ["-"] = none (ROS cannot type an empty string array)
UNSET_DOUBLES = "<unset double[]>"  # default of a double array that starts out unset
UNSET_DOUBLE = "<unset double>"  # default of a double that starts out unset
UNSET_INTEGER = "<unset integer>"  # default of an integer that starts out unset
UNSET_STRINGS = "<unset string[]>"  # default of a string array that starts out unset
UNSET = (UNSET_DOUBLES, UNSET_DOUBLE, UNSET_INTEGER, UNSET_STRINGS)
ADMISSION_MODES = ("rate", "threshold")
CONFIDENCES = tuple(CONFIDENCE_FNS)  # core/confidence.py's functions, by name
IMAGE_QOS = ("auto", "reliable", "best_effort", "sensor_data")  # choices of wire.qos.image_qos
DISTRIBUTIONS = ("mdi", "data", "pipeline")  # core.Distribution values


@dataclass(frozen=True)
class Spec:
    """One parameter: default (or type when it has no default), range, and meaning."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    source_only: bool = False
    configure_only: bool = False  # applied on configure; refused while configured


WORKER_PARAMS: tuple[Spec, ...] = (
    Spec("fleet", "/", "Fleet namespace FLEET: the node runs in FLEET/ROBOT (its worker id "
         "is the namespace's last part, e.g. robot1), reaches a peer on FLEET/PEER/tasks "
         "(task_acks, exits) and reports on FLEET/mdi/neighbor_state and "
         "FLEET/mdi/worker_stats, so fleets under different namespaces share a ROS domain",
         read_only=True),
    Spec("model", "fmnist_cnn_ee", "Shipped model name or path to a .safetensors checkpoint "
         "(loaded on configure)", configure_only=True),
    Spec("torch_threads", 1, "torch intra-op threads of this process (several workers share "
         "the cores)", low=1, high=256, configure_only=True),
    Spec("device", "auto", "Where this worker runs its tasks: auto (CUDA if torch sees it, "
         "else CPU), cpu, cuda or cuda:N; fp16 on CUDA when the checkpoint allows",
         configure_only=True),
    Spec("confidence", "max_softmax", "Confidence C_k(d): max softmax (paper eq. 1-2) or "
         "1 - normalised entropy (BranchyNet)", choices=CONFIDENCES),
    Spec("threshold_source", CHECKPOINT, "Which T_e^k are in force (Alg. 1): the "
         "checkpoint's calibrated per-exit values, exit_threshold or exit_thresholds. Setting "
         "either of those sets this too; at start, the one given (exit_thresholds first), "
         "else checkpoint", choices=THRESHOLD_SOURCES),
    Spec("exit_threshold", UNSET_DOUBLE, "T_e for every exit (Alg. 1); setting it puts it in "
         "force (threshold_source: exit_threshold)", low=0.0, high=1.0),
    Spec("exit_thresholds", UNSET_DOUBLES, "T_e^k per exit (Alg. 1), one value in [0, 1] per "
         "exit; setting it puts it in force (threshold_source: exit_thresholds)"),
    Spec("output_queue_threshold", DEFAULT_T_O, "T_O: a new task goes to the input queue when O_n "
         "exceeds it (Alg. 1 line 8)", low=0, high=1_000_000),
    Spec("neighbors", [ANY_NEIGHBOR], "One-hop neighbours this worker may offload to; "
         "['*'] = any discovered worker, ['-'] = none (a topology worker without outgoing "
         "links)"),
    Spec("neighbor_lease", 1.5, "Seconds without a NeighborState after which a neighbour is "
         "dead: it gets no tasks and unacked ones come back", low=0.05, high=3600.0),
    Spec("state_period", 0.2, "Seconds between NeighborState reports", low=0.01, high=60.0),
    Spec("stats_period", 1.0, "Seconds between WorkerStats reports", low=0.05, high=3600.0),
    Spec("compute_slowdown", 1.0, "Emulated device speed: each task's compute is padded to "
         "this many times its measured time", low=1.0, high=1000.0),
    Spec("service_times", UNSET_DOUBLES, "Emulated device profile: task k's compute is "
         "padded to service_times[k-1] seconds, one value > 0 per task (`mdi-exit bench` "
         "derives them from each task's MFLOPs and a device throughput); a task whose real "
         "compute took longer counts in WorkerStats.tasks_overrun. Replaces "
         "compute_slowdown when set"),
    Spec("link_delay", 0.0, "Emulated link: seconds added to every task and ack this worker "
         "sends (one way, so a round trip takes twice)", low=0.0, high=60.0),
    Spec("link_bandwidth", math.inf, "Emulated link: bytes/s per neighbour link for the tasks "
         "and acks this worker sends (.inf: no limit)", low=1.0, high=math.inf),
    Spec("max_tensor_bytes", 64 * 1024 * 1024, "Largest tensor accepted from the wire",
         low=1024, high=1 << 31),
    Spec("distribution", "mdi", "Who runs a frame's tasks: mdi = MDI-Exit (Alg. 1-2); data = "
         "data-distributed inference (baseline): the source sends each admitted frame whole "
         "to the worker with the shortest input queue, itself included, which runs all its "
         "tasks; pipeline = static pipeline (baseline): task k runs on its stage of "
         "pipeline_chain. Set on every worker of a fleet; the source's offload_first_task "
         "applies to mdi only", choices=DISTRIBUTIONS),
    Spec("pipeline_chain", UNSET_STRINGS, "Static pipeline (distribution: pipeline): the "
         "workers in chain order; the model's tasks are split evenly over them in order "
         "(as many workers as tasks: task k on the k-th). A stage that is not an eligible "
         "neighbour when its task is ready runs it here instead"),
    Spec("seed", UNSET_INTEGER, "Seed of the offloading coin (Alg. 2 line 5); unset: a seed "
         "from the OS", low=0, high=2**31 - 1, configure_only=True),
    # Sources only.
    Spec("admission_mode", "rate", "rate: Alg. 3 adapts the admission interval mu with "
         "T_e fixed; threshold: Alg. 4 admits every frame and adapts T_e",
         choices=ADMISSION_MODES, source_only=True, configure_only=True),
    Spec("queue_thresholds", [10, 30], "T_Q1, T_Q2 for I_n + O_n (Alg. 3 and 4)",
         source_only=True),
    Spec("alpha", 0.2, "Alg. 3/4 step below T_Q1 (alpha > beta)", low=0.0, high=1.0,
         source_only=True),
    Spec("beta", 0.1, "Alg. 3/4 step between T_Q1 and T_Q2", low=0.0, high=1.0,
         source_only=True),
    Spec("zeta", 0.2, "Alg. 3/4 step above T_Q2", low=0.0, high=1.0, source_only=True),
    Spec("control_period", 1.0, "s: seconds between Alg. 3/4 steps (the paper's sleep s; "
         "steps keep to a fixed schedule)", low=0.01, high=3600.0, source_only=True),
    Spec("min_exit_threshold", 0.5, "T_e^min, the floor of Alg. 4", low=0.0, high=1.0,
         source_only=True),
    Spec("slow_start", True, "Cold start of Alg. 3: mu starts no shorter than this robot's "
         "compute per frame (task times measured on configure x compute_slowdown, weighted "
         "by the checkpoint's exit shares) and halves every control period until I_n + O_n "
         "reaches T_Q1, then goes back one step; false = the paper's rule from "
         "initial_interval", source_only=True, configure_only=True),
    Spec("initial_interval", 0.05, "mu when the source is configured, seconds between "
         "admitted frames (with slow_start: at least this robot's compute per frame)",
         low=1e-4, high=3600.0, source_only=True, configure_only=True),
    Spec("latency_budget", 2.0, "s: Alg. 3 backlog guard: while the frames in flight x the "
         "measured seconds per answered frame (the wait of a new frame) exceed it, mu is not "
         "lowered and is kept >= that interval x (1 + zeta)", low=0.01, high=86400.0,
         source_only=True),
    Spec("min_interval", 0.001, "Lower bound of mu (Alg. 3 also stops lowering mu at the "
         "camera's measured interval / (1 + zeta))", low=1e-5, high=3600.0, source_only=True),
    Spec("max_interval", 10.0, "Upper bound of mu", low=1e-4, high=3600.0, source_only=True),
    Spec("offload_first_task", True, "Place an admitted frame's first task by Alg. 1 line 8 "
         "(input queue if empty or O_n > T_O, else the output queue, where Alg. 2 may "
         "offload it); false = the paper: every first task runs at the source",
         source_only=True),
    Spec("qos", "auto", "Image subscription reliability: auto matches the camera "
         "publisher's (looked up on the graph)", choices=IMAGE_QOS, source_only=True,
         configure_only=True),
    Spec("image_depth", 10, "Camera frames the image subscription queues while the source "
         "is busy (keep-last history); a frame pushed out before it is taken is lost and "
         "counted in WorkerStats.frames_lost", low=1, high=10_000, source_only=True,
         configure_only=True),
    Spec("frame_deadline", 10.0, "Seconds after admission when a frame is overdue and "
         "admitted again (nothing admitted is dropped)", low=0.1, high=86400.0,
         source_only=True),
    Spec("max_queue", DEFAULT_MAX_QUEUE, "Overload guard below Alg. 3/4: a frame is admitted (or "
         "admitted again) only while I_n + O_n is below this; refused frames count as "
         "dropped (frames_shed)", low=1, high=1_000_000, source_only=True),
    Spec("max_readmissions", 1, "Times an overdue frame is admitted again; overdue once "
         "more, it is answered as expired (class_id -1, class_name 'expired'), so overload "
         "cannot feed on its own late frames", low=0, high=1000, source_only=True),
)

SPECS = {s.name: s for s in WORKER_PARAMS}


def is_double(spec: Spec) -> bool:
    """Declared as a double (a YAML integer must be widened before it is passed)."""
    return isinstance(spec.default, float) or spec.default == UNSET_DOUBLE


def is_integer(spec: Spec) -> bool:
    return spec.default == UNSET_INTEGER or (
        isinstance(spec.default, int) and not isinstance(spec.default, bool))


def threshold_source_of(names: Any) -> str | None:
    """The threshold_source that setting parameters `names` puts in force (None: none)."""
    for name in ("exit_thresholds", "exit_threshold"):
        if name in names:
            return name
    return None


def is_double_array(spec: Spec) -> bool:
    return spec.default == UNSET_DOUBLES or (
        isinstance(spec.default, list) and any(isinstance(v, float) for v in spec.default))


def widen(spec: Spec, value: Any) -> Any:
    """`value` as a double (array) when `spec` is one and an integer (array) was given."""
    def integral(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_double(spec) and integral(value):
        return float(value)
    # rclpy hands integer arrays over as array.array('q'), lists elsewhere
    if is_double_array(spec) and isinstance(value, (list, tuple, array.array)) \
            and len(value) and all(integral(v) for v in value):
        return [float(v) for v in value]
    return value


def allowed_neighbors(neighbors: list[str]) -> list[str] | None:
    """What a `neighbors` value means for the core: None = any discovered worker ('*'),
    [] = none ('-'), else the listed worker ids."""
    if ANY_NEIGHBOR in neighbors:
        return None
    return [n for n in neighbors if n != NO_NEIGHBOR]


def check(name: str, value: Any, current: dict[str, Any]) -> str | None:
    """Why `value` is not acceptable for `name` (None if it is).

    `current` holds the values in force, so that pairs (alpha > beta, bounds of mu) are
    checked against the other half.
    """
    spec = SPECS.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    if isinstance(value, float) and not math.isfinite(value) and not (
            value == math.inf and spec.high == math.inf):
        return f"{name} must be finite"
    if name == "threshold_source" and value != CHECKPOINT and current.get(value) in (None, []):
        return (f"threshold_source {value} needs {value} set: set {value} instead (that "
                f"puts it in force)")
    if name == "exit_thresholds":
        if any(not 0.0 <= v <= 1.0 for v in value):
            return "exit_thresholds must all lie in [0, 1]"
    if name == "service_times" and any(not (0.0 < v <= 3600.0) for v in value):
        return "service_times must all lie in (0, 3600] seconds"
    if name == "neighbors" and (not value or any(not v for v in value) or (
            len(value) > 1 and ({ANY_NEIGHBOR, NO_NEIGHBOR} & set(value)))):
        return "neighbors must be ['*'] (any), ['-'] (none) or a list of worker ids"
    if name == "distribution" and value == "pipeline" \
            and current.get("pipeline_chain") in (None, []):
        return "distribution pipeline needs pipeline_chain set (the workers in chain order)"
    if name == "pipeline_chain" and (not value or len(set(value)) != len(value) or not all(
            is_worker_id(v) for v in value)):
        return "pipeline_chain must list distinct worker ids in chain order"
    if name == "queue_thresholds":
        if len(value) != 2 or value[0] < 0 or value[0] > value[1]:
            return "queue_thresholds must be [T_Q1, T_Q2] with 0 <= T_Q1 <= T_Q2"
    merged = {**current, name: value}
    if name in ("alpha", "beta") and "alpha" in merged and not merged["alpha"] > merged["beta"]:
        return f"alpha must be greater than beta (alpha={merged['alpha']}, " \
               f"beta={merged['beta']})"
    if name in ("alpha", "beta", "zeta") and not 0.0 < value < 1.0:
        return f"{name} must lie strictly between 0 and 1"
    if name in ("min_interval", "max_interval", "initial_interval") and "min_interval" in merged:
        lo, hi = merged["min_interval"], merged["max_interval"]
        if not lo <= hi:
            return f"min_interval ({lo}) must not exceed max_interval ({hi})"
    return None


# -- docs/USAGE.md ----------------------------------------------------------------------------

TABLE_BEGIN = ("<!-- parameter table: generated from mdi_exit_ros/params.py by "
               "`python -m mdi_exit_ros.params --write docs/USAGE.md`; do not edit -->")
TABLE_END = "<!-- end of parameter table -->"


def when(spec: Spec) -> str:
    """Who has the parameter and when a change takes effect."""
    who = "source" if spec.source_only else "all"
    if spec.read_only:
        return f"{who}, read-only"
    return f"{who}, on configure" if spec.configure_only else f"{who}, at once"


def markdown_table() -> str:
    """The parameter table of docs/USAGE.md, from WORKER_PARAMS."""
    rows = ["| parameter | default | range / choices | who, when | meaning |",
            "|---|---|---|---|---|"]
    for spec in WORKER_PARAMS:
        if spec.default in UNSET:
            default = "(unset)"
        elif spec.default == math.inf:
            default = "`.inf`"
        else:
            default = f"`{json.dumps(spec.default)}`"
        if spec.choices:
            span = ", ".join(spec.choices)
        elif spec.low is not None and spec.high is not None:
            span = f"[{spec.low:g}, {spec.high:g}]"
        else:
            span = ""
        rows.append(f"| `{spec.name}` | {default} | {span} | {when(spec)} | "
                    f"{spec.description} |")
    return "\n".join(rows)


def with_table(text: str) -> str:
    """`text` (docs/USAGE.md) with the generated table between its markers."""
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END)
    return text[:start] + TABLE_BEGIN + "\n" + markdown_table() + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Print the table, or rewrite / check it in a USAGE.md."""
    parser = argparse.ArgumentParser(prog="python -m mdi_exit_ros.params",
                                     description=main.__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="USAGE_MD")
    group.add_argument("--check", type=Path, metavar="USAGE_MD")
    args = parser.parse_args(argv)
    if args.write is None and args.check is None:
        print(markdown_table())
        return 0
    path = args.write or args.check
    text = path.read_text()
    if args.write is not None:
        path.write_text(with_table(text))
        return 0
    if with_table(text) != text:
        print(f"{path}: parameter table differs from mdi_exit_ros/params.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
