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
    split: none             # components: each connected component its own run (--jobs N)

`parameters` use the nodes' parameter names (mdi_exit_ros/params.py), for every worker (`*.name`
or `name`, joiners included) or one (`robot1.name`), as `mdi-exit bench`'s `parameters` do.
`validate` checks all of it before anything runs (`build` and `expand_sweep` call it): node
parameters as the nodes check them, from the parameter table.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mdi_exit_ros import params as node_params
from mdi_exit_ros.core.names import is_worker_id
from mdi_exit_ros.tools.bench_fleet import percentile
from mdi_exit_ros.topology import Topology

from . import topologies
from .engine import Arrivals, SimParams, Simulator, WorkerConfig
from .exits import ExitTable

TOP_KEYS = {"name", "description", "seed", "duration", "warmup", "measure", "drain", "exits",
            "thresholds", "profile", "model", "topology", "arrivals", "parameters", "sim",
            "churn", "sweep", "split"}
REPO = Path(__file__).resolve().parents[2]  # a checkout: docs/sim/ holds the exit tables
CONFIG_FIELDS = {f.name for f in fields(WorkerConfig)}
# Node parameters that have nothing to act on in a simulated robot, and why.
NOT_SIMULATED = {
    "compute_slowdown": "on a node it scales the measured compute only where service_times "
                        "is unset, and a simulated robot always has service times: give a "
                        "slower robot its own '<robot>.service_times'",
}
PROFILE_KEYS = {"name", "service_times", "mflops_per_s", "link_delay", "link_bandwidth"}
SYNTHETIC_KEYS = {"num_exits", "images", "never_exit"}
ARRIVAL_KEYS = {"rate", "poisson", "start"}
CHURN_KEYS = {"at", "leave", "join", "neighbors", "link_down", "for"}
SOURCE_REPORTS = ("all", "neighbors")
# the simulator's defaults, read from the dataclass's fields (under --compiled SimParams is a
# native class, whose class attributes are descriptors, not the defaults)
SIM_DEFAULTS = {f.name: f.default for f in fields(SimParams)}
# `split: components`: each connected component of the fleet is its own run (they exchange
# nothing), run in parallel by `mdi-exit sim --jobs N`; component i draws from this seed
SPLITS = ("none", "components")
PART_SEED_STRIDE = 1_000_003


def part_seed(seed: int, part: int) -> int:
    """The seed of component ``part`` of a split run (the scenario's own for the first, so a
    connected fleet runs alike split or not)."""
    return seed + PART_SEED_STRIDE * part


class SimScenarioError(ValueError):
    """A scenario is malformed; the message says where."""


# -- validation -------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(value: Any, key: str, *, gt: float | None = None, ge: float | None = None,
            le: float | None = None, integer: bool = False) -> float:
    """``value`` as a finite number within the bounds, or a SimScenarioError naming ``key``."""
    span = " and ".join(f"{op} {b:g}" for op, b in ((">", gt), (">=", ge), ("<=", le))
                        if b is not None)
    what = ("an integer" if integer else "a number") + (f" {span}" if span else "")
    ok = (isinstance(value, int) and not isinstance(value, bool)) if integer \
        else _is_number(value) and math.isfinite(value)
    if not ok or (gt is not None and not value > gt) or (ge is not None and not value >= ge) \
            or (le is not None and not value <= le):
        raise SimScenarioError(f"{key}: {what}; got {value!r}")
    return value


