"""Tests written to kill mutants that survived `make mutation` (docs/TESTING.md).

Each test pins a behaviour the earlier core tests left open: exact counters (a mutant that
writes ``= 1`` instead of ``+= 1`` survives a test that counts to one), validation
boundaries and messages, and the worker's bookkeeping sets (``_seen``, ``_taken_back``)
whose mistakes only show when a task comes back later.
"""

from __future__ import annotations

import math
import random

import pytest
from test_core_alg2_inputs import FixedDraw
from test_core_worker import K, make, task

from mdi_exit_ros.core import (
    AckStatus,
    ComputeDelayEstimator,
    Ewma,
    ExitThresholds,
    FrameLedger,
    LinkDelayEstimator,
    ManualClock,
    NeighborReport,
    OffloadLedger,
    QueueControlParams,
    RateController,
    ResultStatus,
    SeenSet,
    SubmitStatus,
    Task,
    TaskKey,
    ThresholdController,
    WorkerCore,
    entropy_confidence,
    get_confidence_fn,
    max_softmax,
    offload_probability,
)
from mdi_exit_ros.core.neighbors import NeighborTable
from mdi_exit_ros.core.offload import (
    NeighborView,
    OffloadBranch,
    OffloadSelector,
    offload_rule,
)


def report(name: str, seq: int = 1, i_m: int = 0, **kw: object) -> NeighborReport:
    """A neighbour report for model mnv2 with Gamma_m = 0.1."""
    return NeighborReport(name, i_m, 0, 0.1, "mnv2", seq=seq, **kw)  # type: ignore[arg-type]


def copy(t: Task) -> Task:
    """The receiver's own copy of a task on the wire."""
    return Task(t.key, attempt=t.attempt, payload=t.payload, size_bytes=t.size_bytes, hops=t.hops)


def send_one(w: WorkerCore, to: str = "a", data_id: int = 200) -> Task:
    """Offload exactly one task from O_n to neighbour ``to`` (I_n long enough to qualify)."""
    for i in range(10):
        w.input.append(task(1000 + data_id + i))
    w.output.append(task(data_id, k=2))
    if to not in w.table:
        w.on_neighbor_state(report(to), 0.0)
    ((m, t),) = w.offload_pass(0.0)
    assert m == to
    return t


# -- WorkerCore: counters count ---------------------------------------------------------------


def test_requeue_counts_every_retry() -> None:
    w = make()
    w.submit(task(1), 0.0)
    for _ in range(2):
        t = w.next_task()
        assert t is not None
        w.requeue(t)
    assert w.stats().requeued == 2 and w.input[0].key == TaskKey("n", 1, 1)


def test_every_lost_neighbour_is_counted_and_removed() -> None:
    w = make()
    for name in ("a", "b"):
        w.on_neighbor_state(report(name), 0.0)
    assert w.neighbor_lost("a") == [] and w.neighbor_lost("b") == []
    assert "a" not in w.table and "b" not in w.table
    assert w.stats().neighbors_lost == 2


def test_drain_counts_across_calls_and_forgets_drained_tasks() -> None:
    w = make()
    w.submit(task(1), 0.0)
    assert [t.key for t in w.drain()] == [TaskKey("n", 1, 1)]
    w.submit(task(2), 0.0)
    w.drain()
    assert w.stats().drained == 2
    # a drained task that is handed back to us later is new work, not a duplicate
    assert w.submit(task(1, hops=1), 0.1).status is SubmitStatus.QUEUED


def test_reclaim_counts_and_forgets_the_reclaimed_task() -> None:
    w = make(max_resends=0)
    tasks = []
    for d in (200, 201):
        t = send_one(w, "a", d)
        tasks.append(t)
        w.on_ack(t.key, 0, "a", False, 0.1)  # refused: taken back to I_n
    for t in tasks:  # a late accepting ack for attempt 0 from a: a holds it
        assert w.on_ack(t.key, 0, "a", True, 0.2).status is AckStatus.IGNORED
        assert w.locate(t.key) is None
    s = w.stats()
    assert (s.reclaimed, s.handed_off, s.late_acks) == (2, 2, 2)


def test_reclaimed_successor_is_forgotten_so_it_may_come_back() -> None:
    """A successor created here (so in the seen set) is offloaded, refused, taken back and
    then reclaimed by a late accept: when its holder hands it back, it is queued again."""
    w = make(max_resends=0)
    w.submit(task(1), 0.0)
    w.submit(task(2), 0.0)
    first = w.next_task()
    assert first is not None
    nxt = w.complete(first, 0.1, 0.1, 0.0).next_task  # to O_n: I_n is not empty
    assert nxt is not None and w.locate(nxt.key) == "output"
    w.input.extend(task(100 + i) for i in range(10))
    w.on_neighbor_state(report("a"), 0.0)
    assert w.offload_pass(0.0) == [("a", nxt)]
    w.on_ack(nxt.key, 0, "a", False, 0.1)  # taken back
    w.on_ack(nxt.key, 0, "a", True, 0.2)  # late accept: a holds it, our copy goes
    assert w.locate(nxt.key) is None and w.stats().reclaimed == 1
    assert w.submit(copy(nxt), 0.3).status is SubmitStatus.QUEUED


def test_stats_snapshot_reports_every_counter() -> None:
    """Run a known sequence and compare the whole snapshot."""
    w = make()
    w.submit(task(1), 0.0)  # admitted
    w.submit(task(2), 0.0)
    w.submit(task(9, source="x", hops=1), 0.0)  # offload received
    w.submit(task(9, source="x", hops=1), 0.0)  # duplicate
    w.lifecycle_state = "inactive"
    w.submit(task(10, source="x", hops=1), 0.0)  # refused
    w.lifecycle_state = "active"
    t1 = w.next_task()
    assert t1 is not None
    w.complete(t1, 0.1, 0.3, 0.1)  # continue: successor to O_n (I_n not empty)
    t2 = w.next_task()
    assert t2 is not None
    w.complete(t2, 0.95, 0.3, 0.2)  # exit 1
    s = w.stats()
    assert s.tasks_run == 2 and s.continued == 1 and s.exits == {1: 1}
    assert (s.admitted, s.offloads_received, s.duplicates, s.refused) == (2, 1, 1, 1)
    assert s.gamma == pytest.approx(w.gamma()) and s.gamma != pytest.approx(0.1)
    assert (s.input_queue, s.output_queue, s.running, s.in_flight) == (1, 1, 0, 0)
    w.on_neighbor_state(report("a"), 0.2)
    sends = w.offload_pass(0.2)
    assert len(sends) == 1 and w.stats().offloads_sent == 1


