"""WorkerCore: Alg. 1 through the worker, offload passes, acks, timeouts, drain."""

import random

import pytest

from mdi_exit_ros.core import (
    AckStatus,
    ComputeDelayEstimator,
    ExitThresholds,
    LinkDelayEstimator,
    NeighborReport,
    OffloadBranch,
    OffloadLedger,
    OutcomeKind,
    Placement,
    SubmitStatus,
    Task,
    TaskKey,
    WorkerCore,
)

K = 3  # exits


def make(worker_id: str = "n", **kw: object) -> WorkerCore:
    defaults: dict[str, object] = {
        "rng": random.Random(0),
        "lease": 2.0,
        "compute": ComputeDelayEstimator(prior=0.1),
        "link_factory": lambda: LinkDelayEstimator(prior_latency=0.001, prior_bandwidth=1e9),
        "ledger": OffloadLedger(min_timeout=1.0, timeout_factor=4.0),
    }
    defaults.update(kw)
    return WorkerCore(worker_id, "mnv2", ExitThresholds.uniform(K, 0.8), **defaults)  # type: ignore[arg-type]


def task(data_id: int, k: int = 1, source: str = "n", hops: int = 0) -> Task:
    return Task(TaskKey(source, data_id, k), hops=hops, size_bytes=1000)


def neighbor(
    name: str, seq: int = 1, i_m: int = 0, gamma: float = 0.1, **kw: object
) -> NeighborReport:
    return NeighborReport(name, i_m, 0, gamma, "mnv2", seq=seq, **kw)  # type: ignore[arg-type]


def run_one(w: WorkerCore, confidence: float, now: float = 0.0):  # noqa: ANN201
    t = w.next_task()
    assert t is not None
    return w.complete(t, confidence, 0.1, now)


# -- Alg. 1 ------------------------------------------------------------------------------


def test_early_exit_when_confident() -> None:
    w = make()
    w.submit(task(1), 0.0)
    out = run_one(w, 0.95)
    assert out.kind is OutcomeKind.EXIT and out.exit_index == 1 and out.exited
    assert out.threshold == 0.8 and w.stats().exits == {1: 1}
    assert w.idle()


def test_last_exit_always_exits() -> None:
    w = make()
    w.submit(task(1, k=K, source="s", hops=1), 0.0)
    out = run_one(w, 0.0)
    assert out.kind is OutcomeKind.EXIT and out.exit_index == K


def test_next_task_to_input_when_input_empty() -> None:
    w = make()
    w.submit(task(1), 0.0)
    out = run_one(w, 0.5)
    assert out.kind is OutcomeKind.CONTINUE and out.placement is Placement.INPUT
    assert out.next_task is not None and out.next_task.key == TaskKey("n", 1, 2)
    assert list(w.input) == [out.next_task] and not w.output


def test_next_task_to_output_when_input_busy() -> None:
    w = make()
    w.submit(task(1), 0.0)
    w.submit(task(2), 0.0)
    out = w.complete(w.next_task(), 0.5, 0.1, 0.0, next_payload="feat", next_size_bytes=77)  # type: ignore[arg-type]
    assert out.placement is Placement.OUTPUT and list(w.output) == [out.next_task]
    assert out.next_task is not None and out.next_task.payload == "feat"
    assert out.next_task.size_bytes == 77


def test_a_robot_without_neighbours_keeps_successors_in_its_input_queue() -> None:
    """neighbors ['-'] (allowed = none): nobody could take O_n's tasks, so a successor goes
    to I_n behind the frames already there instead of waiting in O_n for ever."""
    w = make(allowed=[])
    w.submit(task(1), 0.0)
    w.submit(task(2), 0.0)
    out = w.complete(w.next_task(), 0.5, 0.1, 0.0)
    assert out.placement is Placement.INPUT and not w.output
    assert [t.key for t in w.input] == [TaskKey("n", 2, 1), TaskKey("n", 1, 2)]
    # with any neighbour allowed, the same step parks it in O_n (Alg. 1 line 8)
    w = make(allowed=["a"])
    w.submit(task(1), 0.0)
    w.submit(task(2), 0.0)
    assert w.complete(w.next_task(), 0.5, 0.1, 0.0).placement is Placement.OUTPUT


