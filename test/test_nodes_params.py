"""Parameter validation of the worker and source, and the docs that describe them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mdi_exit_ros.nodes.ros_params import descriptor
from mdi_exit_ros.params import (
    SPECS,
    UNSET,
    WORKER_PARAMS,
    allowed_neighbors,
    check,
    threshold_source_of,
)

REPO = Path(__file__).resolve().parents[1]
CURRENT = {s.name: None if s.default in UNSET else s.default for s in WORKER_PARAMS}


@pytest.mark.parametrize("name, value, reason", [
    ("admission_mode", "fast", "admission_mode must be one of rate, threshold"),
    ("confidence", "margin", "confidence must be one of"),
    ("exit_thresholds", [0.5, 1.5], "must all lie in \\[0, 1\\]"),
    ("neighbors", [], "neighbors must be"),
    ("neighbors", ["robot2", ""], "neighbors must be"),
    ("neighbors", ["robot2", "*"], "neighbors must be"),
    ("neighbors", ["-", "robot2"], "neighbors must be"),
    ("queue_thresholds", [30, 10], "T_Q1 <= T_Q2"),
    ("queue_thresholds", [10], "T_Q1 <= T_Q2"),
    ("alpha", 0.05, "alpha must be greater than beta"),
    ("beta", 0.3, "alpha must be greater than beta"),
    ("zeta", 1.0, "zeta must lie strictly between 0 and 1"),
    ("min_interval", 20.0, "must not exceed max_interval"),
    ("exit_threshold", float("nan"), "must be finite"),
    ("link_delay", float("inf"), "must be finite"),
    ("threshold_source", "file", "threshold_source must be one of checkpoint, exit_threshold"),
    ("threshold_source", "exit_threshold", "needs exit_threshold set"),
    ("threshold_source", "exit_thresholds", "needs exit_thresholds set"),
])
def test_bad_values_are_refused_with_a_reason(name: str, value, reason: str) -> None:
    found = check(name, value, CURRENT)
    assert found is not None
    assert __import__("re").search(reason, found), found


@pytest.mark.parametrize("name, value", [
    ("admission_mode", "threshold"), ("exit_thresholds", [0.0, 0.5, 1.0]),
    ("neighbors", ["*"]), ("neighbors", ["-"]), ("neighbors", ["robot2"]),
    ("queue_thresholds", [10, 10]),
    ("alpha", 0.5), ("beta", 0.15), ("max_interval", 1.0), ("exit_threshold", 0.0),
    ("link_bandwidth", float("inf")), ("threshold_source", "checkpoint"),
])
def test_good_values_pass(name: str, value) -> None:
    assert check(name, value, CURRENT) is None


def test_no_value_in_a_range_has_a_special_meaning() -> None:
    """What used to be a sentinel (-1, 0) is outside the range now; its meaning is a setting
    of its own (threshold_source, an unset seed, an infinite bandwidth)."""
    def span(name: str):  # noqa: ANN202
        d = descriptor(SPECS[name])
        r = (d.floating_point_range or d.integer_range)[0]
        return r.from_value, r.to_value

    assert span("exit_threshold") == (0.0, 1.0) and SPECS["exit_threshold"].default in UNSET
    assert span("seed")[0] == 0 and SPECS["seed"].default in UNSET
    assert span("link_bandwidth") == (1.0, float("inf"))
    assert SPECS["link_bandwidth"].default == float("inf")
    assert SPECS["threshold_source"].default == "checkpoint"
    assert "worker_id" not in SPECS  # the namespace's last part is the worker id


def test_setting_a_threshold_puts_it_in_force() -> None:
    assert threshold_source_of({"exit_threshold"}) == "exit_threshold"
    assert threshold_source_of({"exit_thresholds", "exit_threshold"}) == "exit_thresholds"
    assert threshold_source_of({"alpha"}) is None
    assert check("threshold_source", "exit_threshold", {**CURRENT, "exit_threshold": 0.5}) \
        is None


def test_descriptors_carry_ranges_and_read_only() -> None:
    assert descriptor(SPECS["alpha"]).floating_point_range[0].to_value == 1.0
    assert descriptor(SPECS["output_queue_threshold"]).integer_range[0].from_value == 0
    assert descriptor(SPECS["fleet"]).read_only
    assert "one of: rate, threshold" in descriptor(SPECS["admission_mode"]).description


def test_params_yaml_holds_valid_paper_defaults() -> None:
    data = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) <= set(SPECS), set(values) - set(SPECS)
    for name, value in values.items():
        assert check(name, value, CURRENT) is None, name
    paper = {"output_queue_threshold": 50, "queue_thresholds": [10, 30], "alpha": 0.2,
             "beta": 0.1, "zeta": 0.2}
    assert {k: values[k] for k in paper} == paper


def test_usage_documents_every_parameter() -> None:
    usage = (REPO / "docs" / "USAGE.md").read_text()
    missing = [s.name for s in WORKER_PARAMS if f"`{s.name}`" not in usage]
    assert not missing, f"docs/USAGE.md does not describe {missing}"


def test_what_a_neighbors_value_means() -> None:
    assert allowed_neighbors(["*"]) is None  # any discovered worker
    assert allowed_neighbors(["-"]) == []  # none
    assert allowed_neighbors(["robot2", "robot3"]) == ["robot2", "robot3"]
