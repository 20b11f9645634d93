"""Clocks injected into the core so that every time-dependent decision is testable.

Nothing in :mod:`mdi_exit_ros.core` reads wall-clock time on its own: functions take an
explicit ``now`` (seconds, float) and long-lived objects are driven by their caller. A ROS
node passes ``MonotonicClock().now()`` (or its ROS clock); tests and the simulator use
:class:`ManualClock` so that timeouts, leases and control periods are deterministic.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` seconds on a monotonic time line."""

    def now(self) -> float:
        """Current time in seconds; only differences between two calls are meaningful."""
        ...


class MonotonicClock:
    """The default real clock: ``time.monotonic`` never jumps when NTP adjusts wall time."""

    def now(self) -> float:
        """Seconds since an arbitrary fixed point."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to, for tests and discrete-event simulation."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        """The current manual time."""
        return self._t

    def advance(self, dt: float) -> float:
        """Move time forward by ``dt`` >= 0 seconds; returns the new time.

        Moving backwards is refused because leases, timeouts and control periods all
        assume a monotonic clock.
        """
        if dt < 0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        self._t += dt
        return self._t

    def set(self, t: float) -> None:
        """Jump to absolute time ``t`` (not earlier than the current time)."""
        if t < self._t:
            raise ValueError(f"time cannot go backwards: {t} < {self._t}")
        self._t = float(t)
