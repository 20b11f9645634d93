"""Simulation scenarios (YAML) -> a `Simulator`, and the numbers of one run.

A scenario (docs/SIMULATION.md has the whole format)::

    name: mesh5-quick
    seed: 1
    duration: 38            # s of camera frames; then up to `drain` s to answer the rest
    warmup: 10              # the measured window: [warmup, warmup + measure]
    measure: 28
    drain: 30
    exits: docs/sim/mobilenet_v2_ee_cifar10_test.csv.gz   # `mdi-exit eval --per-image`
    thresholds: checkpoint  # the table's checkpoint thresholds, a number, or one per exit
    profile: {mflops_per_s: 150, link_delay: 0.005, link_bandwidth: 2.5e6}
    topology: mesh5         # a topology YAML / shipped name, or {kind: grid, rows: 4, ...}
    arrivals: {rate: 30, poisson: false}
    parameters: {robot1.queue_thresholds: [2, 6], '*.offload_first_task': false}
    sim: {report_latency: 0.001, report_loss: 0.0, tick_period: 0.05, frame_seconds: 0}
    churn:
      - {at: 20, leave: robot3}
      - {at: 30, join: robot3}
      - {at: 25, link_down: [robot1, robot2], for: 5}
    sweep: {topology.n: [10, 50], 'parameters.*.offload_first_task': [false, true]}

`parameters` use the nodes' parameter names (mdi_exit_ros/params.py), for every worker (`*.name`
or `name`) or one (`robot1.name`), as `mdi-exit bench`'s `parameters` do.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from mdi_exit_ros.topology import Topology

from . import topologies
from .engine import Arrivals, SimParams, Simulator, WorkerConfig
from .exits import ExitTable

TOP_KEYS = {"name", "description", "seed", "duration", "warmup", "measure", "drain", "exits",
            "thresholds", "profile", "model", "topology", "arrivals", "parameters", "sim",
            "churn", "sweep"}
REPO = Path(__file__).resolve().parents[2]  # a checkout: docs/sim/ holds the exit tables
CONFIG_FIELDS = {f.name for f in fields(WorkerConfig)} - {"service_times"}


class SimScenarioError(ValueError):
    """A scenario is malformed; the message says where."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank q-quantile, as `mdi-exit bench` measures its windows."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def expand_sweep(data: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(overrides, scenario) for every combination of the `sweep` values (one without)."""
    sweep = data.get("sweep") or {}
    if not isinstance(sweep, Mapping):
        raise SimScenarioError("sweep must map dotted keys to lists of values")
    keys = list(sweep)
    out = []
    for combo in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
        sc = copy.deepcopy({k: v for k, v in data.items() if k != "sweep"})
        over = dict(zip(keys, combo, strict=True))
        for key, value in over.items():
            set_dotted(sc, key, value)
        out.append((over, sc))
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``topology.n`` -> data["topology"]["n"]; ``parameters.<rest>`` keeps <rest> whole."""
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    if head == "parameters":
        data.setdefault("parameters", {})[rest] = value
        return
    node = data.setdefault(head, {})
    if not isinstance(node, dict):
        raise SimScenarioError(f"sweep key {key!r}: {head} is not a mapping")
    set_dotted(node, rest, value)


def _exit_table(spec: Any, base: Path, seed: int) -> ExitTable:
    if isinstance(spec, Mapping):
        return ExitTable.synthetic(int(spec.get("num_exits", 1)), int(spec.get("images", 1000)),
                                   seed, never_exit=bool(spec.get("never_exit", False)))
    if not isinstance(spec, str):
        raise SimScenarioError("exits: a per-image table path or {synthetic mapping}")
    path = Path(spec)
    for cand in (path, base / path, Path.cwd() / path, REPO / path):
        if cand.is_file():
            return ExitTable.load(cand)
    raise SimScenarioError(f"exits: {spec} not found (make it with `mdi-exit eval "
                           f"--per-image`, docs/SIMULATION.md)")


def _worker_params(params: Mapping[str, Any], topo: Topology) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {w: {} for w in topo.workers}
    # '*' first, then per worker: the more specific wins
    for key, value in sorted(params.items(), key=lambda kv: "." in kv[0] and
                             not kv[0].startswith("*.")):
        who, _, name = key.rpartition(".")
        if name not in CONFIG_FIELDS:
            raise SimScenarioError(f"parameters: {name!r} is not simulated (one of "
                                   f"{', '.join(sorted(CONFIG_FIELDS))})")
        targets = topo.workers if who in ("", "*") else [who]
        for w in targets:
            if w not in out:
                raise SimScenarioError(f"parameters: {who!r} is not a worker")
            out[w][name] = tuple(value) if isinstance(value, list) else value
    return out


def build(data: Mapping[str, Any], base: Path = Path(".")) -> tuple[Simulator, dict[str, Any]]:
    """A ready Simulator and the run's facts (window, topology, service times...)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise SimScenarioError(f"unknown keys {sorted(unknown)}")
    seed = int(data.get("seed", 1))
    table = _exit_table(data.get("exits", {"num_exits": 1, "never_exit": True}), base, seed)
    k = table.num_exits
    model = {**table.meta, **(data.get("model") or {})}
    prof = data.get("profile") or {}
    if "service_times" in prof:
        service = [float(s) for s in prof["service_times"]]
    elif "mflops_per_s" in prof and model.get("task_mflops"):
        service = [round(m / float(prof["mflops_per_s"]), 6) for m in model["task_mflops"]]
    else:
        raise SimScenarioError("profile needs service_times, or mflops_per_s with the "
                               "model's task_mflops (from the exits table or `model`)")
    if len(service) != k:
        raise SimScenarioError(f"{len(service)} service times for {k} exits")
    th = data.get("thresholds", "checkpoint")
    if th == "checkpoint":
        thresholds = tuple(model.get("thresholds") or [1.0] * k)
    elif isinstance(th, (int, float)):
        thresholds = (float(th),) * k
    else:
        thresholds = tuple(float(t) for t in th)
    try:
        topo = topologies.resolve(data.get("topology", {"kind": "local"}), seed)
    except ValueError as exc:
        raise SimScenarioError(f"topology: {exc}") from exc
    per_worker = _worker_params(data.get("parameters") or {}, topo)
    link = {"link_delay": float(prof.get("link_delay", 0.0)),
            "link_bandwidth": float(prof.get("link_bandwidth", math.inf))}
    configs = {w: WorkerConfig(service_times=service, **{**link, **topo.parameters.get(w, {}),
                                                         **per_worker[w]})
               for w in topo.workers}
    arr = data.get("arrivals") or {}
    rate = float(arr.get("rate", 10.0))
    duration = float(data.get("duration", 60.0))
    sources = {s: Arrivals(rate, bool(arr.get("poisson", False)), float(arr.get("start", 0.0)),
                           stop=duration) for s in topo.sources}
    simp = SimParams(**(data.get("sim") or {}))
    sim = Simulator(configs, {w: topo.neighbors(w) for w in topo.workers}, sources, table,
                    thresholds, cut_bytes=[int(b) for b in model.get("cut_bytes") or [0] * k],
                    input_bytes=int(model.get("input_bytes", 0)), seed=seed, params=simp)
    for ev in data.get("churn") or []:
        at = float(ev["at"])
        if "leave" in ev:
            if ev["leave"] in topo.sources:
                raise SimScenarioError("churn: a source cannot leave (its frames would go "
                                       "with it)")
            sim.leave(str(ev["leave"]), at)
        elif "join" in ev:
            wid = str(ev["join"])
            nb = ev.get("neighbors")
            cfg = None if wid in configs else WorkerConfig(service_times=service, **link)
            sim.join(wid, at, list(nb) if nb is not None else None, cfg)
        elif "link_down" in ev:
            a, b = ev["link_down"]
            sim.link_loss(str(a), str(b), at, float(ev.get("for", 1.0)))
        else:
            raise SimScenarioError(f"churn event {ev!r}: leave, join or link_down")
    warmup = float(data.get("warmup", min(10.0, duration / 4)))
    measure = float(data.get("measure", duration - warmup))
    facts = {"name": data.get("name", "sim"), "seed": seed, "duration": duration,
             "warmup": warmup, "measure": measure, "drain": float(data.get("drain", 30.0)),
             "topology": topo.name, "workers": len(topo.workers), "sources": len(topo.sources),
             "links": sum(len(topo.neighbors(w)) for w in topo.workers),
             "components": topologies.components(topo), "service_times": service,
             "thresholds": list(thresholds), "model": model.get("model", "?"),
             "offered_rate": rate * len(sources),
             "offload_first_task": configs[topo.sources[0]].offload_first_task}
    return sim, facts


def metrics(sim: Simulator, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The window's numbers, as `mdi-exit bench` measures them, plus conservation counts."""
    t0 = facts["warmup"]
    t1 = t0 + facts["measure"]
    admitted = sum(1 for s in sim.sources.values() for t in s.admit_times if t0 <= t <= t1)
    inside = [e for e in sim.ends if t0 <= e.answered_at <= t1]
    answered = [e for e in inside if e.exit_index > 0]
    scored = [e.correct for e in answered if e.correct is not None]
    lat = [e.answered_at - e.admitted_at for e in answered]
    exits = [0] * sim.k
    for e in answered:
        exits[e.exit_index - 1] += 1
    counters = [s.frames.counters() for s in sim.sources.values()]
    total_admitted = sum(c["admitted"] for c in counters)
    total_tasks = sum(w.tasks_run for w in sim.workers.values())
    src_tasks = sum(sim.workers[s].tasks_run for s in sim.sources)
    return {
        "admitted_rate": admitted / facts["measure"],
        "answered_rate": len(answered) / facts["measure"],
        "accuracy": sum(scored) / len(scored) if scored else None,
        "latency_p50": percentile(lat, 0.5), "latency_p95": percentile(lat, 0.95),
        "results": len(answered), "expired_in_window": len(inside) - len(answered),
        "exit_distribution": [round(n / len(answered), 4) for n in exits] if answered else [],
        "admitted": total_admitted,
        "answered": sum(c["completed"] for c in counters),
        "pending": sum(c["pending"] for c in counters),
        "expired": sum(s.expired for s in sim.sources.values()),
        "dropped": sum(c["dropped_at_admission"] for c in counters),
        "readmitted": sum(c["readmitted"] for c in counters),
        "duplicates": sim.duplicates,
        "tasks": total_tasks,
        "tasks_share_source": src_tasks / total_tasks if total_tasks else None,
        "utilisation": (sum(w.busy_seconds for w in sim.workers.values())
                        / (len(sim.workers) * max(sim.now, 1e-9))),
        "sim_time": sim.now, "events": sim.events,
    }
