"""Tests written to kill the mutants that survived `make mutation` after the schedule-based
control gate, the camera bound, `report_problem`, `restamp` and custody were merged
(docs/TESTING.md, "Surviving mutants").

Each test pins a behaviour the earlier tests left open: the not-due answer of Alg. 4, the
edges of the stall rule and of a parameter change, the camera bound's bookkeeping between
steps, exact refusal messages and the T_e = 1 edge of a report, restamp's count, and the
custody and done-notice bookkeeping (counters that add up, the oldest copy expiring first,
the origin memory's capacity), and the health rule at one task.
"""

from __future__ import annotations

import pytest
from test_core_worker import make, neighbor, run_one, task

from mdi_exit_ros.core import (
    ControlBranch,
    ControlStep,
    ExitThresholds,
    NeighborReport,
    OutcomeKind,
    RateController,
    SubmitStatus,
    Task,
    TaskKey,
    ThresholdController,
    WorkerCore,
    report_problem,
)
from mdi_exit_ros.core.health import MIN_STALL, worker_health

# -- Alg. 3/4 schedule (admission.py) ----------------------------------------------------------


def test_threshold_controller_answers_not_due_with_its_value_unchanged() -> None:
    """Alg. 4 between two due steps: the value in force, NOT_DUE, not changed."""
    tc = ThresholdController(0.6, te_min=0.5, period=1.0)
    first = tc.step(0.0, 0, 0)
    assert first.branch is ControlBranch.LOW and first.changed
    assert tc.step(0.5, 0, 0) == ControlStep(tc.te, ControlBranch.NOT_DUE, False)
    assert tc.te == pytest.approx(0.72) and tc.next_due == 1.0


def test_a_late_step_restarts_the_schedule_when_the_next_one_would_already_be_due() -> None:
    """Steps due at 0, 1, 2 ...: a step at 1.8 is late enough that 2 would be due at once
    (2 - period/4 <= 1.8), so the schedule restarts at 1.8; at exactly 1.75 too."""
    for late in (1.8, 1.75):
        tc = ThresholdController(0.6, te_min=0.5, period=1.0)
        tc.step(0.0, 0, 0)
        assert tc.step(late, 0, 0).branch is ControlBranch.LOW
        assert tc.next_due == late + 1.0
        assert tc.step(late, 0, 0).branch is ControlBranch.NOT_DUE  # no second step now
    tc = ThresholdController(0.6, te_min=0.5, period=1.0)
    tc.step(0.0, 0, 0)
    tc.step(1.7, 0, 0)  # 2 - 0.25 > 1.7: on schedule, the next step stays due at 2
    assert tc.next_due == 2.0


def test_period_zero_steps_on_every_call_and_keeps_the_schedule_at_its_start() -> None:
    """Each due time is the previous one plus the period: with period 0 they all are t0."""
    tc = ThresholdController(0.6, te_min=0.5, period=0.0)
    for now in (3.0, 3.0, 4.5, 10.0):
        assert tc.step(now, 0, 0).branch is ControlBranch.LOW
        assert tc.next_due == 3.0


def test_parameter_changes_keep_the_schedule_unless_the_period_changes() -> None:
    tc = ThresholdController(0.6, te_min=0.5, period=1.0)
    tc.update_params(period=2.0)  # before the first step: nothing to re-base
    assert tc.next_due is None and tc.due(0.0)
    tc.step(0.0, 0, 0)
    tc.step(1.6, 0, 0)  # a quarter period early (due at 2): the next is due at 4, not 3.6
    assert tc.next_due == 4.0
    tc.update_params(alpha=0.3)  # same period: the schedule is untouched
    assert tc.next_due == 4.0 and tc.params.alpha == 0.3


def test_the_floor_is_mu_min_before_the_first_step() -> None:
    rc = RateController(1.0, mu_min=0.01, period=1.0)
    assert rc.floor == 0.01 and rc.camera_interval is None


