"""What the core accepts from the wire: worker ids (names that become topics) and neighbour
reports (numbers that steer Alg. 2)."""

from __future__ import annotations

import math

import pytest

from mdi_exit_ros.core import NeighborReport, is_worker_id, report_problem


@pytest.mark.parametrize("name", ["robot1", "R", "fleet_a_robot_10", "r" * 64])
def test_worker_ids(name: str) -> None:
    assert is_worker_id(name)


@pytest.mark.parametrize("name", ["", "1robot", "_robot", "robot-1", "robot/1", "robot 1",
                                  "robot1\n", "r" * 65, "rob\u00f6t", None, 7])
def test_not_worker_ids(name: object) -> None:
    assert not is_worker_id(name)


def report(**fields) -> NeighborReport:
    values = dict(worker="robot2", input_queue=3, output_queue=1, compute_delay=0.02,
                  model_id="m", exit_thresholds=(0.8, 0.9, 0.0), admission_interval=0.05)
    return NeighborReport(**{**values, **fields})


def test_a_sound_report_passes() -> None:
    assert report_problem(report()) is None
    assert report_problem(report(compute_delay=0.0, admission_interval=86_400.0)) is None


@pytest.mark.parametrize("fields,reason", [
    ({"worker": "bad name"}, "valid worker id"),
    ({"compute_delay": math.nan}, "compute_delay"),
    ({"compute_delay": -1e-3}, "compute_delay"),
    ({"compute_delay": math.inf}, "compute_delay"),
    ({"compute_delay": 1e9}, "compute_delay"),
    ({"admission_interval": -0.5}, "admission_interval"),
    ({"admission_interval": math.nan}, "admission_interval"),
    ({"exit_thresholds": (0.5, math.nan)}, "exit thresholds"),
    ({"exit_thresholds": (1.5,)}, "exit thresholds"),
    ({"exit_thresholds": (-0.1,)}, "exit thresholds"),
])
def test_a_report_that_would_mislead_alg2_is_refused(fields, reason: str) -> None:
    problem = report_problem(report(**fields))
    assert problem is not None and reason in problem
