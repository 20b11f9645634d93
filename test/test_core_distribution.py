"""The two baselines as modes of the same worker (issue #8 item 3): data-distributed inference
(whole frames to the shortest queue, all tasks there) and a static pipeline (task k on the
k-th worker of a chain); core/distribution.py and their use in WorkerCore."""

import random

import pytest

from mdi_exit_ros.core import (
    ComputeDelayEstimator,
    Distribution,
    ExitThresholds,
    LinkDelayEstimator,
    NeighborReport,
    OffloadLedger,
    Task,
    TaskKey,
    WorkerCore,
    pipeline_owner,
    pipeline_stage,
    shortest_queue,
)

K = 3


def make(name: str = "src", distribution: Distribution = Distribution.DATA,
         pipeline: tuple[str, ...] = (), thresholds: float = 1.0,
         allowed: list[str] | None = None) -> WorkerCore:
    return WorkerCore(
        name, "m", ExitThresholds.uniform(K, thresholds), rng=random.Random(0),
        compute=ComputeDelayEstimator(prior=0.1),
        link_factory=lambda: LinkDelayEstimator(prior_latency=0.001, prior_bandwidth=1e9),
        ledger=OffloadLedger(min_timeout=1.0, timeout_factor=4.0), allowed=allowed,
        distribution=distribution, pipeline=pipeline)


def frame(data_id: int, source: str = "src", k: int = 1, hops: int = 0) -> Task:
    return Task(TaskKey(source, data_id, k), hops=hops, size_bytes=1000)


def hear(w: WorkerCore, name: str, input_queue: int = 0, seq: int = 1, now: float = 0.0,
         state: str = "active") -> None:
    w.on_neighbor_state(NeighborReport(name, input_queue, 0, 0.1, "m", lifecycle_state=state,
                                       seq=seq), now)


def run(w: WorkerCore, confidence: float = 0.5) -> list:
    """Run every task queued in I_n here; the outcomes."""
    out = []
    while (t := w.next_task()) is not None:
        out.append(w.complete(t, confidence, 0.1, 0.0))
    return out


# -- pure policy --------------------------------------------------------------------------------


def test_pipeline_stage_splits_tasks_evenly_in_order() -> None:
    assert [pipeline_stage(k, 5, 5) for k in range(1, 6)] == [0, 1, 2, 3, 4]
    assert [pipeline_stage(k, 5, 3) for k in range(1, 6)] == [0, 0, 1, 1, 2]
    assert [pipeline_stage(k, 6, 2) for k in range(1, 7)] == [0, 0, 0, 1, 1, 1]
    assert [pipeline_stage(k, 3, 5) for k in range(1, 4)] == [0, 1, 2]  # stages 4, 5 idle
    assert [pipeline_stage(k, 4, 1) for k in range(1, 5)] == [0, 0, 0, 0]
    assert pipeline_owner(2, 3, ("a", "b", "c")) == "b"
    for bad in ((0, 3, 3), (4, 3, 3), (1, 0, 3), (1, 3, 0)):
        with pytest.raises(ValueError):
            pipeline_stage(*bad)
    with pytest.raises(ValueError):
        pipeline_owner(1, 3, ())


def test_shortest_queue_picks_the_shortest_and_rotates_ties() -> None:
    assert shortest_queue("a", 3, [("b", 1), ("c", 2)], 0) == "b"
    assert shortest_queue("a", 0, [("b", 1), ("c", 2)], 7) == "a"
    tied = [shortest_queue("b", 0, [("a", 0), ("c", 0), ("d", 5)], t) for t in range(6)]
    assert tied == ["a", "b", "c", "a", "b", "c"]
    assert shortest_queue("a", 2, [], 3) == "a"  # nobody else: keep it


# -- data-distributed inference -----------------------------------------------------------------


def test_data_mode_dispatches_whole_frames_to_the_shortest_queue() -> None:
    w = make()
    hear(w, "b", input_queue=0)
    hear(w, "c", input_queue=4)
    sends = []
    for d in range(4):
        w.submit(frame(d), 0.0)
        sends += w.offload_pass(0.0)
    # I_src, I_b (+ in flight) and I_c = 4: src and b share the frames, c gets none
    assert [t.data_id for t in w.input] == [0, 2] or [t.data_id for t in w.input] == [1, 3]
    assert sorted(t.data_id for _, t in sends) in ([1, 3], [0, 2])
    assert {r for r, _ in sends} == {"b"} and all(t.task_index == 1 for _, t in sends)
    assert not w.output and w.stats().dispatched_here == 2 and w.stats().offloads_sent == 2


