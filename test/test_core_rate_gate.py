"""A source's admission around Alg. 3's interval mu (core/rate_gate.py): the gate that lets one
frame in per mu seconds, and the mu a configuration starts from."""

from __future__ import annotations

import pytest

from mdi_exit_ros.core import RateGate, start_interval


def test_the_gate_admits_one_frame_per_interval_on_a_schedule() -> None:
    gate = RateGate(10.0)
    assert not gate.admit(9.99, 0.1)  # before the gate opens
    assert gate.admit(10.0, 0.1)
    assert gate.next_admit == pytest.approx(10.1)
    assert not gate.admit(10.05, 0.1)  # within mu: refused, the schedule unchanged
    assert gate.next_admit == pytest.approx(10.1)
    # a frame a little late takes its slot; the next slot is mu after the slot, not after
    # the frame (jitter does not halve a camera's rate)
    assert gate.admit(10.12, 0.1)
    assert gate.next_admit == pytest.approx(10.2)
    assert gate.admit(10.2, 0.1)


def test_after_a_pause_the_schedule_restarts_from_now() -> None:
    gate = RateGate(0.0)
    assert gate.admit(0.0, 0.1)
    assert gate.admit(5.0, 0.1)  # long after its slot: no burst of catch-up frames
    assert gate.next_admit == pytest.approx(5.0)
    assert gate.admit(5.0, 0.1)  # its own slot (next_admit was 5.0)
    assert gate.next_admit == pytest.approx(5.1)
    assert not gate.admit(5.05, 0.1)


def test_restart_opens_the_gate_at_once() -> None:
    gate = RateGate(0.0)
    assert gate.admit(0.0, 100.0)
    assert not gate.admit(50.0, 100.0)
    gate.restart(50.0)
    assert gate.admit(50.0, 100.0)
    assert gate.next_admit == pytest.approx(150.0)


def test_a_new_gate_admits_the_first_frame_whenever_it_comes() -> None:
    assert RateGate().admit(-1e9, 1.0)


@pytest.mark.parametrize("initial, frame, slow_start, expected", [
    (0.05, 0.01, True, 0.05),  # the robot is faster than the initial interval
    (0.05, 0.2, True, 0.2),  # slow start: never faster than this robot alone
    (0.05, 0.2, False, 0.05),  # the paper's rule from initial_interval
    (0.0005, 0.0, True, 0.001),  # clamped to mu_min
    (0.05, 100.0, True, 10.0),  # clamped to mu_max
    (20.0, 0.0, False, 10.0),
])
def test_the_start_interval(initial: float, frame: float, slow_start: bool,
                            expected: float) -> None:
    assert start_interval(initial, frame, slow_start, 0.001, 10.0) == \
        pytest.approx(expected)