def test_offloads_sent_and_evacuated_count_every_task() -> None:
    w = make()
    w.on_neighbor_state(report("a"), 0.0)
    for i in range(6):
        w.input.append(task(100 + i))
    for i in range(3):
        w.output.append(task(200 + i, k=2))
    sent = w.offload_pass(0.0)
    assert w.stats().offloads_sent == len(sent) >= 2
    moved = w.evacuate(0.0)
    assert w.stats().evacuated == len(moved) >= 2


# -- WorkerCore: introspection ---------------------------------------------------------------


def test_locate_and_held_name_every_place() -> None:
    w = make()
    w.on_neighbor_state(report("a", i_m=0), 0.0)
    for d in (1, 2):
        w.input.append(task(d))
    w.output.append(task(3, k=2))
    w.output.append(task(4, k=2))
    running = w.next_task()
    assert running is not None
    ((_, sent),) = w.offload_pass(0.0)
    places = {t.key.data_id: place for place, t in w.held()}
    assert places == {1: "running", 2: "input", 3: "in_flight", 4: "output"}
    assert [w.locate(TaskKey("n", d, k)) for d, k in ((1, 1), (2, 1), (3, 2), (4, 2))] == [
        "running",
        "input",
        "in_flight",
        "output",
    ]
    assert sent.key.data_id == 3
    assert w.locate(TaskKey("n", 99, 2)) is None  # unknown key, output not empty


# -- WorkerCore: evacuation ---------------------------------------------------------------


def test_evacuated_task_is_one_hop_further_counted_in_flight_and_resent() -> None:
    w = make(max_resends=1)
    w.on_neighbor_state(report("a"), 0.0)
    w.input.append(task(1, hops=2))
    ((to, t),) = w.evacuate(0.0)
    assert to == "a" and t.hops == 3
    assert w.table.in_flight("a") == 1
    assert w.table.get("a") is not None and w.table.get("a").unacked == 1  # type: ignore[union-attr]
    w.on_neighbor_state(report("a", seq=2), 0.9)
    assert w.tick(1.0) == [("a", t)]  # first timeout: one re-send allowed
    assert t.attempt == 1


def test_evacuation_forgets_an_earlier_take_back() -> None:
    """A task taken back from a, evacuated to b and later handed back to us is not
    cancelled by a's stale accepting ack: only we hold it then."""
    n = make(max_resends=0)
    t = send_one(n, "a")
    n.on_ack(t.key, 0, "a", False, 0.1)  # refused by a: taken back (attempt 1)
    n.on_neighbor_state(report("b"), 0.1)
    n.table.remove("a")
    n.lifecycle_state = "inactive"
    sends = n.evacuate(0.2)  # everything goes to b, t first
    assert sends[0] == ("b", t) and not n.input
    assert n.on_ack(t.key, t.attempt, "b", True, 0.3).status is AckStatus.ACCEPTED
    n.lifecycle_state = "active"
    assert n.submit(copy(t), 0.4).queued  # b evacuates it back to us
    n.on_ack(t.key, 0, "a", True, 0.5)  # a's stale accept for attempt 0
    assert n.locate(t.key) == "input"


def test_drain_forgets_an_earlier_take_back() -> None:
    """Same as above, with the task drained and handed back instead of evacuated."""
    n = make(max_resends=0)
    t = send_one(n, "a")
    n.on_ack(t.key, 0, "a", False, 0.1)  # taken back from a
    drained = n.drain()
    assert t in drained
    assert n.submit(copy(t), 0.4).queued
    n.on_ack(t.key, 0, "a", True, 0.5)
    assert n.locate(t.key) == "input"


# -- WorkerCore: a task that circles back --------------------------------------------------


def circled() -> tuple[WorkerCore, Task]:
    """n sent t to a and awaits the ack; a hands t back to n."""
    n = make()
    t = send_one(n, "a")
    return n, copy(t)


def test_circled_back_is_queued_with_exact_receipt_and_counters() -> None:
    n, back = circled()
    before = n.stats()
    r = n.submit(back, 0.1)
    assert (r.status, r.reason, r.accepted_count) == (SubmitStatus.QUEUED, "", 1)
    assert n.table.in_flight("a") == 0  # no longer counted at a
    assert n.stats().circled_back == 1 and before.circled_back == 0
    # a copy of the same attempt arriving again is a duplicate now
    again = n.submit(copy(back), 0.2)
    assert again.status is SubmitStatus.DUPLICATE and again.accepted_count == 2
    n2, back2 = circled()
    n2.submit(task(7, source="x", hops=1), 0.0)  # accepted_total 1
    assert n2.submit(back2, 0.1).accepted_count == 2


def test_circled_back_twice_counts_twice() -> None:
    n = make()
    backs = [copy(send_one(n, m, d)) for m, d in (("a", 200), ("b", 201))]
    for b in backs:
        assert n.submit(b, 0.1).queued
    assert n.stats().circled_back == 2


def test_circled_back_while_inactive_receipt_and_counters() -> None:
    n, back = circled()
    n.submit(task(7, source="x", hops=1), 0.0)  # accepted_total 1
    n.lifecycle_state = "inactive"
    r1 = n.submit(back, 0.1)
    assert (r1.status, r1.reason, r1.accepted_count) == (
        SubmitStatus.REFUSED,
        "circled back while inactive",
        1,
    )
    n.submit(copy(back), 0.2)
    assert n.stats().refused == 2
    assert back.key in n.ledger  # still ours, still awaiting the ack


