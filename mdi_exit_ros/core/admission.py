"""Alg. 3 (interarrival time mu at the source) and Alg. 4 (early-exit threshold T_e).

Both algorithms look at the source's ``I_n + O_n`` and then "sleep for s seconds". Here the
sleep is replaced by a schedule: ``step(now, ...)`` is meant to be called every ``period``
seconds (a ROS timer or a simulator event); steps are due at ``t0, t0 + s, t0 + 2s, ...``
(each due time is the previous one plus ``period``, not the last call plus ``period``), and
a call up to a quarter period early still counts for its due step. A timer callback that
runs a hair early therefore does not skip a period, and a late one does not shift the
schedule. No thread ever sleeps in the core.

The paper's branches use strict inequalities, so ``I_n + O_n == T_Q1`` or ``== T_Q2`` falls
through all of them: that is a *dead band* here, the value is kept unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_T_Q1 = 10.0  # paper, Sec. V
DEFAULT_T_Q2 = 30.0  # paper, Sec. V
DEFAULT_ALPHA = 0.2  # paper, Sec. V
DEFAULT_BETA = 0.1  # paper, Sec. V
DEFAULT_ZETA = 0.2  # paper, Sec. V
DEFAULT_PERIOD = 1.0  # s: not in the paper; a few queue-service times at Jetson speeds
DEFAULT_MU = 1.0  # s: start slow, like TCP slow start, and let Alg. 3 speed up
DEFAULT_MU_MIN = 1e-3  # s: 1000 frames/s is beyond any camera we drive
DEFAULT_MU_MAX = 10.0  # s: even a saturated system admits a frame every 10 s (no starvation)
DEFAULT_TE = 0.9  # start accurate; Alg. 4 lowers it only under load
DEFAULT_TE_MIN = 0.5  # see docs/ALGORITHMS.md: below 0.5 max-softmax stops meaning much
# A call this fraction of a period before a due step still makes it: timer callbacks wait for
# the executor, so two consecutive ones can be closer than a period; a quarter period absorbs
# that jitter while a caller that polls more often still gets one step per period.
EARLY_TOLERANCE = 0.25
# Control periods the fleet's delivery interval is measured over (backlog guard, decision 26):
# at 1-4 answers per period one period's count is too coarse (0, 1 or 2 answers read as 1 s,
# 1 s or 0.5 s per frame), and a single slow period pushed mu up for nothing.
DELIVERY_PERIODS = 5


def frame_seconds(task_seconds: Sequence[float], exit_fraction: Sequence[float] | None) -> float:
    """Expected compute seconds of one frame on one worker: sum_k t_k P(frame reaches task k).

    ``task_seconds[k-1]`` is task k's compute time and ``exit_fraction[k-1]`` the share of
    frames that exit at exit k (e.g. a checkpoint's measurement at the thresholds in force).
    Without a distribution (None: thresholds it was not measured for) every frame is assumed
    to run to the last exit, the cautious side for a start-up rate.
    """
    times = [_finite("task seconds", t) for t in task_seconds]
    if not times or any(t < 0 for t in times):
        raise ValueError(f"task_seconds must be >= 0, one per task; got {list(task_seconds)}")
    if exit_fraction is None:
        return sum(times)
    shares = [_finite("exit fraction", f) for f in exit_fraction]
    if len(shares) != len(times) or any(f < 0 for f in shares) or sum(shares) <= 0:
        raise ValueError(f"exit_fraction needs {len(times)} shares >= 0 with a positive sum; "
                         f"got {list(exit_fraction)}")
    total = sum(shares)
    reach, seconds = 1.0, 0.0
    for t, f in zip(times, shares, strict=True):
        seconds += reach * t  # every frame still in flight runs task k
        reach = max(0.0, reach - f / total)
    return seconds


class ControlBranch(enum.Enum):
    """Which line of Alg. 3/4 fired on a step."""

    LOW = "low"  # I+O < T_Q1 (line 2-3)
    MID = "mid"  # T_Q1 < I+O < T_Q2 (line 4-5)
    HIGH = "high"  # I+O > T_Q2 (line 6-7)
    DEAD_BAND = "dead_band"  # I+O == T_Q1 or == T_Q2: no branch of the paper applies
    NOT_DUE = "not_due"  # called before the next due step: the paper would still be asleep


@dataclass(frozen=True)
class ControlStep:
    """Result of one ``step``: the value now in force and how it got there."""

    value: float
    branch: ControlBranch
    changed: bool


def classify(total: float, t_q1: float, t_q2: float) -> ControlBranch:
    """The branch of Alg. 3/4 selected by ``I_n + O_n`` (shared by both algorithms)."""
    if total < t_q1:  # Alg. 3/4, line 2
        return ControlBranch.LOW
    if t_q1 < total < t_q2:  # Alg. 3/4, line 4
        return ControlBranch.MID
    if total > t_q2:  # Alg. 3/4, line 6
        return ControlBranch.HIGH
    return ControlBranch.DEAD_BAND  # total == T_Q1 or total == T_Q2


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@dataclass(frozen=True)
class QueueControlParams:
    """Constants shared by Alg. 3 and 4, validated together (they constrain each other)."""

    t_q1: float = DEFAULT_T_Q1
    t_q2: float = DEFAULT_T_Q2
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    zeta: float = DEFAULT_ZETA
    period: float = DEFAULT_PERIOD

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _finite(f.name, getattr(self, f.name)))
        if self.t_q1 < 0:
            raise ValueError(f"t_q1 must be >= 0, got {self.t_q1}")
        if self.t_q1 > self.t_q2:
            raise ValueError(f"t_q2 must be >= t_q1 (t_q1={self.t_q1}, t_q2={self.t_q2})")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta must be in (0, 1), got {self.beta}")
        if not self.beta < self.alpha:
            raise ValueError(f"beta must be < alpha (alpha={self.alpha}, beta={self.beta})")
        if not 0.0 < self.zeta < 1.0:
            raise ValueError(f"zeta must be in (0, 1), got {self.zeta}")
        if self.period < 0:
            raise ValueError(f"period must be >= 0, got {self.period}")


_PARAM_NAMES = frozenset(f.name for f in dataclasses.fields(QueueControlParams))


class _PeriodicController:
    """Step schedule + validated parameters; subclasses implement one update rule."""

    _value: float

    def __init__(self, params: QueueControlParams) -> None:
        self._params = params
        self._next: float | None = None  # when the next step is due (None: the first call)
        self._last: float | None = None  # when the last step was evaluated

    @property
    def params(self) -> QueueControlParams:
        """The constants in force."""
        return self._params

    @property
    def value(self) -> float:
        """The controlled value now (mu or T_e)."""
        return self._value

    @property
    def next_due(self) -> float | None:
        """When the next step is due (None before the first step: due at once)."""
        return self._next

    def due(self, now: float) -> bool:
        """True if a ``step`` at ``now`` would evaluate (the "sleep" of s seconds is over).

        Up to ``EARLY_TOLERANCE`` of a period early counts: the caller's timer has the same
        period, and its callbacks drift by the executor's latency.
        """
        return self._next is None or now >= self._next - EARLY_TOLERANCE * self._params.period

    def step(self, now: float, input_len: int, output_len: int) -> ControlStep:
        """One pass of the algorithm with the source's queue lengths ``I_n``, ``O_n``.

        Every evaluation (dead band included) starts a new period: the paper's busy loop
        through a dead band would just re-read the same queues, so waiting s is equivalent.
        """
        if not self.due(now):
            return ControlStep(self._value, ControlBranch.NOT_DUE, False)
        self._advance(now)
        branch = classify(input_len + output_len, self._params.t_q1, self._params.t_q2)
        old = self._value
        if branch is not ControlBranch.DEAD_BAND:
            self._value = self._apply(branch)
        return ControlStep(self._value, branch, self._value != old)

    def _advance(self, now: float) -> None:
        """Next due step = this one + period; after a stall, restart the schedule at ``now``.

        A call so late that the following step would already be due (a whole period
        missed) does not catch up with a burst of steps: the paper sleeps s after each step.
        """
        period = self._params.period
        nxt = (now if self._next is None else self._next) + period
        if nxt - EARLY_TOLERANCE * period <= now and period > 0:
            nxt = now + period
        self._next, self._last = nxt, now

    def _apply(self, branch: ControlBranch) -> float:
        raise NotImplementedError

    def _set_params(self, params: QueueControlParams) -> None:
        """New constants; a new period re-bases the next step on the last one."""
        if params.period != self._params.period and self._last is not None:
            self._next = self._last + params.period
        self._params = params

    def _new_params(self, changes: dict[str, Any]) -> QueueControlParams:
        unknown = set(changes) - _PARAM_NAMES
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self._params, **changes)


class RateController(_PeriodicController):
    """Alg. 3: adapt the interarrival time mu (seconds between admitted frames) at the source.

    Like TCP Vegas it speeds up while queues are short and backs off when they grow, so the
    source admits as fast as the whole MDI-Exit system drains. mu is clamped to
    ``[mu_min, mu_max]``: multiplicative decrease alone would reach 0 (infinite rate) and
    multiplicative increase alone would stop admission for ever.

    Camera bound (ours, docs/ALGORITHMS.md): a caller that reports camera frames
    (``on_frame``) gets no decrease of mu below ``c / (1 + zeta)``, where ``c`` is the
    camera's measured interval over the last period (period length / frames). Below ``c``
    every frame is admitted already, so a lower mu changes nothing now but would need many
    line-7 steps to climb back when load arrives; from the bound one step reaches ``c``.
    With no frame in a period mu is not lowered at all; a caller that reports frames says
    so with ``counts_frames``, and then a period before the first frame lowers nothing
    either (a camera that has not started gives no reason to admit faster). Without
    ``on_frame`` calls the paper's rule applies unchanged.

    Slow start (ours, docs/ALGORITHMS.md decision 25): with ``slow_start`` line 3 halves mu
    (the rate doubles) instead of taking ``alpha mu`` off, until the first step that finds
    ``I_n + O_n >= T_Q1``; that step undoes the last doubling (as TCP halves its window on
    congestion), lifts mu to the fleet's measured delivery interval (``on_answer``: seconds
    / frames answered over the last DELIVERY_PERIODS periods) if that is longer, and from
    then on the paper's rule applies.
    Started from a mu the source alone sustains (``frame_seconds``), admission finds the
    fleet's rate in ``log2(speed-up)`` periods and overshoots it by at most one period of
    doubled rate, instead of starting fast and letting line 7 back off 20 % per period.
    """

    def __init__(
        self,
        mu: float = DEFAULT_MU,
        *,
        mu_min: float = DEFAULT_MU_MIN,
        mu_max: float = DEFAULT_MU_MAX,
        slow_start: bool = False,
        counts_frames: bool = False,
        latency_budget: float | None = None,
        **params: float,
    ) -> None:
        unknown = set(params) - _PARAM_NAMES
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        super().__init__(QueueControlParams(**params))
        self._mu_min, self._mu_max = self._check_bounds(mu_min, mu_max)
        self._value = self._check_mu(mu, self._mu_min, self._mu_max)
        # Frames since the last step; None: the caller does not report frames. A caller that
        # says it will (``counts_frames``) starts at 0, so no frame yet lowers nothing.
        self._arrivals: int | None = 0 if counts_frames else None
        self._camera_interval: float | None = None
        self._floor = self._mu_min
        self._slow_start = bool(slow_start)
        self._halved = False  # slow start has doubled the rate at least once
        # Frames answered since the last step (``on_answer``); None: not reported.
        self._answers: int | None = 0 if counts_frames else None
        self._delivery: float | None = None  # seconds per answered frame (see step)
        # (seconds, answers) of the last DELIVERY_PERIODS periods from the first answer on
        self._periods: deque[tuple[float, int]] = deque(maxlen=DELIVERY_PERIODS)
        self._answered = False  # some period saw an answer
        self._budget = self._check_budget(latency_budget)
        self.over_budget = False  # the last step found in_flight x delivery > the budget

    @property
    def slow_starting(self) -> bool:
        """True until a step finds the queues at T_Q1 or above (then Alg. 3 as in the paper)."""
        return self._slow_start

    def on_frame(self) -> None:
        """A camera frame arrived (admitted or not): counts toward the camera bound."""
        self._arrivals = (self._arrivals or 0) + 1

    def on_answer(self) -> None:
        """A frame was answered (its first result): measures the fleet's delivery rate."""
        self._answers = (self._answers or 0) + 1

    @property
    def delivery_interval(self) -> float | None:
        """Seconds per answered frame over the last DELIVERY_PERIODS periods since the first
        answer (before it: the last period, counted as one answer; None: not measured)."""
        return self._delivery

    @property
    def camera_interval(self) -> float | None:
        """The camera's interval over the last period (None: not measured / no frame)."""
        return self._camera_interval

    @property
    def floor(self) -> float:
        """The lowest mu the last step could set (mu_min, or the camera bound above it)."""
        return self._floor

    @staticmethod
    def _check_budget(budget: float | None) -> float | None:
        if budget is None:
            return None
        budget = _finite("latency_budget", budget)
        if budget <= 0:
            raise ValueError(f"latency_budget must be > 0, got {budget}")
        return budget

    @property
    def latency_budget(self) -> float | None:
        """Seconds a newly admitted frame may expect to wait (None: no backlog guard)."""
        return self._budget

    def step(
        self, now: float, input_len: int, output_len: int, in_flight: int | None = None
    ) -> ControlStep:
        """Alg. 3 with the camera bound measured since the previous step (see the class).

        ``in_flight`` (frames admitted and not answered, fleet-wide) feeds the backlog guard:
        with a ``latency_budget`` and a measured delivery interval d, a step that finds
        ``in_flight x d`` over the budget (Little's law: the wait of a new frame) lowers no mu
        and keeps it at least ``d (1 + zeta)``, so the backlog drains, and ends slow start.
        """
        if not self.due(now):
            return ControlStep(self._value, ControlBranch.NOT_DUE, False)
        self._floor = self._mu_min
        if self._arrivals is not None:
            if not self._arrivals:  # the camera sent nothing: a shorter mu admits nothing more
                self._camera_interval = None
                self._floor = max(self._mu_min, self._value)
            elif self._last is not None:
                self._camera_interval = max(0.0, now - self._last) / self._arrivals
                bound = self._camera_interval / (1.0 + self._params.zeta)
                self._floor = min(self._mu_max, max(self._mu_min, bound))
            self._arrivals = 0
        if self._answers is not None and self._last is not None:
            seconds = max(0.0, now - self._last)
            self._answered = self._answered or self._answers > 0
            if self._answered:  # periods before the first answer say nothing about the rate
                self._periods.append((seconds, self._answers))
                seconds = sum(s for s, _ in self._periods)
                answers = sum(n for _, n in self._periods)
            else:
                answers = 0
            # no answer at all: at most one frame per period is being answered
            self._delivery = seconds / max(1, answers)
        if self._answers is not None:
            self._answers = 0
        old = self._value
        result = super().step(now, input_len, output_len)
        if result.branch not in (ControlBranch.LOW, ControlBranch.NOT_DUE):
            self._slow_start = False  # the queues reached T_Q1: the fleet's rate is found
        # the guard acts from the first answer on: before it, the first frames are still on
        # their way through the fleet, which says nothing about its rate yet
        self.over_budget = bool(
            self._budget is not None and in_flight is not None and self._delivery is not None
            and self._answered and in_flight * self._delivery > self._budget)
        if self.over_budget:
            assert self._delivery is not None
            self._slow_start = False
            # never admit faster on a step over the budget, and slower than the fleet answers
            self._value = min(self._mu_max, max(old, self._value,
                                                self._delivery * (1.0 + self._params.zeta)))
            result = ControlStep(self._value, result.branch, self._value != old)
        return result

    @staticmethod
    def _check_bounds(mu_min: float, mu_max: float) -> tuple[float, float]:
        mu_min, mu_max = _finite("mu_min", mu_min), _finite("mu_max", mu_max)
        if mu_min <= 0:
            raise ValueError(f"mu_min must be > 0, got {mu_min}")
        if mu_max < mu_min:
            raise ValueError(f"mu_max must be >= mu_min (mu_min={mu_min}, mu_max={mu_max})")
        return mu_min, mu_max

    @staticmethod
    def _check_mu(mu: float, mu_min: float, mu_max: float) -> float:
        mu = _finite("mu", mu)
        if not mu_min <= mu <= mu_max:
            raise ValueError(f"mu must be in [mu_min, mu_max] = [{mu_min}, {mu_max}], got {mu}")
        return mu

    @property
    def mu(self) -> float:
        """Seconds between two admitted frames."""
        return self._value

    @property
    def bounds(self) -> tuple[float, float]:
        """``(mu_min, mu_max)``."""
        return self._mu_min, self._mu_max

    def _apply(self, branch: ControlBranch) -> float:
        mu, p = self._value, self._params
        if self._slow_start and branch is ControlBranch.LOW:
            new = max(self._mu_min, mu / 2.0, min(self._value, self._floor))  # rate x 2
            self._halved = self._halved or new < mu
            return new
        if self._slow_start:
            # The queues reached T_Q1: back to the rate before the last doubling (TCP halves
            # its window on congestion), and no faster than the fleet answered frames over
            # the last periods (a start above its rate); Alg. 3 as in the paper from then on.
            mu = 2.0 * mu if self._halved else mu
            if self._delivery is not None:
                mu = max(mu, self._delivery)
            return min(self._mu_max, max(self._mu_min, mu))
        if branch is ControlBranch.LOW:
            mu = mu - p.alpha * mu  # Alg. 3, line 3
        elif branch is ControlBranch.MID:
            mu = mu - p.beta * mu  # Alg. 3, line 5
        else:
            mu = mu + p.zeta * mu  # Alg. 3, line 7
        mu = max(mu, min(self._value, self._floor))  # camera bound: never below it by a decrease
        return min(self._mu_max, max(self._mu_min, mu))

    def set_mu(self, mu: float) -> None:
        """Override mu (e.g. a ROS parameter); must lie within the bounds."""
        self._value = self._check_mu(mu, self._mu_min, self._mu_max)

    def update_params(
        self, *, mu_min: float | None = None, mu_max: float | None = None,
        latency_budget: float | None = None, **changes: float
    ) -> None:
        """Change constants at run time; everything is validated before anything changes.

        If new bounds exclude the current mu, mu is clamped into them. A ``latency_budget``
        replaces the one in force (None keeps it).
        """
        params = self._new_params(changes)
        lo, hi = self._check_bounds(
            self._mu_min if mu_min is None else mu_min,
            self._mu_max if mu_max is None else mu_max,
        )
        budget = self._budget if latency_budget is None else self._check_budget(latency_budget)
        self._budget = budget
        self._set_params(params)
        self._mu_min, self._mu_max = lo, hi
        self._value = min(hi, max(lo, self._value))


