"""What worker n knows about its one-hop neighbours m: I_m, Gamma_m, liveness, in-flight tasks.

Reports (``msg/NeighborState.msg``) arrive periodically and are stale by the time they are
used. If n trusted the last reported ``I_m`` it would send m every task until the next
report (the reported queue stays short) and flood it. So the table adds the tasks n has
sent m that the report cannot reflect yet: ``effective_input_queue(m) = I_m + in_flight(m)``.

In-flight rule (all times are n's local clock, so no clock synchronisation is needed):

* ``note_sent`` -> the task is *unacked* (counts as in flight).
* ``note_acked`` -> the task is in m's queue, but a report generated before m accepted it
  does not show it, so it stays in flight as *acked-pending* until a later report reflects
  it. Reflected means: if m's acks and reports carry m's running ``tasks_accepted`` counter,
  the report's counter >= the counter value in the task's ack (exact); otherwise the report
  was received at least ``report_settle`` seconds after the ack (default 0: received after
  it). The fallback can under-count only tasks acked while a report was on the wire, and
  only until the next report.
* ``note_returned`` -> a rejected or taken-back task is no longer in flight to m.

A neighbour not heard from within ``lease`` seconds is dead: it gets no tasks and
:meth:`expire` removes it and returns its id so that the offload ledger can take back the
tasks it never acknowledged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .names import is_worker_id

ACTIVE = "active"  # lifecycle label of a worker that accepts tasks (msg/NeighborState.msg)
DEFAULT_LEASE = 3.0  # s: several missed reports at a 0.5 s state period before declaring death
MAX_REPORTED_SECONDS = 86_400.0  # Gamma_m or mu beyond a day is no measurement


@dataclass(frozen=True)
class NeighborReport:
    """One neighbour state report, field-compatible with ``msg/NeighborState.msg``."""

    worker: str
    input_queue: int  # I_m
    output_queue: int  # O_m
    compute_delay: float  # Gamma_m, seconds per task
    model_id: str
    lifecycle_state: str = ACTIVE
    exit_thresholds: tuple[float, ...] = ()
    seq: int = 0  # increasing per worker; older or repeated reports are ignored
    stamp: float = 0.0  # sender's clock: for logs only, never compared with ours
    tasks_accepted: int | None = None  # m's running count of accepted tasks, if sent
    tasks_run: int = 0
    admission_interval: float = 0.0


def report_problem(report: NeighborReport) -> str | None:
    """Why a report from the wire must not reach Alg. 2 (None if it may).

    Reports steer offloading (Gamma_m, I_m) and come from anyone on the domain: a NaN or
    negative compute delay would make a neighbour look infinitely fast. Refused reports do
    not renew the sender's lease.
    """
    if not is_worker_id(report.worker):
        return "worker is not a valid worker id"
    for name in ("compute_delay", "admission_interval"):
        value = getattr(report, name)
        if not (math.isfinite(value) and 0.0 <= value <= MAX_REPORTED_SECONDS):
            return f"{name} {value!r} is not a duration in [0, {MAX_REPORTED_SECONDS:g}] s"
    if any(not 0.0 <= t <= 1.0 for t in report.exit_thresholds):  # NaN fails too
        return "exit thresholds outside [0, 1]"
    return None


@dataclass
class _PendingAck:
    acked_at: float
    accepted_count: int | None


@dataclass
class NeighborState:
    """The table's record of one neighbour."""

    report: NeighborReport
    received_at: float  # our clock
    unacked: int = 0
    pending: deque[_PendingAck] = field(default_factory=deque)

    @property
    def worker(self) -> str:
        """Neighbour id."""
        return self.report.worker

    @property
    def in_flight(self) -> int:
        """Tasks sent to m that its last report cannot be counting yet."""
        return self.unacked + len(self.pending)

    @property
    def effective_input_queue(self) -> int:
        """``I_m`` as Alg. 2 should see it: reported plus in flight."""
        return self.report.input_queue + self.in_flight


