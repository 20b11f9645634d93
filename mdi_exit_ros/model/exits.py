"""Offline analysis of the exit rule: accuracy, exit fractions and compute vs threshold.

The paper's rule (Sec. III, eq. 2): exit at task k if max softmax C_k > T_k;
the last exit always answers.  Given every exit's confidence and prediction
for a data set (one forward pass), any threshold can be simulated exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_GRID = tuple(
    [round(0.05 * i, 2) for i in range(4, 18)]
    + [0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0]
)


@dataclass
class ExitOutputs:
    """Per image and exit: max-softmax confidence and predicted class; true labels."""

    confidence: np.ndarray  # (N, K) float
    prediction: np.ndarray  # (N, K) int
    labels: np.ndarray  # (N,)

    @property
    def num_exits(self) -> int:
        return int(self.confidence.shape[1])

    def exit_accuracy(self) -> list[float]:
        """Accuracy of each exit on its own (every image forced through it)."""
        return [float((self.prediction[:, k] == self.labels).mean()) for k in range(self.num_exits)]


@torch.no_grad()
def collect_exit_outputs(model, images: torch.Tensor, labels: torch.Tensor,
                         batch_size: int = 500, progress=None) -> ExitOutputs:
    """One forward pass of all exits over uint8 (N, C, H, W) images."""
    model.eval()
    spec = model.input_spec
    confs, preds = [], []
    rng = range(0, images.shape[0], batch_size)
    for i in progress(rng) if progress else rng:
        x = spec.normalize(images[i:i + batch_size])
        outs = model(x)
        probs = torch.stack([o.float().softmax(dim=1) for o in outs], dim=1)  # (B, K, C)
        c, p = probs.max(dim=2)
        confs.append(c.numpy())
        preds.append(p.numpy())
    return ExitOutputs(np.concatenate(confs), np.concatenate(preds), labels.numpy().copy())


@dataclass
class ExitPolicyResult:
    threshold: list[float]
    accuracy: float
    exit_fraction: list[float]
    avg_flops: float


def simulate(out: ExitOutputs, thresholds: Sequence[float] | float,
             exit_flops: Sequence[float]) -> ExitPolicyResult:
    """Apply the rule with per-exit thresholds (the last one is ignored: it always exits)."""
    k = out.num_exits
    if isinstance(thresholds, int | float):
        thresholds = [float(thresholds)] * k
    n = out.labels.shape[0]
    exit_at = np.full(n, k - 1)
    undecided = np.ones(n, dtype=bool)
    for j in range(k - 1):
        take = undecided & (out.confidence[:, j] > thresholds[j])
        exit_at[take] = j
        undecided &= ~take
    pred = out.prediction[np.arange(n), exit_at]
    frac = np.bincount(exit_at, minlength=k) / max(n, 1)
    return ExitPolicyResult(
        threshold=[float(t) for t in thresholds],
        accuracy=float((pred == out.labels).mean()) if n else 0.0,
        exit_fraction=[float(f) for f in frac],
        avg_flops=float(np.dot(frac, np.asarray(exit_flops, dtype=float))),
    )


def sweep(out: ExitOutputs, exit_flops: Sequence[float],
          grid: Sequence[float] = DEFAULT_GRID) -> list[ExitPolicyResult]:
    """One shared threshold T for all exits (as Alg. 4 sets T_e^k <- T_e), per grid value."""
    return [simulate(out, t, exit_flops) for t in grid]


def calibrate(out: ExitOutputs, exit_flops: Sequence[float], max_drop: float,
              grid: Sequence[float] = DEFAULT_GRID) -> ExitPolicyResult:
    """Lowest shared threshold whose accuracy is within ``max_drop`` points of the
    final exit's own accuracy (falls back to T = 1.0: never exit early)."""
    final = out.exit_accuracy()[-1]
    for r in sweep(out, exit_flops, sorted(grid)):
        if r.accuracy >= final - max_drop / 100.0 - 1e-12:
            return r
    return simulate(out, 1.0, exit_flops)