# -- WorkerCore: validation messages ----------------------------------------------------------


def test_set_thresholds_with_wrong_k_says_why() -> None:
    w = make()
    with pytest.raises(ValueError, match="thresholds have 2 exits, the model has 3"):
        w.set_thresholds(ExitThresholds((0.5, 0.6)))


# -- neighbour table ------------------------------------------------------------------------


def test_table_remove_reports_whether_it_knew_the_neighbour() -> None:
    table = NeighborTable("n", "mnv2")
    table.update(report("a"), 0.0)
    assert table.remove("a") is True
    assert "a" not in table
    assert table.remove("a") is False
    assert table.remove("zz") is False


def test_note_returned_never_counts_below_zero() -> None:
    table = NeighborTable("n", "mnv2")
    table.update(report("a"), 0.0)
    table.note_returned("a")  # nothing in flight: stays 0
    table.note_sent("a", 0.0)
    assert table.in_flight("a") == 1
    table.note_returned("a")
    assert table.in_flight("a") == 0
    state = table.get("a")
    assert state is not None and state.unacked == 0


# -- offload selection ------------------------------------------------------------------------


def test_offload_probability_is_capped_at_one() -> None:
    assert offload_probability(2.0, 1.0) == 1.0
    assert offload_probability(1.0, 4.0) == 0.25
    assert offload_probability(1.0, 0.0) == 1.0


def test_evacuation_round_robin_advances_one_per_task() -> None:
    """best() rotates ties by one each call: a, b, c, a, b, c."""
    selector = OffloadSelector(random.Random(0))
    views = [NeighborView(name, 0, 0.1, 0.01) for name in ("a", "b", "c")]
    picks = [selector.best(views) for _ in range(6)]
    assert [p.worker for p in picks if p is not None] == ["a", "b", "c", "a", "b", "c"]
    assert selector.best([]) is None


# -- ledgers -----------------------------------------------------------------------------------


def test_offload_ledger_cancel_of_unknown_key_returns_none() -> None:
    ledger = OffloadLedger()
    assert ledger.cancel(TaskKey("n", 1, 1)) is None


def test_frame_ledger_capacity_boundary_and_messages() -> None:
    FrameLedger(completed_capacity=1)  # the smallest valid capacity
    with pytest.raises(ValueError, match="completed_capacity must be >= 1, got 0"):
        FrameLedger(completed_capacity=0)
    fl = FrameLedger()
    fl.admit(1, 0.0)
    with pytest.raises(ValueError, match="data_id 1 was already admitted"):
        fl.admit(1, 0.0)
    with pytest.raises(KeyError, match="data_id 5 is not pending"):
        fl.readmit(5, 6, 0.0)
    with pytest.raises(ValueError, match="data_id 1 is already in use"):
        fl.readmit(1, 1, 0.0)


def test_frame_ledger_default_capacity_keeps_100000_closed_frames() -> None:
    fl = FrameLedger()
    for d in range(100_001):
        fl.admit(d, 0.0)
        fl.result(d, 0.0)
    assert fl.get(0) is None and fl.get(1) is not None  # exactly 100 000 kept


def test_readmit_records_alias_deadline_and_rearms_overdue() -> None:
    fl = FrameLedger()
    rec = fl.admit(1, 2.0, deadline=5.0)
    assert rec.admitted_at == 2.0
    assert fl.overdue(6.0) == [1]
    fl.readmit(1, 10, 6.0, deadline=9.0)
    fl.readmit(10, 11, 6.5, deadline=9.5)
    assert rec.aliases == [10, 11] and rec.deadline == 9.5
    assert rec.reported_overdue is False
    assert fl.overdue(9.0) == []  # new deadline in force
    assert fl.overdue(10.0) == [1]
    c = fl.counters()
    assert c["readmitted"] == 2 and c["overdue"] == 2
    assert fl.frame_of(11) == 1 and fl.get(11) is rec


def test_frame_ledger_counts_every_unknown_late_duplicate_and_abandon() -> None:
    fl = FrameLedger()
    for d in (1, 2, 3, 4):
        fl.admit(d, 0.0)
    assert fl.result(1, 1.0) is ResultStatus.FIRST
    assert [fl.result(1, 1.1), fl.result(1, 1.2)] == [ResultStatus.DUPLICATE] * 2
    assert [fl.result(50, 1.0), fl.result(51, 1.0)] == [ResultStatus.UNKNOWN] * 2
    assert fl.abandon(2) and fl.abandon(3) and not fl.abandon(99)
    assert [fl.result(2, 2.0), fl.result(3, 2.0)] == [ResultStatus.LATE] * 2
    c = fl.counters()
    assert (c["duplicates"], c["unknown"], c["abandoned"], c["late"]) == (2, 2, 2, 2)
    assert set(c) == {
        "admitted",
        "completed",
        "pending",
        "duplicates",
        "overdue",
        "dropped_at_admission",
        "readmitted",
        "abandoned",
        "late",
        "unknown",
    }
    assert fl.get(4) is not None and fl.get(4).completed_at is None  # type: ignore[union-attr]


# -- clock --------------------------------------------------------------------------------------


def test_manual_clock_starts_at_zero_and_allows_zero_steps() -> None:
    clock = ManualClock()
    assert clock.now() == 0.0
    assert clock.advance(0.0) == 0.0
    assert clock.advance(0.5) == 0.5
    clock.set(0.5)  # same time: allowed
    assert clock.now() == 0.5
    with pytest.raises(ValueError, match="dt must be >= 0, got -1"):
        clock.advance(-1)
    with pytest.raises(ValueError, match=r"time cannot go backwards: 0.1 < 0.5"):
        clock.set(0.1)


# -- confidence --------------------------------------------------------------------------------


def test_entropy_confidence_exact_values() -> None:
    assert entropy_confidence([0.0, 0.0]) == pytest.approx(0.0)  # uniform: no confidence
    p = [0.7, 0.2, 0.1]
    h = -sum(x * math.log(x) for x in p)
    logits = [math.log(x) for x in p]
    assert entropy_confidence(logits) == pytest.approx(1.0 - h / math.log(3))


