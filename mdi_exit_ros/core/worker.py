"""WorkerCore: the MDI-Exit worker state machine shared by the ROS node and the simulator.

It owns the input queue I_n and output queue O_n and combines Alg. 1 (``complete``), Alg. 2
(``offload_pass``), the neighbour table, the offload ledger and duplicate recognition. It
does no I/O and never blocks: the caller runs inference, sends messages, and feeds back what
happened with an explicit ``now``.

Conservation invariant. At any time every task known to a worker is in exactly one of:
input queue, output queue, running, or the offload ledger (sent, unacknowledged). It
leaves the worker only by exiting (result to the source), by being replaced by its
successor tau_{k+1}(d) (``complete``), by an accepting ack from a neighbour (handed off,
after ``offload_pass``/``evacuate``/re-sends), by ``drain`` (handed to the caller), or by
``discard_frame`` (its source answered the frame already, as expired).
:meth:`WorkerCore.locate` answers where a key is. See docs/ALGORITHMS.md for the
network-wide version and the rare cases (lost acks plus a declared death or an evacuation)
where a task may run twice; the source's FrameLedger keeps the first result then.
"""

from __future__ import annotations

import enum
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .distribution import Distribution, pipeline_owner, shortest_queue
from .estimators import ComputeDelayEstimator, LinkDelayEstimator
from .exit_policy import (
    DEFAULT_T_O,
    ExitThresholds,
    Placement,
    place_first,
    place_next,
    should_exit,
)
from .ledger import DEFAULT_SEEN_CAPACITY, AckResult, AckStatus, InFlight, OffloadLedger, SeenSet
from .neighbors import ACTIVE, DEFAULT_LEASE, NeighborReport, NeighborTable
from .offload import NeighborView, OffloadDecision, OffloadSelector, RandomSource
from .task import Task, TaskKey

DEFAULT_MAX_RESENDS = 3  # re-sends to the same live receiver before taking a task back
DEFAULT_CUSTODY_TIMEOUT = 120.0  # s a handed-off task is kept for re-issue (see on_done)


class SubmitStatus(enum.Enum):
    """What ``submit`` did with a task; decides the ack the caller sends."""

    QUEUED = "queued"  # ack accepted=true; the task will run here
    DUPLICATE = "duplicate"  # ack accepted=true; already held/run here, not queued again
    REFUSED = "refused"  # ack accepted=false; the sender takes it back


@dataclass(frozen=True)
class Receipt:
    """Result of ``submit``: status, why (for TaskAck.reason), our accepted-task counter."""

    status: SubmitStatus
    reason: str = ""
    accepted_count: int = 0  # tasks_accepted after this submit (see NeighborTable docs)

    @property
    def accepted(self) -> bool:
        """The value for ``TaskAck.accepted``."""
        return self.status is not SubmitStatus.REFUSED

    @property
    def queued(self) -> bool:
        """True if the task was queued and must be run (False for duplicates/refusals)."""
        return self.status is SubmitStatus.QUEUED


class OutcomeKind(enum.Enum):
    """Alg. 1 line 5 decision for a completed task."""

    EXIT = "exit"  # line 6: send the classifier output to the source
    CONTINUE = "continue"  # lines 8-11: tau_{k+1}(d) was queued


@dataclass(frozen=True)
class Outcome:
    """What ``complete`` decided.

    On CONTINUE, ``next_task`` is already in ``placement``'s queue; its ``payload`` and
    ``size_bytes`` may be set on it afterwards if they were not passed to ``complete``.
    """

    kind: OutcomeKind
    task: Task
    confidence: float
    threshold: float
    exit_index: int | None = None  # 1-based exit on EXIT
    next_task: Task | None = None
    placement: Placement | None = None

    @property
    def exited(self) -> bool:
        """True on EXIT."""
        return self.kind is OutcomeKind.EXIT


@dataclass(frozen=True)
class WorkerStats:
    """Counters and gauges for logs, diagnostics and tests (a snapshot)."""

    input_queue: int  # I_n
    output_queue: int  # O_n
    running: int
    in_flight: int  # offload ledger entries
    gamma: float  # Gamma_n
    tasks_run: int
    exits: dict[int, int]  # per 1-based exit index
    continued: int
    admitted: int  # submits with hops == 0 (frames entering at this source)
    offloads_received: int
    offloads_sent: int  # first sends (re-sends not included)
    resends: int
    handed_off: int  # accepting acks
    rejected: int  # refusing acks
    timeouts: int  # taken back after the ack timeout
    neighbors_lost: int
    taken_back: int  # all take-backs: rejected + timeouts + dead receivers
    duplicates: int  # received tasks recognised as already seen
    refused: int  # received tasks refused (not active, wrong model, bad index)
    late_acks: int  # acks matching nothing in the ledger
    reclaimed: int  # late accepting acks that cancelled a taken-back copy here
    idle_moves: int  # no-idle-waiting moves from O_n to I_n
    drained: int
    requeued: int  # running tasks put back by the caller (inference failed)
    evacuated: int  # queued tasks sent to neighbours by ``evacuate``
    circled_back: int  # tasks that came back while we still awaited their ack
    in_custody: int  # tasks handed off and accepted, kept until the receiver says done
    reissued: int  # of those, taken back because their receiver died before it was done
    custody_expired: int  # kept longer than custody_timeout and forgotten
    discarded: int  # queued tasks of frames their source had already answered (discard_frame)
    dispatched_here: int = 0  # data-distributed: admitted frames kept by the shortest queue
    stage_fallbacks: int = 0  # pipeline: tasks run here because their stage was not eligible


