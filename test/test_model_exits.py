"""Early exit really skips work; the offline exit-rule simulation and calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdi_exit_ros.model import ModuleRunCounter, build_model
from mdi_exit_ros.model.exits import ExitOutputs, calibrate, simulate, sweep

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("name", "kw"), [("fmnist_cnn_ee", {}), ("mobilenet_v2_ee", {"input_size": 32})]
)
def test_task_runs_only_its_own_modules(name, kw):
    m = build_model(name, **kw).eval()
    spec = m.input_spec
    x = torch.randn(1, spec.channels, spec.size, spec.size)
    with torch.no_grad(), ModuleRunCounter(m) as c:
        m.run_task(1, x)
    ran = c.ran()
    assert ran and all(n.startswith(("stages.0.", "heads.0.")) for n in ran)
    assert c.ran("stages.0") and c.ran("heads.0")
    for k in range(1, m.num_exits):
        assert not c.ran(f"stages.{k}.") and not c.ran(f"heads.{k}.")


def test_infer_early_exit_stops_confident_samples():
    torch.manual_seed(0)
    m = build_model("fmnist_cnn_ee").eval()
    with torch.no_grad():  # make exit 1 certain about class 3
        lin = m.heads[0][-1]
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([0.0] * 3 + [100.0] + [0.0] * 6))
    x = torch.randn(4, 1, 28, 28)
    with ModuleRunCounter(m) as c:
        pred, exits, conf = m.infer_early_exit(x, [0.9, 0.9, 0.0])
    assert exits.tolist() == [1, 1, 1, 1] and pred.tolist() == [3] * 4
    assert bool((conf > 0.99).all())
    assert not c.ran("stages.1") and not c.ran("stages.2")  # the rest was skipped
    pred, exits, _ = m.infer_early_exit(x, [1.0, 1.0, 0.0])  # never confident enough
    assert exits.tolist() == [3, 3, 3, 3]
    with torch.no_grad():
        assert pred.tolist() == m(x)[-1].argmax(1).tolist()


def _outputs():
    # 4 images, 2 exits. exit 1 is right on images 0,1 (confident on 0 only)
    conf = np.array([[0.95, 0.9], [0.6, 0.9], [0.97, 0.9], [0.5, 0.9]])
    pred = np.array([[1, 1], [2, 2], [0, 3], [1, 4]])
    labels = np.array([1, 2, 3, 4])
    return ExitOutputs(conf, pred, labels)


def test_simulate_and_sweep():
    out = _outputs()
    assert out.exit_accuracy() == [0.5, 1.0]
    r = simulate(out, 0.9, [10, 30])
    assert r.exit_fraction == [0.5, 0.5]  # images 0 and 2 exit early
    assert r.accuracy == 0.75  # image 2 exits early and wrong
    assert r.avg_flops == 20
    assert simulate(out, 1.0, [10, 30]).accuracy == 1.0
    assert simulate(out, 0.0, [10, 30]).exit_fraction == [1.0, 0.0]
    rows = sweep(out, [10, 30], [0.4, 0.96, 0.99])
    assert [r.accuracy for r in rows] == [0.5, 0.75, 1.0]


def test_calibrate_picks_lowest_threshold_within_drop():
    out = _outputs()
    assert calibrate(out, [10, 30], 30.0, grid=[0.3, 0.96, 0.99]).threshold[0] == 0.96
    assert calibrate(out, [10, 30], 0.0, grid=[0.3, 0.96, 0.99]).threshold[0] == 0.99
    assert calibrate(out, [10, 30], 0.0, grid=[0.3]).threshold[0] == 1.0  # fallback
