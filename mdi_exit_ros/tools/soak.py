"""`mdi-exit soak`: a fleet under Poisson arrivals at a multiple of its capacity, per mode.

Issue #9 item 5 (docs/RELIABILITY.md, "Overload"). For each admission mode (Alg. 4
`threshold`, Alg. 3 `rate`) the source of the topology receives Poisson arrivals at
`--factor` times the fleet's capacity for `--seconds`; every robot computes `--slowdown`
times slower than this machine (`compute_slowdown`), so capacity is set by the emulated
devices rather than by whatever else runs here. Then the player stops, the fleet drains, and
the tool checks, printing the numbers:

* queues: every worker's I_n + O_n stays within max_queue + T_O + 1 (see `queue_bound`);
* memory: no process's resident memory grows by more than --rss-growth MiB from the end of
  the warm-up to the end of the drain;
* frames: admitted = answered + expired, none lost, none answered twice, every answer within
  the latency budget (`latency_budget`);
* logs: at most --max-log-rate lines per second from any process in any one-second window.

Capacity (`capacity`): the source runs task 1 of every admitted frame itself (Alg. 2 offloads
only the output queue, where successors wait), and all N workers share the tasks, so
    capacity = min(1 / t_1, N / sum_k p_k t_k)
with t_k the service time of task k (measured here with the workers' model, one thread,
times the slowdown) and p_k the fraction of frames that reach task k at the mode's exit
thresholds (measured on the player's dataset): the checkpoint's thresholds in rate mode,
T_e^min at every exit in threshold mode (the most Alg. 4 can shed). After each mode the
capacity observed in the run (from the workers' reported Gamma and exit counts) is printed
next to it.

    mdi-exit soak --seconds 240            # the full soak (make soak)
    mdi-exit soak --seconds 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mdi_exit_ros.params import SPECS
from mdi_exit_ros.tools import fleet as fleet_tool
from mdi_exit_ros.tools import fleet_spec
from mdi_exit_ros.tools.supervisor import Child, start_child

MODES = ("threshold", "rate")
DEFAULT_SLOWDOWN = 100.0
DEFAULT_FACTOR = 3.0
SAMPLE_PERIOD = 1.0  # s between samples of queues, memory and log sizes
OVERDUE_PERIOD = 1.0  # s: how often a source looks for overdue frames (nodes/source.py)
EXPIRED = "expired"  # class_name of a frame answered as expired (nodes/source.py)


# ---------------------------------------------------------------------------------------------
# Capacity


@dataclass
class Calibration:
    """Per-task service times and, per mode, the exit distribution and the capacity."""

    slowdown: float
    task_seconds: list[float]  # t_k, k = 1..K, padded by the slowdown
    reach: dict[str, list[float]]  # mode -> p_k, fraction of frames that run task k
    thresholds: dict[str, list[float]]  # mode -> T_e^k used for p_k
    capacity: dict[str, float]  # mode -> frames/s
    workers: int
    frames: int


def capacity(task_seconds: list[float], reach: list[float], workers: int) -> float:
    """Frames/s the fleet can serve: the source's task 1, or all workers' share of the work.

    Every admitted frame runs task 1 at its source; the later tasks it reaches can go to any
    of the `workers` (Alg. 2). Both bounds must hold, so the smaller one is the capacity.
    """
    if not task_seconds or task_seconds[0] <= 0 or workers < 1:
        raise ValueError("capacity needs a positive t_1 and at least one worker")
    work = sum(p * t for p, t in zip(reach, task_seconds, strict=True))
    return min(1.0 / task_seconds[0], workers / work)


def reach_from_exits(exits: list[int]) -> list[float]:
    """p_k from exit counts: a frame that exited at k ran tasks 1..k."""
    total = sum(exits)
    if total <= 0:
        return [1.0] + [0.0] * (len(exits) - 1)
    return [sum(exits[k:]) / total for k in range(len(exits))]


def calibrate(model: str, dataset: str, slowdown: float, workers: int, te_min: float,
              frames: int = 500) -> Calibration:
    """Measure t_k and p_k with the workers' own engine (one torch thread, this machine)."""
    from std_msgs.msg import Header

    from mdi_exit_ros.core import should_exit
    from mdi_exit_ros.data import load_dataset
    from mdi_exit_ros.nodes.engine import Engine, Payload

    engine = Engine(model, 1, "cpu")
    images = load_dataset(dataset, "test").images[:frames]
    k_max = engine.num_exits
    thresholds = {"rate": list(engine.suggested_thresholds()), "threshold": [te_min] * k_max}
    times: list[list[float]] = [[] for _ in range(k_max)]
    exits = {mode: [0] * k_max for mode in MODES}
    for pixels in images:
        data = engine.preprocess(pixels)
        confidences = []
        for k in range(1, k_max + 1):
            run = engine.run(k, Payload(Header(), data), 1.0, "max_softmax")
            times[k - 1].append(run.compute_seconds)
            confidences.append(run.confidence)
            data = run.next_data
        for mode in MODES:  # Alg. 1 line 5 at each exit, the first that says exit
            k_exit = next(k for k in range(k_max) if should_exit(
                confidences[k], thresholds[mode][k], is_last=k == k_max - 1))
            exits[mode][k_exit] += 1
    task_seconds = [sorted(t)[len(t) // 2] * slowdown for t in times]  # medians
    reach = {mode: reach_from_exits(exits[mode]) for mode in MODES}
    return Calibration(slowdown, task_seconds, reach, thresholds,
                       {m: capacity(task_seconds, reach[m], workers) for m in MODES},
                       workers, len(images))


def observed_capacity(stats: list[Any], before: dict[str, Any], source: str) -> float | None:
    """Capacity from the run itself, with the same formula as `capacity`: the Gamma (padded
    seconds per task, as measured under this load) of the workers that ran tasks during the
    phase, and the exits taken during it."""
    exits: list[int] = []
    gammas: dict[str, float] = {}
    for s in stats:
        base = before.get(s.worker)
        base_exits = list(base.exits) if base is not None else []
        for k, n in enumerate(s.exits):
            if k >= len(exits):
                exits.append(0)
            exits[k] += int(n) - (int(base_exits[k]) if k < len(base_exits) else 0)
        ran = int(s.tasks_run) - (int(base.tasks_run) if base is not None else 0)
        if ran > 0 and s.compute_delay > 0:
            gammas[s.worker] = float(s.compute_delay)
    if source not in gammas or sum(exits) <= 0:
        return None
    per_frame = sum(reach_from_exits(exits))  # tasks per frame
    rate = sum(1.0 / g for g in gammas.values())  # tasks/s of the workers that took part
    return min(1.0 / gammas[source], rate / per_frame)


# ---------------------------------------------------------------------------------------------
# Bounds


def queue_bound(max_queue: int, t_o: int) -> int:
    """The most tasks any worker queues (I_n + O_n), with the overload guard in force.

    O_n <= T_O + 1 everywhere (Alg. 1 line 8 puts a successor in O_n only while O_n <= T_O).
    A task reaches another worker's I_m only when the sender's O_n exceeds I_m (Alg. 2), so a
    non-source I_m <= T_O + 1 too, and a source admits a frame only while its I_n + O_n <
    max_queue (core.has_room), plus what neighbours hand it (<= T_O + 1 by the same rule).
    Successors and take-backs replace a running or in-flight task, adding nothing.
    """
    return max_queue + t_o + 1


def latency_budget(frame_deadline: float, max_readmissions: int) -> float:
    """The latest an admitted frame is answered: each copy (the frame and its re-admissions)
    is looked at by the source's overdue timer at most one period after its deadline; after
    the last one, it is answered as expired."""
    return (frame_deadline + OVERDUE_PERIOD) * (max_readmissions + 1)


# ---------------------------------------------------------------------------------------------
# Sampling


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class LogRate:
    """Lines a process wrote to its log, per sampling window (its log file grows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.at = time.monotonic()
        self.lines = 0
        self.max_rate = 0.0

    def sample(self) -> None:
        now = time.monotonic()
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        self.offset += len(chunk)
        n = chunk.count(b"\n")
        self.lines += n
        if now > self.at:
            self.max_rate = max(self.max_rate, n / max(now - self.at, SAMPLE_PERIOD))
        self.at = now


@dataclass
class ModeReport:
    """What one mode's soak measured, and whether it held."""

    mode: str
    seconds: float
    arrival_rate: float  # frames/s asked of the player
    received_rate: float  # frames/s that reached the source
    capacity: float  # calibrated
    capacity_observed: float | None  # from the run's Gamma and exits
    served_rate: float  # frames answered (not expired) per second of overload and drain
    max_queue: int
    queue_bound: int
    max_queues: dict[str, int]  # worker -> max I_n + O_n seen
    rss_before: dict[str, float]  # process -> MiB before the player started
    rss_warm: dict[str, float]  # ... at the end of the warm-up
    rss_after: dict[str, float]  # ... after the drain
    received: int = 0
    admitted: int = 0
    shed: int = 0
    dropped: int = 0
    answered: int = 0
    expired: int = 0
    lost: int = 0
    duplicated: int = 0
    results: int = 0
    latency_p50: float = 0.0
    latency_p95: float = 0.0
    latency_max: float = 0.0
    budget: float = 0.0
    log_lines: dict[str, int] = field(default_factory=dict)
    log_max_rate: dict[str, float] = field(default_factory=dict)
    tasks_discarded: int = 0
    mode_in_force: str = ""  # the source's admission_mode, as it reports it
    interval_max: float = 0.0  # the largest Alg. 3 interval mu seen (rate mode)
    te_min_seen: float = 1.0  # the lowest T_e seen (threshold mode)
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# The soak


class SoakFleet(fleet_tool.Fleet):
    """The fleet runner, remembering every answer on the source's classification topic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: Counter[int] = Counter()  # data_id -> results seen
        self.expired_ids: set[int] = set()
        self.latencies: list[float] = []

    def reset_answers(self) -> None:
        self.answers.clear()
        self.expired_ids.clear()
        self.latencies.clear()

    def on_result(self, src: str, msg: Any) -> None:
        super().on_result(src, msg)
        self.answers[int(msg.data_id)] += 1
        if msg.class_name == EXPIRED:
            self.expired_ids.add(int(msg.data_id))
        self.latencies.append(float(msg.latency))

    def spin_for(self, seconds: float) -> None:
        import rclpy

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.stopping():
                raise KeyboardInterrupt
            rclpy.spin_once(self.node, timeout_sec=min(0.05, max(end - time.monotonic(), 0)))

    def fresh_stats(self, since: float, timeout: float) -> dict[str, Any]:
        """Every worker's first WorkerStats received after `since` (monotonic)."""
        robots = [c.spec.robot for c in self.children if c.spec.lifecycle]
        self.spin_until(lambda: all((self.view.workers.get(r) is not None
                                     and (self.view.workers[r].stats_at or 0) > since)
                                    for r in robots),
                        timeout, "waiting for every worker's WorkerStats",
                        [c for c in self.children if c.spec.lifecycle])
        return {r: self.view.workers[r].stats for r in robots}

    def set_parameters(self, child: Child, values: dict[str, Any],
                       deadline: float) -> None:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{child.spec.full_name}/set_parameters")
        try:
            req = SetParameters.Request()
            req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            answer = self.call(child, client, req, "setting parameters", deadline)
            bad = [r.reason for r in answer.results if not r.successful]
            if bad:
                raise fleet_tool.FleetError(f"{child.spec.full_name} refused {values}: {bad}")
        finally:
            self.node.destroy_client(client)

    def reconfigure(self, child: Child, values: dict[str, Any],
                    deadline: float) -> None:
        """deactivate, clean up, set configure-only parameters, configure, activate."""
        from lifecycle_msgs.msg import State, Transition

        self.transition([child], Transition.TRANSITION_DEACTIVATE, "deactivate",
                        State.PRIMARY_STATE_INACTIVE, deadline)
        self.transition([child], Transition.TRANSITION_CLEANUP, "cleanup",
                        State.PRIMARY_STATE_UNCONFIGURED, deadline)
        self.set_parameters(child, values, deadline)
        self.bring_up([child], deadline)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_mode(fleet: SoakFleet, args: argparse.Namespace, mode: str, rate: float,
             cap: float, source: str, index: int) -> ModeReport:
    """One mode: overload for args.seconds, drain, measure."""
    opts = fleet.opts
    src_child = next(c for c in fleet.children if c.spec.robot == source and c.spec.lifecycle)
    deadline = time.monotonic() + opts.startup_timeout
    if index > 0:
        fleet.say(f"switching {source} to admission_mode {mode}")
        fleet.reconfigure(src_child, {"admission_mode": mode}, deadline)
    fleet.reset_answers()
    before = fleet.fresh_stats(time.monotonic(), 30.0)
    bound = queue_bound(args.max_queue, args.t_o)
    budget = latency_budget(args.frame_deadline, args.max_readmissions)
    procs = {c.spec.label: c for c in fleet.children}
    report = ModeReport(mode=mode, seconds=args.seconds, arrival_rate=rate, received_rate=0.0,
                        capacity=cap, capacity_observed=None, served_rate=0.0,
                        max_queue=args.max_queue, queue_bound=bound,
                        max_queues={r: 0 for r in before}, rss_before={}, rss_warm={},
                        rss_after={}, budget=budget)
    # the player: Poisson arrivals at `rate`
    (spec,) = fleet_spec.player_specs(opts.topology, args.dataset, rate, [source])
    spec = fleet_spec.NodeSpec(spec.robot, spec.executable, spec.name,
                               {**spec.parameters, "arrival": "poisson",
                                "seed": args.seed + index}, spec.remappings, lifecycle=False)
    player = start_child(spec, opts.params_file, fleet.log_dir, restart=index)
    fleet.children.append(player)
    procs[spec.label] = player
    logs = {label: LogRate(c.log_path) for label, c in procs.items()}
    for label, c in procs.items():
        report.rss_before[label] = rss_mib(c.proc.pid) or 0.0
    fleet.say(f"{mode}: Poisson arrivals at {rate:.1f} frames/s ({args.factor:g} x capacity "
              f"{cap:.1f} frames/s) for {args.seconds:g} s")
    received0 = int(before[source].frames_received)
    fleet.spin_until(lambda: (fleet.view.workers[source].stats.frames_received > received0),
                     60.0, "waiting for the first frame at the source", [player, src_child])
    start = time.monotonic()
    warm_at = start + min(args.warmup, args.seconds / 2)
    end = start + args.seconds

    def sample() -> None:
        s = fleet.view.workers[source].stats
        report.interval_max = max(report.interval_max, float(s.admission_interval))
        if len(s.exit_thresholds) > 1:  # the last exit's T_e does not matter
            report.te_min_seen = min(report.te_min_seen, min(s.exit_thresholds[:-1]))
        for r, e in fleet.view.workers.items():
            if e.stats is not None and r in report.max_queues:
                q = int(e.stats.input_queue) + int(e.stats.output_queue)
                report.max_queues[r] = max(report.max_queues[r], q)
        for log in logs.values():
            log.sample()

    next_sample = start + SAMPLE_PERIOD
    while time.monotonic() < end:
        fleet.spin_for(min(0.2, max(end - time.monotonic(), 0.0)))
        if player.proc.poll() is not None:
            raise fleet_tool.FleetError(f"the player exited with code {player.proc.returncode}"
                                        f"; log {player.log_path}:\n{player.tail()}")
        if time.monotonic() >= next_sample:
            next_sample += SAMPLE_PERIOD
            sample()
            if not report.rss_warm and time.monotonic() >= warm_at:
                report.rss_warm = {label: rss_mib(c.proc.pid) or 0.0
                                   for label, c in procs.items()}
    phase = time.monotonic() - start
    player_rss = rss_mib(player.proc.pid) or 0.0
    # stop the player, then let the fleet answer everything it admitted
    problems = fleet.stop_children([player])
    fleet.children.remove(player)
    player.log.close()
    report.problems += problems
    stop_at = time.monotonic()
    drain_deadline = stop_at + budget + args.drain_slack

    def drained() -> bool:
        s = fleet.view.workers[source]
        return ((s.stats_at or 0) > stop_at and s.stats.frames_classified ==
                s.stats.frames_admitted and len(fleet.answers) >= s.stats.frames_admitted)

    while not drained() and time.monotonic() < drain_deadline:
        fleet.spin_for(0.2)
        if time.monotonic() >= next_sample:
            next_sample += SAMPLE_PERIOD
            sample()
    sample()
    after = fleet.fresh_stats(time.monotonic(), 30.0)
    fleet.spin_for(1.0)  # results published with the last stats
    for r, s in after.items():
        q = int(s.input_queue) + int(s.output_queue)
        report.max_queues[r] = max(report.max_queues[r], q)
    report.rss_after = {label: rss_mib(c.proc.pid) or 0.0 for label, c in procs.items()
                        if label != spec.label}
    report.rss_after[spec.label] = player_rss  # when it stopped
    src = after[source]
    report.mode_in_force = src.admission_mode
    report.received = int(src.frames_received) - received0
    report.received_rate = report.received / phase
    report.admitted = int(src.frames_admitted)
    report.shed = int(src.frames_shed)
    report.dropped = int(src.frames_dropped)
    report.results = sum(fleet.answers.values())
    report.expired = len(fleet.expired_ids)
    report.answered = len(fleet.answers) - report.expired
    report.lost = report.admitted - len(fleet.answers)
    report.duplicated = report.results - len(fleet.answers)
    report.latency_p50 = percentile(fleet.latencies, 0.5)
    report.latency_p95 = percentile(fleet.latencies, 0.95)
    report.latency_max = max(fleet.latencies, default=0.0)
    report.served_rate = report.answered / (time.monotonic() - start)
    report.tasks_discarded = sum(int(s.tasks_discarded) for s in after.values())
    report.capacity_observed = observed_capacity(list(after.values()), before, source)
    report.log_lines = {label: log.lines for label, log in logs.items()}
    report.log_max_rate = {label: round(log.max_rate, 2) for label, log in logs.items()}
    check(report, args, int(src.frames_expired))
    return report


def check(r: ModeReport, args: argparse.Namespace, expired_at_source: int) -> None:
    """The properties of issue #9 item 5, as problems (empty: all held)."""
    p = r.problems
    if r.mode_in_force != r.mode:
        p.append(f"the source ran admission_mode {r.mode_in_force!r}, not {r.mode!r}")
    for w, q in r.max_queues.items():
        if q > r.queue_bound:
            p.append(f"{w}: I_n + O_n reached {q} > bound {r.queue_bound}")
    for label, warm in r.rss_warm.items():
        grown = r.rss_after.get(label, warm) - warm
        if grown > args.rss_growth:
            p.append(f"{label}: resident memory grew by {grown:.0f} MiB > {args.rss_growth:g}")
    if r.admitted == 0:
        p.append("no frame was admitted")
    if r.lost:
        p.append(f"{r.lost} admitted frame(s) never answered")
    if r.duplicated:
        p.append(f"{r.duplicated} frame(s) answered more than once")
    if r.expired != expired_at_source:
        p.append(f"{r.expired} expired answers seen, the source counted {expired_at_source}")
    if r.latency_max > r.budget + args.latency_slack:
        p.append(f"an answer came {r.latency_max:.1f} s after admission > budget "
                 f"{r.budget:g} s (+{args.latency_slack:g} s slack)")
    for label, rate in r.log_max_rate.items():
        if rate > args.max_log_rate:
            p.append(f"{label}: {rate:g} log lines/s > {args.max_log_rate:g}")
    if r.received_rate < args.min_overload * r.capacity:
        p.append(f"arrivals reached the source at {r.received_rate:.1f} frames/s, below "
                 f"{args.min_overload:g} x capacity ({r.capacity:.1f}): not an overload")


def format_report(r: ModeReport) -> str:
    obs = f"{r.capacity_observed:.1f}" if r.capacity_observed is not None else "n/a"
    mem = ", ".join(f"{k} {r.rss_before.get(k, 0):.0f}/{r.rss_warm.get(k, 0):.0f}/"
                    f"{r.rss_after.get(k, 0):.0f}" for k in r.rss_before)
    lines = [
        f"SOAK {r.mode}: {r.seconds:g} s of Poisson arrivals",
        f"  arrivals        {r.arrival_rate:.1f} frames/s asked, {r.received_rate:.1f} reached "
        f"the source ({r.received} frames)",
        f"  capacity        {r.capacity:.1f} frames/s calibrated; in the run: {obs} from Gamma "
        f"and exits, {r.served_rate:.1f} frames/s answered",
        "  max I+O         " + ", ".join(f"{w} {q}" for w, q in r.max_queues.items())
        + f" (bound {r.queue_bound}: max_queue {r.max_queue} + T_O + 1)",
        f"  frames          admitted {r.admitted}, answered {r.answered}, expired {r.expired}, "
        f"lost {r.lost}, duplicated {r.duplicated}; refused {r.dropped} (shed by "
        f"max_queue {r.shed}); tasks discarded {r.tasks_discarded}",
        f"  control         mode {r.mode_in_force}, largest mu {r.interval_max:.3f} s, lowest "
        f"T_e {r.te_min_seen:.2f}",
        f"  latency         p50 {r.latency_p50:.2f} s, p95 {r.latency_p95:.2f} s, max "
        f"{r.latency_max:.2f} s (budget {r.budget:g} s)",
        f"  RSS MiB         before/warm/after: {mem}",
        "  log lines       " + ", ".join(f"{k} {r.log_lines[k]} (max {r.log_max_rate[k]:g}/s)"
                                         for k in r.log_lines),
        "  result          " + ("OK" if not r.problems else "FAILED: " + "; ".join(r.problems)),
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit soak", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topology", default="mesh5")
    p.add_argument("--modes", default=",".join(MODES), help="threshold,rate (in this order)")
    p.add_argument("--seconds", type=float, default=240.0, help="overload per mode")
    p.add_argument("--factor", type=float, default=DEFAULT_FACTOR,
                   help="arrival rate / capacity")
    p.add_argument("--slowdown", type=float, default=DEFAULT_SLOWDOWN,
                   help="compute_slowdown of every robot")
    p.add_argument("--max-queue", type=int, default=SPECS["max_queue"].default,
                   help="the source's max_queue")
    p.add_argument("--t-o", type=int, default=SPECS["output_queue_threshold"].default,
                   help="output_queue_threshold of every robot")
    p.add_argument("--frame-deadline", type=float, default=SPECS["frame_deadline"].default)
    p.add_argument("--max-readmissions", type=int, default=SPECS["max_readmissions"].default)
    p.add_argument("--min-exit-threshold", type=float,
                   default=SPECS["min_exit_threshold"].default)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="fmnist_cnn_ee")
    p.add_argument("--calibration-frames", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warmup", type=float, default=30.0,
                   help="s of overload before the memory baseline")
    p.add_argument("--drain-slack", type=float, default=30.0,
                   help="s beyond the latency budget to wait for the last answers")
    p.add_argument("--latency-slack", type=float, default=2.0)
    p.add_argument("--rss-growth", type=float, default=32.0, help="MiB per process")
    p.add_argument("--max-log-rate", type=float, default=5.0,
                   help="log lines per second per process, any one-second window")
    p.add_argument("--min-overload", type=float, default=2.0,
                   help="arrivals at the source must reach this x capacity")
    p.add_argument("--log-dir")
    p.add_argument("--json", help="write the reports here")
    p.add_argument("--startup-timeout", type=float, default=240.0)
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="s for each process to end after SIGINT (a loaded machine is slow)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        print(f"mdi-exit soak: --modes must name {', '.join(MODES)}", file=sys.stderr)
        return fleet_tool.EXIT_USAGE
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="mdi-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    topo_argv = [args.topology, "--no-player", "--model", args.model, "--log-dir", str(log_dir),
                 "--startup-timeout", str(args.startup_timeout),
                 "--shutdown-timeout", str(args.shutdown_timeout),
                 "--set", f"*.compute_slowdown={args.slowdown}",
                 "--set", f"*.output_queue_threshold={args.t_o}",
                 "--set", "*.stats_period=0.2"]
    opts = fleet_tool.parse_options(topo_argv)
    (source, *_) = opts.topology.sources
    for name, value in (("admission_mode", modes[0]), ("max_queue", args.max_queue),
                        ("frame_deadline", args.frame_deadline),
                        ("max_readmissions", args.max_readmissions),
                        ("min_exit_threshold", args.min_exit_threshold)):
        topo_argv += ["--set", f"{source}.{name}={value}"]
    opts = fleet_tool.parse_options(topo_argv)

    t0 = time.monotonic()
    cal = calibrate(args.model, args.dataset, args.slowdown, len(opts.topology.workers),
                    args.min_exit_threshold, args.calibration_frames)
    print(f"[soak] calibration ({cal.frames} frames, {time.monotonic() - t0:.0f} s): "
          f"t_k = {', '.join(f'{t * 1e3:.1f} ms' for t in cal.task_seconds)} "
          f"(x{args.slowdown:g}); " + "; ".join(
              f"{m}: p_k = {', '.join(f'{p:.2f}' for p in cal.reach[m])} at T_e "
              f"{cal.thresholds[m]}, capacity min(1/t_1, {cal.workers}/sum p_k t_k) = "
              f"{cal.capacity[m]:.1f} frames/s" for m in modes), flush=True)

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    fleet = SoakFleet(opts, log_dir)
    previous = {s: signal.signal(s, fleet.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=["mdi_soak"], signal_handler_options=SignalHandlerOptions.NO)
    reports: list[ModeReport] = []
    code, reason = 0, ""
    try:
        fleet.make_node()
        fleet.start()
        for i, mode in enumerate(modes):
            cap = cal.capacity[mode]
            report = run_mode(fleet, args, mode, args.factor * cap, cap, source, i)
            reports.append(report)
            print(format_report(report), flush=True)
    except KeyboardInterrupt:
        code, reason = fleet_tool.EXIT_INTERRUPTED, "interrupted"
    except fleet_tool.FleetError as exc:
        code, reason = fleet_tool.EXIT_FAILED, str(exc)
    finally:
        problems = fleet.close()
        if fleet.node is not None:
            fleet.node.destroy_node()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"calibration": asdict(cal), "reports": [asdict(r) for r in reports],
             "command": "mdi-exit soak " + " ".join(sys.argv[1:] if argv is None else argv),
             "pid": os.getpid(), "problems": problems, "error": reason}, indent=1))
    if code == 0 and (problems or any(r.problems for r in reports)):
        code, reason = fleet_tool.EXIT_FAILED, "; ".join(
            problems + [f"{r.mode}: {x}" for r in reports for x in r.problems])
    if code:
        print(f"mdi-exit soak: {reason}", file=sys.stderr, flush=True)
    print(f"[soak] logs in {log_dir}; exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
