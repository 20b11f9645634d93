"""`mdi-exit fleet <topology>`: start a whole fleet as processes, without `ros2 launch`.

It reads the same topology YAML as the launch files (through tools.fleet_spec) and starts
the same nodes: one worker (or source) per robot in namespace <fleet>/<robot> (--fleet, default
/), configured and then activated through the standard lifecycle services, and an image
player per source. It runs until --duration has passed or it gets SIGINT/SIGTERM (Ctrl-C),
which it forwards to its children (each runs in a session of its own), and prints a SUMMARY
gathered from <fleet>/mdi/worker_stats and <fleet>/<source>/classification.

    mdi-exit fleet mesh3 --duration 60
    mdi-exit fleet config/topologies/mesh5.yaml --set robot2.compute_slowdown=2.0 --monitor
    mdi-exit fleet mesh5 --only robot3,robot4 --respawn   # part of a fleet, on this computer
    mdi-exit fleet mesh3 --fleet /site_a   # a second fleet on the same ROS_DOMAIN_ID

A node that exits while the fleet runs is a departure: logged, counted in the summary, and
restarted to active with --respawn; the rest of the fleet goes on.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mdi_exit_ros import exit_watchdog
from mdi_exit_ros.data.registry import add_data_dir_argument, apply_data_dir
from mdi_exit_ros.tools import fleet_spec
from mdi_exit_ros.tools.fleet_spec import NodeSpec, Override
from mdi_exit_ros.tools.fleet_summary import (
    RESULT_FIELDS,
    STATS_FIELDS,
    Departure,
    RunCounts,
    RunTally,
    format_summary,
    summarize,
)
from mdi_exit_ros.tools.lifecycle_client import LifecycleClient, ServiceTimeout
from mdi_exit_ros.tools.monitor import FleetView, render
from mdi_exit_ros.tools.supervisor import Child, start_child, stop_children
from mdi_exit_ros.topics import DEFAULT_FLEET, fleet_namespace
from mdi_exit_ros.topology import Topology, TopologyError, load_topology, resolve_topology

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEGRADED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_RESPAWNS = 3  # restarts per robot for a bare --respawn


class FleetError(RuntimeError):
    """The fleet could not be started or run; the message names the worker and its log."""


# ---------------------------------------------------------------------------------------------
# Options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit fleet", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Overrides: --set robot2.compute_slowdown=2.0, "
                                       "--set '*.torch_threads=2' (every worker).")
    p.add_argument("topology", help="shipped topology name (local, mesh2, mesh3, circular3, "
                                    "mesh5) or a topology YAML file")
    p.add_argument("--fleet", default=DEFAULT_FLEET, metavar="NAMESPACE",
                   help="fleet namespace: robots run in NAMESPACE/<robot> and report on "
                        "NAMESPACE/mdi/*, so fleets under different namespaces share a ROS "
                        "domain without seeing each other (default: /)")
    p.add_argument("--only", metavar="ROBOT[,ROBOT...]",
                   help="start only these robots of the topology (the others run on other "
                        "computers of the same ROS_DOMAIN_ID); default: all")
    p.add_argument("--duration", type=float, default=None,
                   help="stop this many seconds after the first frames reached the sources "
                        "(default: until Ctrl-C)")
    p.add_argument("--model", help="model of every worker (shipped name or checkpoint path)")
    p.add_argument("--params-file", help="worker parameters YAML "
                                         "(default: the package's config/params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="WORKER.PARAM=VALUE", help="per-worker parameter override")
    p.add_argument("--dataset", help="image player dataset (default: the topology's)")
    add_data_dir_argument(p)
    p.add_argument("--rate", type=float, help="image player frames per second")
    p.add_argument("--no-player", action="store_true", help="start no image player")
    p.add_argument("--camera-topic", metavar="TOPIC",
                   help="no player; remap each source's `image` to TOPIC")
    p.add_argument("--respawn", type=int, nargs="?", const=DEFAULT_RESPAWNS, default=0,
                   metavar="N", help="restart a robot's process that exits while the fleet "
                   "runs and bring it to active again, at most N times per robot (default "
                   f"{DEFAULT_RESPAWNS}); without it a robot that leaves stays gone")
    p.add_argument("--monitor", action="store_true", help="show the live monitor")
    p.add_argument("--log-dir", help="children's stdout/stderr go here (default: a temp dir)")
    p.add_argument("--startup-timeout", type=float, default=180.0,
                   help="seconds for all nodes to start, configure and activate")
    p.add_argument("--shutdown-timeout", type=float, default=10.0,
                   help="seconds for each child to end after SIGINT before SIGKILL")
    p.add_argument("--verbose", "-v", action="store_true", help="print children's commands")
    p.add_argument("--record", metavar="JSON",
                   help="write every result (time, latency, exit, correct) and every "
                        "WorkerStats report of the run to this file (what `mdi-exit bench` "
                        "measures steady-state windows from), with the summary")
    return p


@dataclass
class Options:
    """Validated options: the topology, the nodes to start and how to run them."""

    topology: Topology
    robots: tuple[str, ...]  # the robots this process starts (--only; default all)
    workers: list[NodeSpec]
    players: list[NodeSpec]
    params_file: Path | None
    duration: float | None
    log_dir: Path | None
    fleet: str = DEFAULT_FLEET  # the fleet namespace (normalised)
    monitor: bool = False
    respawn: int = 0  # restarts per robot (0: a robot that leaves stays gone)
    startup_timeout: float = 180.0
    shutdown_timeout: float = 10.0
    verbose: bool = False
    warnings: list[str] = field(default_factory=list)
    record: Path | None = None


def parse_options(argv: list[str]) -> Options:
    """Parse and validate; argparse exits 2 on malformed options, ValueError/TopologyError
    for bad values (the caller prints them and exits 2)."""
    a = build_parser().parse_args(argv)
    apply_data_dir(a.data_dir)
    topology = load_topology(resolve_topology(a.topology))
    overrides: list[Override] = [fleet_spec.parse_override(s) for s in a.overrides]
    for name, value in (("duration", a.duration), ("startup-timeout", a.startup_timeout),
                        ("shutdown-timeout", a.shutdown_timeout)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"--{name} must be a positive number of seconds, not {value}")
    if a.respawn < 0:
        raise ValueError(f"--respawn must be a number of restarts >= 0, not {a.respawn}")
    if a.camera_topic is not None and not a.camera_topic.strip():
        raise ValueError("--camera-topic needs a topic name")
    warnings = []
    if a.params_file:
        params_file: Path | None = Path(a.params_file).resolve()
        if not params_file.is_file():
            raise ValueError(f"--params-file {a.params_file}: no such file")
    else:
        params_file = fleet_spec.default_params_file()
        if not params_file.is_file():
            warnings.append(f"no {params_file}: workers start with their built-in defaults")
            params_file = None
    if a.only is not None and not a.only.strip(" ,"):
        raise ValueError("--only needs robot names (e.g. --only robot1,robot2)")
    robots = fleet_spec.select_robots(topology, a.only)
    fleet = fleet_namespace(a.fleet)
    workers = fleet_spec.worker_specs(topology, a.model, overrides, a.camera_topic, robots,
                                      fleet)
    players = [] if (a.no_player or a.camera_topic) else \
        fleet_spec.player_specs(topology, a.dataset, a.rate, robots, fleet)
    elsewhere = sorted({o.worker for o in overrides} - {"*", *robots})
    if elsewhere:
        warnings.append(f"--set for {', '.join(elsewhere)} ignored: not started here (--only)")
    if (a.no_player or a.camera_topic) and (a.dataset or a.rate is not None):
        warnings.append("--dataset/--rate ignored: no image player is started")
    return Options(topology=topology, robots=robots, workers=workers, players=players,
                   params_file=params_file, duration=a.duration,
                   log_dir=Path(a.log_dir) if a.log_dir else None, fleet=fleet,
                   monitor=a.monitor,
                   respawn=a.respawn,
                   startup_timeout=a.startup_timeout, shutdown_timeout=a.shutdown_timeout,
                   verbose=a.verbose, warnings=warnings,
                   record=Path(a.record) if a.record else None)


# ---------------------------------------------------------------------------------------------
# The fleet


class Fleet:
    """Starts, drives and stops the children; watches the fleet's topics for the summary."""

    def __init__(self, opts: Options, log_dir: Path, out: IO[str] = sys.stdout) -> None:
        self.opts, self.log_dir, self.out = opts, log_dir, out
        self.children: list[Child] = []
        self.view = FleetView()
        self.tally = RunTally(record=opts.record is not None)
        self.stop_requested = 0  # signals received
        self.stopped_at: float | None = None
        self.started_at: float | None = None  # monotonic time the run began (after start-up)
        self.departures: list[Departure] = []
        self.restarts: Counter = Counter()  # node label -> restarts so far
        self.retired: list[Child] = []  # children that left (not stopped by us)
        self.node: Any = None

    @property
    def counts(self) -> RunCounts:
        return self.tally.counts

    @property
    def first_frame(self) -> float | None:
        """Monotonic time of the first label or result seen."""
        return self.tally.first_frame

    def say(self, text: str) -> None:
        print(f"[fleet] {text}", file=self.out, flush=True)

    # -- signals -----------------------------------------------------------------------------

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_requested += 1
        if self.stop_requested > 1:  # a second Ctrl-C: no more patience
            for c in self.children:
                if c.proc.poll() is None:
                    c.proc.kill()

    def stopping(self) -> bool:
        return self.stop_requested > 0

    # -- ROS side ----------------------------------------------------------------------------

    def make_node(self) -> None:
        from rclpy.node import Node

        from mdi_exit_ros import topics
        from mdi_exit_ros.msg import ExitResult, FrameLabel, NeighborState, WorkerStats
        from mdi_exit_ros.wire.qos import data_qos, state_qos

        fleet = self.opts.fleet
        self.node = node = Node("mdi_fleet", namespace=fleet)
        node.create_subscription(WorkerStats, topics.stats_topic(fleet), self.on_stats,
                                 state_qos())
        node.create_subscription(NeighborState, topics.state_topic(fleet), self.view.on_state,
                                 state_qos())
        for src in (s for s in self.opts.topology.sources if s in self.opts.robots):
            node.create_subscription(FrameLabel, topics.peer_topic(src, topics.IMAGE_LABEL, fleet),
                                     lambda m, s=src: self.on_label(s, m), data_qos())
            node.create_subscription(ExitResult,
                                     topics.peer_topic(src, topics.CLASSIFICATION, fleet),
                                     lambda m, s=src: self.on_result(s, m), data_qos())

    def on_stats(self, msg: Any) -> None:
        self.view.on_stats(msg)
        self.tally.on_stats(msg, time.monotonic())

    def on_label(self, src: str, msg: Any) -> None:
        self.tally.on_label(src, msg, time.monotonic())

    def on_result(self, src: str, msg: Any) -> None:
        self.tally.on_result(src, msg, time.monotonic())

    def write_record(self, path: Path, summary: dict[str, Any]) -> None:
        """--record: the run's results and reports, times in seconds since the run began."""
        t0 = self.started_at or 0.0
        record = {
            "topology": self.opts.topology.name, "robots": list(self.opts.robots),
            "first_frame": None if self.first_frame is None else self.first_frame - t0,
            "stopped": None if self.stopped_at is None else self.stopped_at - t0,
            "result_fields": list(RESULT_FIELDS),
            "results": [[r[0] - t0, *r[1:]] for r in self.tally.results],
            "stats_fields": list(STATS_FIELDS),
            "stats": [[r[0] - t0, *r[1:]] for r in self.tally.stats],
            "summary": {k: v for k, v in summary.items() if k != "departures"},
            "departures": [d.describe() for d in self.departures],
        }
        path.write_text(json.dumps(record))

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str,
                   watch: Iterable[Child] = ()) -> None:
        """Spin until done(); FleetError on timeout or when a watched child exits."""
        watch = list(watch)
        if not self._client(watch).spin_until(done, time.monotonic() + timeout, what):
            raise FleetError(f"timed out after {timeout:g} s {what}")

    def _client(self, watch: Iterable[Child]) -> LifecycleClient:
        """The lifecycle client on our node; a wait ends on a signal (KeyboardInterrupt) or
        when a watched child exits (FleetError)."""
        import rclpy

        watch = list(watch)

        def guard(what: str) -> None:
            if self.stopping():
                raise KeyboardInterrupt
            for c in watch:
                if c.proc.poll() is not None:
                    raise FleetError(
                        f"{c.spec.full_name} ({c.spec.executable}) exited with code "
                        f"{c.proc.returncode} while {what}; log {c.log_path}:\n{c.tail()}")

        return LifecycleClient(self.node, lambda t: rclpy.spin_once(self.node, timeout_sec=t),
                               guard)

    def call(self, child: Child, client: Any, request: Any, what: str, deadline: float) -> Any:
        """The answer of `child`'s service `client` to `request` (re-sent while unanswered);
        FleetError at the deadline or when the child exits."""
        try:
            return self._client([child]).call(client, request, deadline, what).result()
        except ServiceTimeout as exc:
            raise FleetError(f"timed out {what} of {child.spec.full_name} ({exc}); "
                             f"log {child.log_path}:\n{child.tail()}") from None

    # -- lifecycle ---------------------------------------------------------------------------

    def transition(self, workers: list[Child], transition_id: int, label: str,
                   goal_state: int, deadline: float) -> None:
        """Request a transition of every worker at once, then wait until all reach goal."""
        client = self._client(workers)
        by_name = {c.spec.full_name: c for c in workers}
        try:
            outcome = client.change_state(by_name, transition_id, deadline,
                                          f"waiting for {label}")
        except ServiceTimeout as exc:
            raise FleetError(f"timed out waiting for {label} ({exc})") from None
        for name, why in outcome.items():
            if why is not None:
                child = by_name[name]
                raise FleetError(f"{label} of {name} failed ({why}); "
                                 f"log {child.log_path}:\n{child.tail()}")
        for name, child in by_name.items():
            try:
                state = client.wait_state(name, goal_state, deadline)
            except ServiceTimeout:
                state = None
            if state is None or state.id != goal_state:
                raise FleetError(f"{name} is {state.label if state else '?'} after {label}; "
                                 f"log {child.log_path}:\n{child.tail()}")

    # -- run ---------------------------------------------------------------------------------

    def bring_up(self, workers: list[Child], deadline: float, report: bool = False) -> None:
        """configure every worker, wait until all are inactive, activate, wait for active."""
        from lifecycle_msgs.msg import State, Transition

        self.transition(workers, Transition.TRANSITION_CONFIGURE, "configure",
                        State.PRIMARY_STATE_INACTIVE, deadline)
        if report:
            self.say("all workers configured (inactive)")
        self.transition(workers, Transition.TRANSITION_ACTIVATE, "activate",
                        State.PRIMARY_STATE_ACTIVE, deadline)
        if report:
            self.say("all workers active")

    def start(self) -> None:
        o = self.opts
        deadline = time.monotonic() + o.startup_timeout
        here = "" if list(o.robots) == list(o.topology.workers) else \
            f"; this process runs only {', '.join(o.robots)}"
        in_fleet = "" if o.fleet == DEFAULT_FLEET else f" in fleet {o.fleet}"
        self.say(f"topology {o.topology.name}{in_fleet}: {', '.join(o.topology.workers)} "
                 f"(sources {', '.join(o.topology.sources)}){here}; logs in {self.log_dir}")
        for w in o.warnings:
            self.say(f"warning: {w}")
        for spec in o.workers:
            child = start_child(spec, o.params_file, self.log_dir)
            self.children.append(child)
            self.say(f"started {spec.full_name} ({spec.executable}, pid {child.proc.pid})"
                     + (f": {shlex.join(child.command)}" if o.verbose else ""))
        self.bring_up(list(self.children), deadline, report=True)
        for spec in o.players:
            child = start_child(spec, o.params_file, self.log_dir)
            self.children.append(child)
            self.say(f"started {spec.full_name} (dataset {spec.parameters.get('dataset')}, "
                     f"{spec.parameters.get('rate', '?')} Hz, pid {child.proc.pid})"
                     + (f": {shlex.join(child.command)}" if o.verbose else ""))
        self.wait_first_frames(deadline)

    def wait_first_frames(self, deadline: float) -> None:
        """The duration counts from the first frames at the sources, not from the players'
        start: a player on a loaded machine may take seconds to load its dataset and match."""
        fed = {spec.robot for spec in self.opts.players}
        if not fed:
            return
        since = time.monotonic()

        def arrived() -> bool:
            for c in self.children:  # a player that ended well may have sent all it had
                if not c.spec.lifecycle and c.proc.poll() not in (None, 0):
                    raise FleetError(f"{c.spec.full_name} exited with code "
                                     f"{c.proc.returncode}; log {c.log_path}:\n{c.tail()}")
            return all(r in self.view.workers and self.view.workers[r].stats is not None
                       and self.view.workers[r].stats.frames_received > 0 for r in fed)

        self.spin_until(arrived, deadline - time.monotonic(),
                        f"waiting for the first frames at {', '.join(sorted(fed))}",
                        [c for c in self.children if c.spec.lifecycle])
        self.say(f"first frames reached {', '.join(sorted(fed))} after "
                 f"{time.monotonic() - since:.1f} s")

    def run(self) -> float:
        """Spin until the duration is over, a signal came or every robot has left; returns the
        seconds run. A node that exits meanwhile is a departure: logged, counted, restarted
        with --respawn; the others go on."""
        import rclpy

        start = self.started_at = time.monotonic()
        end = start + self.opts.duration if self.opts.duration else math.inf
        next_draw = start
        while not self.stopping() and time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
            for c in list(self.children):
                if c.proc.poll() is None:
                    continue
                if not c.spec.lifecycle and c.proc.returncode == 0:
                    self.retire(c)
                    self.say(f"{c.spec.full_name} has published all its frames")
                else:
                    self.on_departure(c)
            if not any(c.spec.lifecycle for c in self.children):
                self.say("every robot of this process has left: stopping")
                break
            if self.opts.monitor and time.monotonic() >= next_draw:
                next_draw += 1.0
                self.out.write("\x1b[H\x1b[J" + render(
                    self.view, title=f"mdi-exit fleet {self.opts.topology.name}",
                    fleet=self.opts.fleet))
                self.out.flush()
        self.stopped_at = time.monotonic()
        return self.stopped_at - start

    def since_start(self) -> float:
        return time.monotonic() - (self.started_at or time.monotonic())

    def retire(self, child: Child) -> None:
        """`child` has ended on its own: no longer ours to stop."""
        self.children.remove(child)
        self.retired.append(child)
        child.log.close()

    def on_departure(self, child: Child) -> None:
        """A node exited while the fleet runs: log and count it, then restart it (bounded) when
        --respawn allows; the rest of the fleet keeps classifying meanwhile."""
        spec = child.spec
        departure = Departure(spec.full_name, self.since_start(), child.proc.returncode)
        self.departures.append(departure)
        self.retire(child)
        self.say(f"{spec.full_name} left at {departure.at:.1f} s (exit code "
                 f"{departure.code}); the fleet goes on without it; log {child.log_path}:\n"
                 f"{child.tail(5)}")
        limit = self.opts.respawn
        if not limit:
            departure.note = "not restarted (no --respawn)"
            return
        while self.restarts[spec.label] < limit and not self.stopping():
            self.restarts[spec.label] += 1
            n = self.restarts[spec.label]
            new = start_child(spec, self.opts.params_file, self.log_dir, restart=n)
            self.children.append(new)
            self.say(f"restarting {spec.full_name} (restart {n}/{limit}, pid {new.proc.pid})")
            try:
                if spec.lifecycle:
                    self.bring_up([new], time.monotonic() + self.opts.startup_timeout)
            except KeyboardInterrupt:  # stop requested: close() stops the new child
                departure.note = "stopped while restarting"
                return
            except FleetError as exc:
                self.say(f"restart {n}/{limit} of {spec.full_name} failed: {exc}")
                self.stop_children([new])
                self.retire(new)
                departure.note = f"restart {n}/{limit} failed"
                continue
            departure.back_at, departure.restart = self.since_start(), n
            self.say(f"{spec.full_name} is back" + (" (active)" if spec.lifecycle else "")
                     + f" at {departure.back_at:.1f} s, pid {new.proc.pid} "
                     f"(restart {n}/{limit})")
            return
        if not departure.note:
            departure.note = f"not restarted (all {limit} restarts used)"
        self.say(f"{spec.full_name} stays gone: {departure.note}")

    def missing(self) -> list[str]:
        """Departures that are not back: the fleet ran degraded."""
        return [d.describe() for d in self.departures if d.back_at is None]

    def final_stats(self, timeout: float = 3.0) -> list[Any]:
        """Stop the players, then take every worker's next WorkerStats (bounded wait)."""
        import rclpy

        players = [c for c in self.children if not c.spec.lifecycle]
        self.stop_children(players)
        since = time.monotonic()
        deadline = since + timeout
        running = {c.spec.robot for c in self.children if c.spec.lifecycle}
        robots = [s.robot for s in self.opts.workers if s.robot in running]
        while time.monotonic() < deadline and self.stop_requested < 2:
            fresh = [r for r in robots if r in self.view.workers
                     and (self.view.workers[r].stats_at or 0) > since]
            if len(fresh) == len(robots):
                break
            rclpy.spin_once(self.node, timeout_sec=0.05)
        # robots that left and are not back count with their last report before leaving
        reported = [s.robot for s in self.opts.workers]
        return [self.view.workers[r].stats for r in reported
                if r in self.view.workers and self.view.workers[r].stats is not None]

    def stop_children(self, children: list[Child]) -> list[str]:
        """SIGINT, wait (bounded), SIGKILL; returns what did not stop cleanly."""
        return stop_children(children, self.opts.shutdown_timeout)

    def close(self) -> list[str]:
        problems = self.stop_children(self.children)
        for c in self.children:
            c.log.close()
        return problems

    def running_robots(self) -> list[str]:
        return [c.spec.robot for c in self.children if c.spec.lifecycle]


