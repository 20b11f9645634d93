"""FrameLedger.should_expire: after `max_readmissions` re-admissions an overdue frame is
answered as expired instead of being queued once more (overload must not feed on itself)."""

from __future__ import annotations

from mdi_exit_ros.core import FrameLedger


def test_a_frame_expires_after_its_readmissions() -> None:
    frames = FrameLedger()
    frames.admit(1, 0.0, deadline=1.0)
    assert frames.overdue(1.5) == [1]
    assert frames.should_expire(1, 0)  # no re-admission allowed
    assert not frames.should_expire(1, 1)
    frames.readmit(1, 100, 1.5, deadline=2.5)
    assert frames.should_expire(1, 1) and frames.should_expire(100, 1)  # by id or alias
    assert not frames.should_expire(1, 2)


def test_only_pending_frames_expire() -> None:
    frames = FrameLedger()
    assert not frames.should_expire(7, 0)  # never admitted
    frames.admit(7, 0.0, deadline=1.0)
    frames.result(7, 0.5, "answered")
    assert not frames.should_expire(7, 0)  # answered already


def test_is_pending_by_id_or_alias_until_answered() -> None:
    frames = FrameLedger()
    assert not frames.is_pending(1)
    frames.admit(1, 0.0, deadline=1.0)
    frames.readmit(1, 100, 1.5, deadline=2.5)
    assert frames.is_pending(1) and frames.is_pending(100)
    frames.result(100, 2.0, 3)  # the copy answers the frame
    assert not frames.is_pending(1) and not frames.is_pending(100)
    frames.admit(2, 0.0)
    frames.abandon(2)
    assert not frames.is_pending(2)