class ThresholdController(_PeriodicController):
    """Alg. 4: adapt the early-exit threshold T_e (applied to every exit) to the load.

    When queues are short the threshold rises (better accuracy); when they are long it falls
    so more frames exit early, which is how all arriving traffic can still be served.
    ``T_e`` stays within ``[te_min, 1]``: 1 because max-softmax cannot exceed it (paper),
    ``te_min`` so accuracy cannot collapse under overload.
    """

    def __init__(
        self, te: float = DEFAULT_TE, *, te_min: float = DEFAULT_TE_MIN, **params: float
    ) -> None:
        unknown = set(params) - _PARAM_NAMES
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        super().__init__(QueueControlParams(**params))
        self._te_min = self._check_te_min(te_min)
        self._value = self._check_te(te, self._te_min)

    @staticmethod
    def _check_te_min(te_min: float) -> float:
        te_min = _finite("te_min", te_min)
        if not 0.0 < te_min <= 1.0:
            raise ValueError(f"te_min must be in (0, 1], got {te_min}")
        return te_min

    @staticmethod
    def _check_te(te: float, te_min: float) -> float:
        te = _finite("te", te)
        if not te_min <= te <= 1.0:
            raise ValueError(f"te must be in [te_min, 1] = [{te_min}, 1], got {te}")
        return te

    @property
    def te(self) -> float:
        """The threshold T_e in force for every exit."""
        return self._value

    @property
    def te_min(self) -> float:
        """Lower bound ``T_e^min``."""
        return self._te_min

    def _apply(self, branch: ControlBranch) -> float:
        te, p = self._value, self._params
        if branch is ControlBranch.LOW:
            return min(1.0, te + p.alpha * te)  # Alg. 4, line 3
        if branch is ControlBranch.MID:
            return min(1.0, te + p.beta * te)  # Alg. 4, line 5
        return max(self._te_min, te - p.zeta * te)  # Alg. 4, line 7

    def set_te(self, te: float) -> None:
        """Override T_e (e.g. a ROS parameter); must lie within ``[te_min, 1]``."""
        self._value = self._check_te(te, self._te_min)

    def update_params(self, *, te_min: float | None = None, **changes: float) -> None:
        """Change constants at run time; everything is validated before anything changes.

        Raising ``te_min`` above the current T_e lifts T_e to the new minimum.
        """
        params = self._new_params(changes)
        lo = self._te_min if te_min is None else self._check_te_min(te_min)
        self._set_params(params)
        self._te_min = lo
        self._value = max(lo, self._value)


