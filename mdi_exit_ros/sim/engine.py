"""The discrete-event simulator: the unchanged `mdi_exit_ros.core` objects on a simulated clock.

Every decision is the core's: each simulated robot is a `core.WorkerCore` (Alg. 1 in
`complete`, Alg. 2 in `offload_pass`, the neighbour table, offload ledger, custody), each
source adds a `core.RateController` (Alg. 3 with slow start and the backlog guard) or a
`core.ThresholdController` (Alg. 4), a `core.FrameLedger` and the overload guard
(`core.has_room`, `core.overdue_action`). This module only does what the ROS nodes do around
them (nodes/worker.py, nodes/source.py): it calls the same methods on the same events, with
the simulated time as ``now``, and models what the nodes get from the world:

* compute: task k on worker n takes ``service_times[k-1]`` of that worker seconds (the
  bench's emulated device profile: MFLOPs / MFLOP/s, padded to on the nodes), one task at a
  time;
* links: per directed neighbour link a FIFO with ``link_bandwidth`` bytes/s and ``link_delay``
  one way, for tasks and acks (as nodes/links.py); exit results and NeighborState reports
  are not emulated in the nodes, here they take ``report_latency``; reports are lost with
  probability ``report_loss``;
* exits: each admitted frame is one image of a per-image table (`sim.exits`), whose
  confidence at exit k goes into `complete`;
* churn: a worker leaves (crash: everything it held is gone, messages to it are lost),
  joins (a fresh core, as a restarted process) and links go down for a while (every message
  on them lost, both ways).

Events live in one heapq (time, sequence, callback): see docs/SIMULATION.md for why not
SimPy.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mdi_exit_ros import core
from mdi_exit_ros.core import ExitThresholds, Task, TaskKey, WorkerCore
from mdi_exit_ros.params import SPECS

from .exits import ExitTable

# As the nodes (mdi_exit_ros/nodes/worker.py): a TaskAck's size on an emulated link and the
# period of WorkerCore.tick (ack timeouts, leases). test_sim_engine checks they agree.
ACK_BYTES = 64
TICK_PERIOD = 0.05
MODEL_ID = "sim-model"
GC_THRESHOLD = 200_000  # allocations between collections of the youngest generation (run)


def _default(name: str) -> Any:
    """A parameter's default from the nodes' parameter table (its one home)."""
    value = SPECS[name].default
    return tuple(value) if isinstance(value, list) else value


@dataclass
class WorkerConfig:
    """One simulated robot's parameters: names and defaults of mdi_exit_ros/params.py.

    ``service_times`` are what the node's parameter of that name pads each task to (set on
    every robot of a bench fleet); ``compute_slowdown``, which on a node scales the measured
    compute only when ``service_times`` is unset, has nothing to scale here: a slower robot
    gets its own ``service_times``."""

    service_times: list[float]
    link_delay: float = _default("link_delay")
    link_bandwidth: float = _default("link_bandwidth")
    output_queue_threshold: int = _default("output_queue_threshold")
    neighbor_lease: float = _default("neighbor_lease")
    state_period: float = _default("state_period")
    offload_first_task: bool = _default("offload_first_task")
    distribution: str = _default("distribution")
    pipeline_chain: tuple[str, ...] = ()  # unset on the nodes (needed by distribution pipeline)
    # source only
    admission_mode: str = _default("admission_mode")
    queue_thresholds: tuple[float, float] = _default("queue_thresholds")
    alpha: float = _default("alpha")
    beta: float = _default("beta")
    zeta: float = _default("zeta")
    control_period: float = _default("control_period")
    min_exit_threshold: float = _default("min_exit_threshold")
    slow_start: bool = _default("slow_start")
    initial_interval: float = _default("initial_interval")
    latency_budget: float = _default("latency_budget")
    min_interval: float = _default("min_interval")
    max_interval: float = _default("max_interval")
    frame_deadline: float = _default("frame_deadline")
    max_queue: int = _default("max_queue")
    max_readmissions: int = _default("max_readmissions")


@dataclass
class Arrivals:
    """A source's camera: ``rate`` frames/s, fixed interval or Poisson, from ``start``."""

    rate: float
    poisson: bool = False
    start: float = 0.0
    stop: float = math.inf