def test_confidence_errors_say_why() -> None:
    with pytest.raises(ValueError, match=r"^logits must not be empty$"):
        max_softmax([])
    with pytest.raises(ValueError, match=r"^logits must be finite$"):
        max_softmax([0.0, math.inf])
    with pytest.raises(ValueError, match=r"known: entropy, max_softmax"):
        get_confidence_fn("nope")


# -- Alg. 3 / Alg. 4 parameters -------------------------------------------------------------


def test_queue_params_boundaries() -> None:
    QueueControlParams(t_q1=0.0, t_q2=0.0)  # both 0 and t_q1 == t_q2 are allowed
    QueueControlParams(t_q1=0.5, t_q2=0.5)
    QueueControlParams(alpha=0.3, beta=0.29)
    with pytest.raises(ValueError, match="beta must be < alpha"):
        QueueControlParams(alpha=0.3, beta=0.3)
    for alpha, beta, bad in ((0.0, 0.1, "alpha"), (1.0, 0.1, "alpha"), (0.99, 0.0, "beta")):
        with pytest.raises(ValueError, match=f"{bad} must be in"):
            QueueControlParams(alpha=alpha, beta=beta)
    for beta in (1.0, 1.5):  # rejected as out of (0, 1), before the beta < alpha check
        with pytest.raises(ValueError, match="beta must be in"):
            QueueControlParams(alpha=0.99, beta=beta)


def test_rate_controller_bounds_and_messages() -> None:
    RateController(0.5, mu_min=0.5, mu_max=0.5)  # mu_min == mu_max is allowed
    with pytest.raises(ValueError, match="mu_min must be finite"):
        RateController(mu_min=math.nan)
    with pytest.raises(ValueError, match="mu_max must be finite"):
        RateController(mu_max=math.inf)
    with pytest.raises(ValueError, match="mu must be finite"):
        RateController(math.nan)
    with pytest.raises(ValueError, match="unknown parameter.s.: bar, foo"):
        RateController(foo=1.0, bar=2.0)
    rc = RateController()
    with pytest.raises(ValueError, match="unknown parameter.s.: bar, foo"):
        rc.update_params(foo=1.0, bar=2.0)


def test_rate_controller_scales_mu_multiplicatively() -> None:
    """mu = 2: the MID branch gives 2 - 0.1 * 2 = 1.8 and HIGH gives 2 + 0.2 * 2 = 2.4."""
    mid = RateController(2.0, period=0.0)
    assert mid.step(0.0, 15, 0).value == pytest.approx(1.8)
    high = RateController(2.0, period=0.0)
    assert high.step(0.0, 40, 0).value == pytest.approx(2.4)


def test_not_due_step_reports_unchanged() -> None:
    rc = RateController(period=1.0)
    rc.step(0.0, 0, 0)
    step = rc.step(0.5, 0, 0)
    assert step.changed is False


def test_threshold_controller_bounds_and_messages() -> None:
    ThresholdController(1.0, te_min=1.0)  # te_min = 1 and te = 1 are allowed
    with pytest.raises(ValueError, match="te_min must be finite"):
        ThresholdController(te_min=math.nan)
    with pytest.raises(ValueError, match="te must be finite"):
        ThresholdController(math.nan)
    with pytest.raises(ValueError, match="te must be in"):
        ThresholdController(1.5)
    with pytest.raises(ValueError, match="unknown parameter.s.: bar, foo"):
        ThresholdController(foo=1.0, bar=2.0)
    tc = ThresholdController(0.6, te_min=0.5)
    tc.update_params(te_min=0.7)
    assert tc.te_min == 0.7 and tc.te == 0.7
    tc.update_params(alpha=0.3)  # te_min not given: kept
    assert tc.te_min == 0.7 and tc.params.alpha == 0.3


# -- WorkerCore: Alg. 1 bookkeeping ------------------------------------------------------------


def test_complete_counts_every_task_and_returns_its_numbers() -> None:
    w = make()
    for d in (1, 2, 3, 4):
        w.submit(task(d), 0.0)
    outs = []
    for confidence in (0.95, 0.9, 0.1, 0.2):  # two exits at k = 1, two successors
        t = w.next_task()
        assert t is not None
        out = w.complete(t, confidence, 0.2, 0.0)
        assert out.task is t and out.confidence == confidence and out.threshold == 0.8
        outs.append(out)
    s = w.stats()
    assert (s.tasks_run, s.continued, s.exits) == (4, 2, {1: 2})
    nxt = outs[2].next_task
    assert nxt is not None and nxt.size_bytes == 0  # no next_size_bytes given
    # the successor is known here: a stray copy of it is a duplicate, not a second task
    assert w.submit(Task(nxt.key, hops=1), 0.1).status is SubmitStatus.DUPLICATE


def test_complete_feeds_the_per_task_compute_estimate() -> None:
    w = make()
    w.submit(task(1, k=1), 0.0)
    w.submit(task(2, k=2), 0.0)
    for seconds in (0.3, 0.9):
        t = w.next_task()
        assert t is not None
        w.complete(t, 0.99, seconds, 0.0)
    assert w.compute.gamma(1) == pytest.approx(0.3)
    assert w.compute.gamma(2) == pytest.approx(0.9)


def test_requeued_task_is_not_reclaimed_by_a_stale_accept() -> None:
    """Taken back from a, started here (no longer reclaimable), then requeued after a failed
    inference: a's late accept for attempt 0 must not remove the only live copy."""
    w = make(max_resends=0)
    t = send_one(w, "a")
    w.on_ack(t.key, 0, "a", False, 0.1)  # taken back to the head of I_n
    assert w.next_task() is t
    w.requeue(t)
    w.on_ack(t.key, 0, "a", True, 0.2)
    assert w.locate(t.key) == "input" and w.stats().reclaimed == 0


def test_pop_running_error_says_which_task() -> None:
    w = make()
    with pytest.raises(ValueError, match=r"Task\(n/1/k=1 a=0 hops=0\) is not running on n"):
        w.complete(task(1), 0.9, 0.1, 0.0)


