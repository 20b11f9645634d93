"""Measure what a task costs: FLOPs per task, bytes per cut, modules that ran.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one
image: 2 x multiply-accumulates of convolutions, linear layers and matmuls
(BatchNorm, activations, pooling and additions are not counted - they are a few
percent and memory-bound).  Feature bytes are per image, fp32 unless the cut's
codec says otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (no grad)."""
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


@dataclass
class ModelProfile:
    """Per-image costs of an EarlyExitModel (index 0 = task 1 / cut 1)."""

    input_shape: list[int]
    task_flops: list[int]  # stage k + head k
    stage_flops: list[int]
    head_flops: list[int]
    codec_flops: list[int]  # encode + decode at cut k
    cut_shapes: list[list[int]]  # features at cut k (C, H, W)
    wire_shapes: list[list[int]]  # after encode
    wire_dtypes: list[str]
    cut_raw_bytes: list[int]  # fp32 features
    cut_wire_bytes: list[int]  # after codec

    def exit_flops(self) -> list[int]:
        """Cumulative FLOPs to stop at exit k: tasks 1..k plus codecs of cuts 1..k-1."""
        out, acc = [], 0
        for k, f in enumerate(self.task_flops):
            acc += f
            out.append(acc)
            if k < len(self.codec_flops):
                acc += self.codec_flops[k]
        return out

    def backbone_flops(self) -> int:
        """The plain model (no intermediate heads, no codecs): the 'no early exit' cost."""
        return sum(self.stage_flops) + self.head_flops[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exit_flops"] = self.exit_flops()
        d["backbone_flops"] = self.backbone_flops()
        return d


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def profile_model(model) -> ModelProfile:
    """Run one zero image through every task and codec, counting FLOPs and bytes."""
    spec = model.input_spec
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)  # profile where the model lives (CPU/CUDA)
        x = torch.zeros(1, spec.channels, spec.size, spec.size,
                        device=param.device if param is not None else None)
        task_f, stage_f, head_f, codec_f = [], [], [], []
        cut_shapes, wire_shapes, wire_dtypes, raw_b, wire_b = [], [], [], [], []
        for k in range(1, model.num_exits + 1):
            stage, head = model.stages[k - 1], model.heads[k - 1]
            with torch.no_grad():
                feats = stage(x)
            stage_f.append(count_flops(lambda s=stage, x=x: s(x)))
            head_f.append(count_flops(lambda h=head, f=feats: h(f)))
            task_f.append(stage_f[-1] + head_f[-1])
            if k < model.num_exits:
                with torch.no_grad():
                    wire = model.encode(k, feats)
                    dec = model.decode(k, wire)
                codec_f.append(
                    count_flops(lambda k=k, f=feats: model.encode(k, f))
                    + count_flops(lambda k=k, w=wire: model.decode(k, w))
                )
                cut_shapes.append(list(feats.shape[1:]))
                wire_shapes.append(list(wire.shape[1:]))
                wire_dtypes.append(_dtype_name(wire))
                raw_b.append(feats[0].numel() * 4)
                wire_b.append(wire[0].numel() * wire.element_size())
                x = dec
        return ModelProfile(
            input_shape=[spec.channels, spec.size, spec.size],
            task_flops=task_f,
            stage_flops=stage_f,
            head_flops=head_f,
            codec_flops=codec_f,
            cut_shapes=cut_shapes,
            wire_shapes=wire_shapes,
            wire_dtypes=wire_dtypes,
            cut_raw_bytes=raw_b,
            cut_wire_bytes=wire_b,
        )
    finally:
        model.train(was_training)


def block_flops(blocks: Sequence[nn.Module], x: torch.Tensor) -> tuple[list[int], list[torch.Size]]:
    """FLOPs of each block of a sequential backbone and the shape after it."""
    flops, shapes = [], []
    with torch.no_grad():
        for b in blocks:
            flops.append(count_flops(lambda b=b, x=x: b(x)))
            x = b(x)
            shapes.append(x.shape)
    return flops, shapes


def balanced_cuts(
    costs: Sequence[float],
    k: int,
    fixed: Sequence[int] = (),
    head_costs: Sequence[float] | None = None,
) -> list[int]:
    """Split a sequence of block costs into k contiguous tasks of similar cost.

    Returns the k-1 cut positions (a cut at i means tasks end after block i-1,
    i.e. ``blocks[:i]`` come before it).  Minimises the largest task (paper,
    footnote 1: similar tasks make a worker's per-task time Gamma independent
    of which task it runs); ties go to the smaller sum of squares.  ``fixed``
    cut positions are forced (e.g. ResNet-50's autoencoder cut after layer1).
    ``head_costs[i-1]`` is the cost of an exit head placed after ``blocks[:i]``;
    it is added to the task that ends there.
    """
    n = len(costs)
    if not 1 <= k <= n:
        raise ValueError(f"cannot cut {n} blocks into {k} tasks")
    pre = [0.0]
    for c in costs:
        pre.append(pre[-1] + float(c))
    fixed_set = set(fixed)
    inf = (float("inf"), float("inf"))
    # best[j][i] = (max task, sum sq) splitting blocks[:i] into j tasks; prev for backtrack
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    prev = [[-1] * (n + 1) for _ in range(k + 1)]
    best[0][0] = (0.0, 0.0)
    for j in range(1, k + 1):
        for i in range(1, n + 1):
            for p in range(j - 1, i):
                if best[j - 1][p] == inf:
                    continue
                # a fixed cut strictly inside (p, i) would be skipped: not allowed
                if any(p < f < i for f in fixed_set):
                    continue
                seg = pre[i] - pre[p] + (float(head_costs[i - 1]) if head_costs else 0.0)
                cand = (max(best[j - 1][p][0], seg), best[j - 1][p][1] + seg * seg)
                if cand < best[j][i]:
                    best[j][i], prev[j][i] = cand, p
    if best[k][n] == inf:
        raise ValueError("no split satisfies the fixed cuts")
    cuts, i = [], n
    for j in range(k, 0, -1):
        i = prev[j][i]
        cuts.append(i)
    return sorted(cuts)[1:]


class ModuleRunCounter:
    """Counts forward calls of every leaf module of a model (via forward hooks).

    Used to prove an early exit skips the rest of the network: after task 1
    none of the modules of stages 2..K may have run.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.counts: Counter[str] = Counter()
        self._handles: list = []

    def __enter__(self) -> ModuleRunCounter:
        for name, mod in self.model.named_modules():
            if not any(True for _ in mod.children()):
                self._handles.append(mod.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def hook(_mod, _inp, _out) -> None:
            self.counts[name] += 1

        return hook

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def ran(self, prefix: str = "") -> list[str]:
        """Names of leaf modules (under ``prefix``) that ran at least once."""
        return sorted(n for n, c in self.counts.items() if c and n.startswith(prefix))


@contextmanager
def count_module_runs(model: nn.Module):
    """``with count_module_runs(m) as c: ...; c.ran("stages.1")``"""
    counter = ModuleRunCounter(model)
    with counter:
        yield counter