def test_the_camera_interval_is_measured_over_a_period_shorter_than_a_second() -> None:
    rc = RateController(1.0, mu_min=0.001, period=0.5)
    rc.step(0.0, 0, 0)
    for _ in range(5):
        rc.on_frame()
    rc.step(0.5, 0, 0)
    assert rc.camera_interval == pytest.approx(0.1)
    assert rc.floor == pytest.approx(0.1 / 1.2)


def test_a_period_without_frames_after_one_with_frames_holds_mu() -> None:
    """Frames in one period, none in the next: the interval is unknown again and mu is
    not lowered (the count restarts at 0 after each step, not at "not reported")."""
    rc = RateController(0.5, mu_min=0.001, period=1.0)
    rc.step(0.0, 0, 0)  # mu 0.4
    for _ in range(4):
        rc.on_frame()
    rc.step(1.0, 0, 0)  # 4 frames in 1 s: bound 0.25 / 1.2, mu 0.32
    assert rc.camera_interval == pytest.approx(0.25) and rc.mu == pytest.approx(0.32)
    step = rc.step(2.0, 0, 0)  # no frame: mu held
    assert rc.camera_interval is None
    assert step.value == pytest.approx(0.32) and not step.changed
    assert rc.floor == pytest.approx(0.32)


# -- report_problem (neighbors.py) --------------------------------------------------------------


def _report(**fields: object) -> NeighborReport:
    values: dict[str, object] = dict(
        worker="robot2", input_queue=3, output_queue=1, compute_delay=0.02, model_id="m",
        exit_thresholds=(0.8, 0.9, 0.0), admission_interval=0.05)
    return NeighborReport(**{**values, **fields})  # type: ignore[arg-type]


def test_a_report_from_a_source_at_te_one_passes() -> None:
    """T_e = 1 is Alg. 4's upper bound, so a report may carry it (and 0)."""
    assert report_problem(_report(exit_thresholds=(1.0, 1.0, 1.0))) is None
    assert report_problem(_report(exit_thresholds=(0.0, 1.0))) is None


def test_report_refusal_messages() -> None:
    """The reasons logged for refused reports, word for word."""
    assert report_problem(_report(worker="bad name")) == "worker is not a valid worker id"
    assert report_problem(_report(exit_thresholds=(1.5,))) == "exit thresholds outside [0, 1]"


# -- restamp (worker.py) ------------------------------------------------------------------------


def _frame(source: str, data_id: int, thresholds: ExitThresholds) -> Task:
    return Task(TaskKey(source, data_id, 1), size_bytes=100, exit_thresholds=thresholds)


def test_restamp_counts_the_tasks_it_changed() -> None:
    w = make("w")
    old = ExitThresholds.uniform(3, 0.9)
    for d in range(3):
        w.submit(_frame("src", d, old), 0.0)
    w.submit(_frame("other", 0, old), 0.0)
    assert w.restamp("src", ExitThresholds.uniform(2, 0.5)) == 0  # wrong K: nothing
    assert all(t.exit_thresholds == old for t in w.input)
    assert w.restamp("src", ExitThresholds.uniform(3, 0.5)) == 3
    assert w.restamp("src", ExitThresholds.uniform(3, 0.5)) == 0  # already stamped


# -- custody (worker.py) ------------------------------------------------------------------------


def _hand_off_two(w: WorkerCore, now: float, ack_a: float, ack_b: float) -> tuple[Task, Task]:
    """Frames 1 and 2 continue; their task 2 goes to a and b, accepted at ack_a / ack_b."""
    for d in (1, 2, 3):
        w.submit(task(d), now)
    run_one(w, 0.1, now)
    run_one(w, 0.1, now)  # task 3 still in I_n: both successors wait in O_n
    w.on_neighbor_state(neighbor("a"), now)
    w.on_neighbor_state(neighbor("b"), now)
    sends = dict(w.offload_pass(now))
    assert set(sends) == {"a", "b"}
    w.on_ack(sends["a"].key, sends["a"].attempt, "a", True, ack_a)
    w.on_ack(sends["b"].key, sends["b"].attempt, "b", True, ack_b)
    assert w.stats().in_custody == 2
    return sends["a"], sends["b"]