def test_idle_needs_every_place_empty() -> None:
    """Each place alone makes the worker busy."""
    w = make()
    assert w.idle()
    w.input.append(task(1))
    assert not w.idle()
    w.input.clear()
    w.output.append(task(2, k=2))
    assert not w.idle()
    w.output.clear()
    w.submit(task(3), 0.0)
    running = w.next_task()
    assert running is not None and not w.idle()
    w.complete(running, 0.99, 0.1, 0.0)
    assert w.idle()
    send_one(w, "a")
    w.input.clear()  # only the ledger entry is left
    assert not w.idle()


def test_report_carries_the_counters_neighbours_need() -> None:
    w = make()
    w.submit(task(1), 0.0)
    w.submit(task(2, source="x", hops=1), 0.0)
    t = w.next_task()
    assert t is not None
    w.complete(t, 0.99, 0.1, 0.0)
    w.lifecycle_state = "inactive"
    r = w.report(1.0)
    assert (r.tasks_accepted, r.tasks_run, r.lifecycle_state) == (2, 1, "inactive")


# -- WorkerCore: acks, timeouts, deaths ------------------------------------------------------


def test_ack_counters_count_every_ack() -> None:
    w = make()
    w.on_neighbor_state(report("b"), 0.0)
    a_tasks = [send_one(w, "a", 200)]
    a_tasks.append(send_one(w, "b", 201))
    w.on_ack(a_tasks[0].key, 0, "a", True, 0.1)
    w.on_ack(a_tasks[1].key, 0, "b", True, 0.1)
    assert w.stats().handed_off == 2
    for _ in range(2):
        w.on_ack(TaskKey("n", 999, 2), 0, "a", False, 0.2)  # matches nothing
    assert w.stats().late_acks == 2
    w.on_neighbor_state(report("a", seq=2, i_m=1), 0.2)  # the handed-off tasks show now
    w.on_neighbor_state(report("b", seq=2, i_m=1), 0.2)
    w.output.extend(task(300 + i, k=2) for i in range(3))
    sends = w.offload_pass(0.2)  # O_n = 3 > I_m = 1 twice: one task each
    assert sorted(m for m, _ in sends) == ["a", "b"]
    for m, t in sends:
        w.on_ack(t.key, 0, m, False, 0.3)
    assert w.stats().rejected == 2


def test_accepted_ack_teaches_the_link_estimate() -> None:
    """An accepting ack with a clean rtt replaces the prior D_nm by the measured one."""
    w = make()
    t = send_one(w, "a")
    prior = w.link("a").delay(t.size_bytes, 0.5)
    w.on_ack(t.key, 0, "a", True, 0.5)  # rtt 0.5 s, far above the 1 ms prior
    assert w.link("a").delay(t.size_bytes, 0.5) > 100 * prior


def test_ack_counter_decides_when_the_task_leaves_in_flight() -> None:
    """m's tasks_accepted in the ack (5) vs in later reports: 4 is not yet, 5 is."""
    w = make()
    t = send_one(w, "a")
    w.on_ack(t.key, 0, "a", True, 0.1, accepted_count=5)
    w.on_neighbor_state(report("a", seq=2, tasks_accepted=4), 0.2)  # sent before the ack
    assert w.table.in_flight("a") == 1
    w.on_neighbor_state(report("a", seq=3, tasks_accepted=5), 0.3)
    assert w.table.in_flight("a") == 0


def test_ack_without_counter_falls_back_to_the_report_time() -> None:
    """An ack without tasks_accepted is reflected by a report received after it, even if
    the report carries a counter."""
    table = NeighborTable("n", "mnv2")
    table.update(report("a"), 0.0)
    table.note_sent("a", 0.0)
    table.note_acked("a", 0.1)
    table.update(report("a", seq=2, tasks_accepted=0), 0.2)
    assert table.in_flight("a") == 0


def test_declared_death_takes_tasks_back_before_their_ack_timeout() -> None:
    """Lease 0.5 s, ack timeout 5 s: at 1 s only the death can bring the task back."""
    w = make(lease=0.5, ledger=OffloadLedger(min_timeout=5.0, timeout_factor=4.0))
    t = send_one(w, "a")
    assert w.tick(1.0) == []
    assert w.locate(t.key) == "input" and w.stats().neighbors_lost == 1


def test_every_timeout_is_counted() -> None:
    w = make(max_resends=0)
    w.on_neighbor_state(report("b"), 0.0)
    send_one(w, "a", 200)
    send_one(w, "b", 201)
    w.on_neighbor_state(report("a", seq=2), 1.0)
    w.on_neighbor_state(report("b", seq=2), 1.0)
    w.tick(1.5)
    assert w.stats().timeouts == 2


def test_take_back_undoes_exactly_one_hop() -> None:
    w = make()
    w.input.extend(task(100 + i) for i in range(10))
    w.output.append(task(5, k=2, hops=2))
    w.on_neighbor_state(report("a"), 0.0)
    ((_, t),) = w.offload_pass(0.0)
    assert t.hops == 3
    w.on_ack(t.key, 0, "a", False, 0.1)
    assert t.hops == 2


# -- WorkerCore: offload pass bookkeeping -------------------------------------------------


def test_offload_pass_without_neighbours_clears_the_last_decisions() -> None:
    w = make()
    w.output.append(task(1, k=2))
    w.input.append(task(2))
    w.offload_pass(0.0)
    assert w.last_decisions == ()


def test_every_idle_move_is_counted() -> None:
    w = make()
    w.output.extend(task(d, k=2) for d in (1, 2))
    for _ in range(2):
        w.offload_pass(0.0)  # I_n empty: head of O_n moves to I_n
        w.input.clear()
    assert w.stats().idle_moves == 2


# -- estimators ----------------------------------------------------------------------------


def link(spread: float = 0.0) -> LinkDelayEstimator:
    """Exact binary arithmetic: weight 1/2, prior latency 0 and 1 byte/s (slope 1)."""
    return LinkDelayEstimator(0.0, 1.0, weight=0.5, min_size_spread=spread)