def _mapping(value: Any, key: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SimScenarioError(f"{key}: a mapping; got {value!r}")
    unknown = set(value) - allowed if allowed is not None else set()
    if unknown:
        raise SimScenarioError(f"{key}: unknown keys {sorted(map(str, unknown))} (known: "
                               f"{', '.join(sorted(allowed or ()))})")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SimScenarioError(f"{key}: true or false; got {value!r}")
    return value


def param_problem(name: str, value: Any, current: Mapping[str, Any]) -> str | None:
    """Why a node parameter's value is refused: its type and range from the parameter table
    (what rclpy's descriptor enforces on a node) and the table's own `check` (choices, pairs
    such as alpha > beta); None when the node would take it."""
    spec = node_params.SPECS[name]
    if spec.choices:
        pass  # node_params.check names the choices
    elif isinstance(spec.default, bool):
        if not isinstance(value, bool):
            return f"{name} must be true or false; got {value!r}"
    elif node_params.is_double(spec) or node_params.is_integer(spec):
        integer = node_params.is_integer(spec)
        if not (isinstance(value, int) if integer else _is_number(value)) \
                or isinstance(value, bool):
            return f"{name} must be {'an integer' if integer else 'a number'}; got {value!r}"
        if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
            return f"{name} must lie in [{spec.low:g}, {spec.high:g}]; got {value!r}"
    elif isinstance(spec.default, list) or spec.default in (node_params.UNSET_DOUBLES,
                                                             node_params.UNSET_STRINGS):
        strings = spec.default == node_params.UNSET_STRINGS or (
            isinstance(spec.default, list) and all(isinstance(v, str) for v in spec.default))
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, str) if strings else _is_number(v) for v in value):
            return (f"{name} must be a list of {'names' if strings else 'numbers'}; "
                    f"got {value!r}")
    current = {k: list(v) if isinstance(v, tuple) else v for k, v in current.items()}
    if current.get("pipeline_chain") == []:
        current["pipeline_chain"] = None  # the nodes' unset
    value = list(value) if isinstance(value, tuple) else value
    return node_params.check(name, value, current)


@dataclass
class Checked:
    """What `validate` resolved: the topology, and each worker's parameter overrides (the
    topology's and the scenario's; joiners included)."""

    topology: Topology
    parameters: dict[str, dict[str, Any]]


def _exit_path(spec: str, base: Path) -> Path:
    path = Path(spec)
    for cand in (path, base / path, Path.cwd() / path, REPO / path):
        if cand.is_file():
            return cand
    raise SimScenarioError(f"exits: {spec} not found (make it with `mdi-exit eval "
                           f"--per-image`, docs/SIMULATION.md)")


def _check_churn(churn: Any, topo: Topology) -> list[str]:
    """Every churn event well-formed and about workers that exist when it fires (in time
    order); the new workers that join, in that order."""
    if churn is None:
        return []
    if not isinstance(churn, list):
        raise SimScenarioError(f"churn: a list of events; got {churn!r}")
    for n, ev in enumerate(churn):
        ev = _mapping(ev, f"churn[{n}]", CHURN_KEYS)
        if "at" not in ev:
            raise SimScenarioError(f"churn[{n}]: needs 'at' (s)")
        _number(ev["at"], f"churn[{n}].at", ge=0)
    known = set(topo.workers)
    joiners: list[str] = []
    for n in sorted(range(len(churn)), key=lambda n: (churn[n]["at"], n)):
        ev, where = churn[n], f"churn[{n}]"
        kinds = [k for k in ("leave", "join", "link_down") if k in ev]
        if len(kinds) != 1:
            raise SimScenarioError(f"{where}: exactly one of leave, join or link_down; got "
                                   f"{kinds or 'none'}")
        kind = kinds[0]
        if kind != "join" and "neighbors" in ev:
            raise SimScenarioError(f"{where}: neighbors belong to a join")
        if kind != "link_down" and "for" in ev:
            raise SimScenarioError(f"{where}: 'for' belongs to a link_down")
        if kind == "leave":
            if ev["leave"] in topo.sources:
                raise SimScenarioError(f"{where}: a source cannot leave (its frames would go "
                                       "with it)")
            if ev["leave"] not in known:
                raise SimScenarioError(f"{where}.leave: {ev['leave']!r} is not a worker at "
                                       f"{ev['at']:g} s")
        elif kind == "join":
            wid, nb = ev["join"], ev.get("neighbors")
            if not is_worker_id(wid):
                raise SimScenarioError(f"{where}.join: a worker id; got {wid!r}")
            if wid in known:
                if nb is not None:
                    raise SimScenarioError(f"{where}.neighbors: only for a new worker ({wid} "
                                           "keeps its links)")
                continue
            if not isinstance(nb, list) or not nb or any(m not in known for m in nb):
                raise SimScenarioError(f"{where}.neighbors: new worker {wid} needs a list of "
                                       f"its neighbours among the workers at {ev['at']:g} s; "
                                       f"got {nb!r}")
            known.add(wid)
            joiners.append(wid)
        else:
            pair = ev["link_down"]
            if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1] \
                    or any(m not in known for m in pair):
                raise SimScenarioError(f"{where}.link_down: two different workers [a, b]; "
                                       f"got {pair!r}")
            _number(ev.get("for", 1.0), f"{where}.for", gt=0)
    return joiners


