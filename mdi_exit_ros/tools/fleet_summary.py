"""The SUMMARY of `mdi-exit fleet` (and what a --record keeps): plain functions of
message-like objects, so they are tested without ROS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# WorkerStats fields a --record keeps per report (after the time it arrived)
STATS_FIELDS = ("t", "worker", "is_source", "tasks_run", "tasks_overrun", "frames_received",
                "frames_admitted", "frames_dropped", "frames_classified", "frames_overdue",
                "frames_expired", "frames_shed", "frames_lost", "frames_lost_in_transport",
                "admission_interval", "input_queue", "output_queue",
                "exit_thresholds", "exits", "latency_p50", "latency_p95")
# what a --record keeps per result (class_id -1: answered as expired or failed)
RESULT_FIELDS = ("t", "latency", "exit", "correct", "class_id")


@dataclass
class RunCounts:
    """What the fleet counted itself on the sources' topics."""

    labels: int = 0  # FrameLabels seen = frames the player published
    classified: int = 0  # ExitResults on /<source>/classification
    labelled: int = 0  # results whose frame's ground truth was seen
    correct: int = 0
    exits: Counter = field(default_factory=Counter)  # exit index -> results


@dataclass
class Departure:
    """A node that exited while the fleet ran (killed, crashed, or a player that failed)."""

    node: str  # /robot3/worker
    at: float  # seconds since the fleet started running
    code: int  # its exit code (-9: SIGKILL)
    back_at: float | None = None  # when a restart brought it back (active), s since the start
    restart: int = 0  # which restart brought it back (1..N)
    note: str = ""  # why it is not back

    def describe(self) -> str:
        text = f"{self.node} at {self.at:.1f} s (exit code {self.code})"
        if self.back_at is not None:
            return text + f", back at {self.back_at:.1f} s (restart {self.restart})"
        return text + (f", {self.note}" if self.note else ", not back")


def summarize(stats: Iterable[Any], counts: RunCounts, seconds: float,
              streaming: float | None = None, robots: Iterable[str] | None = None,
              topology_robots: Iterable[str] | None = None,
              departures: Iterable[Departure] = ()) -> dict[str, Any]:
    """Fleet totals from each worker's last WorkerStats and the fleet's own counts.

    `seconds` is the run's length, `streaming` the part of it since the first frame (the
    throughput's denominator: a player needs a few seconds to start). `robots` are the robots
    this process ran (of `topology_robots`), `departures` the nodes that left meanwhile."""
    stats = list(stats)
    sources = [s for s in stats if s.is_source]
    total = {k: sum(int(getattr(s, f"frames_{k}")) for s in sources)
             for k in ("received", "admitted", "dropped", "classified", "overdue",
                       "expired", "shed", "lost", "lost_in_transport", "labelled", "correct")}
    exits: list[int] = []
    for s in stats:
        for k, n in enumerate(s.exits):
            if k >= len(exits):
                exits.append(0)
            exits[k] += int(n)
    links = {f"{s.worker}->{t}": int(n) for s in stats
             for t, n in zip(s.offload_targets, s.offloads_sent, strict=False)}
    # The sources' own counts first: they subscribe to the labels before the player starts,
    # while the fleet's subscription can miss the first frames.
    if total["labelled"]:
        accuracy = total["correct"] / total["labelled"]
        basis = (total["correct"], total["labelled"])
    elif counts.labelled:
        accuracy, basis = counts.correct / counts.labelled, (counts.correct, counts.labelled)
    else:
        accuracy, basis = None, (0, 0)
    classified = counts.classified or total["classified"]
    window = "since the first frame" if streaming is not None else "of the run"
    streaming = seconds if streaming is None else streaming
    return {
        "workers": len(stats), "sources": [s.worker for s in sources],
        "published": counts.labels, **{f"frames_{k}": v for k, v in total.items()},
        "results": counts.classified, "accuracy": accuracy, "accuracy_basis": basis,
        "exits": exits, "offloads": links, "seconds": seconds, "streaming": streaming,
        "streaming_basis": window,
        "throughput": classified / streaming if streaming > 0 else 0.0,
        "tasks_run": {s.worker: int(s.tasks_run) for s in stats},
        "task_seconds": {s.worker: float(s.compute_delay) for s in stats},
        "latency": {s.worker: (float(s.latency_p50), float(s.latency_p95)) for s in sources},
        "robots": list(robots) if robots is not None else [s.worker for s in stats],
        "topology_robots": list(topology_robots) if topology_robots is not None else None,
        "departures": list(departures),
    }


