"""`mdi-exit monitor`: a live terminal view of a running fleet, and its /diagnostics.

Everything shown comes from the fleet's topics: `<fleet>/mdi/worker_stats` (every worker's
counters, ~1 Hz) and `<fleet>/mdi/neighbor_state` (queues and lifecycle state, ~5 Hz; the
fleet namespace is `--fleet`, default `/`). Per worker:
lifecycle state, I_n, O_n, Gamma_n, tasks run, offloads sent/received and exits per exit
point; per source: admitted frames/s, mu (rate mode) or T_e (threshold mode), accuracy so
far and latency p50/p95. The same numbers go to `/diagnostics` (one DiagnosticStatus per
worker) for rqt_robot_monitor and the diagnostic aggregator.

The aggregation (`FleetView`) and rendering (`render`, `diagnostic_entries`) are plain
functions of message-like objects, testable without a middleware; `mdi-exit fleet` uses
them for its `--monitor` view and its summary.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdi_exit_ros.core.exit_policy import DEFAULT_T_O
from mdi_exit_ros.topics import DEFAULT_FLEET, fleet_namespace, state_topic, stats_topic

STALE_AFTER = 3.0  # s without WorkerStats: the worker is STALE
WARN_AFTER = 2.0  # s without WorkerStats: late (WARN)
RATE_WINDOW = 5.0  # s of history for the admitted frames/s
DIAGNOSTICS_TOPIC = "/diagnostics"

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass
class WorkerEntry:
    """What the monitor knows of one worker: its latest stats and state reports."""

    name: str
    stats: Any = None
    stats_at: float | None = None
    state: Any = None
    state_at: float | None = None
    admitted: deque = field(default_factory=lambda: deque(maxlen=64))  # (t, frames_admitted)

    def latest(self, name: str, default: Any = None) -> Any:
        """A field both reports carry (queues, Gamma_n, state), from the newer one."""
        reports = [(t, r) for t, r in ((self.stats_at, self.stats), (self.state_at, self.state))
                   if r is not None and hasattr(r, name)]
        if not reports:
            return default
        return getattr(max(reports, key=lambda tr: tr[0])[1], name)

    def get(self, name: str, default: Any = 0) -> Any:
        """A WorkerStats field (default while no stats arrived)."""
        return getattr(self.stats, name, default) if self.stats is not None else default

    @property
    def is_source(self) -> bool:
        return bool(self.get("is_source", False))

    def age(self, now: float) -> float | None:
        """Seconds since the last WorkerStats (None: never)."""
        return None if self.stats_at is None else max(now - self.stats_at, 0.0)

    def admitted_rate(self) -> float | None:
        """Frames admitted per second over the last RATE_WINDOW seconds of reports."""
        if len(self.admitted) < 2:
            return None
        t1, n1 = self.admitted[-1]
        t0, n0 = next(((t, n) for t, n in self.admitted if t >= t1 - RATE_WINDOW),
                      self.admitted[0])
        if t1 - t0 <= 0:
            return None
        return max(n1 - n0, 0) / (t1 - t0)

    def accuracy(self) -> float | None:
        labelled = self.get("frames_labelled")
        return self.get("frames_correct") / labelled if labelled else None

    def offloads(self) -> dict[str, int]:
        return {t: int(n) for t, n in zip(self.get("offload_targets", []),
                                          self.get("offloads_sent", []), strict=False)}


class FleetView:
    """Latest reports of every worker seen, in order of first appearance."""

    def __init__(self) -> None:
        self.workers: dict[str, WorkerEntry] = {}

    def entry(self, name: str) -> WorkerEntry:
        if name not in self.workers:
            self.workers[name] = WorkerEntry(name)
        return self.workers[name]

    def on_stats(self, msg: Any, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        e = self.entry(msg.worker)
        e.stats, e.stats_at = msg, now
        e.admitted.append((now, int(msg.frames_admitted)))

    def on_state(self, msg: Any, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        e = self.entry(msg.worker)
        e.state, e.state_at = msg, now

    def ordered(self) -> list[WorkerEntry]:
        """Workers in natural name order (robot2 before robot10)."""
        return sorted(self.workers.values(), key=lambda e: [
            int(t) if t.isdigit() else t for t in re.split(r"(\d+)", e.name)])

    def with_stats(self) -> list[WorkerEntry]:
        return [e for e in self.workers.values() if e.stats is not None]


def format_counts(values: Sequence[int] | None) -> str:
    """Exits per exit point as '300/100/50' ('-' when there are none)."""
    return "/".join(str(int(v)) for v in values) if values is not None and len(values) else "-"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or seconds <= 0 else f"{seconds * 1e3:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
            for r in [header, *rows]]


def worker_status(e: WorkerEntry, now: float, t_o: int = DEFAULT_T_O,
                  stale_after: float = STALE_AFTER,
                  warn_after: float = WARN_AFTER) -> tuple[int, str]:
    """(level, message) of one worker: STALE without recent stats, WARN over T_O or late."""
    age = e.age(now)
    if age is None or age > stale_after:
        since = "never" if age is None else f"for {age:.1f} s"
        return STALE, f"no WorkerStats {since}"
    state = e.latest("lifecycle_state", "?") or "?"
    health = e.get("health", "")
    if health:  # the worker says it cannot run tasks (core/health.py)
        return ERROR, f"{state}: {health}"
    out_q, in_q = int(e.latest("output_queue", 0)), int(e.latest("input_queue", 0))
    problems = []
    if out_q > t_o:
        problems.append(f"output queue {out_q} over T_O={t_o}")
    if age > warn_after:
        problems.append(f"stats {age:.1f} s old")
    if problems:
        return WARN, f"{state}: " + ", ".join(problems)
    return OK, f"{state}, I_n={in_q}, O_n={out_q}"


def render(view: FleetView, now: float | None = None, t_o: int = DEFAULT_T_O,
           stale_after: float = STALE_AFTER, title: str = "MDI-Exit fleet",
           fleet: str = DEFAULT_FLEET) -> str:
    """The monitor's screen as text: a worker table and a source table."""
    now = time.monotonic() if now is None else now
    lines = [f"{title}  workers: {len(view.workers)}  {time.strftime('%H:%M:%S')}"]
    if not view.workers:
        return "\n".join(lines + [f"(waiting for {stats_topic(fleet)})"]) + "\n"
    rows = []
    for e in view.ordered():
        level, _ = worker_status(e, now, t_o, stale_after)
        state = e.latest("lifecycle_state", "?") or "?"
        if level == STALE:
            state = "STALE"
        elif level == ERROR:
            state = "ERROR"
        elif level == WARN:
            state += "!"
        age = e.age(now)
        rows.append([
            e.name + ("*" if e.is_source else ""), state,
            str(e.latest("input_queue", "-")), str(e.latest("output_queue", "-")),
            _ms(e.latest("compute_delay")), str(e.get("tasks_run", "-")),
            str(sum(e.offloads().values())), str(e.get("tasks_received", "-")),
            format_counts(e.get("exits", [])), "-" if age is None else f"{age:.1f}s"])
    lines += _table(["worker", "state", "I_n", "O_n", "Γ_n ms", "run", "sent", "recv",
                     "exits", "seen"], rows)
    sources = [e for e in view.ordered() if e.is_source]
    if sources:
        rows = []
        for e in sources:
            rate = e.admitted_rate()
            mode = e.get("admission_mode", "") or "-"
            control = (f"μ {_ms(e.get('admission_interval', 0.0))} ms" if mode == "rate"
                       else "T_e " + "/".join(f"{t:.2f}" for t in e.get("exit_thresholds", []))
                       if mode == "threshold" else "-")
            rows.append([
                e.name, mode, control, "-" if rate is None else f"{rate:.1f}",
                str(e.get("frames_received")), str(e.get("frames_admitted")),
                str(e.get("frames_dropped")), str(e.get("frames_lost")),
                str(e.get("frames_classified")),
                str(e.get("frames_overdue")), _pct(e.accuracy()),
                _ms(e.get("latency_p50", 0.0)), _ms(e.get("latency_p95", 0.0))])
        lines += [""] + _table(["source", "mode", "control", "admit/s", "recv", "admit",
                                "drop", "lost", "done", "late", "accuracy", "p50 ms",
                                "p95 ms"], rows)
    lines += ["", "* source   ! warning (O_n over T_O or late stats)   ERROR: cannot run tasks "
              "(see /diagnostics)"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DiagnosticEntry:
    """One DiagnosticStatus, as plain data."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


def _values(e: WorkerEntry) -> list[tuple[str, str]]:
    kv: list[tuple[str, str]] = [
        ("lifecycle_state", str(e.latest("lifecycle_state", ""))),
        ("model_id", str(e.get("model_id", ""))),
        ("input_queue", str(e.latest("input_queue", 0))),
        ("output_queue", str(e.latest("output_queue", 0))),
        ("compute_delay_s", f"{float(e.latest('compute_delay', 0.0)):.6f}"),
    ]
    for name in ("tasks_run", "tasks_received", "tasks_refused", "tasks_taken_back",
                 "duplicates", "tasks_failed", "messages_refused", "internal_errors"):
        kv.append((name, str(e.get(name))))
    kv += [(f"offloads_to_{t}", str(n)) for t, n in e.offloads().items()]
    kv += [(f"exit_{k}", str(int(n))) for k, n in enumerate(e.get("exits", []), start=1)]
    if e.is_source:
        for name in ("frames_received", "frames_admitted", "frames_dropped", "frames_shed",
                     "frames_lost", "frames_lost_in_transport", "frames_classified",
                     "frames_overdue", "frames_expired", "frames_labelled", "frames_correct"):
            kv.append((name, str(e.get(name))))
        acc = e.accuracy()
        kv += [("admission_mode", str(e.get("admission_mode", ""))),
               ("admission_interval_s", f"{float(e.get('admission_interval', 0.0)):.6f}"),
               ("accuracy", "" if acc is None else f"{acc:.4f}"),
               ("latency_p50_s", f"{float(e.get('latency_p50', 0.0)):.6f}"),
               ("latency_p95_s", f"{float(e.get('latency_p95', 0.0)):.6f}")]
    return kv


def diagnostic_entries(view: FleetView, now: float | None = None, t_o: int = DEFAULT_T_O,
                       stale_after: float = STALE_AFTER) -> list[DiagnosticEntry]:
    """One entry per worker: level, 'mdi_exit/<worker>', message and its counters."""
    now = time.monotonic() if now is None else now
    out = []
    for e in view.ordered():
        level, message = worker_status(e, now, t_o, stale_after)
        out.append(DiagnosticEntry(level, f"mdi_exit/{e.name}", message, e.name,
                                   tuple(_values(e))))
    return out


def to_diagnostic_array(entries: Iterable[DiagnosticEntry], stamp: Any = None) -> Any:
    """DiagnosticArray message of the entries (levels are `byte` fields: bytes in Python)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    array = DiagnosticArray()
    if stamp is not None:
        array.header.stamp = stamp
    array.status = [DiagnosticStatus(level=bytes([d.level]), name=d.name, message=d.message,
                                     hardware_id=d.hardware_id,
                                     values=[KeyValue(key=k, value=v) for k, v in d.values])
                    for d in entries]
    return array


def _make_node(view: FleetView, period: float, t_o: int, stale_after: float,
               on_tick: Any, fleet: str = DEFAULT_FLEET) -> Any:
    """The ROS side: subscriptions feeding `view`, /diagnostics, a timer calling on_tick."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node

    from mdi_exit_ros.msg import NeighborState, WorkerStats
    from mdi_exit_ros.wire.qos import reliable, state_qos

    class MonitorNode(Node):
        """Subscribes to the fleet's state and stats, publishes /diagnostics."""

        def __init__(self) -> None:
            super().__init__("mdi_monitor", namespace=fleet)
            self.create_subscription(WorkerStats, stats_topic(fleet), view.on_stats,
                                     state_qos())
            self.create_subscription(NeighborState, state_topic(fleet), view.on_state,
                                     state_qos())
            self.diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                                     reliable(10))
            self.create_timer(period, self.tick)

        def publish_diagnostics(self) -> None:
            entries = diagnostic_entries(view, time.monotonic(), t_o, stale_after)
            if entries:
                self.diagnostics.publish(
                    to_diagnostic_array(entries, self.get_clock().now().to_msg()))

        def tick(self) -> None:
            self.publish_diagnostics()
            on_tick()

    return MonitorNode()


