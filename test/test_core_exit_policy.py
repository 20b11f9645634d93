"""Alg. 1 decisions: exit (line 5), last exit, placement (lines 8-11), thresholds."""

import pytest

from mdi_exit_ros.core import ExitThresholds, Placement, place_next, should_exit

T_O = 50  # paper


def test_exit_iff_confidence_strictly_above_threshold() -> None:
    assert should_exit(0.91, 0.9, is_last=False)
    assert not should_exit(0.9, 0.9, is_last=False)  # strict '>' as in Alg. 1 line 5
    assert not should_exit(0.5, 0.9, is_last=False)


def test_last_exit_always_exits() -> None:
    assert should_exit(0.0, 1.0, is_last=True)
    assert should_exit(0.1, 0.9, is_last=True)


def test_threshold_one_never_exits_early() -> None:
    assert not should_exit(1.0, 1.0, is_last=False)


def test_place_input_when_input_queue_empty() -> None:
    assert place_next(True, 0, T_O) is Placement.INPUT
    assert place_next(True, 10, T_O) is Placement.INPUT


def test_place_input_when_output_queue_over_t_o() -> None:
    assert place_next(False, T_O + 1, T_O) is Placement.INPUT


def test_place_output_otherwise() -> None:
    assert place_next(False, 0, T_O) is Placement.OUTPUT
    assert place_next(False, T_O, T_O) is Placement.OUTPUT  # O_n == T_O is not > T_O


def test_thresholds_value_object() -> None:
    th = ExitThresholds.of([0.6, 0.7, 0.8])
    assert th.num_exits == 3
    assert th.for_exit(1) == 0.6 and th.for_exit(3) == 0.8
    assert th.with_all(0.75).values == (0.75, 0.75, 0.75)  # Alg. 4 line 9
    assert th.with_exit(2, 0.9).values == (0.6, 0.9, 0.8)
    assert th.values == (0.6, 0.7, 0.8)  # unchanged: immutable
    assert ExitThresholds.uniform(5, 0.8).values == (0.8,) * 5
    with pytest.raises(IndexError):
        th.for_exit(0)
    with pytest.raises(IndexError):
        th.for_exit(4)


@pytest.mark.parametrize("values", [(), (1.1,), (-0.1,), (float("nan"),), (0.5, 2.0)])
def test_thresholds_validated(values: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        ExitThresholds(values)


def test_thresholds_setters_validate() -> None:
    th = ExitThresholds.uniform(2, 0.8)
    with pytest.raises(ValueError):
        th.with_all(1.5)
    with pytest.raises(ValueError):
        ExitThresholds.uniform(0, 0.5)
    with pytest.raises(ValueError, match="T_e\\^2"):
        th.with_exit(2, -1.0)


# -- which thresholds are in force (the threshold_source parameter) -----------------------------


def test_select_thresholds_by_source() -> None:
    from mdi_exit_ros.core import CHECKPOINT, THRESHOLD_SOURCES, select_thresholds

    assert THRESHOLD_SOURCES == (CHECKPOINT, "exit_threshold", "exit_thresholds")
    checkpoint = (0.8, 0.7, 0.0)
    assert select_thresholds("checkpoint", 3, checkpoint, 0.5, (0.1, 0.2, 0.3)).values == \
        checkpoint
    assert select_thresholds("exit_threshold", 3, checkpoint, 0.5, (0.1, 0.2, 0.3)).values == \
        (0.5, 0.5, 0.5)
    assert select_thresholds("exit_thresholds", 3, checkpoint, 0.5, (0.1, 0.2, 0.3)).values \
        == (0.1, 0.2, 0.3)
    assert select_thresholds("exit_threshold", 2, checkpoint, 0.0).values == (0.0, 0.0)


@pytest.mark.parametrize("source, match", [
    ("exit_threshold", "needs exit_threshold set"),
    ("exit_thresholds", "needs exit_thresholds set"),
    ("calibrated", "threshold_source must be one of checkpoint, exit_threshold"),
])
def test_select_thresholds_refuses_what_is_not_there(source: str, match: str) -> None:
    from mdi_exit_ros.core import select_thresholds

    with pytest.raises(ValueError, match=match):
        select_thresholds(source, 3, (0.8, 0.7, 0.0))


def test_selected_thresholds_are_range_checked() -> None:
    from mdi_exit_ros.core import select_thresholds

    with pytest.raises(ValueError, match="must be in"):
        select_thresholds("exit_threshold", 3, (0.8, 0.7, 0.0), exit_threshold=1.5)
