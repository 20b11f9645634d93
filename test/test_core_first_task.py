"""First-task offloading (our extension, issue #8 item 4): tau_1 placed by Alg. 1 line 8."""

import random

from mdi_exit_ros.core import (
    ComputeDelayEstimator,
    ExitThresholds,
    LinkDelayEstimator,
    NeighborReport,
    OffloadLedger,
    Placement,
    Task,
    TaskKey,
    WorkerCore,
    place_first,
)

K = 3
T_O = 4


def make(offload_first_task: bool, t_o: int = T_O) -> WorkerCore:
    return WorkerCore(
        "src", "mnv2", ExitThresholds.uniform(K, 0.8), rng=random.Random(0), t_o=t_o,
        compute=ComputeDelayEstimator(prior=0.1),
        link_factory=lambda: LinkDelayEstimator(prior_latency=0.001, prior_bandwidth=1e9),
        ledger=OffloadLedger(min_timeout=1.0, timeout_factor=4.0),
        offload_first_task=offload_first_task)


def frame(data_id: int, source: str = "src", hops: int = 0, k: int = 1) -> Task:
    return Task(TaskKey(source, data_id, k), hops=hops, size_bytes=1000)


def test_place_first_off_is_always_the_input_queue() -> None:
    for empty in (True, False):
        for o_n in (0, T_O, T_O + 1):
            assert place_first(False, empty, o_n, T_O) is Placement.INPUT


def test_place_first_on_follows_alg1_line8() -> None:
    assert place_first(True, True, 0, T_O) is Placement.INPUT  # I_n empty
    assert place_first(True, True, T_O + 3, T_O) is Placement.INPUT
    assert place_first(True, False, 0, T_O) is Placement.OUTPUT
    assert place_first(True, False, T_O, T_O) is Placement.OUTPUT  # O_n == T_O is not > T_O
    assert place_first(True, False, T_O + 1, T_O) is Placement.INPUT  # O_n > T_O


def test_off_keeps_every_first_task_at_the_source() -> None:
    w = make(False)
    for d in range(8):
        w.submit(frame(d), 0.0)
    assert len(w.input) == 8 and not w.output


def test_on_queues_admitted_first_tasks_by_the_rule() -> None:
    w = make(True)
    for d in range(8):
        w.submit(frame(d), 0.0)
    # the first goes to the empty I_n; then O_n fills to T_O + 1; then O_n > T_O: I_n again
    assert [t.data_id for t in w.input] == [0, 6, 7]
    assert [t.data_id for t in w.output] == [1, 2, 3, 4, 5]
    assert w.stats().admitted == 8


def test_on_does_not_touch_tasks_from_neighbours() -> None:
    w = make(True)
    w.submit(frame(0), 0.0)  # I_n not empty now
    w.submit(frame(1, source="other", hops=1), 0.0, sender="other")
    w.submit(frame(2, source="other"), 0.0, sender="other")  # hops 0 but from a peer
    w.submit(frame(3, k=2), 0.0, sender="peer")  # our own frame's later task coming back
    assert [t.data_id for t in w.input] == [0, 1, 2, 3] and not w.output


def test_on_lets_alg2_offload_first_tasks_to_an_idle_neighbour() -> None:
    w = make(True)
    w.on_neighbor_state(NeighborReport("m", 0, 0, 0.1, "mnv2", seq=1), 0.0)
    sends = []
    for d in range(4):
        w.submit(frame(d), 0.0)
        sends += w.offload_pass(0.0)
    assert sends, "no first task was offloaded"
    assert all(m == "m" and t.task_index == 1 and t.hops == 1 for m, t in sends)
    assert w.stats().offloads_sent == len(sends)
    # nothing was lost: each frame's task 1 is queued here or awaiting m's ack
    held = sorted(t.data_id for _, t in w.held())
    assert held == [0, 1, 2, 3]


def test_off_never_offloads_first_tasks() -> None:
    w = make(False)
    w.on_neighbor_state(NeighborReport("m", 0, 0, 0.1, "mnv2", seq=1), 0.0)
    for d in range(4):
        w.submit(frame(d), 0.0)
        assert w.offload_pass(0.0) == []
    assert w.stats().offloads_sent == 0


def test_the_switch_applies_to_the_next_admission() -> None:
    w = make(False)
    w.submit(frame(0), 0.0)
    w.submit(frame(1), 0.0)
    w.offload_first_task = True
    w.submit(frame(2), 0.0)
    assert [t.data_id for t in w.output] == [2]


def test_a_source_without_neighbours_keeps_first_tasks_in_its_input_queue() -> None:
    """The `local` topology (neighbors ['-']) with offload_first_task on: O_n has nobody to
    drain it, so a first task parked there would wait behind newer frames."""
    w = WorkerCore(
        "src", "mnv2", ExitThresholds.uniform(K, 0.8), rng=random.Random(0), t_o=T_O,
        allowed=[], offload_first_task=True)
    for d in range(8):
        w.submit(frame(d), 0.0)
    assert [t.key.data_id for t in w.input] == list(range(8)) and not w.output
