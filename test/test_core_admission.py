"""Alg. 3 (mu) and Alg. 4 (T_e): branches, dead bands, clamping, period gate, validation."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdi_exit_ros.core import (
    ControlBranch,
    QueueControlParams,
    RateController,
    ThresholdController,
    classify,
)

# Paper: T_Q1 = 10, T_Q2 = 30, alpha = 0.2, beta = 0.1, zeta = 0.2.


def rate(mu: float = 1.0, **kw: float) -> RateController:
    return RateController(mu, period=1.0, **kw)


def test_classify_branches_and_dead_bands() -> None:
    assert classify(9, 10, 30) is ControlBranch.LOW
    assert classify(10, 10, 30) is ControlBranch.DEAD_BAND
    assert classify(11, 10, 30) is ControlBranch.MID
    assert classify(29, 10, 30) is ControlBranch.MID
    assert classify(30, 10, 30) is ControlBranch.DEAD_BAND
    assert classify(31, 10, 30) is ControlBranch.HIGH
    assert classify(20, 20, 20) is ControlBranch.DEAD_BAND  # T_Q1 == T_Q2 allowed


def test_paper_defaults() -> None:
    p = QueueControlParams()
    assert (p.t_q1, p.t_q2, p.alpha, p.beta, p.zeta) == (10, 30, 0.2, 0.1, 0.2)


@pytest.mark.parametrize(
    ("i_n", "o_n", "branch", "mu"),
    [
        (4, 5, ControlBranch.LOW, 0.8),  # Alg. 3 line 3: mu - 0.2 mu
        (10, 5, ControlBranch.MID, 0.9),  # line 5: mu - 0.1 mu
        (20, 11, ControlBranch.HIGH, 1.2),  # line 7: mu + 0.2 mu
        (5, 5, ControlBranch.DEAD_BAND, 1.0),  # I+O == T_Q1
        (15, 15, ControlBranch.DEAD_BAND, 1.0),  # I+O == T_Q2
    ],
)
def test_rate_branches(i_n: int, o_n: int, branch: ControlBranch, mu: float) -> None:
    rc = rate()
    step = rc.step(0.0, i_n, o_n)
    assert step.branch is branch
    assert step.value == pytest.approx(mu) and rc.mu == pytest.approx(mu)
    assert step.changed is (branch is not ControlBranch.DEAD_BAND)


def test_rate_period_gate_replaces_sleep() -> None:
    rc = rate()
    assert rc.step(0.0, 0, 0).branch is ControlBranch.LOW
    s = rc.step(0.5, 0, 0)
    assert s.branch is ControlBranch.NOT_DUE and not s.changed and s.value == pytest.approx(0.8)
    assert not rc.due(0.74) and rc.due(0.75)  # a quarter period early still counts
    assert rc.step(1.0, 0, 0).value == pytest.approx(0.64)
    # a dead-band evaluation also starts a period
    assert rc.step(2.0, 10, 0).branch is ControlBranch.DEAD_BAND
    assert rc.step(2.5, 0, 0).branch is ControlBranch.NOT_DUE


def test_rate_clamped() -> None:
    rc = RateController(0.0011, period=0.0, mu_min=0.001, mu_max=0.002)
    s = rc.step(0.0, 0, 0)
    assert s.value == 0.001 and s.changed and s.branch is ControlBranch.LOW
    s = rc.step(1.0, 0, 0)
    assert s.value == 0.001 and not s.changed
    for t in range(2, 10):
        rc.step(float(t), 100, 0)
    assert rc.mu == 0.002


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": 0.05}, "beta must be < alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"beta": 0.0}, "beta"),
        ({"zeta": 1.0}, "zeta"),
        ({"zeta": 0.0}, "zeta"),
        ({"t_q1": 40}, "t_q2"),
        ({"t_q1": -1}, "t_q1"),
        ({"period": -1}, "period"),
        ({"alpha": float("nan")}, "alpha"),
        ({"mu_min": 0.0}, "mu_min"),
        ({"mu_min": 2.0, "mu_max": 1.0}, "mu_max"),
        ({"bogus": 1.0}, "bogus"),
    ],
)
def test_rate_validation(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RateController(0.5, **kwargs)


def test_rate_initial_mu_validated() -> None:
    with pytest.raises(ValueError, match="mu"):
        RateController(100.0)


def test_rate_update_params_atomic() -> None:
    rc = rate(0.5)
    before = (rc.params, rc.bounds, rc.mu)
    for bad in ({"alpha": 0.05}, {"t_q2": 5.0}, {"mu_min": -1.0}, {"nope": 1.0}):
        with pytest.raises(ValueError):
            rc.update_params(**bad)
        assert (rc.params, rc.bounds, rc.mu) == before
    rc.update_params(alpha=0.5, beta=0.3, mu_max=0.25)
    assert rc.params.alpha == 0.5 and rc.bounds == (0.001, 0.25)
    assert rc.mu == 0.25  # clamped into the new bounds
    with pytest.raises(ValueError):
        rc.set_mu(1.0)
    rc.set_mu(0.1)
    assert rc.mu == 0.1


@pytest.mark.parametrize(
    ("total", "branch", "te"),
    [
        (5, ControlBranch.LOW, 0.84),  # Alg. 4 line 3: 0.7 + 0.2 * 0.7
        (20, ControlBranch.MID, 0.77),  # line 5: 0.7 + 0.1 * 0.7
        (31, ControlBranch.HIGH, 0.56),  # line 7: 0.7 - 0.2 * 0.7
        (10, ControlBranch.DEAD_BAND, 0.7),
        (30, ControlBranch.DEAD_BAND, 0.7),
    ],
)
def test_threshold_branches(total: int, branch: ControlBranch, te: float) -> None:
    tc = ThresholdController(0.7, te_min=0.5, period=1.0)
    s = tc.step(0.0, total, 0)
    assert s.branch is branch and s.value == pytest.approx(te) and tc.te == pytest.approx(te)


def test_threshold_clamped_to_bounds() -> None:
    tc = ThresholdController(0.95, te_min=0.5, period=0.0)
    assert tc.step(0.0, 0, 0).value == 1.0  # min(1, 0.95 * 1.2)
    assert tc.step(1.0, 20, 0).value == 1.0 and not tc.step(2.0, 20, 0).changed
    for t in range(3, 20):
        tc.step(float(t), 50, 0)
    assert tc.te == 0.5  # max(T_e^min, ...)


def test_threshold_validation_and_atomic_update() -> None:
    with pytest.raises(ValueError, match="te_min"):
        ThresholdController(0.8, te_min=0.0)
    with pytest.raises(ValueError, match="te"):
        ThresholdController(0.4, te_min=0.5)
    with pytest.raises(ValueError, match="zeta"):
        ThresholdController(0.8, zeta=1.5)
    tc = ThresholdController(0.6, te_min=0.5)
    before = (tc.params, tc.te_min, tc.te)
    for bad in ({"te_min": 1.5}, {"beta": 0.3}, {"t_q1": 50.0}):
        with pytest.raises(ValueError):
            tc.update_params(**bad)
        assert (tc.params, tc.te_min, tc.te) == before
    tc.update_params(te_min=0.7, zeta=0.5)
    assert tc.te == 0.7 and tc.te_min == 0.7 and tc.params.zeta == 0.5
    with pytest.raises(ValueError):
        tc.set_te(0.65)
    tc.set_te(0.9)
    assert tc.te == 0.9


step_st = st.tuples(st.floats(min_value=0.0, max_value=3.0), st.integers(0, 60), st.integers(0, 60))


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=0.5, max_value=1.0),
    st.floats(min_value=0.05, max_value=0.95),
    st.floats(min_value=0.01, max_value=0.99),
    st.lists(step_st, max_size=60),
)
def test_threshold_always_within_bounds(
    te: float, beta: float, zeta: float, steps: list[tuple[float, int, int]]
) -> None:
    alpha = min(0.999, beta + 0.001 + (1 - beta) / 2)
    tc = ThresholdController(te, te_min=0.5, alpha=alpha, beta=beta, zeta=zeta, period=1.0)
    now = 0.0
    for dt, i_n, o_n in steps:
        now += dt
        tc.step(now, i_n, o_n)
        assert 0.5 <= tc.te <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.001, max_value=10.0), st.lists(step_st, max_size=60))
def test_mu_always_within_bounds(mu: float, steps: list[tuple[float, int, int]]) -> None:
    rc = RateController(mu, period=0.5)
    now = 0.0
    for dt, i_n, o_n in steps:
        now += dt
        rc.step(now, i_n, o_n)
        lo, hi = rc.bounds
        assert lo <= rc.mu <= hi


@pytest.mark.parametrize("jitter", [0.0, 0.01, 0.05, 0.2])
def test_jittered_timer_calls_step_every_period(jitter: float) -> None:
    """A timer with the controller's period whose callbacks run late by a random amount.

    Two consecutive callbacks can then be closer than a period; each must still make its
    step (a gate on `now - last >= period` skipped many of them).
    """
    rng = random.Random(7)
    tc = ThresholdController(0.5, te_min=0.5, alpha=0.002, beta=0.001, period=0.1)
    calls = [k * 0.1 + rng.uniform(0.0, jitter * 0.1) for k in range(1000)]
    steps = [tc.step(t, 0, 0) for t in calls]
    assert sum(s.branch is not ControlBranch.NOT_DUE for s in steps) == len(calls)


def test_schedule_keeps_one_step_per_period_for_fast_callers_and_stalls() -> None:
    rc = RateController(1.0, period=1.0, mu_min=1e-6)
    evaluated = [t / 10 for t in range(0, 101) if rc.step(t / 10, 0, 0).branch
                 is not ControlBranch.NOT_DUE]
    assert len(evaluated) == 11  # t = 0..10 s, polled every 0.1 s: one step per period
    gaps = [b - a for a, b in zip(evaluated[1:], evaluated[2:], strict=False)]
    assert all(abs(g - 1.0) < 1e-9 for g in gaps)  # on schedule (up to 1/4 early), no drift
    # A stall of 3.6 periods gives one step, not a burst, and the schedule restarts there.
    assert rc.step(14.6, 0, 0).branch is ControlBranch.LOW
    assert rc.step(14.7, 0, 0).branch is ControlBranch.NOT_DUE
    assert rc.next_due == pytest.approx(15.6)


def _camera_run(rc: RateController, start: float, seconds: float, fps: float,
                queue: int) -> float:
    """Frames at `fps` and a control step every period with I_n + O_n = `queue`."""
    t, frame_gap, step_gap = start, 1.0 / fps, rc.params.period
    next_frame, next_step = start, start
    while t < start + seconds:
        if next_frame <= next_step:
            t = next_frame
            rc.on_frame()
            next_frame += frame_gap
        else:
            t = next_step
            rc.step(t, queue, 0)
            next_step += step_gap
    return t


def test_mu_does_not_wind_below_the_camera_interval() -> None:
    """A 20 fps camera and idle queues: mu stops at 50 ms / (1 + zeta), not at mu_min.

    When load arrives one line-7 step brings mu back to the camera interval (from the 1 ms
    floor it took ~21 steps).
    """
    rc = RateController(1.0, mu_min=0.001, period=1.0)
    t = _camera_run(rc, 0.0, 60.0, 20.0, queue=0)
    assert rc.camera_interval == pytest.approx(0.05, rel=0.06)
    assert rc.mu >= 0.05 / 1.2 * 0.94
    t = _camera_run(rc, t, 1.5, 20.0, queue=100)  # overloaded: line 7
    assert rc.mu >= 0.05 * 0.94


def test_camera_bound_holds_mu_without_frames_and_never_raises_it() -> None:
    rc = RateController(0.5, mu_min=0.001, period=1.0)
    rc.on_frame()
    rc.step(0.0, 0, 0)  # first step: no interval measured yet, the paper's rule
    assert rc.mu == pytest.approx(0.4)
    assert rc.step(1.0, 0, 0).value == pytest.approx(0.4)  # no frame in the period: held
    for _ in range(2):  # 2 frames in 1 s: bound 0.5 / 1.2 > mu, mu is not raised by it
        rc.on_frame()
    assert rc.step(2.0, 0, 0).value == pytest.approx(0.4)
    assert rc.floor == pytest.approx(0.5 / 1.2)
    assert rc.step(3.0, 100, 0).value == pytest.approx(0.48)  # line 7 unaffected


def test_mu_is_held_until_the_first_frame_when_frames_are_expected() -> None:
    """A source reports every frame: a camera that starts 20 s late finds mu where it was
    configured, not at mu_min (which admitted a burst the fleet could not answer)."""
    rc = RateController(0.5, mu_min=0.001, period=1.0, counts_frames=True)
    for t in range(20):
        assert rc.step(float(t), 0, 0).value == 0.5
    for _ in range(10):  # a 10 fps camera: Alg. 3 line 3 again
        rc.on_frame()
    assert rc.step(20.0, 0, 0).value == pytest.approx(0.4)
    for _ in range(10):
        rc.on_frame()
    assert rc.step(21.0, 0, 0).value == pytest.approx(0.32)


def test_paper_rule_without_camera_reports() -> None:
    rc = RateController(1.0, mu_min=0.001, period=1.0)
    for t in range(40):
        rc.step(float(t), 0, 0)
    assert rc.mu == 0.001 and rc.camera_interval is None


def test_a_new_period_reschedules_from_the_last_step() -> None:
    tc = ThresholdController(0.6, te_min=0.5, period=1.0)
    tc.step(0.0, 0, 0)
    tc.update_params(period=0.1)
    assert tc.next_due == pytest.approx(0.1)
    assert tc.step(0.1, 0, 0).branch is ControlBranch.LOW
    tc.update_params(period=5.0)
    assert not tc.due(1.0) and tc.due(5.1 - 1.25)
