"""The `mdi-exit` command as installed: every subcommand answers --help; bad input exits 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdi_exit_ros.cli import COMMANDS

EXE = shutil.which("mdi-exit", path=str(Path(sys.executable).parent))


def _run(*args: str) -> subprocess.CompletedProcess:
    assert EXE, "the mdi-exit console script is not installed next to this python"
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"bench"}))
def test_every_subcommand_answers_help(name: str) -> None:
    out = _run(name, "--help")
    assert out.returncode == 0, out.stderr
    assert f"mdi-exit {name}" in out.stdout


def test_unknown_command_and_unknown_benchmark_exit_2() -> None:
    out = _run("frobnicate")
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr
    out = _run("bench", "gpu")  # neither a benchmark nor a shipped scenario
    assert out.returncode == 2 and "gpu.yaml: cannot read scenario" in out.stderr
    assert "shipped: full, links, quick" in out.stderr
    out = _run("bench", "--help")
    assert out.returncode == 0 and "mdi-exit bench {wire,cut}" in out.stderr
    assert "mdi-exit bench <scenario>" in out.stderr
