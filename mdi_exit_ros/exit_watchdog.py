"""A bound on how long a ROS process may take to exit once it has released everything.

What is left then is the process's own DDS teardown and the interpreter's exit. Both hung
once in a bench run (a node's process that had logged its release stayed up for 30 s; a
fleet whose robots had all ended never printed its summary), unexplained. Armed, a
watchdog thread writes every thread's stack to stderr (the process's log) and exits the
process with 1 after `seconds`: the hang is bounded, visible in the exit code, and its
stacks say where it was.
"""

from __future__ import annotations

import faulthandler

EXIT_WATCHDOG = 20.0  # s: DDS teardown takes well under a second when it works


def arm(seconds: float = EXIT_WATCHDOG) -> None:
    """Exit with 1, stacks on stderr, unless the process has exited within `seconds`."""
    faulthandler.dump_traceback_later(seconds, exit=True)
