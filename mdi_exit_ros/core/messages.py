"""What a worker accepts in a peer's Task and a source in a peer's ExitResult.

Everything from the wire is hostile until checked: these rules decide, before any use, whether
a message is refused (counted and logged by the node) and why. The nodes check what needs the
loaded model's tensors themselves (`engine.check_wire`); worker ids follow `names.py`, and
neighbour reports `neighbors.report_problem`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .names import is_worker_id

MAX_CLASS_NAME = 256  # characters of an ExitResult.class_name (a failed task's reason too)
MAX_TASK_AGE = 86_400.0  # s: a task's admission stamp further back is a peer's garbage


def task_problem(source: str, sender: str, exit_thresholds: Sequence[float],
                 num_exits: int) -> str:
    """Why a received task's names and thresholds are unacceptable ('' if they are fine):
    the ids become topic names, and the thresholds (none: the receiver's own) decide exits."""
    for what, name in (("source", source), ("sender", sender)):
        if not is_worker_id(name):
            return f"{what} is not a valid worker id"
    if len(exit_thresholds) not in (0, num_exits):
        return f"{len(exit_thresholds)} exit thresholds for a model with {num_exits} exits"
    if any(not 0.0 <= t <= 1.0 for t in exit_thresholds):  # NaN fails too
        return "exit thresholds outside [0, 1]"
    return ""


def exit_problem(exit_index: int, class_id: int, num_logits: int, confidence: float,
                 worker: str, class_name: str, num_exits: int, num_classes: int) -> str | None:
    """Why an exit from another worker cannot be a result of this model (None if it can);
    class_id -1 is a frame answered as failed."""
    if not 1 <= exit_index <= num_exits:
        return f"exit_index {exit_index} of a model with {num_exits} exits"
    if not -1 <= class_id < num_classes:
        return f"class_id {class_id} of a model with {num_classes} classes"
    if num_logits not in (0, num_classes):
        return f"{num_logits} logits for {num_classes} classes"
    if not 0.0 <= confidence <= 1.0:  # NaN fails too
        return f"confidence {confidence}"
    if not is_worker_id(worker) or len(class_name) > MAX_CLASS_NAME:
        return "worker or class_name malformed"
    return None


def task_age(seconds: float) -> float:
    """A task's age from its admission stamp, clamped to [0, MAX_TASK_AGE]: robots' clocks
    are only roughly in sync (NTP) and a stamp from the future or older than a day is a
    peer's garbage; the age only ever feeds reports."""
    return min(max(seconds, 0.0), MAX_TASK_AGE)
