"""Cold start of admission (issue #8 item 8): mu from the measured compute, then slow start."""

import math

import pytest

from mdi_exit_ros.core import ControlBranch, RateController, frame_seconds
from mdi_exit_ros.core.admission import DELIVERY_PERIODS


def test_frame_seconds_weights_each_task_by_the_frames_that_reach_it() -> None:
    # 80 % exit at 1, 10 % at 2, 10 % at 3: task 1 always, task 2 for 20 %, task 3 for 10 %
    assert frame_seconds([0.1, 0.2, 0.4], [0.8, 0.1, 0.1]) == pytest.approx(
        0.1 + 0.2 * 0.2 + 0.4 * 0.1)


def test_frame_seconds_normalises_the_shares() -> None:
    assert frame_seconds([1.0, 1.0], [2.0, 2.0]) == pytest.approx(1.5)


def test_frame_seconds_without_a_distribution_runs_every_task() -> None:
    assert frame_seconds([0.1, 0.2, 0.4], None) == pytest.approx(0.7)


def test_frame_seconds_all_at_the_first_exit_is_task_one() -> None:
    assert frame_seconds([0.1, 0.2, 0.4], [1.0, 0.0, 0.0]) == pytest.approx(0.1)


@pytest.mark.parametrize("times, shares", [
    ([], None), ([0.1, -0.1], None), ([0.1, math.nan], None),
    ([0.1, 0.2], [1.0]), ([0.1, 0.2], [0.0, 0.0]), ([0.1, 0.2], [1.0, -0.5]),
])
def test_frame_seconds_refuses_bad_input(times, shares) -> None:
    with pytest.raises(ValueError):
        frame_seconds(times, shares)


def test_slow_start_halves_mu_while_the_queues_stay_short() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True)
    assert rc.slow_starting
    mus = [rc.step(float(t), 0, 0).value for t in range(4)]
    assert mus == pytest.approx([0.4, 0.2, 0.1, 0.05])
    assert rc.slow_starting


def test_slow_start_ends_for_good_at_t_q1() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True)
    rc.step(0.0, 0, 0)  # 0.4
    step = rc.step(1.0, 5, 5)  # I + O == T_Q1 = 10: dead band, slow start is over
    assert step.branch is ControlBranch.DEAD_BAND and step.value == pytest.approx(0.4)
    assert not rc.slow_starting
    assert rc.step(2.0, 0, 0).value == pytest.approx(0.4 * 0.8)  # Alg. 3 line 3 again


def test_slow_start_started_too_fast_keeps_mu_without_a_delivery_measure() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True)
    assert rc.step(0.0, 40, 0).value == pytest.approx(0.8)
    assert not rc.slow_starting
    assert rc.step(1.0, 40, 0).value == pytest.approx(0.8 * 1.2)  # Alg. 3 line 7
    assert rc.step(2.0, 0, 0).value == pytest.approx(0.96 * 0.8)  # line 3


def test_slow_start_started_too_fast_falls_back_to_the_delivery_rate() -> None:
    """Started at 20 ms while the fleet answers 4 frames/s: the step that finds the queues
    full sets mu to 0.25 s at once, not after ten 20 % back-offs."""
    rc = RateController(0.02, period=1.0, slow_start=True, counts_frames=True)
    rc.step(0.0, 0, 0)
    for _ in range(50):
        rc.on_frame()
    for _ in range(4):
        rc.on_answer()
    step = rc.step(1.0, 40, 0)
    assert step.value == pytest.approx(0.25) and rc.delivery_interval == pytest.approx(0.25)
    assert not rc.slow_starting


def test_no_answer_in_a_period_counts_as_one() -> None:
    rc = RateController(0.02, period=1.0, slow_start=True, counts_frames=True)
    rc.step(0.0, 0, 0)
    rc.on_frame()
    assert rc.step(1.0, 40, 0).value == pytest.approx(1.0)


def test_the_delivery_interval_is_measured_over_several_periods_from_the_first_answer(
) -> None:
    """1, 0, 2, 3 answers in four 1 s periods: 4 s / 6 answers, not the last period's 1/3 s;
    the periods before the first answer do not count, and the oldest periods leave the
    window after DELIVERY_PERIODS."""
    rc = RateController(0.5, period=1.0, counts_frames=True)
    rc.step(0.0, 0, 0)
    rc.step(1.0, 0, 0)  # no answer yet: counted as one, outside the window
    assert rc.delivery_interval == pytest.approx(1.0)
    t = 1.0
    for answers in (1, 0, 2, 3):
        t += 1.0
        for _ in range(answers):
            rc.on_answer()
        rc.step(t, 0, 0)
    assert rc.delivery_interval == pytest.approx(4.0 / 6)
    for _ in range(DELIVERY_PERIODS - 1):
        t += 1.0
        for _ in range(8):
            rc.on_answer()
        rc.step(t, 0, 0)
    # the window now holds the 3 answers of t = 5 s and DELIVERY_PERIODS - 1 periods of 8
    answers = 3 + 8 * (DELIVERY_PERIODS - 1)
    assert rc.delivery_interval == pytest.approx(DELIVERY_PERIODS / answers)
    t += 1.0
    rc.step(t, 0, 0)  # a period without an answer no longer reads as 1 s per frame
    assert rc.delivery_interval == pytest.approx(DELIVERY_PERIODS / (8 * (DELIVERY_PERIODS - 1)))


