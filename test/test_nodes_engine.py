"""The per-task wire contract of a worker's Engine (real torch, the shipped model): every task
input a real sender produces passes, anything else is refused by its fields, before decoding."""

from __future__ import annotations

import array

import numpy as np
import pytest
import torch

from mdi_exit_ros.msg import Tensor
from mdi_exit_ros.nodes.engine import Engine
from mdi_exit_ros.wire import TensorLimits


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("fmnist_cnn_ee")


def task_inputs(engine: Engine) -> dict[int, Tensor]:
    """Task k's input exactly as a sender encodes it, from a real frame through the model."""
    x = engine.preprocess(np.random.default_rng(0).integers(0, 256, (28, 28, 1), np.uint8))
    out = {}
    with torch.no_grad():
        for k in range(1, engine.num_exits + 1):
            out[k] = engine.to_wire(k, x)
            if k < engine.num_exits:
                feats, _ = engine.model.run_task(k, x if k == 1 else engine.model.decode(k - 1, x))
                x = engine.model.encode(k, feats).contiguous()
    return out


def test_real_task_inputs_meet_their_contract(engine: Engine) -> None:
    limits = TensorLimits()
    inputs = task_inputs(engine)
    assert set(engine.contracts) == set(range(1, engine.num_exits + 1))
    assert engine.contracts[1].shape == (1, 1, 28, 28)
    for k, msg in inputs.items():
        assert engine.check_wire(k, msg, limits) == "", k
    # a cut's features are not another task's input
    assert "shape" in engine.check_wire(1, inputs[2], limits)
    assert "shape" in engine.check_wire(2, inputs[1], limits)


def test_a_huge_tensor_is_refused_by_its_shape_before_anything_is_decoded(engine) -> None:
    msg = task_inputs(engine)[1]
    msg.shape.dims, msg.shape.rank = [1, 1, 4096, 4096], 4  # 64 MiB claimed, 3 KiB sent
    assert engine.check_wire(1, msg, TensorLimits()) == \
        "shape [1, 1, 4096, 4096] for task 1, expected [1, 1, 28, 28]"


@pytest.mark.parametrize("change,reason", [
    (lambda m: setattr(m, "data_type", Tensor.FLOAT64), "data_type 10"),
    (lambda m: setattr(m, "encoding", "fp16"), "encoding 'fp16'"),
    (lambda m: setattr(m, "data", array.array("B", bytes(m.data)[:-4])), "bytes"),
    (lambda m: setattr(m.shape, "rank", 3), "rank"),
    (lambda m: setattr(m, "strides", [1, 2, 3, 4]), "strides"),
])
def test_a_tensor_that_breaks_the_contract_is_refused(engine, change, reason) -> None:
    msg = task_inputs(engine)[1]
    change(msg)
    problem = engine.check_wire(1, msg, TensorLimits())
    assert reason in problem, problem
