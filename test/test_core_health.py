"""core.health: when a worker says it cannot run tasks."""

from __future__ import annotations

from mdi_exit_ros.core.health import MIN_STALL, STALL_FACTOR, worker_health

OK = dict(active=True, inference_running=True, queued=3, since_progress=1.0, gamma=0.05,
          failed_recently=0)


def test_a_working_worker_is_healthy() -> None:
    assert worker_health(**OK) == ""
    assert worker_health(**{**OK, "queued": 0, "since_progress": 1e6}) == ""  # idle, not stuck


def test_an_inactive_worker_is_not_unhealthy() -> None:
    assert worker_health(**{**OK, "active": False, "inference_running": False}) == ""


def test_a_dead_inference_thread() -> None:
    assert worker_health(**{**OK, "inference_running": False}) == \
        "inference thread is not running"


def test_a_queue_that_does_not_move() -> None:
    assert worker_health(**{**OK, "since_progress": MIN_STALL}) == ""
    assert worker_health(**{**OK, "since_progress": MIN_STALL + 0.5}) == \
        "3 task(s) queued, none finished for 10 s"
    slow = {**OK, "gamma": 3.0}  # a slow device: ten of its task times, not 10 s
    assert worker_health(**{**slow, "since_progress": STALL_FACTOR * 3.0}) == ""
    assert worker_health(**{**slow, "since_progress": STALL_FACTOR * 3.0 + 1}) != ""


def test_tasks_that_failed_for_good() -> None:
    assert worker_health(**{**OK, "failed_recently": 2}) == \
        "2 task(s) failed for good since the last report"
