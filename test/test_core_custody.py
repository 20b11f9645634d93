"""Custody of handed-off tasks (issue #9, departures): a sender keeps what a neighbour
accepted until that neighbour is done with the frame, and runs it again if the neighbour dies
first, so no admitted frame waits for its deadline because a robot left."""

from __future__ import annotations

from test_core_worker import K, make, neighbor, run_one, task

from mdi_exit_ros.core import OutcomeKind, SubmitStatus, Task, TaskKey, WorkerCore


def handed_off(w: WorkerCore, to: str = "a", now: float = 0.0) -> Task:
    """A task of frame 1 (its successor, sent from O_n) handed to `to`, which accepted it."""
    w.submit(task(1), now)
    w.submit(task(2), now)
    out = run_one(w, 0.1, now)  # frame 1 continues; its task 2 waits in O_n
    w.on_neighbor_state(neighbor(to), now)
    ((receiver, t),) = w.offload_pass(now)
    assert receiver == to and t is out.next_task
    w.on_ack(t.key, t.attempt, to, True, now + 0.01)
    return t


def test_a_receiver_that_dies_before_it_is_done_gets_its_task_reissued() -> None:
    w = make()  # lease 2 s
    t = handed_off(w)
    assert w.stats().in_custody == 1
    w.tick(5.0)  # a's lease ran out
    assert w.input[0] is t and t.attempt == 1 and t.hops == 0  # back at the head of I_n
    s = w.stats()
    assert (s.in_custody, s.reissued, s.neighbors_lost) == (0, 1, 1)


def test_done_releases_the_copy_and_a_later_death_reissues_nothing() -> None:
    w = make()
    t = handed_off(w)
    assert not w.on_done(t.key, "b")  # only the receiver can release it
    assert not w.on_done(TaskKey("n", 99, 2), "a")  # nothing held under that key
    assert w.on_done(t.key, "a")
    assert not w.on_done(t.key, "a")  # once
    w.tick(5.0)
    assert t not in w.input and w.stats().reissued == 0 and w.stats().in_custody == 0


def test_copies_are_kept_at_most_custody_timeout() -> None:
    w = make(lease=1000.0)
    w.custody_timeout = 10.0
    handed_off(w)
    w.tick(9.0)
    assert w.stats().in_custody == 1
    w.tick(10.5)
    assert (w.stats().in_custody, w.stats().custody_expired) == (0, 1)


def test_the_receiver_says_done_when_the_frame_exits_there() -> None:
    r = make("r")
    received = Task(TaskKey("s", 7, 2), attempt=3, hops=1)
    assert r.submit(received, 0.0, sender="m").status is SubmitStatus.QUEUED
    assert r.take_done() == []
    out = run_one(r, 0.99)  # exits at task 2
    assert out.kind is OutcomeKind.EXIT
    assert r.take_done() == [("m", TaskKey("s", 7, 2), 3)]
    assert r.take_done() == []  # each notice once


def test_the_receiver_says_done_once_another_worker_accepted_the_frame() -> None:
    r = make("r")
    r.submit(Task(TaskKey("s", 7, 1), hops=1), 0.0, sender="s")
    r.submit(task(50), 0.0)  # keeps I_n busy so the successor goes to O_n
    out = run_one(r, 0.1)  # frame s/7 continues: task 2 waits in O_n
    assert out.next_task is not None and r.take_done() == []  # still in r's hands
    r.on_neighbor_state(neighbor("e"), 0.0)
    ((receiver, t),) = r.offload_pass(0.0)
    assert receiver == "e" and t.key == TaskKey("s", 7, 2)
    assert r.take_done() == []  # sent, not yet accepted
    r.on_ack(t.key, t.attempt, "e", True, 0.01)
    assert r.take_done() == [("s", TaskKey("s", 7, 1), 0)]


def test_a_chain_loses_no_frame_when_the_middle_robot_dies() -> None:
    """s hands frame 1 to m; m dies holding it (accepted, not done): s runs it again and
    the frame exits; with a done notice instead, s would have forgotten it."""
    s = make("s")
    t = handed_off(s, to="m")
    m = make("m")
    assert m.submit(Task(t.key, attempt=t.attempt, hops=t.hops), 0.0,
                    sender="s").status is SubmitStatus.QUEUED
    # m dies before running it: s's lease on m runs out
    back = s.tick(5.0)
    assert back == [] and s.input[0].key == t.key
    exits = []
    while (nxt := s.next_task()) is not None or (s.offload_pass(5.0) == [] and s.input):
        if nxt is None:
            continue  # no neighbour left: O_n moved to I_n (no idle waiting)
        out = s.complete(nxt, 0.0, 0.01, 5.0)  # never confident: runs to the last exit
        if out.kind is OutcomeKind.EXIT:
            exits.append((nxt.data_id, out.exit_index))
    assert sorted(exits) == [(1, K), (2, K)] and s.idle()
