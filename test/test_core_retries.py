"""A task whose inference raises is tried again, a bounded number of times (core/retries.py)."""

from __future__ import annotations

import pytest

from mdi_exit_ros.core import MAX_TASK_FAILURES, TaskFailures


def test_a_task_is_retried_until_the_limit_then_given_up_and_forgotten() -> None:
    failures = TaskFailures()
    assert failures.limit == MAX_TASK_FAILURES == 3
    assert failures.failed(("a", 1)) == (1, False)
    assert failures.failed(("a", 1)) == (2, False)
    assert len(failures) == 1
    assert failures.failed(("a", 1)) == (3, True)
    assert len(failures) == 0  # given up: its answer goes out, nothing is kept
    assert failures.failed(("a", 1)) == (1, False)  # counted afresh if it ever comes back


def test_attempts_count_separately() -> None:
    failures = TaskFailures(limit=2)
    assert failures.failed(("a", 1)) == (1, False)
    assert failures.failed(("a", 2)) == (1, False)  # a new attempt of the same task
    assert failures.failed(("b", 1)) == (1, False)
    assert failures.failed(("a", 1)) == (2, True)
    assert len(failures) == 2


def test_a_limit_of_one_gives_up_at_the_first_failure() -> None:
    assert TaskFailures(limit=1).failed("k") == (1, True)


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        TaskFailures(limit=limit)