def test_reissued_counts_the_tasks_of_every_receiver_that_died() -> None:
    w = make(lease=1000.0)
    to_a, to_b = _hand_off_two(w, 0.0, 0.01, 0.01)
    assert w.neighbor_lost("a") == [to_a] and w.stats().reissued == 1
    assert w.neighbor_lost("b") == [to_b] and w.stats().reissued == 2
    assert [t.key for t in w.input][:2] == [to_b.key, to_a.key]  # back at the head of I_n


def test_every_expired_copy_is_counted() -> None:
    w = make(lease=1000.0)
    w.custody_timeout = 10.0
    _hand_off_two(w, 0.0, 0.01, 0.02)
    w.tick(20.0)
    assert (w.stats().in_custody, w.stats().custody_expired) == (0, 2)


def test_custody_age_is_measured_from_the_accepting_ack() -> None:
    """Copies accepted at t = 100 with a 10 s timeout are kept until t = 110, and one aged
    exactly the timeout is kept; the older copy expires first."""
    w = make(lease=1000.0)
    w.custody_timeout = 10.0
    _hand_off_two(w, 100.0, 100.5, 101.0)
    w.tick(105.0)
    assert w.stats().in_custody == 2
    w.tick(110.5)  # a's copy is exactly 10 s old: kept
    assert (w.stats().in_custody, w.stats().custody_expired) == (2, 0)
    w.tick(110.75)  # a's expires, b's (9.75 s) is kept
    assert (w.stats().in_custody, w.stats().custody_expired) == (1, 1)
    assert w.neighbor_lost("a") == [] and w.stats().reissued == 0
    assert len(w.neighbor_lost("b")) == 1 and w.stats().reissued == 1


# -- done notices: origin memory (worker.py) --------------------------------------------------


def _received(data_id: int) -> Task:
    return Task(TaskKey("s", data_id, 2), attempt=1, hops=1)


def _exit_all(w: WorkerCore) -> None:
    while w.input:
        assert run_one(w, 0.99).kind is OutcomeKind.EXIT


def test_no_done_notice_for_a_task_without_a_sender_or_from_ourselves() -> None:
    r = make("r")
    assert r.submit(_received(1), 0.0).status is SubmitStatus.QUEUED
    assert r.submit(_received(2), 0.0, sender="r").status is SubmitStatus.QUEUED
    assert r.submit(_received(3), 0.0, sender="m").status is SubmitStatus.QUEUED
    _exit_all(r)
    assert r.take_done() == [("m", TaskKey("s", 3, 2), 1)]


def test_the_origin_memory_holds_seen_capacity_frames() -> None:
    r = make("r", seen_capacity=3)
    for d in (1, 2, 3):
        r.submit(_received(d), 0.0, sender="m")
    _exit_all(r)
    assert [key.data_id for _, key, _ in r.take_done()] == [1, 2, 3]


def test_the_origin_memory_forgets_the_oldest_frame_at_capacity() -> None:
    r = make("r", seen_capacity=2)
    for d in (1, 2, 3):
        r.submit(_received(d), 0.0, sender="m")
    _exit_all(r)
    assert [key.data_id for _, key, _ in r.take_done()] == [2, 3]


# -- health (health.py) -----------------------------------------------------------------------


def _health(queued: int = 0, since_progress: float = 1.0, failed_recently: int = 0) -> str:
    return worker_health(active=True, inference_running=True, queued=queued,
                         since_progress=since_progress, gamma=0.05,
                         failed_recently=failed_recently)


def test_one_stuck_task_or_one_failed_task_is_enough_to_be_unhealthy() -> None:
    assert _health() == ""
    assert _health(queued=1, since_progress=MIN_STALL + 1.0) == \
        "1 task(s) queued, none finished for 11 s"
    assert _health(failed_recently=1) == "1 task(s) failed for good since the last report"