@dataclass
class SimParams:
    """What the simulator models beyond the nodes' parameters."""

    report_latency: float = 0.001  # s: NeighborState and ExitResult (DDS, not emulated)
    report_loss: float = 0.0  # probability a NeighborState is lost on its way to one peer
    tick_period: float = TICK_PERIOD
    # s a robot's inference thread spends after a task before it takes the next (completing
    # it in the core, sending, waking up): not in Gamma_n, which counts the task's compute
    task_overhead: float = 0.0
    # "all": a source's NeighborState reaches every robot, as the fleet-wide topic does (its
    # T_e restamps its frames' tasks wherever they wait); "neighbors": only the robots that
    # may offload to it, as every other report (O(sources) instead of O(sources x robots)
    # events per state period: large fleets with many sources)
    source_reports: str = "all"
    # Run only the ticks that act (WorkerCore.next_deadline): the same run, with fewer
    # events (docs/SIMULATION.md, "Scale"); False runs every tick, as the nodes' timer
    skip_idle_ticks: bool = True
    frame_seconds: float | None = None  # the source's own measured compute per frame (slow
    # start's floor of mu); None: from its service times and the table's exit mix


@dataclass
class FrameEnd:
    """One answered frame (its first result), for metrics."""

    source: str
    admitted_at: float
    answered_at: float
    exit_index: int  # 0: expired
    correct: bool | None
    worker: str


@dataclass
class _Worker:
    wid: str
    cfg: WorkerConfig
    core: WorkerCore
    neighbors: list[str]  # one hop (out)
    incarnation: int = 0
    alive: bool = True
    busy: bool = False
    tasks_run: int = 0
    busy_seconds: float = 0.0
    # the tick timer's grid (skip_idle_ticks): the next tick time not yet passed, the one
    # before it (when the nodes' timer would have set it), the tick event in the queue
    grid_next: float = 0.0
    grid_prev: float = 0.0
    tick_at: float = math.inf
    tick_token: int = 0


@dataclass
class _Source:
    wid: str
    arrivals: Arrivals
    controller: Any
    frames: core.FrameLedger = field(default_factory=lambda: core.FrameLedger(10**7))
    images: dict[int, int] = field(default_factory=dict)  # frame id -> image index
    gate: core.RateGate = field(default_factory=core.RateGate)  # Alg. 3's gate (rate mode)
    next_id: int = 0
    received: int = 0
    shed: int = 0
    expired: int = 0
    admit_times: list[float] = field(default_factory=list)