@dataclass
class _Counters:
    tasks_run: int = 0
    exits: dict[int, int] = field(default_factory=dict)
    continued: int = 0
    admitted: int = 0
    offloads_received: int = 0
    offloads_sent: int = 0
    resends: int = 0
    handed_off: int = 0
    rejected: int = 0
    timeouts: int = 0
    neighbors_lost: int = 0
    taken_back: int = 0
    duplicates: int = 0
    refused: int = 0
    late_acks: int = 0
    reclaimed: int = 0
    idle_moves: int = 0
    drained: int = 0
    requeued: int = 0
    evacuated: int = 0
    circled_back: int = 0
    accepted_total: int = 0
    reissued: int = 0
    custody_expired: int = 0
    discarded: int = 0
    dispatched_here: int = 0  # data-distributed: admitted frames the shortest queue kept here
    stage_fallbacks: int = 0  # pipeline: tasks run here because their stage was not eligible


class WorkerCore:
    """One MDI-Exit worker n: queues, Alg. 1 and 2, neighbours, ledgers.

    Typical driving loop (ROS node or simulator), all with the same ``now`` source:

    * task arrives (admitted at the source or from a neighbour): ``submit`` -> ack;
    * compute is free: ``next_task`` -> run inference -> ``complete`` -> on EXIT send the
      result to the source;
    * after ``submit``/``complete``/``on_ack``/``on_neighbor_state`` and on a timer:
      ``offload_pass`` -> send each returned (neighbour, task);
    * on a timer: ``tick`` -> send the returned re-sends;
    * ack received: ``on_ack``; neighbour report received: ``on_neighbor_state``;
    * publish ``report(now)`` every state period;
    * deactivation: set ``lifecycle_state``, ``evacuate`` until ``idle()``, or ``drain``.

    Tasks are never lost inside a worker. Between workers a task runs twice only if its
    ack is lost and then the receiver is declared dead, ``max_resends`` runs out, or the
    receiver already evacuated it; the source's FrameLedger keeps the first result.
    """

    def __init__(
        self,
        worker_id: str,
        model_id: str,
        thresholds: ExitThresholds,
        *,
        rng: RandomSource | None = None,
        t_o: int = DEFAULT_T_O,
        lease: float = DEFAULT_LEASE,
        allowed: Iterable[str] | None = None,
        max_resends: int = DEFAULT_MAX_RESENDS,
        compute: ComputeDelayEstimator | None = None,
        link_factory: Callable[[], LinkDelayEstimator] = LinkDelayEstimator,
        ledger: OffloadLedger | None = None,
        seen_capacity: int = DEFAULT_SEEN_CAPACITY,
        report_settle: float = 0.0,
        lifecycle_state: str = ACTIVE,
        offload_first_task: bool = False,
        distribution: Distribution = Distribution.MDI,
        pipeline: Iterable[str] = (),
    ) -> None:
        if t_o < 0:
            raise ValueError(f"t_o must be >= 0, got {t_o}")
        if max_resends < 0:
            raise ValueError(f"max_resends must be >= 0, got {max_resends}")
        self.worker_id = worker_id
        self.model_id = model_id
        self._thresholds = thresholds
        self.t_o = t_o
        # Frames admitted here place tau_1 by Alg. 1 line 8 too (see ``place_first``).
        self.offload_first_task = offload_first_task
        # MDI-Exit or a baseline (core/distribution.py); both may change at any time.
        self.distribution = distribution
        self.pipeline: tuple[str, ...] = tuple(pipeline)
        self._dispatches = 0  # data-distributed: tie-break turn of shortest_queue
        self.max_resends = max_resends
        self.lifecycle_state = lifecycle_state
        self.input: deque[Task] = deque()  # I_n
        self.output: deque[Task] = deque()  # O_n
        self.running: dict[TaskKey, Task] = {}
        self.table = NeighborTable(
            worker_id, model_id, lease=lease, allowed=allowed, report_settle=report_settle
        )
        self.ledger = ledger if ledger is not None else OffloadLedger()
        self.compute = compute if compute is not None else ComputeDelayEstimator()
        self._link_factory = link_factory
        self._links: dict[str, LinkDelayEstimator] = {}
        self._last_sent: dict[str, float] = {}  # neighbour -> when we last sent it a task
        self._selector = OffloadSelector(rng if rng is not None else random.Random())
        self._seen = SeenSet(seen_capacity)
        self._seen_capacity = seen_capacity
        self._refused: OrderedDict[TaskKey, int] = OrderedDict()
        self._taken_back: dict[TaskKey, tuple[str, int]] = {}  # key -> (receiver, attempt)
        # Custody (see `on_done`): tasks we handed off, kept until their receiver is done
        # with them; and, per frame, the sender of the task we accepted, to tell when we are.
        self._custody: OrderedDict[TaskKey, tuple[InFlight, float]] = OrderedDict()
        self._origin: OrderedDict[tuple[str, int], tuple[str, TaskKey, int]] = OrderedDict()
        self._done: list[tuple[str, TaskKey, int]] = []
        self.custody_timeout = DEFAULT_CUSTODY_TIMEOUT
        # source -> the T_e^k every task of it held here carries (set by ``restamp``, dropped
        # when a task of it arrives with others): a report repeating them needs no walk
        self._stamped: dict[str, tuple[float, ...]] = {}
        self._seq = 0
        self._c = _Counters()
        # the last Alg. 2 evaluation: () after a pass that had no neighbour to try
        self.last_decisions: tuple[OffloadDecision, ...] = ()

    # -- configuration ----------------------------------------------------------------------

    @property
    def thresholds(self) -> ExitThresholds:
        """``T_e^1..T_e^K`` in force."""
        return self._thresholds

    @property
    def num_exits(self) -> int:
        """K."""
        return self._thresholds.num_exits

    def set_thresholds(self, thresholds: ExitThresholds | float) -> None:
        """New thresholds; a float applies to every exit (Alg. 4 line 9). K cannot change."""
        if not isinstance(thresholds, ExitThresholds):
            thresholds = self._thresholds.with_all(thresholds)  # Alg. 4, line 9
        if thresholds.num_exits != self.num_exits:
            raise ValueError(
                f"thresholds have {thresholds.num_exits} exits, the model has {self.num_exits}"
            )
        self._thresholds = thresholds
        self.restamp(self.worker_id, thresholds)  # a source's own frames follow at once

    def restamp(self, source: str, thresholds: ExitThresholds) -> int:
        """Give every task of ``source`` held here the source's current ``T_e^k``.

        Tasks carry the thresholds stamped at admission; when Alg. 4 (or a parameter)
        changes them at the source, tasks already queued, running or awaiting an ack would
        otherwise keep the old ones for a queue's worth of work. A source restamps its own
        tasks when its thresholds change (``set_thresholds``); other workers restamp a
        source's tasks from its NeighborState (``on_neighbor_state``). Returns how many
        tasks changed.
        """
        if thresholds.num_exits != self.num_exits:
            return 0
        changed = 0
        for task in self._held_tasks():
            if task.source == source and task.exit_thresholds != thresholds:
                task.exit_thresholds = thresholds
                changed += 1
        self._stamped[source] = thresholds.values
        return changed

    def _note_stamp(self, task: Task) -> None:
        """A task entered: if it carries other thresholds than its source's held tasks, the
        next report of that source must walk them again (see ``on_neighbor_state``)."""
        stamped = self._stamped.get(task.source)
        if stamped is not None and (task.exit_thresholds is None
                                    or task.exit_thresholds.values != stamped):
            del self._stamped[task.source]

    def _held_tasks(self) -> Iterable[Task]:
        yield from self.input
        yield from self.output
        yield from self.running.values()
        for entry in self.ledger.entries():
            yield entry.payload

    def gamma(self) -> float:
        """Gamma_n, the EWMA compute seconds per task (what neighbours are told)."""
        return self.compute.gamma()

    def link(self, neighbor: str) -> LinkDelayEstimator:
        """The D_nm estimator for one neighbour (created on first use)."""
        est = self._links.get(neighbor)
        if est is None:
            est = self._links[neighbor] = self._link_factory()
        return est

    # -- tasks in ---------------------------------------------------------------------------

    def submit(self, task: Task, now: float, model_id: str | None = None,
               sender: str | None = None) -> Receipt:
        """Queue a task at the input tail: a frame admitted here or a task from a neighbour.

        A frame admitted here (hops 0, no sender, this worker its source) goes to the output
        tail instead when ``offload_first_task`` is on and Alg. 1 line 8 says so
        (``exit_policy.place_first``).

        Duplicates are recognised first (by source, data_id, task_index), so a re-sent task
        this worker already accepted is acked again even while inactive, but not queued
        twice. Otherwise a worker that is not active, or runs another model, or gets a task
        index outside 1..K refuses it and the sender takes it back. A task we sent ourselves
        and still await the ack for is handled by :meth:`_circled_back`.

        Once attempt ``a`` of a task was refused, a delayed copy with attempt <= ``a`` is
        refused too: the sender already took the task back on that refusal, so accepting
        the stale copy would leave two live copies.
        """
        dkey = task.key
        mine = self.ledger.get(dkey)
        if mine is not None:
            return self._circled_back(task, mine)
        if dkey in self._seen:
            self._seen.add(dkey)  # refresh LRU position
            self._c.duplicates += 1
            self._c.accepted_total += 1
            return Receipt(SubmitStatus.DUPLICATE, "duplicate", self._c.accepted_total)
        reason = ""
        refused_at = self._refused.get(dkey)
        if refused_at is not None and task.attempt <= refused_at:
            reason = f"stale copy: attempt {refused_at} was already refused"
        elif self.lifecycle_state != ACTIVE:
            reason = f"worker is {self.lifecycle_state}"
        elif model_id is not None and model_id != self.model_id:
            reason = f"model mismatch: {model_id} != {self.model_id}"
        elif not 1 <= task.task_index <= self.num_exits:
            reason = f"task index {task.task_index} outside 1..{self.num_exits}"
        elif task.exit_thresholds is not None and task.exit_thresholds.num_exits != self.num_exits:
            reason = f"task carries {task.exit_thresholds.num_exits} thresholds, K={self.num_exits}"
        if reason:
            self._refused[dkey] = max(task.attempt, -1 if refused_at is None else refused_at)
            self._refused.move_to_end(dkey)
            if len(self._refused) > self._seen_capacity:
                self._refused.popitem(last=False)
            self._c.refused += 1
            return Receipt(SubmitStatus.REFUSED, reason, self._c.accepted_total)
        self._refused.pop(dkey, None)
        self._seen.add(dkey)
        self._note_stamp(task)
        admitted_here = task.hops == 0 and sender is None and task.source == self.worker_id
        if admitted_here and self._first_placement(task) is Placement.OUTPUT:
            self.output.append(task)  # Alg. 2 may offload it (first-task offloading)
        else:
            self.input.append(task)
        if sender is not None and sender != self.worker_id:
            frame = (task.source, task.data_id)
            self._origin[frame] = (sender, dkey, task.attempt)
            self._origin.move_to_end(frame)
            while len(self._origin) > self._seen_capacity:
                self._origin.popitem(last=False)
        if task.hops > 0:
            self._c.offloads_received += 1
        else:
            self._c.admitted += 1
        self._c.accepted_total += 1
        return Receipt(SubmitStatus.QUEUED, "", self._c.accepted_total)

    def _first_placement(self, task: Task) -> Placement:
        """Where a frame admitted here puts its first task tau_1(d).

        MDI-Exit: ``place_first`` (first-task offloading). Data-distributed: O_n, from which
        ``offload_pass`` dispatches the whole frame to the shortest queue (itself included).
        Pipeline: I_n if task 1's stage is this worker, else O_n (sent to the stage). A worker
        with no neighbour at all keeps it in I_n: O_n would only park it (see ``complete``).
        """
        if self.table.alone:
            return Placement.INPUT
        if self.distribution is Distribution.DATA:
            return Placement.OUTPUT
        if self.distribution is Distribution.PIPELINE:
            return self._stage_placement(task.task_index)
        return place_first(self.offload_first_task, not self.input, len(self.output), self.t_o)

    def _stage_placement(self, task_index: int) -> Placement:
        """Pipeline: INPUT when task ``task_index`` is this worker's stage, else OUTPUT."""
        owner = pipeline_owner(task_index, self.num_exits, self.pipeline or (self.worker_id,))
        return Placement.INPUT if owner == self.worker_id else Placement.OUTPUT

    def _circled_back(self, task: Task, mine: InFlight) -> Receipt:
        """A task this worker sent and still awaits an ack for has come back to it.

        The receiver accepted it (its ack is late or lost) and then handed it on to us, e.g.
        while deactivating. Answering "duplicate" would be wrong: our own copy is only a
        ledger entry that a late ack could settle, and then nobody would hold the task. So
        the returning copy is queued and our entry cancelled (late acks for it are ignored).
        While inactive the copy is refused instead: its sender keeps it, which is also safe.
        """
        if self.lifecycle_state != ACTIVE:
            self._c.refused += 1
            return Receipt(
                SubmitStatus.REFUSED, "circled back while inactive", self._c.accepted_total
            )
        self.ledger.cancel(task.key)
        self.table.note_returned(mine.receiver)
        self._seen.add(task.key)
        self._note_stamp(task)
        self.input.append(task)
        self._c.circled_back += 1
        self._c.accepted_total += 1
        return Receipt(SubmitStatus.QUEUED, "", self._c.accepted_total)

    # -- Alg. 1 -----------------------------------------------------------------------------

    def next_task(self) -> Task | None:
        """Alg. 1 lines 2-3: pop the head-of-line task of I_n to run it (None if empty)."""
        if not self.input:  # Alg. 1, line 2
            return None
        task = self.input.popleft()  # Alg. 1, line 3
        self._taken_back.pop(task.key, None)  # running now: no longer reclaimable
        self.running[task.key] = task
        return task

    def requeue(self, task: Task) -> None:
        """Put a running task back at the head of I_n (inference failed; retry it)."""
        self._pop_running(task)
        self.input.appendleft(task)
        self._c.requeued += 1

    def _pop_running(self, task: Task) -> None:
        if self.running.get(task.key) is not task:
            raise ValueError(f"{task!r} is not running on {self.worker_id}")
        del self.running[task.key]

    def complete(
        self,
        task: Task,
        confidence: float,
        compute_seconds: float,
        now: float,
        *,
        next_payload: Any = None,
        next_size_bytes: int = 0,
    ) -> Outcome:
        """Alg. 1 lines 4-12 for a task returned by ``next_task`` whose exit gave ``confidence``.

        The threshold is ``T_e^k`` from the task (stamped by the source, where Alg. 4 runs)
        or, if it carries none, this worker's. ``compute_seconds`` (measured by the caller)
        updates Gamma_n. On CONTINUE the
        successor gets ``next_payload``/``next_size_bytes`` (the feature tensor and its wire
        size), which the caller may also set on ``outcome.next_task`` afterwards.
        """
        self._pop_running(task)
        self.compute.observe(compute_seconds, task.task_index)
        self._c.tasks_run += 1
        k = task.task_index
        thresholds = task.exit_thresholds if task.exit_thresholds is not None else self._thresholds
        threshold = thresholds.for_exit(k)  # T_e^k
        if should_exit(confidence, threshold, is_last=k >= self.num_exits):  # Alg. 1, line 5
            self._c.exits[k] = self._c.exits.get(k, 0) + 1
            self._release_origin(task.source, task.data_id)  # the frame ends here
            # Alg. 1, line 6: the caller sends the classifier output to the source
            return Outcome(OutcomeKind.EXIT, task, confidence, threshold, exit_index=k)
        nxt = task.successor()  # tau_{k+1}(d)
        nxt.payload, nxt.size_bytes = next_payload, next_size_bytes
        self._seen.add(nxt.key)
        if self.table.alone or self.distribution is Distribution.DATA:
            # No one-hop neighbour at all (neighbors ['-'], a robot on its own): O_n only
            # feeds Alg. 2, which has nobody to offload to, so a successor parked there would
            # wait behind every new frame until its frame went overdue. It runs here, in
            # order: the paper's "Local, MDI-Exit". Data-distributed inference runs every
            # task of a frame where the frame was sent.
            placement = Placement.INPUT
        elif self.distribution is Distribution.PIPELINE:
            placement = self._stage_placement(nxt.task_index)  # its stage's worker runs it
        else:
            placement = place_next(not self.input, len(self.output), self.t_o)  # Alg. 1, l. 8
        if placement is Placement.INPUT:
            self.input.append(nxt)  # Alg. 1, line 9
        else:
            self.output.append(nxt)  # Alg. 1, line 11
        self._c.continued += 1
        return Outcome(
            OutcomeKind.CONTINUE, task, confidence, threshold, next_task=nxt, placement=placement
        )

    # -- Alg. 2 -----------------------------------------------------------------------------

    def neighbor_views(self, size_bytes: int, now: float) -> list[NeighborView]:
        """Alg. 2 inputs for every eligible neighbour, for a payload of ``size_bytes``."""
        views = []
        links = self._links
        for s in self.table.eligible(now):
            r = s.report
            m = r.worker
            link = links.get(m) or self.link(m)
            views.append(NeighborView(
                m,
                r.input_queue + (s.unacked + len(s.pending)),  # effective I_m: + in flight
                r.compute_delay,  # Gamma_m
                link.delay(size_bytes, now),  # D_nm
                self._probe(m, now, link),
            ))
        return views

    def _probe(self, neighbor: str, now: float, link: LinkDelayEstimator) -> bool:
        """Its link delay is unmeasured lately and we sent it nothing for as long: the next
        offload Alg. 2 allows should measure it (OffloadSelector tries it first). At most
        one probe per ``stale_after`` seconds, so a slow link is not flooded with probes
        while the first one's ack is on its way."""
        sent = self._last_sent.get(neighbor)
        return link.is_stale(now) and (sent is None or now - sent > link.stale_after)

    def offload_pass(self, now: float) -> list[tuple[str, Task]]:
        """Alg. 2 over the head-of-line tasks of O_n; returns (neighbour, task) to send.

        One pass evaluates the head, offloads it if some neighbour accepts and moves to the
        next head; it stops at the first head no neighbour takes (the paper's ``while``
        loop continues on the next pass). Each sent task is held in the offload ledger and
        counted in flight so the next head sees the neighbour's grown queue.

        No idle waiting (the paper is silent): if I_n is then empty while O_n is not, the
        head of O_n moves to I_n so local compute never idles next to queued work.

        A pass that cannot act (``may_offload`` is False: no eligible neighbour has
        I_m < O_n, so Alg. 2 keeps the head whatever the delays, and draws nothing) returns
        at once, with ``last_decisions`` empty: it runs after every event, mostly so.
        """
        if self.distribution is Distribution.DATA:
            return self._dispatch_pass(now)
        if self.distribution is Distribution.PIPELINE:
            return self._pipeline_pass(now)
        sends: list[tuple[str, Task]] = []
        if not self.may_offload(now):
            if self.output:
                self.last_decisions = ()
            return sends
        while self.output:  # Alg. 2, line 1
            head = self.output[0]
            views = self.neighbor_views(head.size_bytes, now)
            if not views:
                self.last_decisions = ()
                break
            selection = self._selector.choose(
                len(self.output), len(self.input), self.gamma(), views
            )  # Alg. 2, lines 2-6, neighbour by neighbour
            self.last_decisions = selection.decisions
            if selection.target is None:
                break
            self.output.popleft()  # Alg. 2, line 3/5: offload the head-of-line task
            head.hops += 1
            self._send(selection.target, head, now, retries=0)
            self.table.note_sent(selection.target, now)
            self._c.offloads_sent += 1
            sends.append((selection.target, head))
        if not self.input and self.output:  # no idle waiting
            self.input.append(self.output.popleft())
            self._c.idle_moves += 1
        return sends

    def _dispatch_pass(self, now: float) -> list[tuple[str, Task]]:
        """Data-distributed inference: every frame waiting in O_n goes whole to the worker
        with the shortest input queue (this one: its I_n; a neighbour: its reported I_m +
        tasks in flight to it, as in Alg. 2), held in the offload ledger like any offload
        (acks, re-sends, custody). O_n holds only admitted frames in this mode."""
        sends: list[tuple[str, Task]] = []
        while self.output:
            head = self.output.popleft()
            views = self.neighbor_views(head.size_bytes, now)
            target = shortest_queue(self.worker_id, len(self.input),
                                    [(v.worker, v.input_queue) for v in views],
                                    self._dispatches)
            self._dispatches += 1
            if target == self.worker_id:
                self.input.append(head)
                self._c.dispatched_here += 1
                continue
            sends.append(self._offload(target, head, now))
        return sends

    def _pipeline_pass(self, now: float) -> list[tuple[str, Task]]:
        """Static pipeline: each task in O_n goes to its stage's worker. A stage that is not
        eligible (not heard for a lease, inactive, another model) cannot take it, so the
        task runs here instead (counted): nothing admitted waits for a robot that is gone."""
        sends: list[tuple[str, Task]] = []
        while self.output:
            head = self.output.popleft()
            owner = pipeline_owner(head.task_index, self.num_exits,
                                   self.pipeline or (self.worker_id,))
            if owner != self.worker_id and self.table.is_eligible(owner, now):
                sends.append(self._offload(owner, head, now))
                continue
            if owner != self.worker_id:
                self._c.stage_fallbacks += 1
            self.input.append(head)
        return sends

    def _offload(self, target: str, task: Task, now: float) -> tuple[str, Task]:
        """Hand ``task`` to ``target`` (held in the offload ledger until it acks)."""
        task.hops += 1
        self._send(target, task, now, retries=0)
        self.table.note_sent(target, now)
        self._c.offloads_sent += 1
        return target, task

    def _send(self, receiver: str, task: Task, now: float, retries: int,
              earlier_sends: tuple[tuple[int, float], ...] = ()) -> InFlight:
        delay = self.link(receiver).delay(task.size_bytes, now)
        self._last_sent[receiver] = now
        return self.ledger.record(task.key, task.attempt, receiver, task, now, delay, retries,
                                  earlier_sends)

    # -- acks, reports, timeouts ------------------------------------------------------------

    def on_ack(
        self,
        key: TaskKey,
        attempt: int,
        receiver: str,
        accepted: bool,
        now: float,
        accepted_count: int | None = None,
    ) -> AckResult:
        """Apply a TaskAck for a task this worker sent.

        Accepted: the task is the receiver's now (handed off). Refused: taken back to the
        head of I_n with attempt + 1. An ack matching nothing is ignored, except that an
        *accepting* late ack for a task taken back from that receiver and still queued here
        cancels the local copy: the receiver has it, so running it here too would duplicate.
        """
        res = self.ledger.ack(key, attempt, receiver, accepted, now)
        entry = res.entry
        if entry is not None and res.rtt is not None:
            self.link(receiver).observe(res.rtt, entry.payload.size_bytes, now)
        if res.status is AckStatus.ACCEPTED:
            assert entry is not None
            self.table.note_acked(receiver, now, accepted_count)
            self._seen.discard(entry.payload.key)  # it left: may come back legitimately
            self._c.handed_off += 1
            self._custody[key] = (entry, now)  # kept until the receiver is done with it
            self._release_origin(key.source, key.data_id)  # the frame is in other hands
        elif res.status is AckStatus.REJECTED:
            assert entry is not None
            self.table.note_returned(receiver)
            self._c.rejected += 1
            self._take_back([entry])
        else:
            self._c.late_acks += 1
            if accepted:
                self._reclaim(key, attempt, receiver)
        return res

    def _reclaim(self, key: TaskKey, attempt: int, receiver: str) -> None:
        origin = self._taken_back.get(key)
        if origin is None or origin[0] != receiver or attempt > origin[1]:
            return
        for i, task in enumerate(self.input):
            if task.key == key:
                del self.input[i]
                del self._taken_back[key]
                self._seen.discard(task.key)
                self._c.reclaimed += 1
                self._c.handed_off += 1
                return

    def on_neighbor_state(self, report: NeighborReport, now: float) -> bool:
        """Store a neighbour's report (False if ignored as old or our own).

        A report carries its sender's thresholds, which for a source are the ones it
        stamps on its frames: tasks of that source held here take them (``restamp``). The
        walk over the held tasks is skipped when they carry these thresholds already (the
        last restamp gave them these, and no task of that source arrived with others since).
        """
        fresh = self.table.update(report, now)
        if fresh and report.model_id == self.model_id and report.exit_thresholds \
                and self._stamped.get(report.worker) != report.exit_thresholds:
            try:
                self.restamp(report.worker, ExitThresholds.of(report.exit_thresholds))
            except ValueError:
                pass  # thresholds outside [0, 1]: a faulty report changes nothing
        return fresh

    def neighbor_lost(self, neighbor: str) -> list[Task]:
        """Declare a neighbour dead now (e.g. lost liveliness); its unacked tasks come back."""
        self.table.remove(neighbor)
        return self._receiver_dead(neighbor)

    def _receiver_dead(self, neighbor: str) -> list[Task]:
        # If it comes back, it is a new process or a reconnected link: its old round trips
        # say nothing about it, and it is probed like a newcomer (``_probe``).
        self._links.pop(neighbor, None)
        self._last_sent.pop(neighbor, None)
        self._stamped.pop(neighbor, None)  # only a shortcut: kept, it would grow with every id
        entries = self.ledger.receiver_dead(neighbor)
        held = [key for key, (entry, _) in self._custody.items() if entry.receiver == neighbor]
        custody = [self._custody.pop(key)[0] for key in held]
        self._c.neighbors_lost += 1
        self._c.reissued += len(custody)
        return self._take_back(entries + custody)

    # -- custody ----------------------------------------------------------------------------

    def on_done(self, key: TaskKey, receiver: str) -> bool:
        """The receiver of a task we handed off is done with it: forget our copy.

        Done means its frame exited there, or a later task of the frame was accepted by
        another worker (which then holds the frame, and a copy sits with the receiver).
        Until then we keep the task, and if the receiver dies we take it back and run it
        again (``_receiver_dead``), so a frame is not lost with the robot that held it.
        Returns False for a notice matching nothing we hold (late, or from another worker).
        """
        held = self._custody.get(key)
        if held is None or held[0].receiver != receiver:
            return False
        del self._custody[key]
        return True

    def _release_origin(self, source: str, data_id: int) -> None:
        """The frame left this worker's hands: tell whoever sent it to us (`take_done`)."""
        origin = self._origin.pop((source, data_id), None)
        if origin is not None:
            self._done.append(origin)

    def take_done(self) -> list[tuple[str, TaskKey, int]]:
        """Done notices to send: (sender, task key, attempt) of tasks we are done with."""
        done, self._done = self._done, []
        return done

    def _expire_custody(self, now: float) -> None:
        """Forget copies kept longer than custody_timeout (the source's deadline covers them)."""
        while self._custody:
            key, (_, since) = next(iter(self._custody.items()))
            if now - since <= self.custody_timeout:
                break
            del self._custody[key]
            self._c.custody_expired += 1

    def tick(self, now: float) -> list[tuple[str, Task]]:
        """Lease expiry and ack timeouts; returns re-sends (neighbour, task) to transmit.

        Dead neighbour: every task it did not ack comes back to the head of I_n. Ack timeout
        with the receiver still alive: re-send to the *same* receiver (attempt + 1, backed-off
        timeout) up to ``max_resends`` times, because it may hold the task already and its
        duplicate check makes a re-send safe, whereas running the task elsewhere could run it
        twice. After that, or if the receiver is not alive, the task comes back to I_n.
        """
        for neighbor in self.table.expire(now):
            self._receiver_dead(neighbor)
        self._expire_custody(now)
        resends: list[tuple[str, Task]] = []
        give_up: list[InFlight] = []
        for entry in self.ledger.expired(now):
            if self.table.is_alive(entry.receiver, now) and entry.retries < self.max_resends:
                task = entry.payload
                task.attempt = entry.next_attempt
                self._send(entry.receiver, task, now, retries=entry.retries + 1,
                           earlier_sends=(*entry.earlier_sends, (entry.attempt, entry.sent_at)))
                self._c.resends += 1
                resends.append((entry.receiver, task))
            else:
                self.table.note_returned(entry.receiver)
                self._c.timeouts += 1
                give_up.append(entry)
        self._take_back(give_up)
        return resends

    def next_deadline(self, now: float) -> float:
        """When ``tick`` or ``offload_pass`` can next change anything, if nothing else is
        called before: ``now`` when ``offload_pass`` may act at once (see ``may_offload``)
        or done notices wait in ``take_done``; else the first lease end, ack deadline or
        custody expiry (inf if none). Until then both are no-ops, so a caller with a
        periodic tick (the simulator) may skip the ticks before it: the ticks it keeps are
        exactly those that act."""
        if self._done or self.may_offload(now):
            return now
        custody = math.inf
        if self._custody:
            custody = next(iter(self._custody.values()))[1] + self.custody_timeout
        return min(self.table.next_expiry(), self.ledger.next_deadline(), custody)

    def may_offload(self, now: float) -> bool:
        """Whether ``offload_pass(now)`` could do anything: move a task (no idle waiting),
        dispatch it (baselines), or find a neighbour to which Alg. 2 could send the head
        (lines 2 and 4 need O_n > I_m). False means the pass sends, moves and draws nothing,
        whatever the link delays and neighbours' Gamma_m."""
        if not self.output:
            return False
        if not self.input or self.distribution is not Distribution.MDI:
            return True
        return len(self.output) > self.table.min_effective_input_queue(now)

    def _take_back(self, entries: list[InFlight]) -> list[Task]:
        """Requeue at the head of I_n, oldest first, with attempt + 1.

        I_n rather than O_n: the task already failed one network transfer, it is older than
        anything queued, and local compute is the one resource certain to be there.
        """
        tasks = []
        for entry in entries:
            task = entry.payload
            task.attempt = entry.next_attempt
            task.hops = max(0, task.hops - 1)
            self._taken_back[task.key] = (entry.receiver, entry.attempt)
            self._note_stamp(task)  # a custody copy was not restamped while it was away
            tasks.append(task)
        self.input.extendleft(reversed(tasks))
        self._c.taken_back += len(tasks)
        return tasks

    # -- lifecycle --------------------------------------------------------------------------

    def evacuate(self, now: float) -> list[tuple[str, Task]]:
        """Deactivation: send every queued task to an eligible neighbour, bypassing Alg. 2.

        Each task goes to the neighbour with the lowest expected delay (round-robin ties,
        in-flight counted) and is held in the offload ledger like any offload, so refusals,
        timeouts and deaths bring it back to I_n and a later call sends it again. Returns
        (neighbour, task) to send; empty if no neighbour is eligible (then run the tasks
        here or ``drain`` them).
        """
        sends: list[tuple[str, Task]] = []
        while self.input or self.output:
            queue = self.input if self.input else self.output
            target = self._selector.best(self.neighbor_views(queue[0].size_bytes, now))
            if target is None:
                break
            task = queue.popleft()
            self._taken_back.pop(task.key, None)
            task.hops += 1
            self._send(target.worker, task, now, retries=0)
            self.table.note_sent(target.worker, now)
            self._c.evacuated += 1
            sends.append((target.worker, task))
        return sends

    def drain(self) -> list[Task]:
        """Remove and return every queued task (I_n then O_n) for deactivation.

        The caller hands them to neighbours or back to their sources. Running tasks and
        tasks in the offload ledger are not included: let them finish/settle (refused ones
        come back to I_n) and drain again until ``idle()``.
        """
        tasks = list(self.input) + list(self.output)
        self.input.clear()
        self.output.clear()
        for task in tasks:
            self._seen.discard(task.key)
            self._taken_back.pop(task.key, None)
        self._c.drained += len(tasks)
        return tasks

    def discard_frame(self, source: str, data_ids: Iterable[int]) -> int:
        """Remove the queued tasks of a frame its source has answered already (expired).

        A source that answers an overdue frame as expired still holds the frame's copies in
        its queues; running them would spend the compute an overloaded fleet lacks on
        answers nobody waits for (they would arrive as late results). Only queued tasks
        go: a running task finishes, and tasks in flight or with neighbours are theirs (their
        late exits are counted at the source). Returns how many were removed (counted).
        """
        ids = set(data_ids)
        removed = 0
        for queue in (self.input, self.output):
            if not any(t.key[0] == source and t.key[1] in ids for t in queue):
                continue  # the usual case (the frame exited): nothing of it queued here
            keep = [t for t in queue if not (t.source == source and t.data_id in ids)]
            gone = [t for t in queue if t.source == source and t.data_id in ids]
            if gone:
                queue.clear()
                queue.extend(keep)
            for task in gone:
                self._seen.discard(task.key)
                self._taken_back.pop(task.key, None)
                self._release_origin(task.source, task.data_id)  # its sender may forget it
            removed += len(gone)
        self._c.discarded += removed
        return removed

    def idle(self) -> bool:
        """Nothing queued, running or awaiting an ack."""
        return not (self.input or self.output or self.running or len(self.ledger))

    # -- introspection ----------------------------------------------------------------------

    def report(self, now: float) -> NeighborReport:
        """This worker's state for ``msg/NeighborState.msg`` (seq increases per call)."""
        self._seq += 1
        return NeighborReport(
            worker=self.worker_id,
            input_queue=len(self.input),
            output_queue=len(self.output),
            compute_delay=self.gamma(),
            model_id=self.model_id,
            lifecycle_state=self.lifecycle_state,
            exit_thresholds=self._thresholds.values,
            seq=self._seq,
            stamp=now,
            tasks_accepted=self._c.accepted_total,
            tasks_run=self._c.tasks_run,
        )

    def locate(self, key: TaskKey) -> str | None:
        """Where a task key is here: "input", "output", "running", "in_flight" or None."""
        if any(t.key == key for t in self.input):
            return "input"
        if any(t.key == key for t in self.output):
            return "output"
        if key in self.running:
            return "running"
        if key in self.ledger:
            return "in_flight"
        return None

    def held(self) -> list[tuple[str, Task]]:
        """Every task this worker holds, with its place (for invariant checks)."""
        out = [("input", t) for t in self.input] + [("output", t) for t in self.output]
        out += [("running", t) for t in self.running.values()]
        out += [("in_flight", e.payload) for e in self.ledger.entries()]
        return out

    def stats(self) -> WorkerStats:
        """Snapshot of counters and gauges."""
        c = self._c
        return WorkerStats(
            input_queue=len(self.input),
            output_queue=len(self.output),
            running=len(self.running),
            in_flight=len(self.ledger),
            gamma=self.gamma(),
            tasks_run=c.tasks_run,
            exits=dict(c.exits),
            continued=c.continued,
            admitted=c.admitted,
            offloads_received=c.offloads_received,
            offloads_sent=c.offloads_sent,
            resends=c.resends,
            handed_off=c.handed_off,
            rejected=c.rejected,
            timeouts=c.timeouts,
            neighbors_lost=c.neighbors_lost,
            taken_back=c.taken_back,
            duplicates=c.duplicates,
            refused=c.refused,
            late_acks=c.late_acks,
            reclaimed=c.reclaimed,
            idle_moves=c.idle_moves,
            drained=c.drained,
            requeued=c.requeued,
            evacuated=c.evacuated,
            circled_back=c.circled_back,
            in_custody=len(self._custody),
            reissued=c.reissued,
            custody_expired=c.custody_expired,
            discarded=c.discarded,
            dispatched_here=c.dispatched_here,
            stage_fallbacks=c.stage_fallbacks,
        )