def fitted(est: LinkDelayEstimator, samples: list[tuple[int, float]]) -> tuple[float, float]:
    """Feed (size, rtt) samples and return the fit."""
    for size, rtt in samples:
        est.observe(rtt, size, 0.0)
    fit = est.fit()
    assert fit is not None
    return fit


def test_fit_needs_spread_strictly_above_the_minimum() -> None:
    """Sizes 0, 2 at weight 1/2: mean 1, variance exactly 1. With min_size_spread 1 the
    spread is not *above* the minimum, so the slope comes from my/mx (0.6), not cov/var;
    with min_size_spread 1/2 the fitted slope cov/var = 0.4 is used."""
    samples = [(0, 0.2), (2, 1.0)]
    assert fitted(link(1.0), samples) == pytest.approx((0.0, 0.6))
    assert fitted(link(0.5), samples) == pytest.approx((0.1, 0.4))


def test_fit_uses_small_positive_variance_and_covariance() -> None:
    """Variance 1/4 and covariance 1/10 (both below 1) still give a fitted slope."""
    assert fitted(link(), [(0, 0.2), (1, 0.6)]) == pytest.approx((0.1, 0.4))


def test_fit_with_zero_covariance_falls_back_to_the_rtt_bound() -> None:
    """Constant rtt over two sizes: no positive slope, so slope = min(prior, my/mx) = 1."""
    assert fitted(link(), [(0, 1.0), (2, 1.0)]) == pytest.approx((0.0, 1.0))


def test_fit_with_one_small_size_caps_the_slope_by_the_rtt() -> None:
    """One 1-byte sample of 0.5 s: a 1 byte/s prior would exceed the rtt, so slope 0.5."""
    assert fitted(link(), [(1, 0.5)]) == pytest.approx((0.0, 0.5))


def test_estimator_boundaries_are_accepted() -> None:
    """Zero prior compute time, zero compute samples and zero staleness are valid."""
    est = ComputeDelayEstimator(prior=0.0)
    est.observe(0.0)
    assert est.gamma() == 0.0
    LinkDelayEstimator(0.0, 1.0, stale_after=0.0, half_life=0.5, min_size_spread=0.0)
    LinkDelayEstimator(0.0, 1.0, stale_after=0.5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Ewma().update(math.nan), "sample must be finite, got nan"),
        (lambda: ComputeDelayEstimator(prior=-1.0), "prior must be finite and >= 0, got -1"),
        (
            lambda: ComputeDelayEstimator().observe(-1.0),
            "compute seconds must be finite and >= 0, got -1",
        ),
        (lambda: LinkDelayEstimator(-1.0), "prior_latency must be finite and >= 0, got -1"),
        (lambda: LinkDelayEstimator(0.0, 0.0), "prior_bandwidth must be finite and > 0, got 0"),
        (
            lambda: LinkDelayEstimator(stale_after=-1.0),
            "stale_after must be >= 0, got -1",
        ),
        (lambda: LinkDelayEstimator(half_life=0.0), "half_life must be > 0, got 0"),
        (
            lambda: LinkDelayEstimator(min_size_spread=-1.0),
            "min_size_spread must be >= 0, got -1",
        ),
        (
            lambda: LinkDelayEstimator().observe(-1.0, 10, 0.0),
            "rtt must be finite and >= 0, got -1",
        ),
        (lambda: LinkDelayEstimator().observe(0.1, -1, 0.0), "size_bytes must be >= 0, got -1"),
        (lambda: ExitThresholds.uniform(0, 0.5), "num_exits must be >= 1, got 0"),
        (lambda: ExitThresholds.uniform(3, 0.5).for_exit(4), "exit index 4 out of range 1..3"),
        (lambda: SeenSet(0), "capacity must be >= 1, got 0"),
    ],
)
def test_validation_errors_say_what_is_wrong(build: object, message: str) -> None:
    with pytest.raises((ValueError, IndexError), match=message):
        build()  # type: ignore[operator]


def test_smallest_valid_sizes_are_accepted() -> None:
    assert ExitThresholds.uniform(1, 0.5).num_exits == 1
    seen = SeenSet(1)
    seen.add("a")
    seen.add("b")  # capacity 1: the oldest key goes
    assert "b" in seen and "a" not in seen


# -- offload ledger ----------------------------------------------------------------------------


def test_ack_timeout_backoff_is_capped_at_2_to_the_16() -> None:
    ledger = OffloadLedger(min_timeout=1.0, max_timeout=math.inf)
    assert ledger.timeout_for(0.0, 16) == 2.0**16
    assert ledger.timeout_for(0.0, 40) == 2.0**16


def test_record_without_link_delay_uses_the_minimum_timeout() -> None:
    ledger = OffloadLedger(min_timeout=0.5, timeout_factor=4.0)
    entry = ledger.record(TaskKey("n", 1, 1), 0, "a", None, 10.0)
    assert entry.deadline == 10.5
    with pytest.raises(ValueError, match=r"already in flight to a"):
        ledger.record(TaskKey("n", 1, 1), 1, "b", None, 10.0)
    assert [e.key for e in ledger] == [TaskKey("n", 1, 1)]  # iteration yields the entries


def test_accepted_ack_reports_its_rtt() -> None:
    ledger = OffloadLedger()
    ledger.record(TaskKey("n", 1, 1), 0, "a", None, 1.0)
    res = ledger.ack(TaskKey("n", 1, 1), 0, "a", True, 1.25)
    assert res.status is AckStatus.ACCEPTED and res.rtt == pytest.approx(0.25)


# -- neighbour table ------------------------------------------------------------------------


def test_update_says_when_it_stored_a_report() -> None:
    table = NeighborTable("n", "mnv2")
    assert table.update(report("a"), 0.0) is True
    assert table.update(report("a"), 0.1) is False  # same seq: ignored
    assert table.update(report("a", seq=2), 0.2) is True  # newer report of a known one
    assert table.get("a") is not None and table.get("zz") is None


