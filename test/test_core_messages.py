"""What a worker accepts in a peer's Task and a source in a peer's ExitResult (core/messages.py):
the rules the nodes apply before any use of a message."""

from __future__ import annotations

import math

import pytest

from mdi_exit_ros.core import MAX_CLASS_NAME, MAX_TASK_AGE, exit_problem, task_age, task_problem


@pytest.mark.parametrize("thresholds", [(), (0.0, 0.5, 1.0)])
def test_a_sound_task_passes(thresholds: tuple[float, ...]) -> None:
    assert task_problem("robot1", "robot2", thresholds, 3) == ""


@pytest.mark.parametrize("source, sender, thresholds, reason", [
    ("1robot", "robot2", (), "source is not a valid worker id"),
    ("robot1", "robot/2", (), "sender is not a valid worker id"),
    ("", "", (), "source is not a valid worker id"),  # the first bad name is named
    ("robot1", "robot2", (0.5, 0.5), "2 exit thresholds for a model with 3 exits"),
    ("robot1", "robot2", (0.5, 0.5, 0.5, 0.5), "4 exit thresholds for a model with 3 exits"),
    ("robot1", "robot2", (0.5, 1.01, 0.0), "exit thresholds outside [0, 1]"),
    ("robot1", "robot2", (-0.01, 0.5, 0.0), "exit thresholds outside [0, 1]"),
    ("robot1", "robot2", (math.nan, 0.5, 0.0), "exit thresholds outside [0, 1]"),
])
def test_a_task_is_refused_with_its_reason(source: str, sender: str,
                                           thresholds: tuple[float, ...], reason: str) -> None:
    assert task_problem(source, sender, thresholds, 3) == reason


def exit_fields(**changes: object) -> dict:
    fields = dict(exit_index=2, class_id=9, num_logits=10, confidence=0.7, worker="robot3",
                  class_name="ankle boot", num_exits=3, num_classes=10)
    return {**fields, **changes}


@pytest.mark.parametrize("changes", [
    {}, {"exit_index": 1}, {"exit_index": 3}, {"class_id": 0}, {"class_id": -1},
    {"num_logits": 0}, {"confidence": 0.0}, {"confidence": 1.0},
    {"class_name": "x" * MAX_CLASS_NAME}, {"class_name": ""},
])
def test_a_sound_exit_passes(changes: dict) -> None:
    assert exit_problem(**exit_fields(**changes)) is None


@pytest.mark.parametrize("changes, reason", [
    ({"exit_index": 0}, "exit_index 0 of a model with 3 exits"),
    ({"exit_index": 4}, "exit_index 4 of a model with 3 exits"),
    ({"class_id": 10}, "class_id 10 of a model with 10 classes"),
    ({"class_id": -2}, "class_id -2 of a model with 10 classes"),
    ({"num_logits": 9}, "9 logits for 10 classes"),
    ({"num_logits": 11}, "11 logits for 10 classes"),
    ({"confidence": 1.5}, "confidence 1.5"),
    ({"confidence": -0.1}, "confidence -0.1"),
    ({"confidence": math.nan}, "confidence nan"),
    ({"worker": "robot 3"}, "worker or class_name malformed"),
    ({"class_name": "x" * (MAX_CLASS_NAME + 1)}, "worker or class_name malformed"),
])
def test_an_exit_is_refused_with_its_reason(changes: dict, reason: str) -> None:
    assert exit_problem(**exit_fields(**changes)) == reason


def test_an_exit_is_checked_in_order() -> None:
    """Several faults: the first rule that fails names the message's problem."""
    assert exit_problem(**exit_fields(exit_index=0, class_id=99)).startswith("exit_index")
    assert exit_problem(**exit_fields(class_id=99, num_logits=3)).startswith("class_id")


@pytest.mark.parametrize("seconds, age", [
    (0.0, 0.0), (1.5, 1.5), (-3.0, 0.0), (MAX_TASK_AGE, MAX_TASK_AGE),
    (MAX_TASK_AGE + 1.0, MAX_TASK_AGE), (1e12, MAX_TASK_AGE),
])
def test_a_task_age_is_clamped_to_a_day(seconds: float, age: float) -> None:
    assert task_age(seconds) == age
    assert MAX_TASK_AGE == 86_400.0