def test_next_task_to_input_when_output_over_t_o() -> None:
    w = make(t_o=2)
    for i in range(5):
        w.submit(task(i), 0.0)
    placements = [run_one(w, 0.1).placement for _ in range(4)]
    # O_n: 0 -> 1 -> 2 (outputs), then O_n = 2 is not > 2: output; then 3 > 2: input
    assert placements == [Placement.OUTPUT] * 3 + [Placement.INPUT]


def test_thresholds_carried_by_the_task_win_and_are_inherited() -> None:
    w = make()  # own thresholds 0.8
    t = task(1)
    t.exit_thresholds = ExitThresholds.of([0.5, 0.95, 0.0])
    w.submit(t, 0.0)
    out = run_one(w, 0.6)
    assert out.exited and out.threshold == 0.5
    t2 = task(2)
    t2.exit_thresholds = ExitThresholds.of([0.99, 0.95, 0.0])
    w.submit(t2, 0.0)
    out = run_one(w, 0.9)
    assert not out.exited and out.next_task is not None
    assert out.next_task.exit_thresholds is t2.exit_thresholds
    bad = task(3)
    bad.exit_thresholds = ExitThresholds.uniform(K + 1, 0.5)
    assert w.submit(bad, 0.0).status is SubmitStatus.REFUSED


def test_compute_delay_updated_per_task() -> None:
    w = make(compute=ComputeDelayEstimator(prior=1.0, weight=1.0))
    w.submit(task(1), 0.0)
    t = w.next_task()
    assert t is not None
    w.complete(t, 0.99, 0.25, 0.0)
    assert w.gamma() == 0.25 and w.compute.gamma(1) == 0.25


def test_complete_requires_running_task_and_requeue() -> None:
    w = make()
    w.submit(task(1), 0.0)
    with pytest.raises(ValueError):
        w.complete(task(1), 0.9, 0.1, 0.0)
    t = w.next_task()
    assert t is not None and w.locate(t.key) == "running"
    w.requeue(t)
    assert w.locate(t.key) == "input" and w.stats().requeued == 1
    assert make().next_task() is None


def test_thresholds_setter() -> None:
    w = make()
    w.set_thresholds(0.6)
    assert w.thresholds.values == (0.6,) * K
    with pytest.raises(ValueError):
        w.set_thresholds(ExitThresholds.uniform(K + 1, 0.5))
    with pytest.raises(ValueError):
        w.set_thresholds(1.5)


# -- submit --------------------------------------------------------------------------------


def test_duplicate_and_refusals() -> None:
    w = make()
    t = task(1, k=2, source="s", hops=1)
    assert w.submit(t, 0.0).status is SubmitStatus.QUEUED
    again = Task(t.key, attempt=1, hops=1)
    r = w.submit(again, 0.1)
    assert r.status is SubmitStatus.DUPLICATE and r.accepted and not r.queued
    assert len(w.input) == 1
    w.lifecycle_state = "inactive"
    assert w.submit(again, 0.2).status is SubmitStatus.DUPLICATE  # still acked while inactive
    r = w.submit(task(2, source="s", hops=1), 0.2)
    assert r.status is SubmitStatus.REFUSED and not r.accepted and "inactive" in r.reason
    w.lifecycle_state = "active"
    assert w.submit(task(3, source="s"), 0.3, model_id="resnet").status is SubmitStatus.REFUSED
    assert w.submit(task(4, k=K + 1, source="s"), 0.3).status is SubmitStatus.REFUSED
    # a stale copy of a refused attempt stays refused even once active; a newer one is not
    w.lifecycle_state = "inactive"
    late = Task(TaskKey("s", 9, 2), attempt=3, hops=1)
    assert w.submit(late, 0.35).status is SubmitStatus.REFUSED
    w.lifecycle_state = "active"
    old_copy = Task(late.key, attempt=2, hops=1)
    assert w.submit(old_copy, 0.36).status is SubmitStatus.REFUSED
    assert w.submit(Task(late.key, attempt=4, hops=1), 0.37).status is SubmitStatus.QUEUED
    s = w.stats()
    assert (s.duplicates, s.refused, s.offloads_received) == (2, 5, 2)


