"""SequenceGaps: camera frames lost before they reached the source, from each publisher's
sequence numbers (core/gaps.py)."""

import pytest

from mdi_exit_ros.core import SequenceGaps
from mdi_exit_ros.core.gaps import MAX_GAP


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
    assert g.lost == 1 and g.implausible == 0


def test_a_writer_s_duplicates_and_reordered_samples_change_nothing() -> None:
    """Under a writer's GUID a lower number cannot be a restart (a restarted camera is a new
    writer): 10, 8, 11 loses nothing (8 was late, not 9 and 10 lost twice)."""
    g = SequenceGaps()
    g.observe(b"gid", 10)
    assert g.observe(b"gid", 8) == 0
    assert g.observe(b"gid", 10) == 0
    assert g.observe(b"gid", 11) == 0
    assert g.observe(b"gid", 13) == 1
    assert g.lost == 1 and g.implausible == 2


def test_hostile_numbers_cannot_overflow_the_count() -> None:
    """Any writer picks its numbers: jumps over MAX_GAP start it over, uncounted, so the
    total stays far below WorkerStats' uint64 whatever arrives."""
    g = SequenceGaps()
    for seq in (1, 2**64 - 1, 1, 2**64 - 1, MAX_GAP + 3):
        g.observe(None, seq)
    assert g.lost == 0 and g.implausible == 2  # the two jumps up; the falls are restarts
    assert g.observe(None, 2 * MAX_GAP + 4) == MAX_GAP  # the largest gap still believed
    assert g.lost == MAX_GAP


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
