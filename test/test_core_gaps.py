"""SequenceGaps: camera frames lost before they reached the source, from each publisher's
sequence numbers (core/gaps.py)."""

import pytest

from mdi_exit_ros.core import SequenceGaps


def test_gaps_between_delivered_frames_are_counted_per_publisher() -> None:
    g = SequenceGaps()
    assert g.observe("cam", 1) == 0  # the first frame sets the baseline
    assert g.observe("cam", 2) == 0
    assert g.observe("cam", 7) == 4  # 3, 4, 5, 6 never arrived
    assert g.observe("other", 40) == 0  # another publisher: its own numbering
    assert g.observe("other", 42) == 1
    assert g.observe("cam", 8) == 0
    assert g.lost == 5 and len(g) == 2


def test_a_publisher_that_starts_over_is_not_counted_as_a_loss() -> None:
    g = SequenceGaps()
    g.observe(None, 10)
    assert g.observe(None, 1) == 0  # restarted under the same key (e.g. no gid on Jazzy)
    assert g.observe(None, 1) == 0  # a repeat of the last number: nothing skipped either
    assert g.observe(None, 3) == 1
    assert g.lost == 1


def test_forget_and_capacity_bound_the_memory() -> None:
    g = SequenceGaps(capacity=2)
    g.observe("a", 1)
    g.observe("b", 1)
    g.observe("a", 2)  # a is the most recent now
    g.observe("c", 1)  # b, the longest silent, goes
    assert len(g) == 2
    assert g.observe("b", 5) == 0  # starts over: its gap is not known
    g.forget("c")
    assert g.observe("c", 9) == 0 and g.lost == 0
    with pytest.raises(ValueError):
        SequenceGaps(capacity=0)
