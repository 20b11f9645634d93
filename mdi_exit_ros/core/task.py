"""Tasks tau_k(d): the unit of work that moves through queues and between workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .exit_policy import ExitThresholds


class TaskKey(NamedTuple):
    """``(source, data_id, task_index)`` names task tau_k(d) network-wide (msg/Task.msg).

    ``task_index`` is 1-based as in the paper: task k runs the layers up to exit k.
    """

    source: str
    data_id: int
    task_index: int


@dataclass(eq=False)
class Task:
    """One task with its bookkeeping. ``payload`` is opaque: the ROS layer keeps a tensor there.

    Compared by identity (``eq=False``) because payloads such as tensors do not compare to
    a bool, and because two copies of a key are exactly what the ledgers must tell apart.
    ``attempt`` is not part of the identity: a re-sent attempt of a task a receiver already
    holds is exactly the duplicate to suppress.
    """

    key: TaskKey
    attempt: int = 0  # +1 each time it is taken back or re-sent (msg/Task.msg attempt)
    payload: Any = None
    size_bytes: int = 0  # wire size of the payload, for D_nm(size)
    # When the source admitted the frame, on this process's clock (the `now` of the calls):
    # a receiver converts the wire's `admitted` stamp through the frame's age (core.task_age).
    admitted_at: float = 0.0
    hops: int = 0  # offloads so far
    # T_e^k the source stamped on the frame (Alg. 4 runs at the source); None: worker's own
    exit_thresholds: ExitThresholds | None = None

    @property
    def source(self) -> str:
        """Worker that owns the data and receives the result."""
        return self.key.source

    @property
    def data_id(self) -> int:
        """Frame id, unique per source."""
        return self.key.data_id

    @property
    def task_index(self) -> int:
        """k, 1-based."""
        return self.key.task_index

    def successor(self) -> Task:
        """tau_{k+1}(d): same frame, next task, fresh attempt count, no payload yet."""
        key = TaskKey(self.key.source, self.key.data_id, self.key.task_index + 1)
        return Task(
            key,
            attempt=0,
            payload=None,
            size_bytes=0,
            admitted_at=self.admitted_at,
            hops=self.hops,
            exit_thresholds=self.exit_thresholds,
        )

    def __repr__(self) -> str:
        k = self.key
        return f"Task({k.source}/{k.data_id}/k={k.task_index} a={self.attempt} hops={self.hops})"
