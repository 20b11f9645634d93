"""`mdi-exit bench <scenario>`: the paper's Figs. 3-6 with real fleets on this machine.

A scenario (config/bench/<name>.yaml) lists policies and the points to run: each point is a
whole fleet (`mdi-exit fleet`, the same nodes as always, one process per robot) started,
run and stopped on its own. Every policy is a mode of the same nodes set by parameters:

- ``local-noee``: the `local` topology (one robot) with exit thresholds 1.0 (no early exit);
- ``local``: MDI-Exit on one robot (early exit, nothing to offload to);
- ``mesh2``, ``mesh3``, ``circular3``, ``mesh5``: MDI-Exit on that topology;
- ``<topology>-noee``: the same without early exit;
- ``<topology>-first``: MDI-Exit with first-task offloading (source parameter
  `offload_first_task`; every other MDI-Exit policy sets it false, the paper's placement);
  ``<topology>-first-noee``: the same without early exit;
- ``<topology>-data``, ``<topology>-data-noee``: the data-distributed inference baseline
  (parameter `distribution: data`): each admitted frame goes whole to the robot with the
  shortest queue, which runs all its tasks, with and without early exit;
- ``<topology>-pipeline``: the static-pipeline baseline (`distribution: pipeline`, the
  topology's robots in order as `pipeline_chain`, no early exit): task k on the k-th robot.

Emulated devices do not depend on how loaded this machine is: a device profile gives task k
a fixed service time (its MFLOPs / the device's MFLOP/s), every worker pads its real compute
to it (parameter `service_times`), and a point where any task's real compute took longer is
flagged invalid (WorkerStats.tasks_overrun), not reported as a result. Links get an added
one-way delay and a bandwidth cap per neighbour (`link_delay`, `link_bandwidth`).

Each point's steady-state window starts `warmup` seconds after its first frame; its numbers
(admitted and answered rate, accuracy, latency p50/p95, tasks per robot, exit distribution)
come from the fleet's record of every result and WorkerStats report (`mdi-exit fleet
--record`). Beside each point: the compute bound (robots / expected compute per frame under
the measured exit distribution, with task 1 pinned to the source where the policy pins it;
a pipeline's is its slowest stage) and the network bound, and achieved / bound.

Everything but `run_point` and `main` is pure (no ROS, no torch) and unit-tested.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mdi_exit_ros.core.distribution import pipeline_stage
from mdi_exit_ros.topology import TopologyError, config_dir, load_topology, resolve_topology

EXPERIMENTS = ("fixed", "poisson")  # Figs. 3-4 (Alg. 3, rate mode), Figs. 5-6 (Alg. 4)
AUTO = "auto"  # initial_interval: from the service times (start_interval)
CHECKPOINT = "checkpoint"  # a threshold that means the checkpoint's calibrated T_e^k
NO_EE = 1.0  # exit threshold of the "No EE" policies: C > 1.0 never holds (Alg. 1 line 5)
MIN_RESULTS = 10  # fewer results in a window: the point is invalid (too few to measure)
STARTUP_SLACK = 25.0  # s from the fleet's start to its first frame (CIFAR-10 loads ~18 s)
RUN_TAIL = 1.0  # s the fleet runs past the window's end (the last reports of the window)
CSV_FIELDS = (
    "experiment", "policy", "topology", "early_exit", "first_task_offload", "distribution",
    "threshold",
    "offered_rate", "valid", "invalid_reason", "window_s", "admitted_rate", "answered_rate",
    "accuracy", "latency_p50", "latency_p95", "results", "exit_distribution",
    "tasks_per_robot", "tasks_share_source", "overruns", "dropped", "expired",
    "final_threshold", "final_interval", "backlog_growth", "compute_bound", "network_bound",
    "bound", "achieved_over_bound", "profile", "model", "dataset", "log_dir")


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------
# Scenario


@dataclass(frozen=True)
class DeviceProfile:
    """An emulated robot: its compute speed and its links to each neighbour."""

    name: str
    mflops_per_s: float  # device throughput: task k takes task_mflops[k] / this seconds
    link_delay: float = 0.005  # s one way per message (WiFi-like)
    link_bandwidth: float = 2.5e6  # bytes/s per neighbour link (~20 Mbit/s, WiFi-like)

    def service_times(self, task_mflops: Sequence[float]) -> list[float]:
        """Seconds each task takes on this device."""
        return [round(m / self.mflops_per_s, 6) for m in task_mflops]

    def describe(self) -> str:
        return (f"{self.name}: {self.mflops_per_s:g} MFLOP/s per robot, links "
                f"{self.link_delay * 1e3:g} ms one way, {self.link_bandwidth / 1e6:g} MB/s "
                "per neighbour")


@dataclass(frozen=True)
class Policy:
    """A policy of the benchmark: a topology and the node parameters that make the mode."""

    name: str
    topology: str
    early_exit: bool = True
    first_task_offload: bool = False
    distribution: str = "mdi"  # worker parameter `distribution`: mdi, data or pipeline

    @property
    def pins_first_task(self) -> bool:
        """Task 1 of every frame runs at the source (MDI-Exit's Alg. 1 places successors
        only; the pipeline's first stage is the source, which its own bound accounts for)."""
        return self.distribution == "mdi" and not self.first_task_offload


MODES = ("", "noee", "first", "first-noee", "data", "data-noee", "pipeline")


def parse_policy(name: str) -> Policy:
    """`local-noee`, `mesh5`, `mesh3-noee`, `mesh5-first`, `mesh5-data`, `chain5-pipeline`
    -> Policy."""
    topology, _, mode = name.partition("-")
    if mode not in MODES:
        raise ScenarioError(f"policy {name!r}: mode must be one of "
                            + ", ".join(f"'-{m}'" if m else "''" for m in MODES))
    if topology == "local" and mode not in ("", "noee"):
        raise ScenarioError(f"policy {name!r}: one robot has nobody to offload to")
    kind = mode.removesuffix("-noee").removesuffix("noee")
    return Policy(name, topology, early_exit=not mode.endswith("noee") and kind != "pipeline",
                  first_task_offload=kind == "first",
                  distribution=kind if kind in ("data", "pipeline") else "mdi")


@dataclass(frozen=True)
class Point:
    """One fleet run: a policy at one threshold (fixed) or one mean arrival rate (poisson)."""

    experiment: str
    policy: Policy
    threshold: float | str  # exit threshold (fixed) or the starting one (poisson)
    rate: float  # frames/s offered by the player (poisson: the mean rate)

    @property
    def label(self) -> str:
        what = f"T={self.threshold}" if self.experiment == "fixed" else f"{self.rate:g}/s"
        return f"{self.experiment} {self.policy.name} {what}"


@dataclass
class Scenario:
    """A benchmark: profile, model, timing and the points of each experiment."""

    name: str
    profile: DeviceProfile
    model: str = "mobilenet_v2_ee_cifar10"
    dataset: str = "cifar10"
    fallback_model: str = "fmnist_cnn_ee"  # when `dataset` is not on this machine
    fallback_dataset: str = "fashion-mnist"
    warmup: float = 15.0  # s after the first frame before the window opens
    measure: float = 30.0  # s of window
    initial_interval: float | None = None  # Alg. 3's first mu, s; None: start_interval()
    seed: int = 1
    parameters: dict[str, Any] = field(default_factory=dict)  # more `--set`: "robot1.x": v
    points: list[Point] = field(default_factory=list)
    description: str = ""

    @property
    def duration(self) -> float:
        """--duration of each fleet (it counts from the first frame): the warm-up, the window
        and a short tail."""
        return self.warmup + self.measure + RUN_TAIL


def _positive(data: Mapping, key: str, default: float, path: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (value > 0 and math.isfinite(value)):
        raise ScenarioError(f"{path}: {key} must be a positive number, not {value!r}")
    return float(value)


def _threshold(value: Any, path: str) -> float | str:
    if value == CHECKPOINT:
        return CHECKPOINT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ScenarioError(f"{path}: threshold {value!r} must lie in [0, 1] or be "
                            f"'{CHECKPOINT}'")
    return float(value)


def _policies(data: Mapping, path: str) -> list[Policy]:
    names = data.get("policies")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ScenarioError(f"{path}: policies must be a non-empty list of names")
    out = []
    for n in names:
        p = parse_policy(n)
        try:
            resolve_topology(p.topology)
        except TopologyError as exc:
            raise ScenarioError(f"{path}: policy {n!r}: {exc}") from exc
        out.append(p)
    return out


def parse_scenario(data: Any, path: str = "<scenario>") -> Scenario:
    """Validate a scenario mapping (as loaded from YAML)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping at the top level")
    unknown = set(data) - {"name", "description", "profile", "model", "dataset",
                           "fallback_model", "fallback_dataset", "warmup", "measure",
                           "initial_interval", "seed", "parameters", "fixed", "poisson"}
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    prof = data.get("profile")
    if not isinstance(prof, dict):
        raise ScenarioError(f"{path}: profile must be a mapping (name, mflops_per_s, "
                            "link_delay, link_bandwidth)")
    delay = prof.get("link_delay", 0.005)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60:
        raise ScenarioError(f"{path}: profile.link_delay must lie in [0, 60] s")
    profile = DeviceProfile(str(prof.get("name", "device")),
                            _positive(prof, "mflops_per_s", 0, path + ": profile"),
                            float(delay),
                            _positive(prof, "link_bandwidth", 2.5e6, path + ": profile"))
    seed = data.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ScenarioError(f"{path}: seed must be an integer >= 0")
    extra = data.get("parameters") or {}
    if not isinstance(extra, dict) or not all(
            isinstance(k, str) and "." in k.strip(".") for k in extra):
        raise ScenarioError(f"{path}: parameters must map '<worker>.<parameter>' (or "
                            "'*.<parameter>') to values")
    sc = Scenario(name=str(data.get("name") or Path(path).stem), profile=profile,
                  model=str(data.get("model", "mobilenet_v2_ee_cifar10")),
                  dataset=str(data.get("dataset", "cifar10")),
                  fallback_model=str(data.get("fallback_model", "fmnist_cnn_ee")),
                  fallback_dataset=str(data.get("fallback_dataset", "fashion-mnist")),
                  warmup=_positive(data, "warmup", 15.0, path),
                  measure=_positive(data, "measure", 30.0, path),
                  initial_interval=(None if data.get("initial_interval", AUTO) == AUTO else
                                    _positive(data, "initial_interval", 0, path)),
                  seed=seed, parameters=dict(extra),
                  description=str(data.get("description", "")))
    if "fixed" not in data and "poisson" not in data:
        raise ScenarioError(f"{path}: needs a 'fixed' or a 'poisson' experiment")
    for experiment in EXPERIMENTS:
        exp = data.get(experiment)
        if exp is None:
            continue
        where = f"{path}: {experiment}"
        if not isinstance(exp, dict):
            raise ScenarioError(f"{where} must be a mapping")
        policies = _policies(exp, where)
        if experiment == "fixed":
            thresholds = exp.get("thresholds", [CHECKPOINT])
            if not isinstance(thresholds, list) or not thresholds:
                raise ScenarioError(f"{where}: thresholds must be a non-empty list")
            rate = _positive(exp, "offered_rate", 50.0, where)
            for p in policies:
                for t in ([NO_EE] if not p.early_exit else
                          [_threshold(t, where) for t in thresholds]):
                    sc.points.append(Point(experiment, p, t, rate))
        else:
            rates = exp.get("rates")
            if not isinstance(rates, list) or not rates:
                raise ScenarioError(f"{where}: rates must be a non-empty list of frames/s")
            start = _threshold(exp.get("start_threshold", CHECKPOINT), where)
            for p in policies:
                for r in rates:
                    r = _positive({"rate": r}, "rate", 0, where)
                    sc.points.append(Point(experiment, p, NO_EE if not p.early_exit else start,
                                           r))
    return sc


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario (config/bench/<name>.yaml) or a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / "bench" / f"{name_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        shipped = sorted(p.stem for p in (config_dir() / "bench").glob("*.yaml"))
        raise ScenarioError(f"{path}: cannot read scenario ({exc.strerror}); shipped: "
                            f"{', '.join(shipped)}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML ({exc})") from exc
    return parse_scenario(data, str(path))


# ---------------------------------------------------------------------------------------------
# One point's fleet


def topology_file(point: Point, dataset: str, seed: int) -> dict[str, Any]:
    """The point's topology YAML: the shipped topology with the point's player."""
    topo = load_topology(resolve_topology(point.policy.topology))
    player = {**topo.player, "dataset": dataset, "rate": float(point.rate), "seed": seed,
              "arrival": "poisson" if point.experiment == "poisson" else "fixed"}
    return {"name": topo.name, "description": topo.description, "workers": list(topo.workers),
            "sources": list(topo.sources),
            "arcs": [[w, m] for w in topo.workers for m in topo.neighbors(w)],
            "parameters": {w: dict(p) for w, p in topo.parameters.items()}, "player": player}


def start_interval(service_times: Sequence[float], robots: int, pin_first: bool,
                   distribution: str = "mdi") -> float:
    """Alg. 3's first mu when the scenario says `initial_interval: auto`: the interval at
    which the robots could compute frames that all run to the last exit (the compute bound
    without early exit). Alg. 3 lowers mu from there while the queues stay short; starting
    faster than the fleet can answer admits a backlog that Alg. 3's 20 %-per-period back-off
    takes many periods to stop (frames then go overdue and are admitted again)."""
    last_only = [0.0] * (len(service_times) - 1) + [1.0]
    if distribution == "pipeline":
        return round(1.0 / pipeline_bound(service_times, last_only, robots), 6)
    return round(1.0 / compute_bound(service_times, last_only, [1.0] * robots, pin_first), 6)


def fleet_overrides(point: Point, scenario: Scenario, service_times: Sequence[float],
                    source: str = "robot1", robots: int = 1,
                    workers: Sequence[str] = ()) -> list[str]:
    """The `--set` overrides that make the point's policy and device profile (`workers`: the
    topology's, in order: a pipeline's chain)."""
    prof = scenario.profile
    sets = [f"*.service_times={list(service_times)}", f"*.link_delay={prof.link_delay!r}",
            f"*.link_bandwidth={float(prof.link_bandwidth)!r}", "*.torch_threads=1",
            f"*.seed={scenario.seed}"]
    if point.threshold != CHECKPOINT:
        sets.append(f"*.exit_threshold={float(point.threshold)!r}")
    mode = "rate" if point.experiment == "fixed" else "threshold"
    sets += [f"{source}.admission_mode={mode}",
             f"{source}.initial_interval="
             f"{scenario.initial_interval or start_interval(service_times, robots, point.policy.pins_first_task, point.policy.distribution)!r}",  # noqa: E501
             f"{source}.offload_first_task={str(point.policy.first_task_offload).lower()}",
             f"*.distribution={point.policy.distribution}"]
    if point.policy.distribution == "pipeline":
        sets.append(f"*.pipeline_chain={json.dumps(list(workers or [source]))}")
    for key, value in scenario.parameters.items():
        sets.append(f"{key}={json.dumps(value)}")
    return sets


# ---------------------------------------------------------------------------------------------
# Measuring a window (pure: a fleet --record in, numbers out)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _rows(record: Mapping, worker: str) -> list[dict[str, Any]]:
    names = record["stats_fields"]
    return [dict(zip(names, r, strict=True)) for r in record["stats"]
            if r[names.index("worker")] == worker]


def _delta(rows: list[dict[str, Any]], key: str, t0: float, t1: float) -> tuple[float, float]:
    """(change of `key`, seconds between the reports) from the first report at or after t0
    to the last at or before t1."""
    inside = [r for r in rows if t0 <= r["t"] <= t1]
    if len(inside) < 2:
        return 0.0, 0.0
    return float(inside[-1][key] - inside[0][key]), inside[-1]["t"] - inside[0]["t"]


def window_metrics(record: Mapping, warmup: float, measure: float, num_exits: int,
                   source: str = "robot1") -> dict[str, Any]:
    """Steady-state numbers of one run from its fleet record."""
    first = record.get("first_frame")
    stopped = record.get("stopped")
    out: dict[str, Any] = {"valid": False, "invalid_reason": "", "window_s": 0.0}
    if first is None or stopped is None:
        out["invalid_reason"] = "no frame reached the fleet"
        return out
    t0 = first + warmup
    t1 = min(t0 + measure, stopped)
    if t1 - t0 < 0.5 * measure:
        out["invalid_reason"] = f"window of {max(t1 - t0, 0):.1f} s (run too short)"
        return out
    fields = record["result_fields"]
    inside = [dict(zip(fields, r, strict=True)) for r in record["results"]
              if t0 <= r[0] <= t1]
    # class_id -1: a frame answered as expired (max_readmissions) or failed, not classified
    results = [r for r in inside if r.get("class_id", 0) >= 0]
    expired = len(inside) - len(results)
    latencies = [r["latency"] for r in results]
    scored = [r["correct"] for r in results if r["correct"] is not None]
    exits = [0] * num_exits
    for r in results:
        if 1 <= r["exit"] <= num_exits:
            exits[r["exit"] - 1] += 1
    src = _rows(record, source)
    admitted, span = _delta(src, "frames_admitted", t0, t1)
    workers = sorted(dict.fromkeys(r[record["stats_fields"].index("worker")]
                                   for r in record["stats"]),
                     key=lambda w: (w != source, [int(t) if t.isdigit() else t
                                                  for t in re.split(r"(\d+)", w)]))
    tasks = {w: int(_delta(_rows(record, w), "tasks_run", t0, t1)[0]) for w in workers}
    overruns = {w: int(_delta(_rows(record, w), "tasks_overrun", t0, t1)[0]) for w in workers}
    last = [r for r in src if r["t"] <= t1]
    total_tasks = sum(tasks.values())
    out.update({
        "window_s": t1 - t0,
        "admitted_rate": admitted / span if span > 0 else None,
        "answered_rate": len(results) / (t1 - t0),
        "accuracy": sum(scored) / len(scored) if scored else None,
        "latency_p50": percentile(latencies, 0.5), "latency_p95": percentile(latencies, 0.95),
        "results": len(results),
        "exit_distribution": [n / len(results) for n in exits] if results else [],
        "tasks_per_robot": tasks,
        "tasks_share_source": tasks.get(source, 0) / total_tasks if total_tasks else None,
        "overruns": sum(overruns.values()),
        "dropped": int(_delta(src, "frames_dropped", t0, t1)[0]),
        "expired": expired,
        "final_threshold": (list(last[-1]["exit_thresholds"]) if last else None),
        "final_interval": (last[-1]["admission_interval"] if last else None),
        "backlog_growth": int(admitted - len(inside)),
    })
    if out["overruns"]:
        out["invalid_reason"] = (f"{out['overruns']} task(s) took longer than their service "
                                 "time: the machine was too loaded for the device profile")
    elif len(results) < MIN_RESULTS:
        out["invalid_reason"] = f"{len(results)} results in the window (< {MIN_RESULTS})"
    elif span <= 0:
        out["invalid_reason"] = "no source reports in the window"
    else:
        out["valid"] = True
    return out


# ---------------------------------------------------------------------------------------------
# Bounds (pure)


def expected_compute(service_times: Sequence[float], exit_distribution: Sequence[float]) -> float:
    """Seconds of compute per frame: task k runs for every frame that exits at k or later."""
    if len(exit_distribution) != len(service_times):
        raise ValueError("one exit probability per task")
    total = sum(exit_distribution)
    if total <= 0:
        raise ValueError("the exit distribution is empty")
    reach = 1.0
    out = 0.0
    for s, p in zip(service_times, exit_distribution, strict=True):
        out += reach * s
        reach -= p / total
    return out


def compute_bound(service_times: Sequence[float], exit_distribution: Sequence[float],
                  speeds: Sequence[float], pin_first: bool) -> float:
    """Frames/s the robots can compute at most.

    `speeds[n]` is robot n's speed relative to the profile (1/Gamma_n in units of the
    profile's task times; speeds[0] is the source's). Without pinning: sum_n speed_n / E[C].
    With task 1 pinned to the source, the source must also run task 1 of every frame:
    min(that, speed_source / s_1)."""
    bound = sum(speeds) / expected_compute(service_times, exit_distribution)
    if pin_first and len(speeds) > 1:
        bound = min(bound, speeds[0] / service_times[0])
    return bound


def _reach(exit_distribution: Sequence[float]) -> list[float]:
    """P(a frame runs task k), k = 1..K, under the exit distribution."""
    total = sum(exit_distribution)
    if total <= 0:
        raise ValueError("the exit distribution is empty")
    reach, left = [], 1.0
    for p in exit_distribution:
        reach.append(max(left, 0.0))
        left -= p / total
    return reach


def pipeline_stages(num_tasks: int, robots: int) -> list[list[int]]:
    """0-based task indices per stage of a static pipeline over `robots` robots (the
    workers' own rule, core.pipeline_stage)."""
    stages: list[list[int]] = [[] for _ in range(robots)]
    for k in range(1, num_tasks + 1):
        stages[pipeline_stage(k, num_tasks, robots)].append(k - 1)
    return stages


def pipeline_bound(service_times: Sequence[float], exit_distribution: Sequence[float],
                   robots: int) -> float:
    """Frames/s a static pipeline can compute at most: its slowest stage's rate (each stage
    runs its tasks of every frame that reaches them)."""
    reach = _reach(exit_distribution)
    load = max(sum(service_times[k] * reach[k] for k in stage)
               for stage in pipeline_stages(len(service_times), robots))
    return math.inf if load <= 0 else 1.0 / load


def pipeline_network_bound(exit_distribution: Sequence[float], cut_bytes: Sequence[int],
                           robots: int, link_bandwidth: float) -> float:
    """Frames/s the links of a pipeline carry at most: every hop between stages is one link,
    carrying the features after the stage's last task of every frame that goes on."""
    reach = _reach(exit_distribution) + [0.0]
    hops = [cut_bytes[stage[-1]] * reach[stage[-1] + 1]
            for stage in pipeline_stages(len(cut_bytes), robots)[:-1] if stage]
    worst = max(hops, default=0.0)
    return math.inf if worst <= 0 else link_bandwidth / worst


def data_network_bound(input_bytes: int, robots: int, source_links: int,
                       link_bandwidth: float) -> float:
    """Frames/s the source's links carry at most under data-distributed inference: each frame
    sent away leaves once, as the input frame; with equal robots (robots - 1) / robots of
    the frames are sent away."""
    if source_links == 0 or robots <= 1:
        return math.inf
    return source_links * link_bandwidth / (input_bytes * (robots - 1) / robots)


def network_bound(exit_distribution: Sequence[float], cut_bytes: Sequence[int],
                  input_bytes: int, source_links: int, link_bandwidth: float,
                  pin_first: bool) -> float:
    """Frames/s the source's links can carry when every frame that needs another robot
    leaves the source once: with task 1 pinned, the frames past exit 1 with cut 1's features;
    otherwise whichever is smaller per frame, the input frame or those features. Infinite for
    one robot (nothing leaves)."""
    if source_links == 0:
        return math.inf
    total = sum(exit_distribution)
    past_first = 1.0 - exit_distribution[0] / total if total > 0 else 1.0
    per_frame = past_first * cut_bytes[0]
    if not pin_first:
        per_frame = min(per_frame, float(input_bytes))
    if per_frame <= 0:
        return math.inf
    return source_links * link_bandwidth / per_frame


def bounds(point: Point, metrics: Mapping[str, Any], service_times: Sequence[float],
           cut_bytes: Sequence[int], input_bytes: int, robots: int, source_links: int,
           link_bandwidth: float) -> dict[str, Any]:
    """The point's compute and network bounds and achieved / bound (the answered rate).

    The bound is the lowest of the two and of the offered rate: a camera at 2 frames/s
    cannot be answered faster, however large the fleet (Poisson points below capacity)."""
    dist = metrics.get("exit_distribution") or []
    if not dist or sum(dist) <= 0:
        return {"compute_bound": None, "network_bound": None, "bound": None,
                "achieved_over_bound": None}
    pin = point.policy.pins_first_task
    if point.policy.distribution == "pipeline":
        c = pipeline_bound(service_times, dist, robots)
        n = pipeline_network_bound(dist, cut_bytes, robots, link_bandwidth)
    elif point.policy.distribution == "data":
        c = compute_bound(service_times, dist, [1.0] * robots, False)
        n = data_network_bound(input_bytes, robots, source_links, link_bandwidth)
    else:
        c = compute_bound(service_times, dist, [1.0] * robots, pin)
        n = network_bound(dist, cut_bytes, input_bytes, source_links, link_bandwidth, pin)
    b = min(c, n, point.rate)
    achieved = metrics.get("answered_rate")
    return {"compute_bound": c, "network_bound": n, "bound": b,
            "achieved_over_bound": achieved / b if achieved is not None and b > 0 else None}


# ---------------------------------------------------------------------------------------------
# Rows, tables and plots


def csv_row(point: Point, scenario: Scenario, metrics: Mapping[str, Any],
            bound: Mapping[str, Any], model: str, dataset: str, log_dir: str) -> dict[str, Any]:
    def fmt(v: Any) -> Any:
        if isinstance(v, float):
            return "inf" if math.isinf(v) else round(v, 6)
        if isinstance(v, (list, dict)):
            return json.dumps(v if not isinstance(v, list) else
                              [round(x, 4) if isinstance(x, float) else x for x in v])
        return "" if v is None else v

    row = {"experiment": point.experiment, "policy": point.policy.name,
           "topology": point.policy.topology, "early_exit": point.policy.early_exit,
           "first_task_offload": point.policy.first_task_offload,
           "distribution": point.policy.distribution,
           "threshold": point.threshold, "offered_rate": point.rate,
           "profile": scenario.profile.describe(), "model": model, "dataset": dataset,
           "log_dir": log_dir, **{k: metrics.get(k) for k in CSV_FIELDS if k in metrics},
           **bound}
    return {k: fmt(row.get(k)) for k in CSV_FIELDS}


def _num(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def markdown_tables(rows: Iterable[Mapping[str, Any]]) -> str:
    """The RESULTS tables, one per experiment, from CSV rows (strings or numbers)."""
    rows = list(rows)
    out = []
    for experiment, title in (("fixed", "Figs. 3-4: fixed exit threshold, Alg. 3 adapts the "
                                        "admitted rate"),
                              ("poisson", "Figs. 5-6: Poisson arrivals, Alg. 4 adapts T_e")):
        mine = [r for r in rows if r["experiment"] == experiment]
        if not mine:
            continue
        out += [f"### {title}", "",
                "| policy | T_e | offered /s | admitted /s | answered /s | expired | "
                "accuracy | p50 s | p95 s | tasks per robot | bound /s (compute, network) | "
                "achieved/bound | valid |", "|" + "---|" * 13]
        for r in mine:
            def f(key: str, spec: str = ".2f", scale: float = 1.0,
                  r: Mapping[str, Any] = r) -> str:
                v = _num(r.get(key))
                return "-" if v is None else ("inf" if math.isinf(v) else
                                              format(v * scale, spec))
            tasks = r.get("tasks_per_robot") or "{}"
            tasks = tasks if isinstance(tasks, dict) else json.loads(tasks or "{}")
            valid = str(r.get("valid")) in ("True", "true", "1")
            out.append(
                f"| {r['policy']} | {r['threshold']} | {f('offered_rate', 'g')} | "
                f"{f('admitted_rate')} | {f('answered_rate')} (n={r.get('results') or 0}) | "
                f"{f('expired', 'g')} | "
                f"{f('accuracy', '.1f', 100)}% | {f('latency_p50')} | {f('latency_p95')} | "
                f"{' / '.join(str(n) for n in tasks.values()) or '-'} | "
                f"{f('bound')} ({f('compute_bound')}, {f('network_bound', '.0f')}) | "
                f"{f('achieved_over_bound', '.0%', 1) if _num(r.get('achieved_over_bound')) is not None else '-'} | "  # noqa: E501
                f"{'yes' if valid else 'NO: ' + str(r.get('invalid_reason'))} |")
        out.append("")
    return "\n".join(out)


def goals(rows: Iterable[Mapping[str, Any]]) -> str:
    """The issue's goals measured on the fixed-threshold rows of one run: each multi-node
    MDI-Exit policy's answered rate over Local no-EE's at the same run, its accuracy
    difference (goal: >= 3x for the paper's policy, >= 6x with first-task offloading, within
    1 point), and achieved / compute bound (goal >= 85 %) of every multi-node point."""
    rows = [r for r in rows if r["experiment"] == "fixed"
            and str(r.get("valid")) in ("True", "true", "1")]
    base = next((r for r in rows if r["policy"] == "local-noee"), None)
    lines = ["| policy | T_e | answered / Local no-EE | goal | accuracy - Local no-EE "
             "(points) | achieved / bound | goal |", "|" + "---|" * 7]
    for r in rows:
        if r["topology"] == "local" or r.get("distribution", "mdi") != "mdi":
            continue  # the baselines: `baselines`
        ratio = acc = None
        if base is not None and _num(base["answered_rate"]):
            ratio = _num(r["answered_rate"]) / _num(base["answered_rate"])
            if _num(r["accuracy"]) is not None and _num(base["accuracy"]) is not None:
                acc = 100 * (_num(r["accuracy"]) - _num(base["accuracy"]))
        want = 6.0 if str(r["first_task_offload"]) == "True" else 3.0
        ab = _num(r.get("achieved_over_bound"))
        if str(r["early_exit"]) != "True":
            speed = "-"  # the goals are MDI-Exit's, with early exits
        elif base is None:  # a scenario without the baseline measures no ratio
            speed = f">= {want:g}x: no Local no-EE point"
        elif ratio is None:
            speed = f">= {want:g}x: Local no-EE answered nothing"
        else:
            met = ratio >= want and acc is not None and acc >= -1
            speed = f">= {want:g}x: {'met' if met else 'missed'}"
        lines.append(
            f"| {r['policy']} | {r['threshold']} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} | {speed} | "
            f"{'-' if acc is None else f'{acc:+.1f}'} | {'-' if ab is None else f'{ab:.0%}'} | "
            f"{'-' if ab is None else 'met' if ab >= 0.85 else 'missed'} |")
    return "\n".join(lines) + "\n"


def _pair(a: Mapping[str, Any], b: Mapping[str, Any], key: str, spec: str) -> str:
    """`key` of two rows, formatted, '-' where missing."""
    return ", ".join("-" if _num(r[key]) is None else format(_num(r[key]), spec)
                     for r in (a, b))


def baselines(rows: Iterable[Mapping[str, Any]]) -> str:
    """MDI-Exit against the two baselines of the same run at equal accuracy (issue #8): every
    valid fixed-threshold baseline point (data-distributed, pipeline) beside every valid
    multi-node MDI-Exit point with the same early-exit setting and threshold. The same T_e^k
    make the same exit decisions per frame, so accuracy is equal up to the sample; what
    differs is the answered rate and the latency."""
    rows = [r for r in rows if r["experiment"] == "fixed"
            and str(r.get("valid")) in ("True", "true", "1") and r["topology"] != "local"]
    base = [r for r in rows if r.get("distribution", "mdi") != "mdi"]
    mdi = [r for r in rows if r.get("distribution", "mdi") == "mdi"]
    lines = ["| MDI-Exit | baseline | T_e | answered /s (MDI-Exit, baseline) | MDI-Exit / "
             "baseline | accuracy (MDI-Exit, baseline) | p50 s (MDI-Exit, baseline) |",
             "|" + "---|" * 7]
    for b in base:
        for m in mdi:
            if str(m["early_exit"]) != str(b["early_exit"]) or \
                    str(m["threshold"]) != str(b["threshold"]):
                continue
            ma, ba = _num(m["answered_rate"]), _num(b["answered_rate"])
            ratio = f"{ma / ba:.2f}x" if ma is not None and ba else "-"
            lines.append(f"| {m['policy']} | {b['policy']} | {m['threshold']} | "
                         f"{_pair(m, b, 'answered_rate', '.2f')} | {ratio} | "
                         f"{_pair(m, b, 'accuracy', '.1%')} | "
                         f"{_pair(m, b, 'latency_p50', '.2f')} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def plot(rows: Iterable[Mapping[str, Any]], out_dir: Path, title: str) -> list[Path]:
    """PNG plots shaped like the paper's: accuracy versus data rate, one curve per policy
    (fixed: the admitted rate Alg. 3 sustained; poisson: the offered mean rate), and the
    latency beside it. Invalid points are not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if str(r.get("valid")) in ("True", "true", "1")]
    written = []
    for experiment, xkey, xlabel in (("fixed", "answered_rate", "sustained data rate "
                                                                "(answered frames/s)"),
                                     ("poisson", "offered_rate", "mean arrival rate (frames/s)")):
        mine = [r for r in rows if r["experiment"] == experiment]
        if not mine:
            continue
        fig, (acc, lat) = plt.subplots(1, 2, figsize=(11, 4.2))
        policies = list(dict.fromkeys(r["policy"] for r in mine))
        colours = plt.get_cmap("tab20").colors  # 20 distinct: the full profile has 16 policies
        for i, policy in enumerate(policies):
            pts = sorted(((_num(r[xkey]), _num(r["accuracy"]), _num(r["latency_p50"]),
                           _num(r["latency_p95"])) for r in mine if r["policy"] == policy),
                         key=lambda p: p[0] or 0)
            pts = [p for p in pts if None not in p]
            if not pts:
                continue
            xs = [p[0] for p in pts]
            line, = acc.plot(xs, [100 * p[1] for p in pts], "o-", label=policy,
                             color=colours[i % len(colours)])
            lat.plot(xs, [p[2] for p in pts], "o-", color=line.get_color(), label=policy)
            lat.plot(xs, [p[3] for p in pts], "x:", color=line.get_color())
        acc.set_xlabel(xlabel)
        acc.set_ylabel("accuracy (%)")
        acc.grid(alpha=0.3)
        acc.legend(fontsize=8)
        lat.set_xlabel(xlabel)
        lat.set_ylabel("latency (s): p50 o-, p95 x:")
        lat.set_yscale("log")
        lat.grid(alpha=0.3)
        fig.suptitle(f"{title}: " + ("fixed exit threshold, Alg. 3 (Figs. 3-4)"
                                     if experiment == "fixed" else
                                     "Poisson arrivals, Alg. 4 (Figs. 5-6)"), fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{experiment}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class ModelFacts:
    """What the bounds need from the checkpoint."""

    model: str
    dataset: str
    task_mflops: list[float]
    cut_bytes: list[int]
    input_bytes: int
    num_exits: int


def model_facts(model: str, dataset: str) -> ModelFacts:
    """Task MFLOPs and cut sizes from the checkpoint's metadata (no torch needed)."""
    from mdi_exit_ros.model.checkpoint import read_metadata, shipped_path

    path = Path(model) if Path(model).suffix else shipped_path(model)
    meta = read_metadata(path)
    spec = meta["input_spec"]
    spec = spec if isinstance(spec, dict) else json.loads(spec)
    channels, size = int(spec["channels"]), int(spec["size"])
    return ModelFacts(model, dataset, [f / 1e6 for f in meta["task_flops"]],
                      [int(b) for b in meta["cut_wire_bytes"]], channels * size * size * 4,
                      int(meta["num_exits"]))


def choose_model(scenario: Scenario) -> tuple[str, str, str]:
    """(model, dataset, note): the scenario's, or its fallback when the data is missing."""
    from mdi_exit_ros.data.registry import dataset_available

    if dataset_available(scenario.dataset):
        return scenario.model, scenario.dataset, ""
    return (scenario.fallback_model, scenario.fallback_dataset,
            f"{scenario.dataset} is not on this machine: fell back to "
            f"{scenario.fallback_model} on {scenario.fallback_dataset}")


def progress(done: int, total: int, label: str, elapsed: float, expected: float,
             width: int = 24) -> str:
    """One progress-bar line: points done, this point's time."""
    frac = (done + min(elapsed / expected, 0.99)) / total if total else 1.0
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    return f"\r[{bar}] {done}/{total} {label} {elapsed:4.0f}/{expected:.0f} s"


FLEET_STOP_WAIT = 60.0  # s a stopped fleet gets to stop its robots (it waits 30 s for each)


def run_point(point: Point, scenario: Scenario, facts: ModelFacts, out_dir: Path,
              index: int, total: int, timeout: float,
              stopping: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Start the point's fleet, wait for it (drawing the progress bar), measure its record.

    After `timeout` s, or once `stopping()` (the bench got SIGINT/SIGTERM), the fleet gets
    SIGINT, which it forwards to its robots; only a fleet that has not ended
    FLEET_STOP_WAIT s later is killed (its robots, in sessions of their own, would outlive
    a kill, so it is the last resort)."""
    from mdi_exit_ros.tools.procs import spawn_module

    run_dir = point_dir(out_dir, point, index)
    run_dir.mkdir(parents=True, exist_ok=True)
    topo_path = run_dir / "topology.yaml"
    topo_path.write_text(yaml.safe_dump(topology_file(point, facts.dataset, scenario.seed),
                                        sort_keys=False))
    service = scenario.profile.service_times(facts.task_mflops)
    args = [str(topo_path), "--model", facts.model, "--duration", f"{scenario.duration:g}",
            "--record", str(run_dir / "record.json"), "--log-dir", str(run_dir / "logs"),
            "--shutdown-timeout", "30"]  # a loaded machine: a node may need more than 10 s
    workers = load_topology(resolve_topology(point.policy.topology)).workers
    for s in fleet_overrides(point, scenario, service, robots=len(workers), workers=workers):
        args += ["--set", s]
    (run_dir / "command.txt").write_text("mdi-exit fleet " + " ".join(
        a if " " not in a and "[" not in a else repr(a) for a in args) + "\n")
    log = open(run_dir / "fleet.log", "wb")  # noqa: SIM115 - closed below
    started = time.monotonic()
    expected = STARTUP_SLACK + scenario.duration + 30.0
    try:
        proc = spawn_module("mdi_exit_ros.tools.fleet", args, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > timeout or stopping():
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=FLEET_STOP_WAIT)
                    except subprocess.TimeoutExpired:
                        pass
                    break
                sys.stderr.write(progress(index, total, point.label, elapsed, expected))
                sys.stderr.flush()
                time.sleep(1.0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    finally:
        log.close()
    (run_dir / "exit_code.txt").write_text(f"{proc.returncode}\n")
    return measure_point(point, scenario, facts, run_dir)


def point_dir(out_dir: Path, point: Point, index: int) -> Path:
    """Where a point's topology, command, logs and record go."""
    return out_dir / "runs" / (f"{index + 1:02d}_{point.experiment}_{point.policy.name}_" + (
        f"T{point.threshold}" if point.experiment == "fixed" else f"r{point.rate:g}"))


def fleet_exit_code(run_dir: Path) -> int | None:
    """The point's fleet exit code: exit_code.txt, else the last line of its fleet.log."""
    try:
        return int((run_dir / "exit_code.txt").read_text())
    except (OSError, ValueError):
        pass
    try:
        last = (run_dir / "fleet.log").read_text(errors="replace").strip().splitlines()[-1]
        return int(last.rsplit("exit code", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def measure_point(point: Point, scenario: Scenario, facts: ModelFacts,
                  run_dir: Path) -> dict[str, Any]:
    """The point's CSV row from what its run left in `run_dir` (record, exit code)."""
    topo = load_topology(run_dir / "topology.yaml")
    source = topo.sources[0]
    service = scenario.profile.service_times(facts.task_mflops)
    code = fleet_exit_code(run_dir)
    try:
        record = json.loads((run_dir / "record.json").read_text())
    except (OSError, ValueError):
        metrics = {"valid": False, "invalid_reason": f"fleet exited with code "
                   f"{code} and no record; see {run_dir / 'fleet.log'}"}
    else:
        metrics = window_metrics(record, scenario.warmup, scenario.measure, facts.num_exits,
                                 source)
        if code != 0 and metrics.get("valid"):
            metrics["valid"] = False
            metrics["invalid_reason"] = f"fleet exited with code {code}"
    bound = bounds(point, metrics, service, facts.cut_bytes, facts.input_bytes,
                   len(topo.workers), len(topo.neighbors(source)),
                   scenario.profile.link_bandwidth)
    return csv_row(point, scenario, metrics, bound, facts.model, facts.dataset, str(run_dir))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit bench <scenario>",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", help="shipped scenario (quick, full: config/bench/) or a YAML")
    p.add_argument("--out", help="output folder (default: bench-results/<scenario>)")
    p.add_argument("--only", metavar="POLICY[,POLICY...]", help="run only these policies")
    p.add_argument("--experiment", choices=EXPERIMENTS, help="run only this experiment")
    p.add_argument("--list", action="store_true", help="print the points and exit")
    p.add_argument("--reanalyze", action="store_true",
                   help="run nothing: measure the records a run left in --out again (after "
                        "a change of the window or validity rules) and rewrite its CSV, "
                        "tables and plots")
    p.add_argument("--resume", action="store_true",
                   help="continue a run in --out that stopped (same scenario and filters): "
                        "a point whose fleet ended (runs/*/exit_code.txt) is measured again, "
                        "not run; delete a point's folder to run it again")
    p.add_argument("--point-timeout", type=float, default=300.0,
                   help="seconds after which a point's fleet is stopped")
    return p


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    try:
        scenario = load_scenario(a.scenario)
    except (ScenarioError, TopologyError) as exc:
        print(f"mdi-exit bench: {exc}", file=sys.stderr)
        return 2
    points = scenario.points
    if a.only:
        keep = {n.strip() for n in a.only.split(",")}
        points = [p for p in points if p.policy.name in keep]
    if a.experiment:
        points = [p for p in points if p.experiment == a.experiment]
    model, dataset, note = choose_model(scenario)
    facts = model_facts(model, dataset)
    service = scenario.profile.service_times(facts.task_mflops)
    each = STARTUP_SLACK + scenario.duration + 30
    print(f"scenario {scenario.name}: {len(points)} points, ~{each:.0f} s each; model {model} "
          f"on {dataset}" + (f" ({note})" if note else ""))
    print(f"device profile {scenario.profile.describe()}; service times per task "
          f"{', '.join(f'{s * 1e3:.0f}' for s in service)} ms; parameters "
          f"{scenario.parameters or 'as shipped'}")
    if a.list:
        for p in points:
            print("  " + p.label)
        return 0
    out_dir = Path(a.out or Path("bench-results") / scenario.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    csv_path = out_dir / "runs.csv"
    # Ctrl-C or SIGTERM (also where a shell started us with SIGINT ignored): stop the running
    # point's fleet through its own SIGINT, keep what was measured, run no further point.
    stop: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _f: stop.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rows = _run_points(a, points, scenario, facts, out_dir, csv_path, lambda: bool(stop))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        print(f"mdi-exit bench: stopped by signal {stop[0]} after {len(rows)} of "
              f"{len(points)} points (a point whose fleet was stopped early is invalid)",
              file=sys.stderr, flush=True)
    meta = {"scenario": scenario.name, "profile": asdict(scenario.profile),
            "parameters": scenario.parameters,
            "service_times": service, "model": model, "dataset": dataset, "note": note,
            "warmup": scenario.warmup, "measure": scenario.measure,
            "command": "mdi-exit bench " + " ".join(argv)}
    if a.reanalyze or a.resume:
        try:
            meta["command"] = json.loads((out_dir / "meta.json").read_text())["command"]
        except (OSError, ValueError, KeyError):
            pass  # a run that stopped before it wrote meta.json: this command stands
        meta["reanalyzed" if a.reanalyze else "resumed"] = "mdi-exit bench " + " ".join(argv)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    tables = markdown_tables(rows)
    (out_dir / "results.md").write_text(
        f"Device profile: {scenario.profile.describe()} (service times "
        f"{', '.join(f'{s * 1e3:.0f}' for s in service)} ms per task); model {model} on "
        f"{dataset}{' (' + note + ')' if note else ''}; window {scenario.measure:g} s after "
        f"{scenario.warmup:g} s of warm-up; parameters "
        f"{json.dumps(scenario.parameters) if scenario.parameters else 'as shipped'}."
        f"\n\n{tables}\n### Goals (issue #8)\n\n"
        f"{goals(rows)}"
        + (f"\n### Against the baselines at equal accuracy (same T_e)\n\n{baselines(rows)}"
           if baselines(rows) else ""))
    plots = plot(rows, out_dir, f"{scenario.name} ({scenario.profile.name})")
    print(tables)
    print(f"wrote {csv_path}, {out_dir / 'results.md'}, "
          + ", ".join(str(p) for p in plots))
    if stop:
        return 130
    return 0 if all(r["valid"] is True for r in rows) else 3


def _run_points(a: argparse.Namespace, points: Sequence[Point], scenario: Scenario,
                facts: ModelFacts, out_dir: Path, csv_path: Path,
                stopping: Callable[[], bool]) -> list[dict[str, Any]]:
    """Run (or with --reanalyze measure again) each point, one CSV row each, until
    `stopping()`."""
    rows: list[dict[str, Any]] = []
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for i, p in enumerate(points):
            if stopping():
                break
            ended = (point_dir(out_dir, p, i) / "exit_code.txt").exists()
            if a.reanalyze or (a.resume and ended):
                row = measure_point(p, scenario, facts, point_dir(out_dir, p, i))
            else:
                row = run_point(p, scenario, facts, out_dir, i, len(points), a.point_timeout,
                                stopping)
            rows.append(row)
            writer.writerow(row)
            f.flush()
            sys.stderr.write(progress(i + 1, len(points), p.label, 0, 1) + "\n")
            status = "ok" if row["valid"] is True else f"INVALID ({row['invalid_reason']})"
            print(f"  {p.label}: answered {row['answered_rate']}/s, accuracy "
                  f"{row['accuracy']}, p50 {row['latency_p50']} s, bound {row['bound']}/s "
                  f"-> {status}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
