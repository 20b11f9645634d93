"""Eq. (1)-(2) and the entropy alternative."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdi_exit_ros.core import (
    CONFIDENCE_FNS,
    entropy_confidence,
    get_confidence_fn,
    max_softmax,
    softmax,
)
from mdi_exit_ros.core.clock import Clock, ManualClock, MonotonicClock

logits_st = st.lists(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=1, max_size=12
)


def test_softmax_matches_definition() -> None:
    x = [1.0, 2.0, 3.0]
    z = sum(math.exp(v) for v in x)
    assert softmax(x) == pytest.approx([math.exp(v) / z for v in x])


def test_max_softmax_is_max_of_softmax() -> None:
    x = [0.5, -1.0, 2.0, 2.0]
    assert max_softmax(x) == pytest.approx(max(softmax(x)))


def test_stable_for_huge_logits() -> None:
    assert max_softmax([1000.0, 0.0]) == pytest.approx(1.0)
    assert max_softmax([-1000.0, -1000.0]) == pytest.approx(0.5)
    assert softmax([1e4, 1e4 - math.log(3)]) == pytest.approx([0.75, 0.25])


def test_uniform_logits() -> None:
    assert max_softmax([0.0] * 10) == pytest.approx(0.1)
    assert entropy_confidence([0.0] * 10) == pytest.approx(0.0, abs=1e-12)


def test_entropy_confidence_extremes() -> None:
    assert entropy_confidence([100.0, 0.0, 0.0]) == pytest.approx(1.0, abs=1e-9)
    assert entropy_confidence([3.0]) == 1.0
    assert entropy_confidence([2.0, 1.0]) < entropy_confidence([5.0, 1.0])


@pytest.mark.parametrize("bad", [[], [float("nan")], [float("inf"), 0.0]])
def test_rejects_bad_logits(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        max_softmax(bad)


def test_registry() -> None:
    assert set(CONFIDENCE_FNS) == {"max_softmax", "entropy"}
    assert get_confidence_fn("max_softmax") is max_softmax
    assert get_confidence_fn("entropy") is entropy_confidence
    with pytest.raises(ValueError, match="max_softmax"):
        get_confidence_fn("maxsoftmax")


@settings(max_examples=150, deadline=None)
@given(logits_st)
def test_confidences_in_unit_interval(x: list[float]) -> None:
    p = softmax(x)
    assert math.fsum(p) == pytest.approx(1.0)
    c = max_softmax(x)
    assert 1.0 / len(x) - 1e-12 <= c <= 1.0
    assert 0.0 <= entropy_confidence(x) <= 1.0


def test_clocks() -> None:
    clock = ManualClock(5.0)
    assert isinstance(clock, Clock) and isinstance(MonotonicClock(), Clock)
    assert clock.advance(1.5) == 6.5 and clock.now() == 6.5
    clock.set(7.0)
    assert clock.now() == 7.0
    with pytest.raises(ValueError):
        clock.advance(-1.0)
    with pytest.raises(ValueError):
        clock.set(1.0)
    mono = MonotonicClock()
    a = mono.now()
    assert mono.now() >= a