# -- Alg. 2 through the worker -------------------------------------------------------------


def loaded(w: WorkerCore, n_input: int, n_output: int) -> None:
    for i in range(n_input):
        w.input.append(task(100 + i))
    for i in range(n_output):
        w.output.append(task(200 + i, k=2))


def test_offload_pass_sends_and_records() -> None:
    w = make()
    loaded(w, 10, 1)
    w.on_neighbor_state(neighbor("a"), 0.0)
    sends = w.offload_pass(0.0)
    assert [(m, t.key) for m, t in sends] == [("a", TaskKey("n", 200, 2))]
    assert sends[0][1].hops == 1
    assert w.locate(TaskKey("n", 200, 2)) == "in_flight"
    assert w.table.in_flight("a") == 1
    assert w.last_decisions[0].branch is OffloadBranch.DETERMINISTIC


def test_stale_report_in_flight_accounting_prevents_flooding() -> None:
    w = make()
    loaded(w, 10, 6)
    w.on_neighbor_state(neighbor("a", i_m=0), 0.0)  # stale "empty" report
    sends = w.offload_pass(0.0)
    # O=6>0, O=5>1, O=4>2 offload; then O=3 > I_m=3 fails: the rest stays
    assert len(sends) == 3 and len(w.output) == 3
    assert w.table.effective_input_queue("a") == 3
    assert w.offload_pass(0.01) == []  # no new report: still nothing


def test_no_neighbours_no_idle_waiting() -> None:
    w = make()
    loaded(w, 0, 3)
    assert w.offload_pass(0.0) == []
    assert len(w.input) == 1 and len(w.output) == 2 and w.stats().idle_moves == 1
    assert w.offload_pass(0.0) == [] and len(w.input) == 1  # input not empty: no move


def test_no_idle_waiting_when_no_neighbour_qualifies() -> None:
    w = make()
    loaded(w, 0, 2)
    w.on_neighbor_state(neighbor("a", i_m=5), 0.0)  # O_n=2 <= I_m=5: keep
    assert w.offload_pass(0.0) == []
    assert w.last_decisions[0].branch is OffloadBranch.KEEP
    assert len(w.input) == 1 and len(w.output) == 1


def test_ineligible_neighbours_get_nothing() -> None:
    w = make(allowed={"a", "b", "c"})
    loaded(w, 10, 3)
    w.on_neighbor_state(neighbor("a", lifecycle_state="inactive"), 0.0)
    w.on_neighbor_state(NeighborReport("b", 0, 0, 0.1, "other", seq=1), 0.0)
    w.on_neighbor_state(neighbor("z"), 0.0)  # not in the topology
    w.on_neighbor_state(neighbor("c"), 0.0)
    assert {m for m, _ in w.offload_pass(0.5)} == {"c"}
    w.on_neighbor_state(neighbor("c", seq=2, i_m=0), 0.5)
    w.output.append(task(300, k=2))
    assert w.offload_pass(5.0) == []  # c's lease ran out (lease 2 s)


def test_equal_neighbours_share_load() -> None:
    w = make()
    loaded(w, 20, 8)
    for name in ("a", "b"):
        w.on_neighbor_state(neighbor(name), 0.0)
    sends = w.offload_pass(0.0)
    by = [m for m, _ in sends]
    assert abs(by.count("a") - by.count("b")) <= 1 and len(by) >= 4


def measured(w: WorkerCore, name: str, rtt: float, now: float) -> None:
    """Give w a measured link to `name` (one round trip of rtt at `now`)."""
    w.link(name).observe(rtt, 1000, now)


