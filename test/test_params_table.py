"""docs/USAGE.md's parameter table is the one generated from params.py (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdi_exit_ros import params

REPO = Path(__file__).resolve().parents[1]


def test_usage_parameter_table_is_generated_from_the_table() -> None:
    text = (REPO / "docs" / "USAGE.md").read_text()
    assert params.with_table(text) == text, (
        "docs/USAGE.md's parameter table differs from mdi_exit_ros/params.py; run "
        "`python -m mdi_exit_ros.params --write docs/USAGE.md`")


def test_check_command_catches_a_hand_edit(tmp_path: Path) -> None:
    usage = tmp_path / "USAGE.md"
    usage.write_text((REPO / "docs" / "USAGE.md").read_text().replace(
        "| `stats_period` | `1.0` | [0.05, 3600] | all, at once |",
        "| `stats_period` | `1.0` | [0.05, 3600] | all, whenever |"))
    assert params.main(["--check", str(usage)]) == 1
    assert params.main(["--write", str(usage)]) == 0
    assert params.main(["--check", str(usage)]) == 0


@pytest.mark.parametrize("name, given, stored", [
    ("compute_slowdown", 4, 4.0), ("link_delay", 0, 0.0), ("exit_thresholds", [1, 0, 1],
                                                           [1.0, 0.0, 1.0]),
    ("exit_thresholds", __import__("array").array("q", [0, 1]), [0.0, 1.0]),
    ("compute_slowdown", 2.5, 2.5), ("output_queue_threshold", 7, 7), ("alpha", True, True),
    ("exit_threshold", 1, 1.0), ("link_bandwidth", 1000, 1000.0),
])
def test_integers_are_widened_only_for_double_parameters(name: str, given, stored) -> None:
    value = params.widen(params.SPECS[name], given)
    assert value == stored and type(value) is type(stored)


def test_the_table_and_the_names_need_no_ros() -> None:
    """params.py, topics.py and topology.py are pure: launch files, `mdi-exit fleet` and this
    generator use them without rclpy (nodes/ros_params.py holds the rclpy side)."""
    import os
    import subprocess
    import sys

    check = ("import sys, mdi_exit_ros.params, mdi_exit_ros.topics, mdi_exit_ros.topology, "
             "mdi_exit_ros.tools.fleet_spec\n"
             "print(','.join(sorted(m for m in ('rclpy', 'torch', 'numpy') "
             "if m in sys.modules)) or 'clean')")
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