class Simulator:
    """A fleet of `WorkerCore`s on a heapq event loop (see the module docstring)."""

    def __init__(self, workers: dict[str, WorkerConfig], neighbors: dict[str, list[str]],
                 sources: dict[str, Arrivals], table: ExitTable,
                 thresholds: tuple[float, ...], *, cut_bytes: list[int], input_bytes: int,
                 seed: int = 0, params: SimParams | None = None) -> None:
        self.params = params or SimParams()
        self.table = table
        self.k = table.num_exits
        if len(thresholds) != self.k:
            raise ValueError(f"{len(thresholds)} thresholds for a model with {self.k} exits")
        self.thresholds = ExitThresholds.of(thresholds)
        self.cut_bytes = list(cut_bytes) + [0] * self.k
        self.input_bytes = int(input_bytes)
        self.seed = seed
        self.rng = random.Random(seed)  # images, Poisson gaps, report loss
        self.now = 0.0
        # (time, when it was scheduled, sequence, callback, args): ties run in scheduling
        # order, as (time, sequence) would; the scheduling time lets a skipped tick timer
        # put a tick where the timer's own schedule would have put it (``_retick``)
        self._q: list[tuple[float, float, int, Callable[..., None], tuple]] = []
        self._sched = 0.0  # when the running event was scheduled (its second field)
        self._seq = itertools.count()
        self.events = 0
        self.ticks_idle = 0  # skip_idle_ticks: queued ticks that found nothing to do
        self.configs = dict(workers)
        self.topology = {w: list(n) for w, n in neighbors.items()}
        self.workers: dict[str, _Worker] = {}
        self._link_free: dict[tuple[str, str], float] = {}
        self._link_down: dict[frozenset[str], float] = {}
        # churn: when each crashed incarnation went down; a message it had not finished
        # sending by then is lost (``_sent``). Empty without churn: no message is wrapped.
        self._crashed: dict[tuple[str, int], float] = {}
        self._crashes_scheduled = False
        self.lost_with_sender = 0  # messages lost that way
        self.ends: list[FrameEnd] = []
        self.duplicates = 0
        self.sources: dict[str, _Source] = {}
        self._stop_at = math.inf
        self._skip_ticks = self.params.skip_idle_ticks
        self._tick_near = 0.99 * self.params.tick_period  # _retick: "the next grid tick"
        self._unsettled: _Source | None = None  # a source last seen with a pending frame
        self._in_cache: dict[str, list[str]] | None = None
        for i, wid in enumerate(workers):
            self._start_worker(wid, i)
        for wid, arr in sources.items():
            self._start_source(wid, arr)

    # -- event loop -------------------------------------------------------------------------

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at simulated time ``t``."""
        heapq.heappush(self._q, (t, self.now, next(self._seq), fn, args))

    def run(self, until: float, drain: float = 0.0,
            progress: Callable[[float], None] | None = None) -> None:
        """Run to ``until``; then up to ``drain`` s more until every admitted frame is
        answered (cameras stop at their ``Arrivals.stop``). ``progress(now)`` is called about
        every simulated second. May be called again with a later ``until``."""
        self._stop_at = stop = until + drain
        q, pop = self._q, heapq.heappop
        next_progress = 0.0 if progress is not None else math.inf
        events = 0  # added to self.events at the end (handlers adjust it too)
        # The loop creates no reference cycles (gc.collect() after a run finds nothing), but
        # many objects that live for hundreds of events (queued events, tasks): with the
        # default thresholds they are promoted to the oldest generation before they die,
        # and the full collections they trigger walk every record of the run (millions of
        # answered frames). Collections only change when memory is reclaimed, never a value.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], GC_THRESHOLD), *thresholds[1:])
        try:
            while q:
                t = q[0][0]
                if t > stop or (t > until and self.settled()):
                    break
                t, self._sched, _, fn, args = pop(q)
                self.now = t
                events += 1
                fn(*args)
                if t >= next_progress:
                    progress(t)  # type: ignore[misc]  # inf unless progress is given
                    next_progress = t + 1.0
        finally:
            self.events += events
            gc.set_threshold(*thresholds)
        self.now = min(max(self.now, until), self._stop_at)

    def settled(self) -> bool:
        """No admitted frame is waiting for its answer (asked after every event of the
        drain: the source found pending last time is looked at first)."""
        last = self._unsettled
        if last is not None and last.frames.pending_count():
            return False
        for s in self.sources.values():
            if s.frames.pending_count():
                self._unsettled = s
                return False
        self._unsettled = None
        return True

    def _every(self, period: float, fn: Callable[..., None], wid: str, inc: int,
               phase: float) -> None:
        """A timer of worker ``wid``'s incarnation ``inc`` (ends with it)."""
        if not period > 0:  # scenario.validate refuses these; a zero period never ends
            raise ValueError(f"timer period of {wid} must be > 0, got {period}")

        def tick() -> None:
            w = self.workers.get(wid)
            if w is None or not w.alive or w.incarnation != inc or self.now > self._stop_at:
                return
            fn(w)
            self.at(self.now + period, tick)
        self.at(self.now + phase, tick)

    # -- workers ----------------------------------------------------------------------------

    def _start_worker(self, wid: str, index: int, incarnation: int = 0) -> None:
        cfg = self.configs[wid]
        neighbors = self.topology.get(wid, [])
        # one coin per worker incarnation, stable across processes (str hash() is salted)
        coin = random.Random(zlib.crc32(f"{self.seed}/{wid}/{incarnation}".encode()))
        wcore = WorkerCore(
            wid, MODEL_ID, self.thresholds, rng=coin,
            t_o=cfg.output_queue_threshold, lease=cfg.neighbor_lease,
            allowed=frozenset(neighbors), offload_first_task=cfg.offload_first_task,
            distribution=core.Distribution(cfg.distribution), pipeline=cfg.pipeline_chain)
        w = _Worker(wid, cfg, wcore, neighbors, incarnation=incarnation)
        self.workers[wid] = w
        phase = self.rng.random()
        self._every(cfg.state_period, self._report, wid, incarnation, phase * cfg.state_period)
        if self.params.skip_idle_ticks:
            w.grid_prev, w.grid_next = self.now, self.now + phase * self.params.tick_period
            self._retick(w)
        else:
            self._every(self.params.tick_period, self._tick, wid, incarnation,
                        phase * self.params.tick_period)

    # -- the tick timer, idle ticks skipped ---------------------------------------------------

    def _retick(self, w: _Worker) -> None:
        """After anything happened at ``w``: make sure its next tick that can act is queued.

        The nodes tick every ``tick_period`` on a fixed grid; a tick before
        ``WorkerCore.next_deadline`` (and before the inference thread could take a task)
        changes nothing, so only the first grid tick at or after that time is queued, with
        the scheduling time the timer's own schedule gives it (the grid tick before it), so
        that it runs in the same order among simultaneous events. Ticks that ran anyway are
        harmless: a tick that cannot act is a no-op."""
        if not self._skip_ticks or not w.alive:
            return
        now = self.now
        if w.tick_at < now + self._tick_near:
            return  # the next grid tick is queued: none can come earlier
        if not w.busy and w.core.input:
            due = now  # the tick's _kick would start a task
        else:
            due = w.core.next_deadline(now)
        if w.tick_at <= due:
            return  # the queued tick comes early enough
        period = self.params.tick_period
        key = (self.now, self._sched)  # the running event's place in the queue
        prev, nxt = w.grid_prev, w.grid_next
        while (nxt, prev) <= key:  # grid ticks in the past (skipped)
            prev, nxt = nxt, nxt + period
        w.grid_prev, w.grid_next = prev, nxt
        due -= 1e-9  # deadlines compare as now - since > lease: do not miss one by rounding
        steps = 0
        while nxt < due and steps < 100:  # at most 5 s ahead: then a tick to look again
            prev, nxt = nxt, nxt + period
            steps += 1
        if nxt >= w.tick_at:
            return
        w.tick_at = nxt
        w.tick_token += 1
        heapq.heappush(self._q, (nxt, prev, next(self._seq), self._grid_tick,
                                 (w.wid, w.incarnation, w.tick_token)))

    def _grid_tick(self, wid: str, inc: int, token: int) -> None:
        """A queued grid tick (``_retick``): the nodes' tick if it can act, else a look at
        the (moved) deadline and the next tick queued."""
        w = self._live(wid, inc)
        if w is None or token != w.tick_token or self.now > self._stop_at:
            self.events -= 1  # superseded by an earlier tick (or the worker is gone)
            return
        w.tick_at = math.inf
        w.grid_prev, w.grid_next = self.now, self.now + self.params.tick_period
        if w.busy or not w.core.input:
            if w.core.next_deadline(self.now) > self.now + 1e-9:
                self.ticks_idle += 1  # a look ahead that found nothing due yet
                self._retick(w)
                return
        self._tick(w)

    def _report(self, w: _Worker) -> None:
        """The state timer: NeighborState to every worker that may offload to w (and, for a
        source, to every worker: its thresholds restamp its frames wherever they are)."""
        report = w.core.report(self.now)
        to = self.workers if (w.wid in self.sources and self.params.source_reports == "all") \
            else self._in_neighbors(w.wid)
        loss = self.params.report_loss
        down = self._link_down
        receivers = []
        for m in to:
            if m == w.wid or (down and self._down(w.wid, m)):
                continue
            if loss and self.rng.random() < loss:
                continue
            receivers.append(m)
        if receivers:
            # one event delivers them all: they would run back to back anyway (same time,
            # consecutive sequence numbers); each still counts as an event
            self.at(self.now + self.params.report_latency, self._on_reports, receivers, report)

    def _on_reports(self, receivers: list[str], report: core.NeighborReport) -> None:
        self.events += len(receivers) - 1
        on_report = self._on_report
        for m in receivers:
            on_report(m, report)

    def _in_neighbors(self, wid: str) -> list[str]:
        cache = self._in_cache
        if cache is None:
            cache = {}
            for w, ns in self.topology.items():
                for m in ns:
                    cache.setdefault(m, []).append(w)
            self._in_cache = cache
        return cache.get(wid, [])

    def _on_report(self, wid: str, report: core.NeighborReport) -> None:
        w = self.workers.get(wid)
        if w is None or not w.alive:
            return
        w.core.on_neighbor_state(report, self.now)
        self._after(w, kick=False)

    def _tick(self, w: _Worker) -> None:
        """nodes/worker.py `_on_tick`: re-sends, leases, deferred offloads, done notices."""
        for m, task in w.core.tick(self.now):
            self._send_task(w, m, task)
        self._after(w)

    def _after(self, w: _Worker, kick: bool = True) -> None:
        """What an event at a live robot ends with, as on the nodes: Alg. 2 and the done
        notices (``_offload``), the inference thread if it is idle next to queued work
        (``kick``; a report does not wake it), and its next tick (``_retick``). The checks
        here only spare calls that would return at once."""
        self._offload(w)
        if kick and not w.busy and w.core.input:
            self._kick(w)
        if w.tick_at >= self.now + self._tick_near:  # else the next grid tick is queued
            self._retick(w)

    def _live(self, wid: str, inc: int | None = None) -> _Worker | None:
        w = self.workers.get(wid)
        if w is None or not w.alive or (inc is not None and w.incarnation != inc):
            return None
        return w

    def _offload(self, w: _Worker) -> None:
        """Alg. 2 (``offload_pass``, as the nodes after every event), then the done notices.
        A pass over an empty O_n does nothing (every distribution), so it is not called."""
        wcore = w.core
        if wcore.output:
            for m, task in wcore.offload_pass(self.now):
                self._send_task(w, m, task)
        done = wcore.take_done()
        if done:
            self._send_done(w, done)

    def _kick(self, w: _Worker) -> None:
        """The inference thread: take the head of I_n when idle."""
        if w.busy or not w.alive:
            return
        task = w.core.next_task()
        if task is None:
            return
        w.busy = True
        seconds = w.cfg.service_times[task.task_index - 1]
        heapq.heappush(self._q, (self.now + seconds, self.now, next(self._seq), self._complete,
                                 (w.wid, w.incarnation, task, seconds)))

    def _complete(self, wid: str, inc: int, task: Task, seconds: float) -> None:
        w = self.workers.get(wid)
        if w is None or not w.alive or w.incarnation != inc:
            return  # the worker crashed while running it: lost with it
        w.busy = False
        w.tasks_run += 1
        w.busy_seconds += seconds
        img = task.payload
        k = task.task_index
        out = w.core.complete(task, self.table.confidence[img][k - 1], seconds, self.now,
                              next_payload=img, next_size_bytes=self.cut_bytes[k - 1])
        if out.exited:
            self.at(self.now + (0.0 if task.source == wid else self.params.report_latency),
                    self._on_result, task.source, task.data_id, k, img, wid)
        self._offload(w)
        if self.params.task_overhead > 0:
            w.busy = True  # the inference loop around the task
            self.at(self.now + self.params.task_overhead, self._free, wid, inc)
        else:
            self._kick(w)
        self._retick(w)

    def _free(self, wid: str, inc: int) -> None:
        w = self._live(wid, inc)
        if w is not None:
            w.busy = False
            self._kick(w)
            self._retick(w)

    # -- links ------------------------------------------------------------------------------

    def _down(self, a: str, b: str) -> bool:
        until = self._link_down.get(frozenset((a, b)))
        return until is not None and self.now < until

    def _over_link(self, a: str, b: str, size: int, fn: Callable[..., None], *args: Any) -> None:
        """nodes/links.py: FIFO per directed link, size / bandwidth, then the delay."""
        if self._link_down and self._down(a, b):
            return  # lost: the ack timeout / lease takes care of it
        cfg = self.configs[a]
        now = self.now
        link = (a, b)
        start = self._link_free.get(link, now)
        if start < now:
            start = now
        done = start + (size / cfg.link_bandwidth if cfg.link_bandwidth < math.inf else 0.0)
        self._link_free[link] = done
        if self._crashes_scheduled:  # the sender may crash before its bytes are out
            args = (a, self.workers[a].incarnation, done, fn, args)
            fn = self._sent
        heapq.heappush(self._q, (done + cfg.link_delay, now, next(self._seq), fn, args))

    def _sent(self, sender: str, inc: int, done: float, fn: Callable[..., None],
              args: tuple) -> None:
        """Deliver a message unless its sender crashed before it was transmitted (queued
        behind others or half sent: the process held the rest of its bytes)."""
        crashed = self._crashed.get((sender, inc))
        if crashed is not None and crashed < done:
            self.lost_with_sender += 1
            return
        fn(*args)

    def _send_task(self, w: _Worker, m: str, task: Task) -> None:
        copy = Task(task.key, task.attempt, task.payload, task.size_bytes, task.admitted_at,
                    task.hops, task.exit_thresholds)  # what the wire carries (all fields)
        target = self.workers.get(m)
        inc = target.incarnation if target is not None else -1
        self._over_link(w.wid, m, task.size_bytes, self._on_task, m, inc, w.wid, copy)

    def _on_task(self, wid: str, inc: int, sender: str, task: Task) -> None:
        """nodes/worker.py `_on_task`: submit, ack back over the link, offload, run."""
        w = self.workers.get(wid)
        if w is None or not w.alive or w.incarnation != inc:
            return
        receipt = w.core.submit(task, self.now, model_id=MODEL_ID, sender=sender)
        s = self.workers.get(sender)
        self._over_link(wid, sender, ACK_BYTES, self._on_ack, sender,
                        s.incarnation if s else -1, task.key, task.attempt, wid,
                        receipt.accepted, receipt.accepted_count)
        if w.core.lifecycle_state == core.ACTIVE:
            self._after(w)
        else:
            self._kick(w)
            self._retick(w)

    def _on_ack(self, wid: str, inc: int, key: TaskKey, attempt: int, receiver: str,
                accepted: bool, count: int) -> None:
        w = self.workers.get(wid)
        if w is None or not w.alive or w.incarnation != inc:
            return
        w.core.on_ack(key, attempt, receiver, accepted, self.now, count)
        self._after(w)

    def _send_done(self, w: _Worker, done: list[tuple[str, TaskKey, int]]) -> None:
        """Done notices (``WorkerCore.take_done``) over the links to their senders."""
        for sender, key, _attempt in done:
            s = self.workers.get(sender)
            self._over_link(w.wid, sender, ACK_BYTES, self._on_done, sender,
                            s.incarnation if s else -1, key, w.wid)

    def _on_done(self, wid: str, inc: int, key: TaskKey, receiver: str) -> None:
        w = self.workers.get(wid)
        if w is not None and w.alive and w.incarnation == inc:
            w.core.on_done(key, receiver)

    # -- sources (nodes/source.py) ----------------------------------------------------------

    def _start_source(self, wid: str, arr: Arrivals) -> None:
        cfg = self.configs[wid]
        t_q1, t_q2 = cfg.queue_thresholds
        control = {"t_q1": t_q1, "t_q2": t_q2, "alpha": cfg.alpha, "beta": cfg.beta,
                   "zeta": cfg.zeta, "period": cfg.control_period}
        if cfg.admission_mode == "rate":
            mu = core.start_interval(cfg.initial_interval, self._frame_seconds(cfg),
                                     cfg.slow_start, cfg.min_interval, cfg.max_interval)
            controller: Any = core.RateController(
                mu, mu_min=cfg.min_interval, mu_max=cfg.max_interval,
                slow_start=cfg.slow_start, counts_frames=True,
                latency_budget=cfg.latency_budget, **control)
        else:
            te = min(self.thresholds.values)
            controller = core.ThresholdController(max(te, cfg.min_exit_threshold),
                                                  te_min=cfg.min_exit_threshold, **control)
        src = _Source(wid, arr, controller, gate=core.RateGate(arr.start))
        self.sources[wid] = src
        self.at(arr.start, self._on_frame, wid)
        inc = self.workers[wid].incarnation
        self._every(cfg.control_period, self._control, wid, inc, cfg.control_period)
        self._every(core.OVERDUE_PERIOD, self._overdue, wid, inc, core.OVERDUE_PERIOD)

    def _frame_seconds(self, cfg: WorkerConfig) -> float:
        if self.params.frame_seconds is not None:
            return self.params.frame_seconds
        return core.frame_seconds(cfg.service_times,
                                  self.table.exit_fraction(self.thresholds.values))

    def _has_room(self, w: _Worker) -> bool:
        cfg = w.cfg
        return core.has_room(len(w.core.input), len(w.core.output), cfg.max_queue,
                             w.core.gamma(), cfg.frame_deadline)

    def _on_frame(self, wid: str) -> None:
        """A camera frame (nodes/source.py `_on_image`)."""
        src = self.sources[wid]
        arr = src.arrivals
        gap = (self.rng.expovariate(arr.rate) if arr.poisson else 1.0 / arr.rate)
        if self.now + gap < arr.stop:
            self.at(self.now + gap, self._on_frame, wid)
        src.received += 1
        w = self._live(wid)
        if w is None or w.core.lifecycle_state != core.ACTIVE:
            src.frames.refuse()
            return
        if isinstance(src.controller, core.RateController):
            src.controller.on_frame()
            if not src.gate.admit(self.now, src.controller.mu):  # Alg. 3: one frame per mu
                src.frames.refuse()
                return
        if not self._has_room(w):
            src.shed += 1
            src.frames.refuse()
            return
        data_id = src.next_id
        src.next_id += 1
        src.images[data_id] = self.rng.randrange(len(self.table))
        src.frames.admit(data_id, self.now, self.now + w.cfg.frame_deadline)
        src.admit_times.append(self.now)
        self._submit(w, data_id, data_id)

    def _submit(self, w: _Worker, frame_id: int, data_id: int) -> None:
        src = self.sources[w.wid]
        task = Task(TaskKey(w.wid, data_id, 1), payload=src.images[frame_id],
                    size_bytes=self.input_bytes, admitted_at=self.now,
                    exit_thresholds=w.core.thresholds)
        w.core.submit(task, self.now)
        self._after(w)

    def _control(self, w: _Worker) -> None:
        """Alg. 3 / Alg. 4 every control_period (nodes/source.py `_on_control`)."""
        src = self.sources[w.wid]
        c = src.controller
        if isinstance(c, core.RateController):
            c.step(self.now, len(w.core.input), len(w.core.output),
                   in_flight=src.frames.counters()["pending"])
        else:
            c.step(self.now, len(w.core.input), len(w.core.output))
            w.core.set_thresholds(c.te)  # Alg. 4, line 9

    def _overdue(self, w: _Worker) -> None:
        """Re-admit or expire overdue frames (nodes/source.py `_on_overdue`)."""
        src = self.sources[w.wid]
        for frame_id in src.frames.overdue(self.now):
            if not src.frames.is_pending(frame_id):
                continue
            record = src.frames.get(frame_id)
            assert record is not None  # is_pending above
            action = core.overdue_action(len(record.aliases), w.cfg.max_readmissions,
                                         self._has_room(w))
            if action is core.OverdueAction.READMIT:
                data_id = src.next_id
                src.next_id += 1
                src.frames.readmit(frame_id, data_id, self.now, self.now + w.cfg.frame_deadline)
                self._submit(w, frame_id, data_id)
            else:
                src.expired += 1
                self._on_result(w.wid, frame_id, 0, src.images.get(frame_id, 0), w.wid)

    def _on_result(self, wid: str, data_id: int, exit_index: int, img: int, worker: str) -> None:
        """An exit at its source (nodes/source.py `on_exit_result`): the first one counts."""
        src = self.sources[wid]
        frames = src.frames
        frame_id = frames.frame_of(data_id)
        record = frames.get(frame_id)
        status = frames.result(data_id, self.now, exit_index)
        if status is not core.ResultStatus.FIRST:
            self.duplicates += status is core.ResultStatus.DUPLICATE
            return
        if isinstance(src.controller, core.RateController):
            src.controller.on_answer()
        src.images.pop(frame_id, None)
        w = self._live(wid)
        if w is not None and record is not None:
            w.core.discard_frame(wid, [frame_id, *record.aliases])
            self._retick(w)  # its done notices go out with the next tick
        correct = None
        if exit_index and self.table.correct is not None:
            correct = self.table.correct[img][exit_index - 1]
        self.ends.append(FrameEnd(wid, record.admitted_at if record else self.now, self.now,
                                  exit_index, correct, worker))

    # -- churn ------------------------------------------------------------------------------

    def leave(self, wid: str, at: float) -> None:
        """Worker ``wid`` crashes at ``at``: what it held is lost, messages to it too, and
        those it had not finished sending."""
        def go() -> None:
            w = self.workers.get(wid)
            if w is not None and w.alive:
                w.alive = False
                w.busy = False
                self._crashed[(wid, w.incarnation)] = self.now
        self._crashes_scheduled = True
        self.at(at, go)

    def join(self, wid: str, at: float, neighbors: list[str] | None = None,
             config: WorkerConfig | None = None) -> None:
        """Worker ``wid`` (re)starts at ``at`` with a fresh core (a restarted process); a new
        worker needs ``neighbors`` (links both ways) and a ``config``."""
        def go() -> None:
            old = self.workers.get(wid)
            if old is not None and old.alive:
                return
            if old is None:
                if neighbors is None or config is None:
                    raise ValueError(f"join of new worker {wid}: neighbors and config needed")
                self.configs[wid] = config
                self.topology[wid] = list(neighbors)
                for m in neighbors:
                    if wid not in self.topology.setdefault(m, []):
                        self.topology[m].append(wid)
                        if m in self.workers:
                            self.workers[m].core.table.set_allowed(self.topology[m])
                            self.workers[m].neighbors = self.topology[m]
                            self._retick(self.workers[m])  # a known robot may be eligible now
                self._in_cache = None
            inc = old.incarnation + 1 if old is not None else 0
            self._start_worker(wid, len(self.workers), inc)
        self.at(at, go)

    def link_loss(self, a: str, b: str, at: float, duration: float) -> None:
        """The link between ``a`` and ``b`` drops every message, both ways, for a while."""
        def go() -> None:
            self._link_down[frozenset((a, b))] = at + duration
        self.at(at, go)
