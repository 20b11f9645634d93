"""Early exit really skips work; the offline exit-rule simulation and calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdi_exit_ros.model import ModuleRunCounter, build_model
from mdi_exit_ros.model.exits import (
    PER_EXIT_GRID,
    ExitOutputs,
    calibrate,
    calibrate_per_exit,
    collect_exit_outputs,
    simulate,
    sweep,
)

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


def _weak_first_exit(n: int = 2000, seed: int = 0) -> ExitOutputs:
    """Exit 1 weak but honest (confident when right); exits 2 and 3 equally good, exit 2
    never confident (max softmax < 0.7). A shared T high enough for exit 1 lets nothing out
    at exit 2; per exit, T_2 = 0 moves everyone there for free."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    right1 = rng.random(n) < 0.6
    right2 = rng.random(n) < 0.9
    pred = np.stack([np.where(right1, labels, (labels + 1) % 10),
                     np.where(right2, labels, (labels + 2) % 10),
                     np.where(right2, labels, (labels + 2) % 10)], axis=1)
    conf = np.stack([np.where(right1, rng.uniform(0.6, 1.0, n), rng.uniform(0.2, 0.8, n)),
                     rng.uniform(0.3, 0.7, n), rng.uniform(0.5, 1.0, n)], axis=1)
    return ExitOutputs(conf, pred, labels)


def test_per_exit_calibration_meets_budget_and_beats_shared_t():
    out, flops, drop = _weak_first_exit(), [10.0, 20.0, 30.0], 1.0
    per_exit = calibrate_per_exit(out, flops, drop)
    final = out.exit_accuracy()[-1]
    assert per_exit.accuracy >= final - drop / 100
    assert per_exit.threshold[-1] == 0.0 and all(0 <= t <= 1 for t in per_exit.threshold)
    assert per_exit.threshold[1] <= 0.3 and per_exit.exit_fraction[2] == 0.0  # exit 2 open
    assert simulate(out, per_exit.threshold, flops) == per_exit  # what it reports is real
    shared = calibrate(out, flops, drop, grid=PER_EXIT_GRID)  # the best shared T, fine grid
    assert shared.accuracy >= final - drop / 100
    assert per_exit.avg_flops < 0.8 * shared.avg_flops
    # close to the exhaustive optimum over the same grid
    best = min(r.avg_flops for t1 in PER_EXIT_GRID for t2 in PER_EXIT_GRID[::4]
               if (r := simulate(out, [t1, t2, 0.0], flops)).accuracy >= final - drop / 100)
    assert per_exit.avg_flops <= best * 1.01


def test_per_exit_calibration_on_a_real_model():
    torch.manual_seed(0)
    model = build_model("fmnist_cnn_ee", width=8).eval()
    images = torch.randint(0, 256, (400, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        final = model(model.input_spec.normalize(images))[-1].argmax(1)
    labels = torch.where(torch.arange(400) < 320, final, (final + 1) % 10)  # final: 80 %
    out = collect_exit_outputs(model, images, labels, batch_size=128)
    flops = model.profile().exit_flops()
    assert out.exit_accuracy()[-1] == pytest.approx(0.8)
    for drop in (0.0, 2.0, 10.0):
        per_exit = calibrate_per_exit(out, flops, drop)
        shared = calibrate(out, flops, drop)
        assert per_exit.accuracy >= 0.8 - drop / 100 - 1e-9
        assert per_exit.avg_flops <= shared.avg_flops
    assert calibrate_per_exit(out, flops, 100.0).exit_fraction[0] == 1.0  # no budget: exit 1


@pytest.mark.parametrize("drop", [-0.5, float("nan"), float("inf")])
def test_per_exit_calibration_refuses_a_bad_budget(drop):
    with pytest.raises(ValueError, match="max_drop must be"):
        calibrate_per_exit(_outputs(), [10, 30], drop)


def test_per_exit_calibration_refuses_flops_of_another_model():
    with pytest.raises(ValueError, match="3 exit FLOPs for 2 exits"):
        calibrate_per_exit(_outputs(), [10, 20, 30], 1.0)