def exit_status(code: int, reason: str, problems: list[str], silent: list[str],
                missing: list[str]) -> tuple[int, str]:
    """The fleet's exit code and why, after the run ended with `code` (`reason`): stop
    `problems` (children that did not end cleanly), robots still running that never reported
    (`silent`) and robots that left and are not back (`missing`) turn a clean run into
    EXIT_FAILED, EXIT_FAILED and EXIT_DEGRADED, in that order; an earlier failure keeps its
    code and gains the problems in its reason."""
    problems = list(problems)
    if code == EXIT_OK and silent:
        problems.append(f"no WorkerStats from {', '.join(silent)}")
    if problems and code == EXIT_OK:
        code, reason = EXIT_FAILED, "; ".join(problems)
    elif problems:
        reason += "; " + "; ".join(problems)
    if code == EXIT_OK and missing:
        code, reason = EXIT_DEGRADED, ("ran to the end without robots that left: "
                                       + "; ".join(missing))
    return code, reason


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_options(argv)
    except (ValueError, TopologyError) as exc:
        print(f"mdi-exit fleet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log_dir = opts.log_dir or Path(tempfile.mkdtemp(prefix=f"mdi-fleet-{opts.topology.name}-"))
    log_dir.mkdir(parents=True, exist_ok=True)

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    fleet = Fleet(opts, log_dir)
    previous = {s: signal.signal(s, fleet.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=["mdi_fleet"], signal_handler_options=SignalHandlerOptions.NO)
    code, reason, seconds, stats, running = EXIT_OK, "", 0.0, [], []
    try:
        fleet.make_node()
        fleet.start()
        fleet.say("running " + (f"for {opts.duration:g} s" if opts.duration else
                                "until Ctrl-C"))
        seconds = fleet.run()
        fleet.say("stopping" + (" (signal)" if fleet.stopping() else ""))
        running = fleet.running_robots()
        stats = fleet.final_stats()
    except KeyboardInterrupt:
        code, reason = EXIT_INTERRUPTED, "interrupted before the fleet was running"
    except FleetError as exc:
        code, reason = EXIT_FAILED, str(exc)
    finally:
        problems = fleet.close()
        exit_watchdog.arm()  # every child has ended: only our own teardown is left
        if fleet.node is not None:
            fleet.node.destroy_node()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stats or code == EXIT_OK:
        streaming = (fleet.stopped_at - fleet.first_frame
                     if fleet.first_frame and fleet.stopped_at else None)
        summary = summarize(stats, fleet.counts, seconds, streaming, robots=opts.robots,
                            topology_robots=opts.topology.workers,
                            departures=fleet.departures)
        print(format_summary(summary, opts.topology.name), flush=True)
        if opts.record is not None:
            fleet.write_record(opts.record, summary)
    silent = sorted(set(running) - {s.worker for s in stats})
    code, reason = exit_status(code, reason, problems, silent, fleet.missing())
    if code:
        print(f"mdi-exit fleet: {reason}", file=sys.stderr, flush=True)
    print(f"[fleet] logs in {log_dir}; exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
