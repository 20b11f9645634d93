"""What a worker does when running a task raises: try again, a bounded number of times.

A task whose inference keeps failing (a corrupt tensor that passed the checks, a device
error) must not be retried forever, nor dropped: after MAX_TASK_FAILURES failures of one
attempt it is given up and answered at once (as an exit with class_id -1), so its source
still gets exactly one answer for the frame.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

MAX_TASK_FAILURES = 3


class TaskFailures:
    """Failures per task attempt, and the decision after each one."""

    def __init__(self, limit: int = MAX_TASK_FAILURES) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._failures: Counter[Hashable] = Counter()

    def failed(self, key: Hashable) -> tuple[int, bool]:
        """Count a failure of `key` (a task attempt): (failures so far, give up?). A task
        given up is forgotten (its answer goes out now)."""
        self._failures[key] += 1
        count = self._failures[key]
        if count < self.limit:
            return count, False
        del self._failures[key]
        return count, True

    def __len__(self) -> int:
        """Attempts with failures that are still being retried."""
        return len(self._failures)