def test_ack_without_a_send_is_not_counted() -> None:
    table = NeighborTable("n", "mnv2")
    table.update(report("a"), 0.0)
    table.note_acked("a", 0.1)
    state = table.get("a")
    assert state is not None and (state.unacked, len(state.pending)) == (0, 0)


def test_report_with_exactly_the_acked_count_reflects_the_ack() -> None:
    table = NeighborTable("n", "mnv2")
    table.update(report("a"), 0.0)
    table.note_sent("a", 0.0)
    table.note_acked("a", 0.1, accepted_count=3)
    table.update(report("a", seq=2, tasks_accepted=3), 0.05)  # received "before" the ack
    assert table.in_flight("a") == 0


# -- Task ---------------------------------------------------------------------------------------


def test_successor_starts_fresh_but_keeps_the_frame_history() -> None:
    t = Task(TaskKey("s", 4, 1), attempt=3, payload=b"x", size_bytes=500, admitted_at=2.5, hops=2)
    nxt = t.successor()
    assert nxt.key == TaskKey("s", 4, 2)
    assert (nxt.attempt, nxt.payload, nxt.size_bytes) == (0, None, 0)
    assert (nxt.admitted_at, nxt.hops) == (2.5, 2)


# -- WorkerCore: construction ------------------------------------------------------------------


def test_constructor_boundaries_messages_and_defaults() -> None:
    assert make(t_o=0).t_o == 0  # offload every successor: valid
    with pytest.raises(ValueError, match="t_o must be >= 0, got -1"):
        make(t_o=-1)
    with pytest.raises(ValueError, match="max_resends must be >= 0, got -1"):
        make(max_resends=-1)
    w = WorkerCore("n", "mnv2", ExitThresholds.uniform(K, 0.8))  # every default
    assert w.last_decisions == ()
    assert w.report(0.0).seq == 1
    assert w.on_neighbor_state(NeighborReport("n", 0, 0, 0.1, "mnv2", seq=5), 0.0) is False
    w.output.extend(task(d, k=2) for d in (1, 2))
    w.input.append(task(3))
    w.on_neighbor_state(report("a", i_m=1), 0.0)  # probabilistic branch: the RNG is drawn
    w.offload_pass(0.0)
    assert len(w.last_decisions) >= 1
    sent = [e.payload for e in w.ledger.entries()]
    assert all(w.locate(t.key) == "in_flight" for t in sent)


def test_the_given_rng_drives_the_probabilistic_branch() -> None:
    for value, sent in ((0.0, 1), (0.999, 0)):
        rng = FixedDraw(value)
        w = make(rng=rng)
        w.output.extend(task(d, k=2) for d in (1, 2))
        w.input.append(task(3))
        w.on_neighbor_state(report("a", i_m=1), 0.0)  # O=2 > 1, local 0.1 < remote 0.101
        assert len(w.offload_pass(0.0)) == sent
        assert rng.draws == 1


def test_report_settle_is_passed_to_the_table() -> None:
    """With report_settle 1 s, a report 0.1 s after the ack does not yet reflect it."""
    w = make(report_settle=1.0)
    t = send_one(w, "a")
    w.on_ack(t.key, 0, "a", True, 0.1)
    w.on_neighbor_state(report("a", seq=2), 0.2)
    assert w.table.in_flight("a") == 1
    w.on_neighbor_state(report("a", seq=3), 1.2)
    assert w.table.in_flight("a") == 0


def test_learnt_link_delay_is_what_alg2_and_the_ack_timeout_use() -> None:
    w = make(ledger=OffloadLedger(min_timeout=0.1, timeout_factor=10.0))
    t = send_one(w, "a")
    w.on_ack(t.key, 0, "a", True, 0.5)  # rtt 0.5 s: D_nm ~ 0.25 s, far above the prior
    learnt = w.link("a").delay(1000, 0.5)
    assert learnt > 0.2
    w.on_neighbor_state(report("a", seq=2, i_m=1), 0.5)
    w.output.append(task(300, k=2))
    w.output.append(task(301, k=2))
    sends = w.offload_pass(0.5)
    assert w.last_decisions[0].remote_delay == pytest.approx(learnt + (1 + len(sends)) * 0.1)
    for _, s in sends:
        entry = w.ledger.get(s.key)
        assert entry is not None and entry.deadline == pytest.approx(0.5 + 10 * learnt)


# -- WorkerCore: submit receipts and the refused-copy memory -----------------------------------


def test_receipts_carry_reason_and_running_accept_count() -> None:
    w = make()
    r1 = w.submit(task(1), 0.0)
    r2 = w.submit(task(1), 0.0)
    r3 = w.submit(task(2, source="x", hops=1), 0.0)
    w.lifecycle_state = "inactive"
    r4 = w.submit(task(3, source="x", hops=1), 0.0)
    assert [(r.status, r.reason, r.accepted_count) for r in (r1, r2, r3)] == [
        (SubmitStatus.QUEUED, "", 1),
        (SubmitStatus.DUPLICATE, "duplicate", 2),
        (SubmitStatus.QUEUED, "", 3),
    ]
    assert (r4.status, r4.reason, r4.accepted_count) == (
        SubmitStatus.REFUSED,
        "worker is inactive",
        3,
    )
    assert w.stats().admitted == 1 and w.stats().offloads_received == 1


def test_duplicate_refreshes_its_place_in_the_seen_set() -> None:
    """Capacity 2: seen k1, k2; k1 again (refreshed); k3 evicts k2, so k1 stays known."""
    w = make(seen_capacity=2)
    for d in (1, 2):
        w.submit(task(d, source="x", hops=1), 0.0)
    assert w.submit(task(1, source="x", hops=1), 0.0).status is SubmitStatus.DUPLICATE
    w.submit(task(3, source="x", hops=1), 0.0)
    assert w.submit(task(1, source="x", hops=1), 0.0).status is SubmitStatus.DUPLICATE


