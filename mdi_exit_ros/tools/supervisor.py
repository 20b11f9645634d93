"""The fleet's child processes: one node each, started with its own log, stopped by PID.

Built on tools.procs (a session of its own per child, `python -P -m`); `mdi-exit fleet` and
`mdi-exit soak` start, watch and stop their nodes through here.
"""

from __future__ import annotations

import ctypes
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mdi_exit_ros.tools import fleet_spec
from mdi_exit_ros.tools.fleet_spec import NodeSpec
from mdi_exit_ros.tools.procs import module_command, spawn_module

CLEAN_CODES = (0, -signal.SIGINT, 128 + signal.SIGINT)  # stopped by our SIGINT


def child_command(spec: NodeSpec, params_file: Path | None) -> tuple[str, list[str]]:
    """(module, arguments) that start `spec` as `python -P -m module arguments`; only the
    lifecycle nodes (worker, source) get the params file."""
    return spec.module, fleet_spec.ros_arguments(spec, params_file if spec.lifecycle else None)


def _die_with_parent() -> None:
    """In the child: get SIGINT if the fleet dies (its own session hides the terminal's)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    """One started node: its spec, process and log."""

    spec: NodeSpec
    proc: subprocess.Popen
    log_path: Path
    log: IO[bytes]
    command: list[str]

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + line for line in text[-lines:])


def start_child(spec: NodeSpec, params_file: Path | None, log_dir: Path,
                restart: int = 0) -> Child:
    """Start one node; a restart appends to the same log (one log per node, whatever died)."""
    module, args = child_command(spec, params_file)
    command = module_command(module, args)
    log_path = log_dir / f"{spec.label}.log"
    log = open(log_path, "ab" if restart else "wb")  # noqa: SIM115 (closed in Fleet.close)
    if restart:
        log.write(f"\n--- [fleet] restart {restart}\n".encode())
    log.write(f"$ {shlex.join(command)}\n".encode())
    log.flush()
    env = {"PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    proc = spawn_module(module, args, env=env, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, preexec_fn=preexec)
    return Child(spec, proc, log_path, log, command)


def stop_children(children: list[Child], timeout: float) -> list[str]:
    """SIGINT, wait (bounded), SIGKILL; returns what did not stop cleanly."""
    problems = []
    for c in children:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGINT)
    for c in children:
        try:
            c.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait(timeout=10)
            problems.append(f"{c.spec.full_name} did not end within "
                            f"{timeout:g} s of SIGINT and was killed")
            continue
        if c.proc.returncode not in CLEAN_CODES:
            problems.append(f"{c.spec.full_name} exited with code {c.proc.returncode}; "
                            f"log {c.log_path}")
    return problems
