"""Pure-Python core of MDI-Exit (Algorithms 1-4 of the paper) for ROS nodes and simulator.

Standard library only: no rclpy, torch or numpy, so it imports anywhere and every decision
is unit-testable. Time comes in as explicit ``now`` arguments (see :mod:`.clock`) and
randomness as an injected ``random.Random``. See docs/ALGORITHMS.md for the line-by-line
mapping to the paper.
"""

from .admission import (
    DEFAULT_MAX_QUEUE,
    OVERDUE_PERIOD,
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
from .distribution import Distribution, pipeline_owner, pipeline_stage, shortest_queue
from .estimators import ComputeDelayEstimator, Ewma, LinkDelayEstimator
from .exit_policy import (
    CHECKPOINT,
    DEFAULT_T_O,
    THRESHOLD_SOURCES,
    ExitThresholds,
    Placement,
    place_first,
    place_next,
    select_thresholds,
    should_exit,
)
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
from .messages import MAX_CLASS_NAME, MAX_TASK_AGE, exit_problem, task_age, task_problem
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
from .rate_gate import RateGate, start_interval
from .retries import MAX_TASK_FAILURES, TaskFailures
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
    "CHECKPOINT",
    "CONFIDENCE_FNS",
    "Clock",
    "ComputeDelayEstimator",
    "ConfidenceFn",
    "ControlBranch",
    "ControlStep",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_T_O",
    "Distribution",
    "Ewma",
    "ExitThresholds",
    "FrameLedger",
    "FrameRecord",
    "InFlight",
    "LinkDelayEstimator",
    "MAX_CLASS_NAME",
    "MAX_TASK_AGE",
    "MAX_TASK_FAILURES",
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
    "OVERDUE_PERIOD",
    "OverdueAction",
    "Placement",
    "QUEUE_DELAY_SHARE",
    "QueueControlParams",
    "RandomSource",
    "RateGate",
    "RateController",
    "Receipt",
    "ResultStatus",
    "SeenSet",
    "Selection",
    "SequenceGaps",
    "SubmitStatus",
    "Task",
    "TaskFailures",
    "TaskKey",
    "THRESHOLD_SOURCES",
    "ThresholdController",
    "WorkerCore",
    "WorkerStats",
    "classify",
    "entropy_confidence",
    "exit_problem",
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
    "pipeline_owner",
    "pipeline_stage",
    "report_problem",
    "select_thresholds",
    "should_exit",
    "shortest_queue",
    "softmax",
    "start_interval",
    "task_age",
    "task_problem",
]
