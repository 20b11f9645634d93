"""`mdi-exit sim --bench <scenario>`: simulate the points of a `mdi-exit bench` scenario.

Each bench point (a policy at a threshold or a Poisson rate, config/bench/*.yaml) becomes the
simulation scenario that runs the same fleet: the same topology, device profile (service
times from the model's task MFLOPs), links, node parameters (the bench's own
`fleet_overrides`: distribution and pipeline chain, admission mode, `initial_interval:
auto`, first-task offloading, the scenario's own parameters) and window. `--compare
runs.csv` (a bench run's CSV) then puts the simulated and the measured numbers side by side:
the validation table of docs/SIMULATION.md.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mdi_exit_ros.tools.bench_fleet import Point, Scenario, fleet_overrides
from mdi_exit_ros.tools.fleet_spec import parse_override
from mdi_exit_ros.topology import load_topology, resolve_topology

# What the window of a bench point sees: frames from its start (the camera), warm-up, window.
TAIL = 2.0  # s of frames after the window (the real fleet runs on until it is stopped)
COMPARED = (("admitted_rate", "admitted /s"), ("answered_rate", "answered /s"),
            ("accuracy", "accuracy"), ("latency_p50", "p50 s"))
TOLERANCE = 0.15  # the goal: simulated within 15 % of measured
# fleet_overrides' settings for every robot that are the simulation's profile, and those
# with nothing to simulate (torch threads; the simulator seeds its own coins)
PROFILE_PARAMS = ("service_times", "link_delay", "link_bandwidth")
FLEET_ONLY = ("torch_threads", "seed")


def point_scenario(point: Point, bench: Scenario, exits: str | dict[str, Any],
                   task_mflops: list[float]) -> dict[str, Any]:
    """The simulation scenario of one bench point: the node parameters are the bench's own
    `fleet_overrides` (policy, distribution and pipeline chain, admission mode, first mu,
    device profile, the scenario's parameters), read back from its `--set` strings."""
    service = bench.profile.service_times(task_mflops)
    workers = load_topology(resolve_topology(point.policy.topology)).workers
    profile: dict[str, Any] = {}
    thresholds: str | float = "checkpoint"
    params: dict[str, Any] = {}
    for text in fleet_overrides(point, bench, service, robots=len(workers), workers=workers):
        o = parse_override(text)
        if o.worker == "*" and o.name in PROFILE_PARAMS:
            profile[o.name] = o.value
        elif o.worker == "*" and o.name == "exit_threshold":
            thresholds = float(o.value)
        elif o.name not in FLEET_ONLY:
            params[f"{o.worker}.{o.name}"] = o.value
    return {
        "name": f"{bench.name}: {point.label}", "seed": bench.seed,
        "duration": bench.warmup + bench.measure + TAIL, "warmup": bench.warmup,
        "measure": bench.measure, "drain": 0.0, "exits": exits,
        "thresholds": thresholds, "profile": profile,
        "topology": point.policy.topology,
        "arrivals": {"rate": point.rate, "poisson": point.experiment == "poisson"},
        "parameters": params,
        # slow start's floor of mu: the source's service times under the exit mix, as a
        # node whose service_times are set (every bench robot) computes it
    }


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def read_measured(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """A bench runs.csv by (experiment, policy, threshold or rate)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["experiment"], r["policy"],
                 r["threshold"] if r["experiment"] == "fixed" else f"{float(r['offered_rate']):g}"):
                r for r in csv.DictReader(f)}


def point_key(point: Point) -> tuple[str, str, str]:
    what = str(point.threshold) if point.experiment == "fixed" else f"{point.rate:g}"
    return point.experiment, point.policy.name, what


def compare_table(rows: list[tuple[Point, Mapping[str, Any], Mapping[str, Any] | None]]) -> str:
    """Markdown: simulated vs measured per point and quantity, with the relative error."""
    lines = ["| point | " + " | ".join(f"{name} sim (± sd over seeds) / real (err)"
                                      for _, name in COMPARED)
             + " | within 15 % |", "|" + "---|" * (len(COMPARED) + 2)]
    for point, sim, real in rows:
        cells, ok = [], True
        for key, _ in COMPARED:
            s = _num(sim.get(key))
            r = _num(real.get(key)) if real else None
            if s is None or r is None:
                sims, reals = ("-" if v is None else f"{v:.3g}" for v in (s, r))
                cells.append(f"{sims} / {reals}")
                ok = False
                continue
            err = (s - r) / r if r else math.inf
            ok = ok and abs(err) <= TOLERANCE
            sd = _num(sim.get(f"{key}_sd"))
            spread = "" if sd is None else f" ± {sd:.2g}"
            cells.append(f"{s:.3g}{spread} / {r:.3g} ({err:+.0%})")
        valid = real is not None and str(real.get("valid")) in ("True", "true", "1")
        lines.append(f"| {point.label} | " + " | ".join(cells) + " | "
                     + ("yes" if ok and valid else "no" if valid else
                        "not measured" if real is None else "real point invalid")
                     + " |")
    return "\n".join(lines) + "\n"