def heard(w: WorkerCore, names: tuple[str, ...], seq: int, now: float) -> None:
    """Fresh, idle reports from `names` (their leases renewed)."""
    for name in names:
        w.on_neighbor_state(neighbor(name, seq=seq), now)


def offload_one(w: WorkerCore, data_id: int, now: float, ack: bool = True) -> list[str]:
    """One head task in O_n (I_n busy, so Alg. 2 offloads it): who got it. Acked at once
    when `ack` (so it is no longer in flight after the receiver's next report)."""
    w.output.append(task(data_id, k=2))
    sends = w.offload_pass(now)
    for m, t in sends if ack else ():
        w.on_ack(t.key, t.attempt, m, True, now)
    return [m for m, _ in sends]


def test_a_neighbour_that_rejoined_is_tried_first_and_its_old_link_forgotten() -> None:
    """Seen on five hosts: a restarted robot, idle, got no task for 84 s while its idle
    neighbours, whose links robot1 had measured faster than the prior, took every task (the
    ranking is D_nm + I_m Gamma_m and all I_m were 0). Its estimate could only improve by
    sending to it. Now a neighbour back after its lease ran out is probed first."""
    w = make(link_factory=lambda: LinkDelayEstimator(prior_latency=0.02, prior_bandwidth=1e9))
    loaded(w, 10, 0)
    heard(w, ("a", "b"), 1, 0.0)
    measured(w, "a", 0.004, 0.0)
    measured(w, "b", 0.2, 0.0)  # b's link: slow then
    assert offload_one(w, 1, 0.0) == ["a"]
    heard(w, ("a",), 2, 1.5)
    w.tick(2.5)  # b's lease (2 s) ran out: dead, and its old link estimate goes with it
    assert "b" not in w.table
    heard(w, ("a", "b"), 3, 3.0)  # b restarted (any seq: it is new to the table)
    assert w.link("b").samples == 0 and w.link("b").is_stale(3.0)
    measured(w, "a", 0.004, 3.0)  # a: measured, faster than b's prior
    assert w.link("a").delay(1000, 3.0) < w.link("b").delay(1000, 3.0)
    assert offload_one(w, 2, 3.0, ack=False) == ["b"]
    # One probe per stale_after: until b's ack measures its link, a ranks first again.
    assert offload_one(w, 3, 3.1) == ["a"]


def test_a_probe_still_needs_alg2s_consent() -> None:
    """Probing changes the order neighbours are tried in, never Alg. 2's test."""
    w = make()
    loaded(w, 10, 0)
    w.on_neighbor_state(neighbor("a", i_m=5), 0.0)  # unmeasured, but O_n=1 <= I_m=5
    assert offload_one(w, 1, 0.0) == []
    # Alg. 2 keeps the head whatever the delays (O_n <= I_m): the pass tries nobody
    assert not w.may_offload(0.0) and w.last_decisions == ()
    assert w.ledger.entries() == []  # no probe went out


def test_an_unused_link_is_probed_again_once_per_stale_after() -> None:
    """A link unused for stale_after (10 s) seconds gets one task when Alg. 2 allows it,
    so a link that recovered (a bandwidth cap lifted) is measured again."""
    w = make()
    loaded(w, 10, 0)
    heard(w, ("a", "b"), 1, 0.0)
    measured(w, "a", 0.002, 0.0)
    measured(w, "b", 0.5, 0.0)  # b's link slow when last measured
    assert offload_one(w, 1, 0.0) == ["a"]  # both measured lately: ranked by delay
    for i, now in enumerate((1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5), start=2):
        heard(w, ("a", "b"), i, now)
        measured(w, "a", 0.002, now)  # a in use all along
    assert offload_one(w, 2, 10.5, ack=False) == ["b"]  # b's last sample 10.5 s old: probed
    assert offload_one(w, 3, 10.6) == ["a"]  # one probe, not one per task


