"""The overload guard (issue #9, item 5): a source queues a frame only while its queues have
room, an overdue frame is re-admitted only with room and readmissions left, and an expired
frame's queued copies are not run for nothing."""

from __future__ import annotations

import pytest
from test_core_worker import make, run_one, task

from mdi_exit_ros.core import (
    DEFAULT_MAX_QUEUE,
    OVERDUE_PERIOD,
    QUEUE_DELAY_SHARE,
    OverdueAction,
    SubmitStatus,
    Task,
    TaskKey,
    has_room,
    overdue_action,
)


def test_room_is_below_the_cap_on_input_plus_output() -> None:
    assert has_room(0, 0, 1, 0.1, 10.0)
    assert has_room(59, 40, 100, 0.0, 10.0)
    assert not has_room(60, 40, 100, 0.0, 10.0)  # I + O == max_queue: full
    assert not has_room(100, 0, 100, 0.0, 10.0) and not has_room(0, 100, 100, 0.0, 10.0)
    assert not has_room(150, 7, 100, 0.0, 10.0)
    with pytest.raises(ValueError, match="max_queue must be >= 1, got 0"):
        has_room(0, 0, 0, 0.1, 10.0)


def test_sources_look_for_overdue_frames_every_second() -> None:
    """The period of the overdue check of the source node and of the simulator (one home):
    an overdue frame waits at most this long past its deadline, 10 % of the default 10 s."""
    assert OVERDUE_PERIOD == 1.0


def test_room_needs_the_queued_work_to_fit_in_half_the_deadline() -> None:
    assert QUEUE_DELAY_SHARE == 0.5
    # 40 tasks of 0.1 s ahead: 4 s < 5 s, room; 50 of them: 5 s, none
    assert has_room(30, 10, 100, 0.1, 10.0)
    assert has_room(49, 0, 100, 0.1, 10.0)
    assert not has_room(50, 0, 100, 0.1, 10.0)
    assert not has_room(25, 25, 100, 0.1, 10.0)  # O_n counts too
    assert has_room(50, 0, 100, 0.1, 20.0)  # a longer deadline leaves room
    assert has_room(0, 0, 100, 1000.0, 0.1)  # an empty queue always has room
    assert not has_room(1, 0, 100, 0.06, 0.1)
    for bad in (float("nan"), float("inf"), -0.1):
        with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
            has_room(0, 0, 10, bad, 10.0)
    with pytest.raises(ValueError, match="deadline must be > 0, got 0.0"):
        has_room(0, 0, 10, 0.1, 0.0)


def test_the_default_cap_lies_above_the_papers_t_q2() -> None:
    # Alg. 3/4 steer I + O towards T_Q2 = 30; the guard must not cut in while they keep up.
    assert DEFAULT_MAX_QUEUE > 30


def test_an_overdue_frame_is_readmitted_only_with_readmissions_left_and_room() -> None:
    assert overdue_action(0, 1, True) is OverdueAction.READMIT
    assert overdue_action(1, 1, True) is OverdueAction.EXPIRE  # used up
    assert overdue_action(3, 1, True) is OverdueAction.EXPIRE
    assert overdue_action(0, 0, True) is OverdueAction.EXPIRE  # none allowed
    assert overdue_action(0, 1, False) is OverdueAction.EXPIRE  # full: no new copy
    assert overdue_action(1, 2, True) is OverdueAction.READMIT
    assert overdue_action(1, 2, False) is OverdueAction.EXPIRE


def test_discard_frame_removes_only_the_queued_copies_of_that_frame() -> None:
    w = make()
    for d in (1, 2, 3, 101):
        w.submit(task(d), 0.0)
    running = w.next_task()  # frame 1 runs: a running task finishes
    assert running is not None and running.data_id == 1
    w.output.append(Task(TaskKey("n", 101, 2), size_bytes=10))  # a successor of copy 101
    w.submit(task(2, source="other"), 0.0)  # same data id, another source's frame
    assert w.discard_frame("n", [1, 101]) == 2
    assert [t.key for t in w.input] == [TaskKey("n", 2, 1), TaskKey("n", 3, 1),
                                        TaskKey("other", 2, 1)]
    assert not w.output and w.running == {running.key: running}
    assert w.stats().discarded == 2
    assert w.discard_frame("n", [1, 101]) == 0  # nothing left of it
    assert w.stats().discarded == 2
    # the discarded keys are forgotten: the same task may legitimately arrive again
    assert w.submit(task(101), 1.0).status is SubmitStatus.QUEUED


def test_a_discarded_received_task_tells_its_sender_it_is_done() -> None:
    r = make("r")
    r.submit(Task(TaskKey("s", 7, 2), attempt=2, hops=1), 0.0, sender="m")
    r.submit(Task(TaskKey("s", 8, 2), hops=1), 0.0, sender="m")
    assert r.discard_frame("s", [7]) == 1
    assert r.take_done() == [("m", TaskKey("s", 7, 2), 2)]  # m may forget its copy
    out = run_one(r, 0.99)  # the other frame still runs
    assert out.task.key == TaskKey("s", 8, 2)
