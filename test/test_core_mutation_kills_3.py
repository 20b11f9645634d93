"""Tests written to kill the mutants that survived `make mutation` after the cold start
(``frame_seconds``, slow start), the latency budget and the overload discard were merged
(docs/TESTING.md, "Surviving mutants", third round).

Each test pins a behaviour the earlier tests left open: the exact refusal messages of
``frame_seconds`` and of ``latency_budget``, a task time of 0, the delivery interval over a
period shorter than a second, ``slow_starting`` as a real bool, a slow-start step that did
not double the rate, the latency guard keeping a raised mu, a parameter change keeping the
budget, and a discarded frame's take-back memory.
"""

from __future__ import annotations

import math

import pytest
from test_core_mutation_kills import copy, send_one
from test_core_worker import make

from mdi_exit_ros.core import RateController, frame_seconds
from mdi_exit_ros.core.admission import QueueControlParams

ZETA = QueueControlParams().zeta

# -- frame_seconds ----------------------------------------------------------------------------


def test_frame_seconds_names_a_non_finite_task_time() -> None:
    with pytest.raises(ValueError, match=r"^task seconds must be finite, got nan$"):
        frame_seconds([0.1, math.nan], None)


def test_frame_seconds_names_a_negative_task_time_and_the_input() -> None:
    with pytest.raises(ValueError, match=r"^task_seconds must be >= 0, one per task; "
                                         r"got \[0\.1, -1\.0\]$"):
        frame_seconds([0.1, -1.0], None)


def test_frame_seconds_accepts_a_task_of_zero_seconds() -> None:
    """A task padded to nothing (e.g. a service time of 0) is valid and costs nothing."""
    assert frame_seconds([0.0, 0.5], None) == pytest.approx(0.5)
    assert frame_seconds([0.0, 0.5], [0.5, 0.5]) == pytest.approx(0.25)


def test_frame_seconds_names_a_non_finite_share() -> None:
    with pytest.raises(ValueError, match=r"^exit fraction must be finite, got inf$"):
        frame_seconds([0.1, 0.2], [1.0, math.inf])


def test_frame_seconds_says_how_many_shares_it_needs() -> None:
    with pytest.raises(ValueError, match=r"^exit_fraction needs 2 shares >= 0 with a positive "
                                         r"sum; got \[1\.0\]$"):
        frame_seconds([0.1, 0.2], [1.0])


# -- RateController: latency budget -------------------------------------------------------------


def test_latency_budget_refusals_name_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"^latency_budget must be finite, got nan$"):
        RateController(latency_budget=math.nan)
    with pytest.raises(ValueError, match=r"^latency_budget must be > 0, got 0\.0$"):
        RateController(latency_budget=0.0)


def test_no_step_yet_reports_not_over_budget() -> None:
    assert RateController(latency_budget=1.0).over_budget is False


def test_a_parameter_change_without_a_budget_keeps_the_budget_in_force() -> None:
    rc = RateController(latency_budget=5.0)
    rc.update_params(mu_max=rc.bounds[1] * 2)
    assert rc.latency_budget == 5.0


def test_over_budget_keeps_the_mu_that_line_7_raised() -> None:
    """Over the budget with long queues: line 7 raises mu by zeta; the guard's floor (one
    answer per 0.1 s) is lower and must not undo that raise."""
    rc = RateController(0.8, period=1.0, counts_frames=True, latency_budget=0.001)
    rc.step(0.0, 0, 0, in_flight=0)
    for _ in range(10):
        rc.on_answer()
    rc.step(1.0, 100, 100, in_flight=1)
    assert rc.over_budget is True
    assert rc.mu == pytest.approx(0.8 * (1.0 + ZETA))


# -- RateController: delivery interval and slow start --------------------------------------------


def test_delivery_interval_over_a_half_second_period() -> None:
    rc = RateController(0.5, period=0.5, counts_frames=True)
    rc.step(0.0, 0, 0)
    rc.on_answer()
    rc.step(0.5, 0, 0)
    assert rc.delivery_interval == pytest.approx(0.5)


def test_slow_start_ends_as_false_when_the_queues_reach_t_q1() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True)
    rc.step(0.0, 0, 0)
    rc.step(1.0, 100, 100)
    assert rc.slow_starting is False


def test_slow_start_ends_as_false_over_the_budget() -> None:
    rc = RateController(0.8, period=1.0, slow_start=True, counts_frames=True, latency_budget=1.0)
    rc.step(0.0, 0, 0, in_flight=0)
    rc.on_answer()
    rc.step(1.0, 0, 0, in_flight=100)  # short queues (line 3), but 100 x 1 s > 1 s
    assert rc.over_budget is True and rc.slow_starting is False


def test_slow_start_undoes_only_a_doubling_that_happened() -> None:
    """No camera frame in the first period keeps mu (the floor is mu itself): the rate did
    not double, so reaching T_Q1 must not halve it back."""
    rc = RateController(0.8, period=1.0, slow_start=True, counts_frames=True)
    assert rc.step(0.0, 0, 0).value == pytest.approx(0.8)  # line 3 wanted 0.4, the floor held
    for _ in range(10):
        rc.on_answer()  # the fleet answers every 0.1 s: faster than mu
    rc.step(1.0, 100, 100)
    assert rc.mu == pytest.approx(0.8)


# -- WorkerCore: overload discard ------------------------------------------------------------


def test_a_discarded_frame_forgets_its_take_back() -> None:
    """A task taken back from a and then discarded (its frame expired) must not be cancelled
    later by a's stale accept when the same task is handed to us again."""
    n = make(max_resends=0)
    t = send_one(n, "a")
    n.on_ack(t.key, 0, "a", False, 0.1)  # refused by a: taken back (attempt 1)
    assert n.discard_frame(t.key.source, [t.key.data_id]) == 1
    assert n.submit(copy(t), 0.4).queued
    n.on_ack(t.key, 0, "a", True, 0.5)  # a's stale accept for attempt 0
    assert n.locate(t.key) == "input"