class NeighborTable:
    """Neighbour reports with a lease, a topology filter, eligibility and in-flight counts."""

    def __init__(
        self,
        self_id: str,
        model_id: str,
        *,
        lease: float = DEFAULT_LEASE,
        allowed: Iterable[str] | None = None,
        report_settle: float = 0.0,
    ) -> None:
        if not (math.isfinite(lease) and lease > 0):
            raise ValueError(f"lease must be finite and > 0, got {lease}")
        if report_settle < 0:
            raise ValueError(f"report_settle must be >= 0, got {report_settle}")
        self.self_id = self_id
        self._model_id = model_id
        self._changes = 0  # every change of a record (see min_effective_input_queue)
        self.lease = float(lease)
        self.report_settle = float(report_settle)
        self._allowed: frozenset[str] | None = None
        self.set_allowed(allowed)
        self._states: dict[str, NeighborState] = {}
        self._oldest: float | None = None  # min received_at of the states (None: unknown)
        # min_effective_input_queue's last (changes, at, value)
        self._min_queue: tuple[int, float, float] | None = None

    @property
    def model_id(self) -> str:
        """The model whose neighbours are eligible (fixed: a new model is a new table)."""
        return self._model_id

    @property
    def lease(self) -> float:
        """Seconds a neighbour stays alive after its last report (``neighbor_lease``)."""
        return self._lease

    @lease.setter
    def lease(self, seconds: float) -> None:
        # a longer lease may bring back a neighbour that the cached minimum left out
        self._lease = float(seconds)
        self._changes += 1

    # -- reports and liveness -------------------------------------------------------------

    def set_allowed(self, allowed: Iterable[str] | None) -> None:
        """One-hop constraint from the topology; None = any discovered neighbour."""
        self._allowed = None if allowed is None else frozenset(allowed)
        # no one-hop neighbour at all (neighbors ['-']): a robot on its own
        self.alone = self._allowed == frozenset()
        self._changes += 1
        self._allowed_sorted = () if self._allowed is None else tuple(sorted(self._allowed))

    @property
    def allowed(self) -> frozenset[str] | None:
        """The allowed neighbour set, or None."""
        return self._allowed

    def update(self, report: NeighborReport, now: float) -> bool:
        """Store a report received at ``now``; False if ignored (own, old or repeated seq).

        An ignored report does not renew the lease. A neighbour that restarted (its seq went
        back to 0) is therefore declared dead once, its unacknowledged tasks are taken back,
        and its next report is accepted as a new neighbour: the right outcome, since a
        restart lost whatever it held.
        """
        if report.worker == self.self_id:
            return False
        state = self._states.get(report.worker)
        if state is None:
            self._changes += 1
            self._states[report.worker] = NeighborState(report, now)
            if self._oldest is not None:
                self._oldest = min(self._oldest, now)
            return True
        if report.seq <= state.report.seq:
            return False
        self._changes += 1
        if state.received_at == self._oldest:
            self._oldest = None  # it may have been the oldest: look again when asked
        elif self._oldest is not None:
            self._oldest = min(self._oldest, now)
        state.report, state.received_at = report, now
        if state.pending:
            state.pending = deque(a for a in state.pending if not self._reflected(a, report, now))
        return True

    def _reflected(self, ack: _PendingAck, report: NeighborReport, now: float) -> bool:
        if ack.accepted_count is not None and report.tasks_accepted is not None:
            return report.tasks_accepted >= ack.accepted_count
        return ack.acked_at + self.report_settle <= now

    def is_alive(self, worker: str, now: float) -> bool:
        """Heard from within the lease."""
        state = self._states.get(worker)
        return state is not None and now - state.received_at <= self._lease

    def alive(self, now: float) -> list[str]:
        """Ids of neighbours heard from within the lease (sorted, for determinism)."""
        return sorted(w for w in self._states if self.is_alive(w, now))

    def expire(self, now: float) -> list[str]:
        """Remove neighbours whose lease ran out; returns their ids (for the ledger)."""
        dead = sorted(w for w in self._states if not self.is_alive(w, now))
        for worker in dead:
            del self._states[worker]
        if dead:
            self._oldest = None
            self._changes += 1
        return dead

    def next_expiry(self) -> float:
        """When the first lease runs out if no report comes first (inf with no neighbour):
        :meth:`expire` removes nobody before then."""
        if not self._states:
            return math.inf
        return self._oldest_at() + self._lease

    def remove(self, worker: str) -> bool:
        """Forget a neighbour now (e.g. it announced it is shutting down)."""
        self._oldest = None
        self._changes += 1
        return self._states.pop(worker, None) is not None

    def is_eligible(self, worker: str, now: float) -> bool:
        """May receive new tasks: alive, allowed, same model, lifecycle "active"."""
        state = self._states.get(worker)
        return (
            state is not None
            and self.is_alive(worker, now)
            and (self._allowed is None or worker in self._allowed)
            and state.report.model_id == self._model_id
            and state.report.lifecycle_state == ACTIVE
        )

    def eligible(self, now: float) -> list[NeighborState]:
        """Records of every neighbour that may receive a task now (sorted by id).

        With a one-hop set only its members are looked at: a fleet-wide state topic fills the
        table with every robot's reports, and Alg. 2 asks this on every offload decision.
        """
        states, lease, model = self._states, self._lease, self._model_id
        names = sorted(states) if self._allowed is None else \
            [w for w in self._allowed_sorted if w in states]
        out = []
        for w in names:  # is_eligible, inlined: alive, same model, active
            s = states[w]
            r = s.report
            if now - s.received_at <= lease and r.model_id == model \
                    and r.lifecycle_state == ACTIVE:
                out.append(s)
        return out

    def min_effective_input_queue(self, now: float) -> float:
        """The smallest effective ``I_m`` over the neighbours :meth:`eligible` would return
        (inf if none): Alg. 2 can send a head to nobody while ``O_n`` is not above it.

        Asked after every event, so the value is kept until a record changes (reports, tasks
        sent, acked, returned) or a neighbour may have outlived its lease: until then, later
        times see the same eligible set (a lease only runs out as time passes)."""
        cached = self._min_queue
        if cached is not None and cached[0] == self._changes and cached[1] <= now \
                and self._states and now - (self._oldest if self._oldest is not None
                                            else self._oldest_at()) <= self._lease:
            return cached[2]
        best = self._min_effective_input_queue(now)
        self._min_queue = (self._changes, now, best)
        return best

    def _oldest_at(self) -> float:
        if self._oldest is None:
            self._oldest = min(s.received_at for s in self._states.values())
        return self._oldest

    def _min_effective_input_queue(self, now: float) -> float:
        states, allowed, lease, model = self._states, self._allowed, self._lease, self._model_id
        best = math.inf
        for w in states if allowed is None else allowed:
            s = states.get(w)
            if s is None or now - s.received_at > lease:  # not known or not alive
                continue
            r = s.report
            if r.model_id == model and r.lifecycle_state == ACTIVE:  # is_eligible
                q = r.input_queue + (s.unacked + len(s.pending))  # effective_input_queue
                if q < best:
                    best = float(q)  # a float throughout (mypyc, sim/compiled.py)
        return best

    def get(self, worker: str) -> NeighborState | None:
        """The record of one neighbour, if known."""
        return self._states.get(worker)

    def __contains__(self, worker: object) -> bool:
        return worker in self._states

    def __len__(self) -> int:
        return len(self._states)

    # -- in-flight accounting -------------------------------------------------------------

    def note_sent(self, worker: str, now: float) -> None:
        """A task was sent to ``worker`` (no-op for an unknown neighbour)."""
        state = self._states.get(worker)
        if state is not None:
            state.unacked += 1
            self._changes += 1

    def note_acked(self, worker: str, now: float, accepted_count: int | None = None) -> None:
        """``worker`` accepted one of our tasks; it stays in flight until a report shows it."""
        state = self._states.get(worker)
        if state is not None and state.unacked > 0:
            state.unacked -= 1
            state.pending.append(_PendingAck(now, accepted_count))
            self._changes += 1

    def note_returned(self, worker: str) -> None:
        """A task sent to ``worker`` was rejected or taken back: no longer in flight."""
        state = self._states.get(worker)
        if state is not None and state.unacked > 0:
            state.unacked -= 1
            self._changes += 1

    def in_flight(self, worker: str) -> int:
        """Tasks sent to ``worker`` not yet reflected in its reports (0 if unknown)."""
        state = self._states.get(worker)
        return 0 if state is None else state.in_flight

    def effective_input_queue(self, worker: str) -> int:
        """Reported ``I_m`` plus in flight; raises KeyError for an unknown neighbour."""
        return self._states[worker].effective_input_queue