# -- acks, timeouts, deaths ----------------------------------------------------------------


def one_sent(**kw: object) -> tuple[WorkerCore, Task]:
    w = make(**kw)
    loaded(w, 10, 1)
    w.on_neighbor_state(neighbor("a"), 0.0)
    ((m, t),) = w.offload_pass(0.0)
    return w, t


def test_accepting_ack_hands_off() -> None:
    w = make()
    w.submit(task(1), 0.0)
    w.submit(task(2), 0.0)
    out = run_one(w, 0.1)  # successor of frame 1 goes to O_n (I_n not empty)
    assert out.placement is Placement.OUTPUT
    w.on_neighbor_state(neighbor("a"), 0.0)
    ((_, t),) = w.offload_pass(0.0)
    assert t is out.next_task
    res = w.on_ack(t.key, t.attempt, "a", True, 0.1)
    assert res.status is AckStatus.ACCEPTED
    assert w.locate(t.key) is None and w.stats().handed_off == 1
    assert w.table.in_flight("a") == 1  # acked, not yet in a report
    assert w.link("a").samples == 1
    w.on_neighbor_state(neighbor("a", seq=2, i_m=1), 0.2)
    assert w.table.in_flight("a") == 0
    # the task left: if it ever comes back (e.g. evacuated by a), it is not a duplicate
    back = Task(t.key, hops=2)
    assert w.submit(back, 0.3).status is SubmitStatus.QUEUED
    assert w.submit(Task(t.key, attempt=1, hops=2), 0.4).status is SubmitStatus.DUPLICATE


def test_rejecting_ack_takes_back_to_input_head() -> None:
    w, t = one_sent()
    res = w.on_ack(t.key, 0, "a", False, 0.1)
    assert res.status is AckStatus.REJECTED
    assert w.input[0] is t and t.attempt == 1 and t.hops == 0
    assert w.table.in_flight("a") == 0
    s = w.stats()
    assert (s.rejected, s.taken_back) == (1, 1)


def test_timeout_resends_to_same_live_receiver_then_takes_back() -> None:
    w, t = one_sent(max_resends=2)
    assert w.tick(0.5) == []
    w.on_neighbor_state(neighbor("a", seq=2, i_m=1), 0.9)
    resends = w.tick(1.0)  # first timeout (1 s)
    assert resends == [("a", t)] and t.attempt == 1
    w.on_neighbor_state(neighbor("a", seq=3, i_m=1), 2.5)
    assert w.tick(2.9) == []  # backed off: 2 s
    assert w.tick(3.0) == [("a", t)] and t.attempt == 2
    w.on_neighbor_state(neighbor("a", seq=4, i_m=1), 6.5)
    assert w.tick(7.0) == []  # max_resends reached: taken back
    assert w.input[0] is t and t.attempt == 3
    s = w.stats()
    assert (s.resends, s.timeouts, s.taken_back) == (2, 1, 1)
    assert w.table.in_flight("a") == 0


def test_a_link_slower_than_the_ack_timeout_is_still_measured() -> None:
    """Every ack of a's link comes 2.5 s after its send, past the 1 s timeout: the task is
    re-sent, and the late ack of the first copy teaches the estimate (D_nm ~ rtt / 2), so
    Alg. 2 sees the slow link and the next timeout is sized for it."""
    w, t = one_sent(max_resends=3)
    prior = w.link("a").delay(t.size_bytes, 0.0)
    w.on_neighbor_state(neighbor("a", seq=2, i_m=1), 0.9)
    assert w.tick(1.0) == [("a", t)] and t.attempt == 1  # timeout: re-sent
    res = w.on_ack(t.key, 0, "a", True, 2.5)  # the first copy's ack, 2.5 s after it left
    assert res.status is AckStatus.ACCEPTED and res.rtt == pytest.approx(2.5)
    delay = w.link("a").delay(t.size_bytes, 2.5)
    assert delay > 1000 * prior and 1.25 <= delay <= 2.5
    assert w.ledger.timeout_for(delay) > 2.5  # sized for the link now: no needless re-send