def _worker_params(params: Mapping[str, Any], topo: Topology,
                   joiners: list[str]) -> dict[str, dict[str, Any]]:
    """Each worker's overrides: the topology's, then '*' / bare names, then its own."""
    everyone = [*topo.workers, *joiners]
    out: dict[str, dict[str, Any]] = {w: {} for w in everyone}
    for w, given in topo.parameters.items():
        for name, value in given.items():
            if name not in CONFIG_FIELDS:
                raise SimScenarioError(f"topology parameters of {w}: {name!r} is not "
                                       "simulated")
            out[w][name] = value
    # '*' first, then per worker: the more specific wins
    for key, value in sorted(params.items(), key=lambda kv: "." in kv[0] and
                             not kv[0].startswith("*.")):
        if not isinstance(key, str):
            raise SimScenarioError(f"parameters: {key!r} is not a parameter name")
        who, _, name = key.rpartition(".")
        if name in NOT_SIMULATED:
            raise SimScenarioError(f"parameters.{key}: not simulated: {NOT_SIMULATED[name]}")
        if name not in CONFIG_FIELDS:
            raise SimScenarioError(f"parameters.{key}: {name!r} is not simulated (one of "
                                   f"{', '.join(sorted(CONFIG_FIELDS))})")
        targets = everyone if who in ("", "*") else [who]
        for w in targets:
            if w not in out:
                raise SimScenarioError(f"parameters.{key}: {who!r} is not a worker (nor one "
                                       "that joins)")
            out[w][name] = value
    return out


def _check_params(per_worker: Mapping[str, Mapping[str, Any]], topo: Topology,
                  joiners: list[str]) -> None:
    """Each worker's values as its node would check them (`param_problem`)."""
    defaults = {f.name: f.default for f in fields(WorkerConfig) if f.name != "service_times"}
    everyone = set(topo.workers) | set(joiners)
    for w, given in per_worker.items():
        current = {**defaults, **given}
        for name, value in given.items():
            problem = param_problem(name, value, current)
            if problem:
                raise SimScenarioError(f"parameters of {w}: {problem}")
        chain = current.get("pipeline_chain") or ()
        if current.get("distribution") == "pipeline" and any(m not in everyone for m in chain):
            raise SimScenarioError(f"parameters of {w}: pipeline_chain {list(chain)} names "
                                   "workers that are not in the topology")


