"""Pure-Python core of MDI-Exit (Algorithms 1-4 of the paper) for ROS nodes and simulator.

Standard library only: no rclpy, torch or numpy, so it imports anywhere and every decision
is unit-testable. Time comes in as explicit ``now`` arguments (see :mod:`.clock`) and
randomness as an injected ``random.Random``. See docs/ALGORITHMS.md for the line-by-line
mapping to the paper.
"""

from .admission import (
    DEFAULT_MAX_QUEUE,
    QUEUE_DELAY_SHARE,
    ControlBranch,
    ControlStep,
    OverdueAction,
    QueueControlParams,
    RateController,
    ThresholdController,
    classify,
    frame_seconds,
    has_room,
    overdue_action,
)
from .clock import Clock, ManualClock, MonotonicClock
from .confidence import (
    CONFIDENCE_FNS,
    ConfidenceFn,
    entropy_confidence,
    get_confidence_fn,
    max_softmax,
    softmax,
)
from .estimators import ComputeDelayEstimator, Ewma, LinkDelayEstimator
from .exit_policy import ExitThresholds, Placement, place_first, place_next, should_exit
from .gaps import SequenceGaps
from .ledger import (
    AckResult,
    AckStatus,
    FrameLedger,
    FrameRecord,
    InFlight,
    OffloadLedger,
    ResultStatus,
    SeenSet,
)
from .names import MAX_WORKER_ID_LENGTH, is_worker_id
from .neighbors import ACTIVE, NeighborReport, NeighborState, NeighborTable, report_problem
from .offload import (
    NeighborView,
    OffloadBranch,
    OffloadDecision,
    OffloadSelector,
    RandomSource,
    Selection,
    offload_probability,
    offload_rule,
)
from .task import Task, TaskKey
from .worker import (
    Outcome,
    OutcomeKind,
    Receipt,
    SubmitStatus,
    WorkerCore,
    WorkerStats,
)

__all__ = [
    "ACTIVE",
    "AckResult",
    "AckStatus",
    "CONFIDENCE_FNS",
    "Clock",
    "ComputeDelayEstimator",
    "ConfidenceFn",
    "ControlBranch",
    "ControlStep",
    "DEFAULT_MAX_QUEUE",
    "Ewma",
    "ExitThresholds",
    "FrameLedger",
    "FrameRecord",
    "InFlight",
    "LinkDelayEstimator",
    "MAX_WORKER_ID_LENGTH",
    "ManualClock",
    "MonotonicClock",
    "NeighborReport",
    "NeighborState",
    "NeighborTable",
    "NeighborView",
    "OffloadBranch",
    "OffloadDecision",
    "OffloadLedger",
    "OffloadSelector",
    "Outcome",
    "OutcomeKind",
    "OverdueAction",
    "Placement",
    "QUEUE_DELAY_SHARE",
    "QueueControlParams",
    "RandomSource",
    "RateController",
    "Receipt",
    "ResultStatus",
    "SeenSet",
    "Selection",
    "SequenceGaps",
    "SubmitStatus",
    "Task",
    "TaskKey",
    "ThresholdController",
    "WorkerCore",
    "WorkerStats",
    "classify",
    "entropy_confidence",
    "get_confidence_fn",
    "has_room",
    "is_worker_id",
    "max_softmax",
    "offload_probability",
    "offload_rule",
    "overdue_action",
    "frame_seconds",
    "place_first",
    "place_next",
    "report_problem",
    "should_exit",
    "softmax",
]
