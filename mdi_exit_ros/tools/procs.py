"""Starting this package's modules as child processes, the way `ros2 launch` would.

Children run with `python -P -m <module>`: `-P` keeps the current directory off sys.path, so
a source checkout in the working directory cannot shadow the installed package (which holds
the generated messages). Each child gets a session of its own, so a terminal's SIGINT reaches
only the parent, which forwards it (as `ros2 launch` does) and waits, bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence


def module_command(module: str, args: Sequence[str] = ()) -> list[str]:
    """The command line that runs `module` with this interpreter."""
    return [sys.executable, "-P", "-m", module, *args]


def spawn_module(module: str, args: Sequence[str] = (), env: dict[str, str] | None = None,
                 **popen: object) -> subprocess.Popen:
    """Start `module` in a new session with this environment plus `env`."""
    return subprocess.Popen(module_command(module, args), start_new_session=True,
                            env={**os.environ, **(env or {})}, **popen)  # type: ignore[arg-type]


def stop_all(procs: Iterable[subprocess.Popen], timeout: float = 10.0) -> list[int | None]:
    """SIGINT every child still running, then SIGKILL what has not ended after `timeout`."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait(timeout=timeout))
    return codes
