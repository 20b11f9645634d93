"""Whether a worker can run tasks: the one rule behind `WorkerStats.health` and /diagnostics.

A worker that accepts tasks but cannot run them is worse than one that is gone: its
neighbours keep offloading to it. So every stats report says, in words, what is wrong (an
empty string: nothing), and the monitor shows ERROR for it.
"""

from __future__ import annotations

STALL_FACTOR = 10.0  # a queue that has not moved for this many task times is stuck...
MIN_STALL = 10.0  # ...and never less than this many seconds (start-up, a slow first task)


def worker_health(*, active: bool, inference_running: bool, queued: int,
                  since_progress: float, gamma: float, failed_recently: int) -> str:
    """Why this worker cannot run tasks now ('' if it can).

    `since_progress`: seconds since a task last finished here (or since activation);
    `gamma`: Gamma_n, seconds per task; `failed_recently`: tasks given up since the last
    report (answered to their sources as failed).
    """
    if not active:
        return ""  # an inactive worker takes no tasks: nothing to be unhealthy about
    if not inference_running:
        return "inference thread is not running"
    stall = max(MIN_STALL, STALL_FACTOR * gamma)
    if queued > 0 and since_progress > stall:
        return f"{queued} task(s) queued, none finished for {since_progress:.0f} s"
    if failed_recently > 0:
        return f"{failed_recently} task(s) failed for good since the last report"
    return ""
