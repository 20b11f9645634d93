"""Offline analysis of the exit rule: accuracy, exit fractions and compute vs threshold.

The paper's rule (Sec. III, eq. 2): exit at task k if max softmax C_k > T_k;
the last exit always answers.  Given every exit's confidence and prediction
for a data set (one forward pass), any threshold can be simulated exactly, so
thresholds can be chosen offline: one shared T (:func:`calibrate`) or one T_k per
exit (:func:`calibrate_per_exit`), both for a budget of accuracy points lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .device import autocast

DEFAULT_GRID = tuple(
    [round(0.05 * i, 2) for i in range(4, 18)]
    + [0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0]
)
# Candidate T_k of the per-exit search: 0 (everything reaching exit k leaves there), steps
# of 0.01, then finer near 1 where confident exits crowd, and 1 (exit k never answers).
PER_EXIT_GRID = tuple(sorted(
    {round(0.01 * i, 2) for i in range(100)}
    | {round(0.99 + 0.001 * i, 3) for i in range(1, 10)}
    | {0.9995, 0.9999, 1.0}
))


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
                         batch_size: int = 500, progress=None,
                         fp16: bool = False) -> ExitOutputs:
    """One forward pass of all exits over uint8 (N, C, H, W) images, on the model's
    device (``fp16``: autocast there, CUDA only)."""
    model.eval()
    spec = model.input_spec
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    confs, preds = [], []
    rng = range(0, images.shape[0], batch_size)
    for i in progress(rng) if progress else rng:
        x = spec.normalize(images[i:i + batch_size].to(device))
        with autocast(device, fp16):
            outs = model(x)
        probs = torch.stack([o.float().softmax(dim=1) for o in outs], dim=1)  # (B, K, C)
        c, p = probs.max(dim=2)
        confs.append(c.cpu().numpy())
        preds.append(p.cpu().numpy())
    return ExitOutputs(np.concatenate(confs), np.concatenate(preds), labels.numpy().copy())


@dataclass
class ExitPolicyResult:
    threshold: list[float]
    accuracy: float
    exit_fraction: list[float]
    avg_flops: float


def _exit_at(confidence: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """0-based exit of every image under the rule (the last exit takes the rest)."""
    n, k = confidence.shape
    exit_at = np.full(n, k - 1)
    undecided = np.ones(n, dtype=bool)
    for j in range(k - 1):
        take = undecided & (confidence[:, j] > thresholds[j])
        exit_at[take] = j
        undecided &= ~take
    return exit_at


def simulate(out: ExitOutputs, thresholds: Sequence[float] | float,
             exit_flops: Sequence[float]) -> ExitPolicyResult:
    """Apply the rule with per-exit thresholds (the last one is ignored: it always exits)."""
    k = out.num_exits
    if isinstance(thresholds, int | float):
        thresholds = [float(thresholds)] * k
    n = out.labels.shape[0]
    exit_at = _exit_at(out.confidence, thresholds)
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


def _key(r: ExitPolicyResult) -> tuple[float, float]:
    """Order of preference among feasible policies: less compute, then more accuracy."""
    return (r.avg_flops, -r.accuracy)


def calibrate_per_exit(out: ExitOutputs, exit_flops: Sequence[float], max_drop: float,
                       grid: Sequence[float] = PER_EXIT_GRID,
                       max_rounds: int = 20) -> ExitPolicyResult:
    """One threshold per exit minimising the average FLOPs on ``out`` while its accuracy
    stays within ``max_drop`` points of the final exit's.

    A shared T wastes compute when exits differ (e.g. a weak exit 1 and exits 2..K all as
    good as the last: T_2 = 0 is then nearly free). Search, all on ``out``:

    1. greedy, from "never exit early" (every T_k = 1, the final exit's accuracy): move
       one exit's threshold down to the next grid value that changes which images leave
       there, picking the move that saves the most FLOPs per accuracy point lost (a move
       that loses nothing first), while the budget holds;
    2. coordinate descent from the greedy answer and from the best shared T
       (:func:`calibrate` on the same grid): set each T_k in turn to the grid value with the
       least compute within budget, until a round changes nothing.

    The cheapest feasible answer wins, so it never costs more than the best shared T on
    ``out``. The last threshold is 0 (the last exit always answers).
    """
    if not math.isfinite(max_drop) or max_drop < 0:
        raise ValueError(f"max_drop must be a finite number of points >= 0, got {max_drop}")
    k = out.num_exits
    if len(exit_flops) != k:
        raise ValueError(f"{len(exit_flops)} exit FLOPs for {k} exits")
    values = np.unique(np.clip(np.asarray(list(grid) + [0.0, 1.0], dtype=float), 0.0, 1.0))
    floor = out.exit_accuracy()[-1] - max_drop / 100.0 - 1e-12

    def run(ts: list[float]) -> ExitPolicyResult:
        return simulate(out, ts[:-1] + [0.0], exit_flops)

    best = run([1.0] * k)  # never exit early: exactly the final exit, always feasible
    # 1. greedy descent
    ts = [1.0] * k
    current = best
    while True:
        exit_at = _exit_at(out.confidence, ts)
        moves = []
        for j in range(k - 1):
            reach = exit_at >= j
            stay = out.confidence[reach, j]
            stay = stay[stay <= ts[j]]
            if stay.size == 0:
                continue
            lower = values[values < stay.max()]  # the top one of these lets >= 1 image out
            if lower.size == 0:
                continue
            trial = list(ts)
            trial[j] = float(lower[-1])
            r = run(trial)
            saved, lost = current.avg_flops - r.avg_flops, current.accuracy - r.accuracy
            if r.accuracy >= floor and saved > 0:
                moves.append(((lost <= 0, saved / max(lost, 1e-12)), trial, r))
        if not moves:
            break
        _, ts, current = max(moves, key=lambda m: m[0])
    starts = [current, calibrate(out, exit_flops, max_drop, grid=[float(v) for v in values])]
    # 2. coordinate descent from each start
    for start in starts:
        ts = list(start.threshold[:-1]) + [0.0]
        current = run(ts)
        for _ in range(max_rounds):
            changed = False
            for j in range(k - 1):
                for v in values:
                    trial = list(ts)
                    trial[j] = float(v)
                    r = run(trial)
                    if r.accuracy >= floor and _key(r) < _key(current):
                        ts, current, changed = trial, r, True
            if not changed:
                break
        if _key(current) < _key(best):
            best = current
    return simulate(out, _canonical(best.threshold), exit_flops)


def _canonical(thresholds: Sequence[float]) -> list[float]:
    """Thresholds after an exit with T = 0 are never consulted (everything that gets there
    leaves): write them as 0 too, so a stored policy reads as what it does."""
    out, closed = [], False
    for t in thresholds[:-1]:
        out.append(0.0 if closed else float(t))
        closed = closed or t <= 0.0
    return out + [0.0]
