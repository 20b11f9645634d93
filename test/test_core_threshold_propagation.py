"""T_e changes at a source reach its tasks already queued, here and at other workers.

Tasks carry the thresholds stamped at admission (Alg. 4 runs at the source); without
restamping, a decrease of T_e acted only after a queue's worth of work had drained.
"""

from __future__ import annotations

import random

from mdi_exit_ros.core import (
    ExitThresholds,
    LinkDelayEstimator,
    NeighborReport,
    Task,
    TaskKey,
    WorkerCore,
)

K = 3


def make(worker_id: str) -> WorkerCore:
    return WorkerCore(worker_id, "m", ExitThresholds.uniform(K, 0.9), rng=random.Random(0),
                      link_factory=lambda: LinkDelayEstimator(0.001, 1e9))


def frame(source: WorkerCore, data_id: int) -> Task:
    """A frame admitted at `source`, stamped with its thresholds as the source node does."""
    return Task(TaskKey(source.worker_id, data_id, 1), size_bytes=100,
                exit_thresholds=source.thresholds)


def report(worker: str, seq: int, te: float, model: str = "m") -> NeighborReport:
    return NeighborReport(worker, 0, 0, 0.01, model, seq=seq,
                          exit_thresholds=(te,) * K)


def test_a_source_threshold_change_reaches_its_queued_frames_at_once() -> None:
    src = make("src")
    for d in range(20):
        src.submit(frame(src, d), 0.0)
    src.set_thresholds(0.5)  # Alg. 4 line 9 after a step
    task = src.next_task()
    assert task is not None
    out = src.complete(task, 0.6, 0.01, 1.0)  # 0.6 > 0.5: exits now, not 20 tasks later
    assert out.exited and out.threshold == 0.5
    assert all(t.exit_thresholds.values == (0.5,) * K for t in src.input)


def test_a_worker_takes_the_thresholds_a_source_reports_for_its_tasks() -> None:
    src, w = make("src"), make("w")
    other = make("other")
    for d in range(5):
        w.submit(frame(src, d), 0.0)
        w.submit(frame(other, d), 0.0)
    assert w.on_neighbor_state(report("src", 1, 0.55), 0.1)
    by_source = {(t.source, t.exit_thresholds.values[0]) for t in w.input}
    assert by_source == {("src", 0.55), ("other", 0.9)}  # only the reporting source's tasks
    task = w.next_task()
    assert task is not None and task.source == "src"
    assert w.complete(task, 0.6, 0.01, 0.2).exited


def test_old_foreign_or_malformed_reports_do_not_restamp() -> None:
    src, w = make("src"), make("w")
    w.submit(frame(src, 0), 0.0)
    assert w.on_neighbor_state(report("src", 2, 0.6), 0.1)
    assert not w.on_neighbor_state(report("src", 1, 0.7), 0.2)  # older seq: ignored
    assert not w.on_neighbor_state(report("src", 2, 0.8), 0.3)  # repeated seq: ignored
    w.on_neighbor_state(report("src", 3, 0.7, model="other"), 0.4)  # other model
    w.on_neighbor_state(NeighborReport("src", 0, 0, 0.01, "m", seq=4,
                                       exit_thresholds=(0.7, 0.7)), 0.5)  # wrong K
    w.on_neighbor_state(NeighborReport("src", 0, 0, 0.01, "m", seq=5,
                                       exit_thresholds=(1.5,) * K), 0.6)  # out of range
    assert w.input[0].exit_thresholds.values == (0.6,) * K


def test_tasks_awaiting_an_ack_and_running_are_restamped_too() -> None:
    src = make("src")
    src.submit(frame(src, 0), 0.0)
    src.submit(frame(src, 1), 0.0)
    running = src.next_task()
    assert running is not None
    src.set_thresholds(ExitThresholds.of((0.6, 0.7, 0.8)))
    assert running.exit_thresholds.values == (0.6, 0.7, 0.8)
    assert src.input[0].exit_thresholds.values == (0.6, 0.7, 0.8)
    assert src.restamp("src", src.thresholds) == 0  # nothing left to change