# -- overload guard (ours, below Alg. 3/4; docs/RELIABILITY.md, "Overload") -------------------

DEFAULT_MAX_QUEUE = 100  # I_n + O_n: ~3x T_Q2, well above where Alg. 3/4 steer the queues
# Share of a frame's deadline that the work queued ahead of it may take: the rest is for its
# own tasks and for Gamma_n being an average (it lags a slowdown).
QUEUE_DELAY_SHARE = 0.5


OVERDUE_PERIOD = 1.0  # s between a source's looks for overdue frames (its timer; the simulator's)


class OverdueAction(enum.Enum):
    """What a source does with a frame past its deadline."""

    READMIT = "readmit"  # queue a new copy under a new data_id, with a new deadline
    EXPIRE = "expire"  # answer it now as expired (counted); no new copy


def has_room(input_len: int, output_len: int, max_queue: int, gamma: float,
             deadline: float) -> bool:
    """May a source queue one more frame (admitted or re-admitted) now?

    Alg. 4 admits every frame and Alg. 3 reacts only once per period, so arrivals beyond
    what the fleet can serve even at ``T_e^min`` (or faster than Alg. 3 backs off) would grow
    ``I_n + O_n`` without end, and every frame would wait longer than its deadline. Below
    both algorithms a source queues a frame only while

    * ``I_n + O_n < max_queue`` (a hard bound on memory and on what neighbours get), and
    * ``(I_n + O_n) * Gamma_n < QUEUE_DELAY_SHARE * deadline``: the work queued ahead of the
      frame, at this worker's measured seconds per task, leaves it time to be answered.

    A frame refused here was never admitted (counted as dropped), so nothing admitted is
    lost. While Alg. 3/4 keep up (I_n + O_n near T_Q2 = 30) neither bound is reached.
    """
    if max_queue < 1:
        raise ValueError(f"max_queue must be >= 1, got {max_queue}")
    if not (math.isfinite(gamma) and gamma >= 0.0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if not deadline > 0.0:
        raise ValueError(f"deadline must be > 0, got {deadline}")
    queued = input_len + output_len
    return queued < max_queue and queued * gamma < QUEUE_DELAY_SHARE * deadline


def overdue_action(readmissions: int, max_readmissions: int, room: bool) -> OverdueAction:
    """Re-admit an overdue frame, or answer it as expired.

    A frame already admitted again ``max_readmissions`` times expires; so does one whose
    source has no room (``has_room``): a new copy would wait behind the very queue that made
    the frame late, and feed the overload. Either way the frame gets exactly one answer.
    """
    if readmissions >= max_readmissions or not room:
        return OverdueAction.EXPIRE
    return OverdueAction.READMIT