def validate(data: Any, base: Path = Path(".")) -> Checked:
    """Check a whole scenario before anything runs: every key, its type and its allowed
    range (node parameters as the nodes check them, from mdi_exit_ros/params.py), the
    churn's workers and the sweep's shape. A SimScenarioError names the key and what it
    allows."""
    if not isinstance(data, Mapping):
        raise SimScenarioError(f"a scenario is a mapping; got {type(data).__name__}")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise SimScenarioError(f"unknown keys {sorted(map(str, unknown))} (known: "
                               f"{', '.join(sorted(TOP_KEYS))})")
    seed = _number(data.get("seed", 1), "seed", integer=True)
    duration = _number(data.get("duration", 60.0), "duration", gt=0)
    warmup = _number(data.get("warmup", min(10.0, duration / 4)), "warmup", ge=0)
    if "measure" in data:
        _number(data["measure"], "measure", gt=0)
    elif not duration > warmup:
        raise SimScenarioError(f"measure: none given, and duration ({duration:g} s) leaves "
                               f"no window after warmup ({warmup:g} s)")
    _number(data.get("drain", 30.0), "drain", ge=0)
    exits = data.get("exits", {"num_exits": 1, "never_exit": True})
    if isinstance(exits, str):
        _exit_path(exits, base)
    else:
        exits = _mapping(exits, "exits", SYNTHETIC_KEYS)
        _number(exits.get("num_exits", 1), "exits.num_exits", ge=1, integer=True)
        _number(exits.get("images", 1000), "exits.images", ge=1, integer=True)
        _bool(exits.get("never_exit", False), "exits.never_exit")
    th = data.get("thresholds", "checkpoint")
    if th != "checkpoint":
        values = th if isinstance(th, list) else [th]
        if not values or not all(_is_number(t) and 0.0 <= t <= 1.0 for t in values):
            raise SimScenarioError(f"thresholds: 'checkpoint', a number in [0, 1] or a list "
                                   f"of them (one per exit); got {th!r}")
    prof = _mapping(data.get("profile"), "profile", PROFILE_KEYS)
    for name in ("service_times", "link_delay", "link_bandwidth"):
        if name in prof:
            problem = param_problem(name, prof[name], {})
            if problem:
                raise SimScenarioError(f"profile: {problem}")
    if "mflops_per_s" in prof:
        _number(prof["mflops_per_s"], "profile.mflops_per_s", gt=0)
    model = _mapping(data.get("model"), "model")
    for name in ("cut_bytes", "task_mflops"):
        if name in model and (not isinstance(model[name], list)
                              or not all(_is_number(v) and v >= 0 for v in model[name])):
            raise SimScenarioError(f"model.{name}: a list of numbers >= 0; got "
                                   f"{model[name]!r}")
    if "input_bytes" in model:
        _number(model["input_bytes"], "model.input_bytes", ge=0, integer=True)
    arr = _mapping(data.get("arrivals"), "arrivals", ARRIVAL_KEYS)
    _number(arr.get("rate", 10.0), "arrivals.rate", gt=0)
    _bool(arr.get("poisson", False), "arrivals.poisson")
    _number(arr.get("start", 0.0), "arrivals.start", ge=0)
    sim = _mapping(data.get("sim"), "sim", {f.name for f in fields(SimParams)})
    for f in fields(SimParams):
        if f.name not in sim:
            continue
        key, value = f"sim.{f.name}", sim[f.name]
        if f.name == "source_reports":
            if value not in SOURCE_REPORTS:
                raise SimScenarioError(f"{key}: one of {', '.join(SOURCE_REPORTS)}; got "
                                       f"{value!r}")
        elif f.name == "report_loss":
            _number(value, key, ge=0, le=1)
        elif f.name == "tick_period":
            _number(value, key, gt=0)
        elif f.name == "frame_seconds" and value is None:
            pass
        elif isinstance(f.default, bool):
            _bool(value, key)
        else:  # seconds: report_latency, task_overhead, frame_seconds
            _number(value, key, ge=0)
    try:
        topo = topologies.resolve(data.get("topology", {"kind": "local"}), seed)
    except (ValueError, TypeError) as exc:
        raise SimScenarioError(f"topology: {exc}") from exc
    joiners = _check_churn(data.get("churn"), topo)
    split = data.get("split", "none")
    if split not in SPLITS:
        raise SimScenarioError(f"split: one of {', '.join(SPLITS)}; got {split!r}")
    if split == "components" and data.get("churn"):
        raise SimScenarioError("split: components is not for a scenario with churn (its "
                               "events are not routed to their component, and a robot that "
                               "joins may connect two)")
    if split == "components" and sim.get("source_reports",
                                         SIM_DEFAULTS["source_reports"]) != "neighbors":
        raise SimScenarioError("split: components needs sim.source_reports: neighbors (with "
                               "'all' a source's reports reach every component, and each "
                               "one wakes Alg. 2 where it lands)")
    per_worker = _worker_params(_mapping(data.get("parameters"), "parameters"), topo, joiners)
    _check_params(per_worker, topo, joiners)
    _check_sweep(data.get("sweep"))
    return Checked(topo, per_worker)


def _check_sweep(sweep: Any) -> dict[str, list[Any]]:
    sweep = _mapping(sweep, "sweep")
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise SimScenarioError(f"sweep.{key}: a non-empty list of values; got {values!r}")
    return dict(sweep)