def format_summary(s: dict[str, Any], title: str) -> str:
    """The SUMMARY block printed at the end of a run."""
    offered = f"{s['frames_received']} (frames that reached the sources)"
    in_flight = s["frames_admitted"] - s["frames_classified"]
    correct, labelled = s["accuracy_basis"]
    lines = [
        f"SUMMARY {title}: {s['workers']} workers reported, sources "
        f"{', '.join(s['sources']) or '-'}, {s['seconds']:.1f} s",
        f"  frames offered     {offered}",
        f"  admitted           {s['frames_admitted']}",
        f"  classified         {s['frames_classified']} (results seen: {s['results']}, "
        f"in flight at stop: {max(in_flight, 0)})",
        f"  dropped            {s['frames_dropped']} (by admission control; shed by the "
        f"overload guard: {s.get('frames_shed', 0)})",
        f"  lost               {s.get('frames_lost', 0)} (camera frames that never reached a "
        f"source; reported by DDS: {s.get('frames_lost_in_transport', 0)})",
        f"  overdue            {s['frames_overdue']}",
        f"  expired            {s.get('frames_expired', 0)} (answered as expired, counted in "
        "classified)",
        "  accuracy           " + ("n/a (no ground truth)" if s["accuracy"] is None else
                                   f"{100 * s['accuracy']:.2f}% ({correct}/{labelled})"),
        "  exits              " + (", ".join(f"exit {k}: {n}" for k, n in
                                             enumerate(s["exits"], start=1)) or "-"),
        "  offloads           " + (", ".join(f"{link}: {n}" for link, n in
                                             sorted(s["offloads"].items())) or "-"),
        f"  throughput         {s['throughput']:.2f} classified frames/s (over "
        f"{s['streaming']:.1f} s {s.get('streaming_basis', 'of the run')})",
        "  tasks run          " + _tasks_run(s["tasks_run"]),
    ]
    mean_task = _mean_task_seconds(s)
    if mean_task is not None:
        lines.append("  task time (Gamma)  " + ", ".join(
            f"{w}: {g * 1e3:.1f} ms" for w, g in s["task_seconds"].items()
            if s["tasks_run"].get(w)) + f"; mean over tasks {mean_task * 1e3:.1f} ms")
    robots, everyone = s.get("robots"), s.get("topology_robots")
    if robots is not None:
        ran = ", ".join(robots) or "-"
        if everyone is not None and list(everyone) != list(robots):
            others = [r for r in everyone if r not in robots]
            ran += f" (only these; {', '.join(others)} run elsewhere)"
        lines.append(f"  robots here        {ran}")
    if "departures" in s:
        lines.append("  robots that left   " + ("; ".join(d.describe() for d in s["departures"])
                                              or "none"))
    for w, (p50, p95) in s["latency"].items():
        ratio = f"; p50 = {p50 / mean_task:.1f} x mean task time" if mean_task else ""
        lines.append(f"  latency {w:<10} p50 {p50 * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms{ratio}")
    return "\n".join(lines)


def _tasks_run(tasks: dict[str, int]) -> str:
    """Tasks per worker with each one's share of all tasks (is the fleet sharing the work?)."""
    total = sum(tasks.values())
    return ", ".join(f"{w}: {n}" + (f" ({100 * n / total:.0f}%)" if total else "")
                     for w, n in tasks.items())


def _mean_task_seconds(s: dict[str, Any]) -> float | None:
    """Gamma averaged over the tasks run (each worker's EWMA weighted by its tasks)."""
    gammas, tasks = s.get("task_seconds") or {}, s["tasks_run"]
    total = sum(tasks.get(w, 0) for w in gammas)
    if not total:
        return None
    return sum(g * tasks.get(w, 0) for w, g in gammas.items()) / total


Key = tuple[str, int, int, str]  # (source, stamp sec, stamp nanosec, frame_id): one frame


class RunTally:
    """What the fleet counts itself on the sources' topics: frames published (their labels),
    results, and accuracy from matching each result with its frame's label; with `record`,
    one row per result (RESULT_FIELDS) and per WorkerStats report (STATS_FIELDS) for
    --record. `now` is the caller's monotonic time."""

    def __init__(self, record: bool = False) -> None:
        self.counts = RunCounts()
        self.first_frame: float | None = None  # time of the first label or result
        self.record = record
        # [time, latency, exit, correct (None: no label yet), class_id] per result
        self.results: list[list[Any]] = []
        self.stats: list[list[Any]] = []  # [time, *STATS_FIELDS[1:]] per report
        self._labels: dict[Key, int] = {}
        self._guesses: dict[Key, int] = {}
        self._rows: dict[Key, list[Any]] = {}  # result rows waiting for their label

    @staticmethod
    def key(src: str, header: Any) -> Key:
        return (src, header.stamp.sec, header.stamp.nanosec, header.frame_id)

    def _score(self, key: Key) -> None:
        if key in self._labels and key in self._guesses:
            truth, guess = self._labels.pop(key), self._guesses.pop(key)
            row = self._rows.pop(key, None)
            if truth >= 0:
                self.counts.labelled += 1
                self.counts.correct += truth == guess
                if row is not None:
                    row[3] = truth == guess

    def on_stats(self, msg: Any, now: float) -> None:
        if self.record:
            self.stats.append([now] + [
                list(v) if not isinstance(v, (int, float, str, bool)) else v
                for v in (getattr(msg, f) for f in STATS_FIELDS[1:])])

    def on_label(self, src: str, msg: Any, now: float) -> None:
        """A FrameLabel of source `src`: a frame published, with its ground truth."""
        self.first_frame = self.first_frame or now
        self.counts.labels += 1
        key = self.key(src, msg.header)
        self._labels[key] = int(msg.class_id)
        self._score(key)

    def on_result(self, src: str, msg: Any, now: float) -> None:
        """An ExitResult on source `src`'s classification topic."""
        self.first_frame = self.first_frame or now
        self.counts.classified += 1
        self.counts.exits[int(msg.exit_index)] += 1
        key = self.key(src, msg.header)
        self._guesses[key] = int(msg.class_id)
        if self.record:
            row = [now, float(msg.latency), int(msg.exit_index), None, int(msg.class_id)]
            self.results.append(row)
            self._rows[key] = row
        self._score(key)