def refuse(w: WorkerCore, d: int, attempt: int) -> None:
    """Make ``w`` refuse attempt ``attempt`` of task (x, d, 1) while inactive."""
    state = w.lifecycle_state
    w.lifecycle_state = "inactive"
    assert w.submit(Task(TaskKey("x", d, 1), attempt=attempt, hops=1), 0.0).status is (
        SubmitStatus.REFUSED
    )
    w.lifecycle_state = state


def offer(w: WorkerCore, d: int, attempt: int) -> SubmitStatus:
    """Offer attempt ``attempt`` of task (x, d, 1) to the (active) worker."""
    return w.submit(Task(TaskKey("x", d, 1), attempt=attempt, hops=1), 0.0).status


def test_same_attempt_as_the_refused_one_is_stale() -> None:
    w = make()
    refuse(w, 1, 1)
    assert offer(w, 1, 1) is SubmitStatus.REFUSED
    assert offer(w, 1, 2) is SubmitStatus.QUEUED


def test_first_refusal_of_attempt_0_lets_attempt_1_in() -> None:
    w = make()
    refuse(w, 1, 0)
    assert offer(w, 1, 1) is SubmitStatus.QUEUED


def test_refused_memory_keeps_the_highest_attempt() -> None:
    w = make()
    refuse(w, 1, 3)
    assert offer(w, 1, 2) is SubmitStatus.REFUSED  # stale, must not lower the record
    assert offer(w, 1, 3) is SubmitStatus.REFUSED


def test_refused_memory_holds_capacity_entries_and_drops_the_oldest() -> None:
    w = make(seen_capacity=2)
    refuse(w, 1, 0)
    refuse(w, 2, 0)
    assert offer(w, 1, 0) is SubmitStatus.REFUSED  # both still remembered at capacity
    refuse(w, 3, 0)  # over capacity: the oldest (2, refreshed 1 is newer) goes
    assert offer(w, 3, 0) is SubmitStatus.REFUSED
    assert offer(w, 2, 0) is SubmitStatus.QUEUED


def test_accepting_a_task_forgets_its_refusal() -> None:
    """Capacity 2: refused 2 and 1, then 1 accepted (forgotten); refusing 3 keeps 2."""
    w = make(seen_capacity=2)
    refuse(w, 2, 0)
    refuse(w, 1, 0)
    assert offer(w, 1, 1) is SubmitStatus.QUEUED
    refuse(w, 3, 0)
    assert offer(w, 2, 0) is SubmitStatus.REFUSED


# -- exit policy, ledger and table validation -------------------------------------------------


def test_exit_thresholds_normalise_and_accept_one() -> None:
    th = ExitThresholds([1, 0])  # type: ignore[arg-type]
    assert isinstance(th.values, tuple) and th.values == (1.0, 0.0)
    assert all(type(v) is float for v in th.values)
    with pytest.raises(ValueError, match=r"^ExitThresholds needs at least one exit \(K >= 1\)$"):
        ExitThresholds(())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Ewma(weight=0.0), r"weight must be in \(0, 1\], got 0"),
        (lambda: OffloadLedger(min_timeout=0.0), "min_timeout must be finite and > 0, got 0"),
        (
            lambda: OffloadLedger(timeout_factor=-1.0),
            "timeout_factor must be finite and > 0, got -1",
        ),
        (
            lambda: OffloadLedger(timeout_factor=0.0),
            "timeout_factor must be finite and > 0, got 0",
        ),
        (
            lambda: OffloadLedger(min_timeout=2.0, max_timeout=1.0),
            r"max_timeout must be >= min_timeout \(1.0 < 2.0\)",
        ),
        (lambda: NeighborTable("n", "m", lease=0.0), "lease must be finite and > 0, got 0"),
        (
            lambda: NeighborTable("n", "m", report_settle=-1.0),
            "report_settle must be >= 0, got -1",
        ),
    ],
)
def test_more_validation_errors_say_what_is_wrong(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_validation_boundaries_that_are_valid() -> None:
    assert OffloadLedger(min_timeout=1.0, max_timeout=1.0).timeout_for(0.0, 3) == 1.0
    assert NeighborTable("n", "m", lease=0.5).lease == 0.5
    assert ExitThresholds.uniform(2, 1.0).for_exit(1) == 1.0


# -- Alg. 2 rule: every branch reports its numbers ---------------------------------------------


class Draw:
    """RNG stub returning a fixed value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        """The fixed value."""
        return self.value


def test_offload_rule_reports_neighbour_and_delays_in_every_branch() -> None:
    det = offload_rule(5, 10, 1.0, 1, 1.0, 0.5, Draw(0.9), neighbor="a")
    assert (det.neighbor, det.branch, det.offload) == ("a", OffloadBranch.DETERMINISTIC, True)
    prob = offload_rule(5, 1, 1.0, 1, 1.0, 0.5, Draw(0.9), neighbor="b")
    assert (prob.neighbor, prob.branch, prob.offload) == ("b", OffloadBranch.PROBABILISTIC, False)
    assert (prob.local_delay, prob.remote_delay) == (1.0, 1.5)
    keep = offload_rule(1, 10, 1.0, 1, 1.0, 0.5, Draw(0.0), neighbor="c")
    assert (keep.neighbor, keep.branch, keep.offload) == ("c", OffloadBranch.KEEP, False)
    assert keep.offload is False and (keep.local_delay, keep.remote_delay) == (10.0, 1.5)
    assert offload_rule(1, 1, 1.0, 1, 1.0, 0.0, Draw(0.0)).neighbor == ""


def test_evicted_frame_releases_its_aliases() -> None:
    """Capacity 1: closing frame 2 evicts frame 1, whose alias 10 becomes free again."""
    fl = FrameLedger(completed_capacity=1)
    fl.admit(1, 0.0)
    fl.readmit(1, 10, 0.5)
    assert fl.result(10, 1.0) is ResultStatus.FIRST
    fl.admit(2, 1.0)
    fl.result(2, 1.5)  # frame 1 leaves the closed window
    assert fl.frame_of(10) == 10
    fl.admit(10, 2.0)  # a new frame may use the id
    assert fl.result(10, 2.5) is ResultStatus.FIRST
