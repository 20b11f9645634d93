"""Alg. 1 decisions: early exit (line 5) and where the next task goes (lines 8-11).

Exit and task indices are 1-based as in the paper and in ``msg/Task.msg``: task
``k`` ends at exit ``k`` and ``k = K`` is the model's final output.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_T_O = 50  # output queue threshold T_O, paper Sec. V


class Placement(enum.Enum):
    """Queue that receives the new task tau_{k+1}(d) (Alg. 1 lines 9 and 11)."""

    INPUT = "input"
    OUTPUT = "output"


def should_exit(confidence: float, threshold: float, is_last: bool) -> bool:
    """Alg. 1 line 5: exit iff ``C^k(d) > T_e^k``; the last exit always exits.

    The inequality is strict as in the paper, so ``T_e = 1`` means "never exit early"
    (max-softmax can equal but never exceed 1). The final exit has no task after it, so the
    classifier's output there is the answer whatever its confidence.
    """
    if is_last:
        return True
    return confidence > threshold  # Alg. 1, line 5


def place_next(input_queue_empty: bool, output_len: int, t_o: int) -> Placement:
    """Alg. 1 lines 8-11: INPUT if the input queue is empty OR ``O_n > T_O``, else OUTPUT.

    An empty input queue means local compute is idle, so keeping the task is fastest; a long
    output queue means offloading is not keeping up, so more offloads would only wait.
    """
    if input_queue_empty or output_len > t_o:  # Alg. 1, line 8
        return Placement.INPUT  # Alg. 1, line 9
    return Placement.OUTPUT  # Alg. 1, line 11


def place_first(
    offload_first_task: bool, input_queue_empty: bool, output_len: int, t_o: int
) -> Placement:
    """Where a frame admitted at the source puts its first task tau_1(d) (our extension).

    The paper's source queues every tau_1 in its input queue (Alg. 1 places only successors),
    so the source runs every frame's first task and caps the fleet at its own speed. With
    ``offload_first_task`` tau_1 is placed like any successor (``place_next``, Alg. 1 line
    8): in I_n if it is empty or O_n > T_O, else in O_n, where Alg. 2 may offload it.
    """
    if not offload_first_task:
        return Placement.INPUT
    return place_next(input_queue_empty, output_len, t_o)


def _check_threshold(value: float, what: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be in [0, 1], got {value}")
    return value


@dataclass(frozen=True)
class ExitThresholds:
    """The K thresholds ``T_e^1..T_e^K`` (value object: replace it, never mutate it).

    Immutable so that a report, a log line or a task decision can hold the thresholds that
    were in force without copying. ``values[k - 1]`` is ``T_e^k``. The value for the last
    exit is kept for symmetry but never consulted (the last exit always exits).
    """

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("ExitThresholds needs at least one exit (K >= 1)")
        checked = tuple(
            _check_threshold(v, f"threshold T_e^{k}") for k, v in enumerate(self.values, 1)
        )
        object.__setattr__(self, "values", checked)

    @classmethod
    def uniform(cls, num_exits: int, value: float) -> ExitThresholds:
        """K exits sharing one threshold (the paper's experiments fix T_e for all tasks)."""
        if num_exits < 1:
            raise ValueError(f"num_exits must be >= 1, got {num_exits}")
        return cls((value,) * num_exits)

    @classmethod
    def of(cls, values: Iterable[float]) -> ExitThresholds:
        """Per-exit thresholds from any iterable (e.g. a ROS float array parameter)."""
        return cls(tuple(values))

    @property
    def num_exits(self) -> int:
        """K."""
        return len(self.values)

    def for_exit(self, k: int) -> float:
        """``T_e^k`` for the 1-based exit ``k``."""
        if not 1 <= k <= len(self.values):
            raise IndexError(f"exit index {k} out of range 1..{len(self.values)}")
        return self.values[k - 1]

    def with_all(self, value: float) -> ExitThresholds:
        """Alg. 4 line 9: ``T_e^k <- T_e`` for every k (same K, one new value)."""
        return ExitThresholds.uniform(len(self.values), value)  # Alg. 4, line 9

    def with_exit(self, k: int, value: float) -> ExitThresholds:
        """A copy with only ``T_e^k`` changed (per-exit tuning outside Alg. 4)."""
        self.for_exit(k)  # range check
        values = list(self.values)
        values[k - 1] = value
        return ExitThresholds(tuple(values))


# Which T_e^k are in force: the checkpoint's calibrated values, one threshold for every exit,
# or one per exit (the `threshold_source` parameter; its own setting, never a sentinel value).
CHECKPOINT = "checkpoint"
THRESHOLD_SOURCES = (CHECKPOINT, "exit_threshold", "exit_thresholds")


def select_thresholds(source: str, num_exits: int, checkpoint: Iterable[float],
                      exit_threshold: float | None = None,
                      exit_thresholds: Iterable[float] | None = None) -> ExitThresholds:
    """The T_e^k in force for `source` (one of THRESHOLD_SOURCES); ValueError when the value
    it names is missing or out of range."""
    if source == "exit_thresholds":
        if exit_thresholds is None:
            raise ValueError("threshold_source exit_thresholds needs exit_thresholds set")
        return ExitThresholds.of(exit_thresholds)
    if source == "exit_threshold":
        if exit_threshold is None:
            raise ValueError("threshold_source exit_threshold needs exit_threshold set")
        return ExitThresholds.uniform(num_exits, exit_threshold)
    if source != CHECKPOINT:
        raise ValueError(f"threshold_source must be one of {', '.join(THRESHOLD_SOURCES)}, "
                         f"not {source!r}")
    return ExitThresholds.of(checkpoint)