def test_the_delivery_rate_does_not_slow_a_start_that_was_right() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True, counts_frames=True)
    rc.step(0.0, 0, 0)
    for t in (1.0, 2.0):
        for _ in range(50):
            rc.on_frame()
        for _ in range(10):
            rc.on_answer()
        rc.step(t, 0, 0)  # 0.4, 0.2
    for _ in range(50):
        rc.on_frame()
    for _ in range(10):
        rc.on_answer()  # 0.1 s per answer: shorter than the rate before the last doubling
    assert rc.step(3.0, 15, 0).value == pytest.approx(0.4)


def test_leaving_slow_start_undoes_the_last_doubling() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True)
    rc.step(0.0, 0, 0)  # 0.4
    rc.step(1.0, 0, 0)  # 0.2
    assert rc.step(2.0, 15, 0).value == pytest.approx(0.4)  # MID: back to the last good mu
    assert not rc.slow_starting
    assert rc.step(3.0, 15, 0).value == pytest.approx(0.4 * 0.9)  # Alg. 3 line 5


def test_slow_start_waits_for_a_due_step() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True)
    rc.step(0.0, 0, 0)
    assert rc.step(0.1, 20, 20).branch is ControlBranch.NOT_DUE
    assert rc.slow_starting  # a call between steps decides nothing


def test_slow_start_keeps_the_bounds_and_the_camera_floor() -> None:
    rc = RateController(0.004, period=1.0, mu_min=0.003, slow_start=True)
    assert rc.step(0.0, 0, 0).value == pytest.approx(0.003)
    cam = RateController(1.0, period=1.0, slow_start=True)
    cam.step(0.0, 0, 0)  # 0.5: no frames reported before the first step
    for _ in range(10):  # a 10 fps camera: the floor is 0.1 / 1.2
        cam.on_frame()
    assert cam.step(1.0, 0, 0).value == pytest.approx(0.25)
    for _ in range(10):
        cam.on_frame()
    assert cam.step(2.0, 0, 0).value == pytest.approx(0.125)
    for _ in range(10):
        cam.on_frame()
    assert cam.step(3.0, 0, 0).value == pytest.approx(0.1 / 1.2)


def test_without_slow_start_the_papers_rule_applies() -> None:
    rc = RateController(0.8, period=1.0)
    assert not rc.slow_starting
    assert rc.step(0.0, 0, 0).value == pytest.approx(0.64)


def test_slow_start_from_one_robots_rate_bounds_the_overshoot() -> None:
    """A simulated fleet 4x faster than the source alone: from mu = frame_seconds the rate
    reaches the fleet's in two doublings, and the queue never holds more than one period
    of doubled rate beyond what the fleet drains."""
    per_frame = frame_seconds([0.05, 0.05], [0.8, 0.2])  # 0.06 s on one robot
    capacity = 4.0 / per_frame  # frames/s the fleet drains
    rc = RateController(per_frame, period=1.0, slow_start=True)
    queue, peak = 0.0, 0.0
    for t in range(30):
        queue = max(0.0, queue + (1.0 / rc.mu - capacity) * 1.0)
        peak = max(peak, queue)
        rc.step(float(t), int(queue), 0)
    assert not rc.slow_starting
    assert peak <= capacity * 1.0 + 30  # one period at 2x capacity, plus T_Q2 of slack


def test_a_camera_that_has_not_started_lowers_nothing() -> None:
    """The source counts camera frames: periods before the first frame keep mu (the slow
    start would otherwise halve it down to mu_min while the camera starts up)."""
    rc = RateController(0.05, period=1.0, slow_start=True, counts_frames=True)
    for t in range(5):
        assert rc.step(float(t), 0, 0).value == pytest.approx(0.05)
    assert rc.slow_starting
    for _ in range(100):  # a 100 fps camera starts: the rate doubles once per period
        rc.on_frame()
    assert rc.step(5.0, 0, 0).value == pytest.approx(0.025)
    for _ in range(100):
        rc.on_frame()
    assert rc.step(6.0, 0, 0).value == pytest.approx(0.0125)
    for _ in range(100):
        rc.on_frame()
    assert rc.step(7.0, 0, 0).value == pytest.approx(0.01 / 1.2)  # the camera bound