def test_data_mode_runs_every_task_of_a_frame_where_it_landed() -> None:
    receiver = make("b")
    hear(receiver, "src")  # a neighbour it could offload to: it must not
    receiver.submit(frame(7, hops=1), 0.0, sender="src")
    outcomes = run(receiver)
    assert [o.task.task_index for o in outcomes] == [1, 2, 3]  # no early exit: all K tasks
    assert outcomes[-1].exited and outcomes[-1].exit_index == K
    assert receiver.offload_pass(0.0) == [] and receiver.stats().offloads_sent == 0
    assert receiver.take_done() == [("src", TaskKey("src", 7, 1), 0)]  # custody released


@pytest.mark.parametrize("distribution", [Distribution.DATA, Distribution.MDI])
def test_data_mode_keeps_successors_where_mdi_would_offload_them(distribution) -> None:
    """Two frames queued at a receiver that has heard an idle neighbour: after the first
    frame's task 1, MDI-Exit (Alg. 1 line 8: I_n not empty) puts task 2 in O_n and Alg. 2
    may offload it; data-distributed inference keeps it in I_n and offloads nothing."""
    receiver = make("b", distribution=distribution)
    hear(receiver, "src")
    for d in (7, 8):
        receiver.submit(frame(d, hops=1), 0.0, sender="src")
    t = receiver.next_task()
    assert t is not None and t.key == TaskKey("src", 7, 1)
    receiver.complete(t, 0.5, 0.1, 0.0)
    queued = [(q.data_id, q.task_index) for q in receiver.input]
    if distribution is Distribution.DATA:
        assert sorted(queued) == [(7, 2), (8, 1)] and not receiver.output
        assert receiver.offload_pass(0.0) == []
    else:
        assert queued == [(8, 1)] and [q.task_index for q in receiver.output] == [2]


def test_data_mode_with_early_exit_ends_a_frame_early_on_its_robot() -> None:
    w = make(thresholds=0.3, allowed=[])  # no neighbour: every frame stays here
    w.submit(frame(1), 0.0)
    assert w.offload_pass(0.0) == []
    (outcome,) = run(w, confidence=0.9)
    assert outcome.exited and outcome.exit_index == 1


def test_data_mode_takes_a_refused_frame_back_and_runs_it_itself() -> None:
    w = make()
    hear(w, "b")
    w.submit(frame(0), 0.0)
    w.submit(frame(1), 0.0)
    sends = w.offload_pass(0.0)
    ((target, sent),) = [(r, t) for r, t in sends]
    w.on_ack(sent.key, sent.attempt, target, False, 0.1)  # refused: back to I_n
    assert sorted(t.data_id for t in w.input) == [0, 1]
    assert [o.task.task_index for o in run(w)] == [1, 1, 2, 2, 3, 3]


# -- static pipeline ----------------------------------------------------------------------------


CHAIN = ("src", "b", "c")


def test_pipeline_sends_each_task_to_its_stage() -> None:
    src, b = make(distribution=Distribution.PIPELINE, pipeline=CHAIN), \
        make("b", distribution=Distribution.PIPELINE, pipeline=CHAIN)
    for w, names in ((src, ("b", "c")), (b, ("src", "c"))):
        for n in names:
            hear(w, n)
    src.submit(frame(0), 0.0)
    assert [t.task_index for t in src.input] == [1] and not src.output  # stage 1 is src
    (o1,) = run(src)
    assert not o1.exited and [t.task_index for t in src.output] == [2]
    ((to, t2),) = src.offload_pass(0.0)
    assert to == "b" and t2.task_index == 2 and t2.hops == 1
    b.submit(t2, 0.0, sender="src")
    (o2,) = run(b)
    assert not o2.exited
    ((to, t3),) = b.offload_pass(0.0)
    assert to == "c" and t3.task_index == 3 and not b.input


def test_pipeline_source_outside_its_first_stage_sends_task_one() -> None:
    w = make(distribution=Distribution.PIPELINE, pipeline=("b", "c"))
    hear(w, "b")
    w.submit(frame(0), 0.0)
    assert not w.input and [to for to, _ in w.offload_pass(0.0)] == ["b"]


def test_pipeline_runs_a_task_here_when_its_stage_is_not_eligible() -> None:
    w = make(distribution=Distribution.PIPELINE, pipeline=CHAIN)
    hear(w, "b", state="inactive")  # heard, but takes no tasks
    w.submit(frame(0), 0.0)
    run(w)
    assert w.offload_pass(0.0) == []
    assert [t.task_index for t in w.input] == [2] and w.stats().stage_fallbacks == 1


def test_modes_change_at_once() -> None:
    w = make(distribution=Distribution.MDI)
    hear(w, "b")
    w.submit(frame(0), 0.0)
    assert [t.data_id for t in w.input] == [0]  # MDI-Exit, paper's placement: tau_1 here
    w.distribution = Distribution.DATA
    w.submit(frame(1), 0.0)
    w.submit(frame(2), 0.0)
    sends = w.offload_pass(0.0)
    assert sends and sends[0][0] == "b" and sends[0][1].data_id == 1  # b's queue is shortest
    assert all(t.task_index == 1 for _, t in sends)  # whole frames
