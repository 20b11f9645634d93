"""How a fleet shares a frame's tasks: MDI-Exit or one of the two baselines of the paper.

The same workers run three modes (parameter `distribution`), so benchmarks compare policies
on the same nodes (docs/ALGORITHMS.md, "Baselines"):

- ``mdi``: MDI-Exit. Alg. 1 places each successor task in I_n or O_n, Alg. 2 offloads the
  head of O_n to a neighbour.
- ``data``: data-distributed inference. The source sends each admitted frame whole to the
  worker with the shortest input queue, itself included (:func:`shortest_queue`), and that
  worker runs every task of the frame (its successors stay in its own I_n).
- ``pipeline``: a static pipeline. The tasks are split evenly along a chain of workers and
  task k always runs on its stage's worker (:func:`pipeline_owner`).

Pure functions: the worker state machine (worker.py) applies them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class Distribution(enum.Enum):
    """Who runs a frame's tasks."""

    MDI = "mdi"  # MDI-Exit: Alg. 1 + Alg. 2
    DATA = "data"  # data-distributed inference: a whole frame per worker, shortest queue
    PIPELINE = "pipeline"  # static pipeline: task k on the k-th stage of a chain


def pipeline_stage(task_index: int, num_tasks: int, stages: int) -> int:
    """0-based stage of 1-based task ``task_index`` when ``num_tasks`` tasks are split evenly
    over ``stages`` workers in order: stage i gets the tasks k with i K / S <= k - 1 <
    (i + 1) K / S (5 tasks on 2 stages: 1-3 and 4-5); with as many stages as tasks, task k
    runs on stage k - 1. More stages than tasks leave the last
    ones idle (a stage never splits a task)."""
    if num_tasks < 1 or stages < 1:
        raise ValueError(f"need >= 1 task and >= 1 stage, got {num_tasks}, {stages}")
    if not 1 <= task_index <= num_tasks:
        raise ValueError(f"task index {task_index} outside 1..{num_tasks}")
    if stages >= num_tasks:
        return task_index - 1
    return (task_index - 1) * stages // num_tasks


def pipeline_owner(task_index: int, num_tasks: int, chain: Sequence[str]) -> str:
    """The worker of ``chain`` that runs task ``task_index`` of a static pipeline."""
    if not chain:
        raise ValueError("a pipeline needs a chain of at least one worker")
    return chain[pipeline_stage(task_index, num_tasks, len(chain))]


def shortest_queue(own: str, own_queue: float, others: Sequence[tuple[str, float]],
                   turn: int) -> str:
    """Data-distributed inference: the worker (``own`` or one of ``others``, each with its
    queued tasks) that gets a newly admitted frame, the one with the shortest queue.

    Ties rotate with ``turn`` (the caller counts its dispatches) over the tied workers'
    names in order, so idle workers share frames rather than the first name getting all.
    """
    queues = {own: float(own_queue), **{w: float(q) for w, q in others}}
    low = min(queues.values())
    tied = sorted(w for w, q in queues.items() if q == low)
    return tied[turn % len(tied)]