def snapshot(node: Any, view: FleetView, args: argparse.Namespace) -> int:
    """`--once`: wait (bounded by --wait) for the workers, print, publish /diagnostics.

    Every wait is bounded by the one deadline, and success means what it says: the expected
    workers reported, and the expected /diagnostics subscribers matched and acknowledged
    the snapshot (a volatile publication made before a reader matched reaches nobody).
    """
    import rclpy
    from rclpy.duration import Duration

    deadline = time.monotonic() + args.wait
    first: float | None = None
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        seen = view.with_stats()
        if seen and first is None:
            first = time.monotonic()
        if args.expect and len(seen) >= args.expect:
            break
        if not args.expect and first is not None and time.monotonic() - first > 1.5:
            break  # one more stats period, so that every worker has reported
    seen = view.with_stats()
    if not seen:
        print(f"no WorkerStats on {stats_topic(args.fleet)} within {args.wait:g} s",
              file=sys.stderr)
        return 1
    print(render(view, t_o=args.output_queue_threshold, stale_after=args.stale_after,
                 fleet=args.fleet), flush=True)
    if args.expect and len(seen) < args.expect:
        print(f"only {len(seen)} of {args.expect} workers reported within {args.wait:g} s",
              file=sys.stderr)
        return 1
    want = args.diagnostics_subscribers
    while node.diagnostics.get_subscription_count() < want and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    matched = node.diagnostics.get_subscription_count()
    if matched < want:
        print(f"only {matched} of {want} /diagnostics subscribers matched within "
              f"{args.wait:g} s", file=sys.stderr)
        return 1
    node.publish_diagnostics()
    left = max(deadline - time.monotonic(), 1.0)
    if not node.diagnostics.wait_for_all_acked(Duration(seconds=left)):
        print(f"/diagnostics not acknowledged by its {matched} subscriber(s)",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.utilities import remove_ros_args

    args_in = sys.argv if argv is None else ["monitor", *argv]
    parser = argparse.ArgumentParser(prog="mdi-exit monitor", description=__doc__.split("\n")[0])
    parser.add_argument("--once", action="store_true",
                        help="print one snapshot after a bounded wait and exit")
    parser.add_argument("--wait", type=float, default=5.0,
                        help="--once: wait at most this long for WorkerStats (s)")
    parser.add_argument("--expect", type=int, default=0,
                        help="--once: print as soon as this many workers reported (0: wait "
                        "one stats period after the first report)")
    parser.add_argument("--diagnostics-subscribers", type=int, default=0, metavar="N",
                        help="--once: publish /diagnostics only once N subscribers matched "
                        "(within --wait) and fail unless they acknowledged it")
    parser.add_argument("--fleet", default=DEFAULT_FLEET, metavar="NAMESPACE",
                        help="the fleet namespace to watch (default: /)")
    parser.add_argument("--period", type=float, default=1.0, help="refresh period (s)")
    parser.add_argument("--output-queue-threshold", type=int, default=DEFAULT_T_O,
                        help="T_O: warn when a worker's O_n exceeds it")
    parser.add_argument("--stale-after", type=float, default=STALE_AFTER,
                        help="seconds without WorkerStats before a worker is STALE")
    args = parser.parse_args(remove_ros_args(args_in)[1:])
    if args.period <= 0 or args.wait < 0 or args.stale_after <= 0:
        parser.error("--period and --stale-after must be positive, --wait non-negative")
    if args.expect < 0 or args.diagnostics_subscribers < 0:
        parser.error("--expect and --diagnostics-subscribers must not be negative")
    try:
        args.fleet = fleet_namespace(args.fleet)
    except ValueError as exc:
        parser.error(str(exc))

    view = FleetView()
    tty = sys.stdout.isatty() and not args.once and os.environ.get("TERM") != "dumb"

    def draw() -> None:
        if args.once:
            return
        text = render(view, t_o=args.output_queue_threshold, stale_after=args.stale_after,
                      fleet=args.fleet)
        sys.stdout.write(("\x1b[H\x1b[J" + text) if tty else text + "\n")
        sys.stdout.flush()

    rclpy.init(args=args_in)
    node = _make_node(view, args.period, args.output_queue_threshold, args.stale_after, draw,
                      args.fleet)
    try:
        if not args.once:
            rclpy.spin(node)
            return 0
        return snapshot(node, view, args)
    except (KeyboardInterrupt, ExternalShutdownException):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut clean-up
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