def test_ack_for_old_attempt_settles_resent_task() -> None:
    w, t = one_sent()
    w.on_neighbor_state(neighbor("a", seq=2), 0.9)
    w.tick(1.0)
    assert t.attempt == 1
    assert w.on_ack(t.key, 0, "a", True, 1.1).status is AckStatus.ACCEPTED
    assert w.locate(t.key) is None
    assert w.link("a").samples == 1  # the ack names attempt 0: an exact 1.1 s round trip


def test_dead_receiver_tasks_taken_back() -> None:
    w, t = one_sent()
    assert w.tick(2.5) == []  # lease 2 s expired before the 1 s timeout could re-send
    assert w.input[0] is t and t.attempt == 1
    assert "a" not in w.table and w.stats().neighbors_lost == 1


def test_neighbor_lost_explicitly() -> None:
    w, t = one_sent()
    assert w.neighbor_lost("a") == [t]
    assert w.locate(t.key) == "input"


def test_late_accept_cancels_taken_back_copy() -> None:
    w, t = one_sent(max_resends=0)
    w.on_neighbor_state(neighbor("a", seq=2), 0.9)
    w.tick(1.0)  # taken back
    assert w.locate(t.key) == "input"
    res = w.on_ack(t.key, 0, "a", True, 1.2)
    assert res.status is AckStatus.IGNORED
    assert w.locate(t.key) is None  # a holds it: not run twice
    s = w.stats()
    assert (s.reclaimed, s.handed_off, s.late_acks) == (1, 1, 1)


def test_late_accept_after_local_run_started_changes_nothing() -> None:
    w, t = one_sent(max_resends=0)
    w.on_ack(t.key, 0, "a", False, 0.1)  # refused, taken back to the head
    assert w.next_task() is t
    assert w.on_ack(t.key, 0, "a", True, 0.2).status is AckStatus.IGNORED
    assert w.locate(t.key) == "running" and w.stats().reclaimed == 0


def test_late_accept_from_other_receiver_does_not_cancel() -> None:
    w, t = one_sent(max_resends=0)
    w.on_ack(t.key, 0, "a", False, 0.1)
    w.on_ack(t.key, 0, "b", True, 0.2)
    assert w.locate(t.key) == "input"


# -- lifecycle and introspection -----------------------------------------------------------


def test_drain_returns_all_queued_tasks() -> None:
    w = make()
    loaded(w, 2, 2)
    w.on_neighbor_state(neighbor("a", i_m=0), 0.0)
    sent = w.offload_pass(0.0)
    running = w.next_task()
    drained = w.drain()
    assert len(drained) == 4 - len(sent) - 1
    assert not w.input and not w.output and not w.idle()
    assert running is not None
    w.complete(running, 0.99, 0.1, 0.1)
    for _, t in sent:
        w.on_ack(t.key, t.attempt, "a", True, 0.2)
    assert w.idle() and w.stats().drained == len(drained)


def test_report_and_stats() -> None:
    w = make()
    loaded(w, 3, 2)
    r1, r2 = w.report(1.0), w.report(2.0)
    assert (r1.worker, r1.input_queue, r1.output_queue, r1.model_id) == ("n", 3, 2, "mnv2")
    assert r1.compute_delay == 0.1 and r1.exit_thresholds == (0.8,) * K
    assert r2.seq == r1.seq + 1 and r2.stamp == 2.0 and r1.lifecycle_state == "active"
    s = w.stats()
    assert (s.input_queue, s.output_queue, s.running, s.in_flight) == (3, 2, 0, 0)
    assert len(w.held()) == 5


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        make(t_o=-1)
    with pytest.raises(ValueError):
        make(max_resends=-1)


# -- two-worker races (messages delivered by hand, in adversarial order) -------------------