def expand_sweep(data: Mapping[str, Any],
                 base: Path = Path(".")) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(overrides, scenario) for every combination of the `sweep` values (one without),
    each validated: a bad value anywhere stops the sweep before it runs."""
    if not isinstance(data, Mapping):
        raise SimScenarioError(f"a scenario is a mapping; got {type(data).__name__}")
    sweep = _check_sweep(data.get("sweep"))
    keys = list(sweep)
    out = []
    for combo in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
        sc = copy.deepcopy({k: v for k, v in data.items() if k != "sweep"})
        over = dict(zip(keys, combo, strict=True))
        for key, value in over.items():
            set_dotted(sc, key, value)
        try:
            validate(sc, base)
        except SimScenarioError as exc:
            label = ", ".join(f"{k}={v}" for k, v in over.items())
            raise SimScenarioError(f"{label}: {exc}" if label else str(exc)) from exc
        out.append((over, sc))
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``topology.n`` -> data["topology"]["n"]; ``parameters.<rest>`` keeps <rest> whole."""
    head, _, rest = key.partition(".")
    if not head:
        raise SimScenarioError(f"{key!r}: not a dotted scenario key")
    if not rest:
        data[head] = value
        return
    if head == "parameters":
        params = data.setdefault("parameters", {})
        if not isinstance(params, dict):
            raise SimScenarioError(f"{key}: parameters is not a mapping")
        params[rest] = value
        return
    node = data.setdefault(head, {})
    if not isinstance(node, dict):
        raise SimScenarioError(f"{key}: {head} is {node!r}, not a mapping")
    set_dotted(node, rest, value)


def _exit_table(spec: Any, base: Path, seed: int) -> ExitTable:
    if isinstance(spec, Mapping):
        return ExitTable.synthetic(int(spec.get("num_exits", 1)), int(spec.get("images", 1000)),
                                   seed, never_exit=bool(spec.get("never_exit", False)))
    path = _exit_path(spec, base)
    try:
        return ExitTable.load(path)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise SimScenarioError(f"exits: {path}: {exc}") from exc


def parts(data: Mapping[str, Any], base: Path = Path(".")) -> int:
    """How many runs the scenario is (`split`): its components, or 1."""
    checked = validate(data, base)
    if data.get("split", "none") == "components":
        return topologies.components(checked.topology)
    return 1


def build(data: Mapping[str, Any], base: Path = Path("."),
          part: int | None = None) -> tuple[Simulator, dict[str, Any]]:
    """A ready Simulator and the run's facts (window, topology, service times...).

    ``part``: only that connected component of the fleet (`topologies.component_lists`), on
    its own seed (`part_seed`); the facts still describe the whole scenario."""
    checked = validate(data, base)
    topo = checked.topology
    seed = int(data.get("seed", 1))
    members = topo.workers
    if part is not None:
        members = topologies.component_lists(topo)[part]
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
        raise SimScenarioError(f"profile: {len(service)} service times for {k} exits")
    th = data.get("thresholds", "checkpoint")
    if th == "checkpoint":
        thresholds = tuple(model.get("thresholds") or [1.0] * k)
    elif isinstance(th, (int, float)):
        thresholds = (float(th),) * k
    else:
        thresholds = tuple(float(t) for t in th)
    if len(thresholds) != k:
        raise SimScenarioError(f"thresholds: {len(thresholds)} values for a model with {k} "
                               "exits")
    link = {"link_delay": float(prof.get("link_delay", 0.0)),
            "link_bandwidth": float(prof.get("link_bandwidth", math.inf))}

    def config(w: str) -> WorkerConfig:
        given = {n: tuple(v) if isinstance(v, list) else v
                 for n, v in checked.parameters[w].items()}
        cfg = WorkerConfig(**{"service_times": service, **link, **given})
        if len(cfg.service_times) != k:
            raise SimScenarioError(f"parameters of {w}: {len(cfg.service_times)} service "
                                   f"times for {k} exits")
        return cfg

    configs = {w: config(w) for w in members}
    arr = data.get("arrivals") or {}
    rate = float(arr.get("rate", 10.0))
    duration = float(data.get("duration", 60.0))
    sources = {s: Arrivals(rate, bool(arr.get("poisson", False)), float(arr.get("start", 0.0)),
                           stop=duration) for s in topo.sources if s in configs}
    simp = SimParams(**(data.get("sim") or {}))
    sim = Simulator(configs, {w: topo.neighbors(w) for w in members}, sources, table,
                    thresholds, cut_bytes=[int(b) for b in model.get("cut_bytes") or [0] * k],
                    input_bytes=int(model.get("input_bytes", 0)),
                    seed=seed if part is None else part_seed(seed, part), params=simp)
    for ev in data.get("churn") or []:
        at = float(ev["at"])
        if "leave" in ev:
            sim.leave(str(ev["leave"]), at)
        elif "join" in ev:
            wid = str(ev["join"])
            nb = ev.get("neighbors")
            # a new worker: the scenario's '*' / bare-name parameters and its own
            cfg = None if wid in configs else config(wid)
            sim.join(wid, at, list(nb) if nb is not None else None, cfg)
        else:
            a, b = ev["link_down"]
            sim.link_loss(str(a), str(b), at, float(ev.get("for", 1.0)))
    warmup = float(data.get("warmup", min(10.0, duration / 4)))
    measure = float(data.get("measure", duration - warmup))
    facts = {"name": data.get("name", "sim"), "seed": seed, "duration": duration,
             "warmup": warmup, "measure": measure, "drain": float(data.get("drain", 30.0)),
             "topology": topo.name, "workers": len(topo.workers), "sources": len(topo.sources),
             "links": sum(len(topo.neighbors(w)) for w in topo.workers),
             "components": topologies.components(topo), "service_times": service,
             "thresholds": list(thresholds), "model": model.get("model", "?"),
             "offered_rate": rate * len(topo.sources),
             "offload_first_task": config(topo.sources[0]).offload_first_task}
    return sim, facts