def test_paper_rule_with_counted_frames_also_waits_for_the_camera() -> None:
    rc = RateController(0.05, period=1.0, counts_frames=True)
    assert rc.step(0.0, 0, 0).value == pytest.approx(0.05)  # no frame yet
    for _ in range(100):
        rc.on_frame()
    assert rc.step(1.0, 0, 0).value == pytest.approx(0.04)  # Alg. 3 line 3


def _period(rc: RateController, t: float, frames: int, answers: int, queue: int,
            in_flight: int):  # noqa: ANN202
    for _ in range(frames):
        rc.on_frame()
    for _ in range(answers):
        rc.on_answer()
    return rc.step(t, queue, 0, in_flight=in_flight)


def test_the_backlog_guard_backs_off_when_the_wait_exceeds_the_budget() -> None:
    """The source's own queues look short (the backlog sits at the neighbours), but 100
    frames in flight at 0.1 s per answer mean a 10 s wait: over a 2 s budget mu goes to
    the delivery interval x (1 + zeta) at once, whatever Alg. 3's branch said."""
    rc = RateController(0.02, period=1.0, counts_frames=True, latency_budget=2.0)
    rc.step(0.0, 0, 0, in_flight=0)
    step = _period(rc, 1.0, frames=50, answers=10, queue=2, in_flight=100)
    assert rc.over_budget and step.changed
    assert step.value == pytest.approx(0.1 * 1.2)
    assert step.branch is ControlBranch.LOW  # the queues alone would have sped up


def test_within_the_budget_alg3_is_unchanged() -> None:
    rc = RateController(0.02, period=1.0, counts_frames=True, latency_budget=2.0)
    rc.step(0.0, 0, 0, in_flight=0)
    step = _period(rc, 1.0, frames=100, answers=10, queue=2, in_flight=20)  # 2.0 s: not over
    assert not rc.over_budget
    assert step.value == pytest.approx(0.016)  # Alg. 3 line 3 (camera floor 8.3 ms)


def test_the_guard_never_shortens_mu_and_ends_slow_start() -> None:
    rc = RateController(0.5, period=1.0, slow_start=True, counts_frames=True,
                        latency_budget=1.0)
    rc.step(0.0, 0, 0, in_flight=0)
    step = _period(rc, 1.0, frames=50, answers=20, queue=0, in_flight=30)  # 30 x 0.05 s
    assert rc.over_budget and not rc.slow_starting
    assert step.value == pytest.approx(0.5)  # 0.05 x 1.2 is shorter than mu: kept


def test_no_guard_without_a_budget_or_in_flight() -> None:
    rc = RateController(0.02, period=1.0, counts_frames=True)
    rc.step(0.0, 0, 0)
    floor = (1 / 50) / 1.2  # the camera bound of 50 frames in the period
    assert _period(rc, 1.0, 50, 1, 2, in_flight=1000).value == pytest.approx(floor)
    assert not rc.over_budget
    rc2 = RateController(0.02, period=1.0, counts_frames=True, latency_budget=1.0)
    rc2.step(0.0, 0, 0)
    for _ in range(50):
        rc2.on_frame()
    assert rc2.step(1.0, 2, 0).value == pytest.approx(floor)  # in_flight not given


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_the_budget_must_be_positive_and_finite(bad) -> None:
    with pytest.raises(ValueError):
        RateController(0.1, latency_budget=bad)
    rc = RateController(0.1, latency_budget=1.0)
    with pytest.raises(ValueError):
        rc.update_params(latency_budget=bad, alpha=0.3)
    assert rc.latency_budget == 1.0 and rc.params.alpha == 0.2  # nothing changed
    rc.update_params(latency_budget=3.0)
    assert rc.latency_budget == 3.0


def test_the_latency_budget_waits_for_the_first_answer() -> None:
    """Frames still on their way to their first answer say nothing about the fleet's rate:
    the budget must not end slow start then (3 in flight x 1 s per 'answer' > 2 s)."""
    rc = RateController(0.5, period=1.0, slow_start=True, counts_frames=True,
                        latency_budget=2.0)
    rc.step(0.0, 0, 0)
    for _ in range(3):
        rc.on_frame()
    # doubled (0.25), held at the camera bound (3 frames in 1 s: 1/3 / 1.2)
    assert rc.step(1.0, 0, 0, in_flight=3).value == pytest.approx(1 / 3 / 1.2)
    assert not rc.over_budget and rc.slow_starting
    for _ in range(3):
        rc.on_frame()
    rc.on_answer()  # now measured: 1 s per answer, 3 in flight: over the budget
    assert rc.step(2.0, 0, 0, in_flight=3).value >= 1.0
    assert rc.over_budget and not rc.slow_starting