def pair() -> tuple[WorkerCore, WorkerCore]:
    n, m = make("n"), make("m")
    n.on_neighbor_state(m.report(0.0), 0.0)
    m.on_neighbor_state(n.report(0.0), 0.0)
    return n, m


def copy(t: Task) -> Task:
    return Task(t.key, attempt=t.attempt, payload=t.payload, size_bytes=t.size_bytes, hops=t.hops)


def test_stale_copy_after_refusal_is_refused() -> None:
    """a0 delayed, a1 refused by inactive m, m reactivates, a0 arrives: must be refused."""
    n, m = pair()
    loaded(n, 10, 1)
    ((_, t),) = n.offload_pass(0.0)
    a0 = copy(t)  # in the network, delayed
    m.lifecycle_state = "inactive"
    n.on_neighbor_state(m.report(0.9), 0.9)
    ((_, t1),) = n.tick(1.0)  # timeout: re-send a1
    r1 = m.submit(copy(t1), 1.1)
    assert r1.status is SubmitStatus.REFUSED
    m.lifecycle_state = "active"
    r0 = m.submit(a0, 1.2)
    assert r0.status is SubmitStatus.REFUSED and "stale" in r0.reason
    assert n.on_ack(t.key, 1, "m", False, 1.3).status is AckStatus.REJECTED  # taken back
    assert n.on_ack(t.key, 0, "m", False, 1.4).status is AckStatus.IGNORED
    assert n.locate(t.key) == "input" and m.locate(t.key) is None


def test_circled_back_task_is_queued_not_swallowed() -> None:
    """n->m accepted but the ack is late; m evacuates the task back to n."""
    n, m = pair()
    loaded(n, 10, 1)
    ((_, t),) = n.offload_pass(0.0)
    assert m.submit(copy(t), 0.1).queued  # ack0 delayed
    m.lifecycle_state = "inactive"
    ((to, back),) = m.evacuate(0.2)
    assert to == "n"
    r = n.submit(copy(back), 0.3)
    assert r.queued and n.stats().circled_back == 1
    assert t.key not in n.ledger
    m.on_ack(back.key, back.attempt, "n", r.accepted, 0.4)
    assert n.on_ack(t.key, 0, "m", True, 0.5).status is AckStatus.IGNORED  # late ack0
    assert n.locate(t.key) == "input" and m.locate(t.key) is None  # exactly one copy


def test_circled_back_while_inactive_is_refused_and_stays_with_sender() -> None:
    n, m = pair()
    loaded(n, 10, 1)
    ((_, t),) = n.offload_pass(0.0)
    assert m.submit(copy(t), 0.1).queued
    m.lifecycle_state = "inactive"
    ((_, back),) = m.evacuate(0.2)
    n.lifecycle_state = "inactive"
    r = n.submit(copy(back), 0.3)
    assert r.status is SubmitStatus.REFUSED
    m.on_ack(back.key, back.attempt, "n", r.accepted, 0.4)  # m takes it back
    assert m.locate(back.key) == "input"
    n.on_ack(t.key, 0, "m", True, 0.5)  # late ack0 settles n's entry: m holds the task
    assert n.locate(t.key) is None


def test_evacuate_without_neighbours_keeps_tasks() -> None:
    w = make()
    loaded(w, 2, 1)
    assert w.evacuate(0.0) == []
    assert len(w.input) == 2 and len(w.output) == 1


def test_evacuate_spreads_over_neighbours_and_is_ledgered() -> None:
    w = make()
    loaded(w, 3, 3)
    w.on_neighbor_state(neighbor("a"), 0.0)
    w.on_neighbor_state(neighbor("b"), 0.0)
    sends = w.evacuate(0.0)
    assert len(sends) == 6 and not w.input and not w.output
    by = [m for m, _ in sends]
    assert by.count("a") == by.count("b") == 3
    assert len(w.ledger) == 6 and w.stats().evacuated == 6
    _, first = sends[0]
    w.on_ack(first.key, first.attempt, sends[0][0], False, 0.1)  # refused: back to I_n
    assert w.locate(first.key) == "input"