def tally(sim: Simulator, facts: Mapping[str, Any]) -> dict[str, Any]:
    """One run's raw counts for `metrics_of` (several when a run is split in parts)."""
    t0 = facts["warmup"]
    t1 = t0 + facts["measure"]
    inside = [e for e in sim.ends if t0 <= e.answered_at <= t1]
    answered = [e for e in inside if e.exit_index > 0]
    exits = [0] * sim.k
    for e in answered:
        exits[e.exit_index - 1] += 1
    counters = [s.frames.counters() for s in sim.sources.values()]
    return {
        "admitted_in_window": sum(1 for s in sim.sources.values() for t in s.admit_times
                                  if t0 <= t <= t1),
        "inside": len(inside),
        "latencies": [e.answered_at - e.admitted_at for e in answered],
        "scored": [e.correct for e in answered if e.correct is not None],
        "exits": exits,
        **{key: sum(c[key] for c in counters)
           for key in ("admitted", "completed", "pending", "dropped_at_admission",
                       "readmitted")},
        "expired": sum(s.expired for s in sim.sources.values()),
        "duplicates": sim.duplicates,
        "tasks": sum(w.tasks_run for w in sim.workers.values()),
        "source_tasks": sum(sim.workers[s].tasks_run for s in sim.sources),
        "busy": sum(w.busy_seconds for w in sim.workers.values()),
        "workers": len(sim.workers),
        "sim_time": sim.now, "events": sim.events,
    }


def metrics_of(tallies: list[dict[str, Any]], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The window's numbers, as `mdi-exit bench` measures them, plus conservation counts,
    over the tallies of one run's parts (one part: that run's own)."""
    def total(key: str) -> Any:
        return sum(t[key] for t in tallies)

    lat = [x for t in tallies for x in t["latencies"]]
    scored = [x for t in tallies for x in t["scored"]]
    exits = [sum(col) for col in zip(*(t["exits"] for t in tallies), strict=True)]
    answered = len(lat)
    tasks = total("tasks")
    end = max(t["sim_time"] for t in tallies)
    return {
        "admitted_rate": total("admitted_in_window") / facts["measure"],
        "answered_rate": answered / facts["measure"],
        "accuracy": sum(scored) / len(scored) if scored else None,
        "latency_p50": percentile(lat, 0.5), "latency_p95": percentile(lat, 0.95),
        "results": answered, "expired_in_window": total("inside") - answered,
        "exit_distribution": [round(n / answered, 4) for n in exits] if answered else [],
        "admitted": total("admitted"),
        "answered": total("completed"),
        "pending": total("pending"),
        "expired": total("expired"),
        "dropped": total("dropped_at_admission"),
        "readmitted": total("readmitted"),
        "duplicates": total("duplicates"),
        "tasks": tasks,
        "tasks_share_source": total("source_tasks") / tasks if tasks else None,
        # over every robot until the last part ends, as one run would count it
        "utilisation": total("busy") / (total("workers") * max(end, 1e-9)),
        "sim_time": end, "events": total("events"),
    }


def metrics(sim: Simulator, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The window's numbers of one (unsplit) run."""
    return metrics_of([tally(sim, facts)], facts)
