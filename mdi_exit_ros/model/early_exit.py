"""The early-exit model: K stages, K exit heads, K-1 boundary codecs.

Paper, Sec. III: the DNN is partitioned at its K exit points; task k is
"the layers between exit k-1 and exit k, then the classifier of exit k".  Any
worker may run any task, so each task must be runnable on its own from the
(decoded) features of task k-1.  ``forward`` runs every task in order and
returns all K exit logits, which is what joint early-exit training needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .codecs import BoundaryCodec, IdentityCodec, make_codec


@dataclass(frozen=True)
class InputSpec:
    """What task 1 expects: (N, channels, size, size) float, normalised with mean/std."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(
            size=int(d["size"]),
            channels=int(d["channels"]),
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
        )

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) or float in [0, 1] -> normalised float32 at ``size``."""
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


class ExitHead(nn.Module):
    """Classifier at an intermediate exit: 1x1 conv + BN + ReLU, pool, linear.

    The 1x1 conv gives a shallow exit some capacity of its own (a bare
    pool+linear on early features is weak), at a small cost next to a task.
    ``pool`` > 1 keeps a coarse spatial grid, which helps small images.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden: int = 128,
        pool: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        if hidden > 0:
            layers += [
                nn.Conv2d(in_channels, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
            ]
            ch = hidden
        layers += [nn.AdaptiveAvgPool2d(pool), nn.Flatten()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(ch * pool * pool, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class ModelInfo:
    """Descriptive metadata that travels with the model (and its checkpoint)."""

    arch: str
    arch_kwargs: dict
    input_spec: InputSpec
    class_names: list[str]
    extra: dict = field(default_factory=dict)


class EarlyExitModel(nn.Module):
    """A DNN cut at its exits into tasks tau_1..tau_K (1-based, as in the paper).

    ``stages[k-1]`` holds the layers of task k, ``heads[k-1]`` its exit
    classifier (the last head is the model's own classifier) and
    ``codecs[k-1]`` the codec at cut k, between task k and task k+1.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        heads: Sequence[nn.Module],
        info: ModelInfo,
        codecs: Sequence[str | dict | BoundaryCodec] | None = None,
        feature_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if len(stages) != len(heads) or len(stages) < 1:
            raise ValueError("need one exit head per stage and at least one stage")
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)
        k = len(stages)
        if codecs is None:
            codecs = ["identity"] * (k - 1)
        if len(codecs) != k - 1:
            raise ValueError(f"need {k - 1} codecs (one per cut), got {len(codecs)}")
        chans = list(feature_channels) if feature_channels is not None else [0] * (k - 1)
        self.codecs = nn.ModuleList(make_codec(c, chans[i]) for i, c in enumerate(codecs))
        self.info = info
        self._profile = None  # filled lazily by profile()

    # -- metadata -----------------------------------------------------------------
    @property
    def num_exits(self) -> int:
        return len(self.stages)

    @property
    def input_spec(self) -> InputSpec:
        return self.info.input_spec

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.info.class_names)

    @property
    def arch(self) -> str:
        return self.info.arch

    def codec_configs(self) -> list[dict]:
        return [c.config() for c in self.codecs]

    def set_codec(self, k: int, spec: str | BoundaryCodec) -> None:
        """Swap a weightless codec at cut k (1-based) - e.g. identity -> fp16."""
        self._check_cut(k)
        old = self.codecs[k - 1]
        if isinstance(old, nn.Module) and any(True for _ in old.parameters()):
            raise ValueError(f"cut {k} has a learned codec ({old.name}); it is part of the weights")
        name = spec if isinstance(spec, str) else getattr(spec, "name", None)
        if isinstance(spec, dict):
            name = spec.get("name")
        if name not in ("identity", "fp16"):
            raise ValueError(f"only identity/fp16 can be swapped in, not {name!r}: a learned "
                             "codec must be built (and trained) with the model")
        new = make_codec(spec, 0)
        self.codecs[k - 1] = new
        self._profile = None

    def profile(self, refresh: bool = False):
        """Per-task FLOPs, per-cut bytes etc. (see :mod:`.profiling`), cached."""
        from .profiling import profile_model

        if self._profile is None or refresh:
            self._profile = profile_model(self)
        return self._profile

    def metadata(self) -> dict:
        """JSON-able description: what a worker needs to know about this model."""
        prof = self.profile()
        return {
            "arch": self.info.arch,
            "arch_kwargs": self.info.arch_kwargs,
            "num_exits": self.num_exits,
            "input_spec": self.input_spec.to_dict(),
            "class_names": self.class_names,
            "codecs": self.codec_configs(),
            "task_flops": prof.task_flops,
            "codec_flops": prof.codec_flops,
            "cut_feature_shapes": prof.cut_shapes,
            "cut_wire_shapes": prof.wire_shapes,
            "cut_raw_bytes": prof.cut_raw_bytes,
            "cut_wire_bytes": prof.cut_wire_bytes,
            "cut_wire_dtypes": prof.wire_dtypes,
        }

    # -- the task interface --------------------------------------------------------
    def _check_task(self, k: int) -> None:
        if not 1 <= k <= self.num_exits:
            raise IndexError(f"task {k} out of range 1..{self.num_exits}")

    def _check_cut(self, k: int) -> None:
        if not 1 <= k <= self.num_exits - 1:
            raise IndexError(f"cut {k} out of range 1..{self.num_exits - 1}")

    def run_task(self, k: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Task k: stage k on ``x`` (normalised image for k=1, decoded features of
        cut k-1 otherwise), then exit head k.  Returns (features, logits); the
        features of the last task are returned too but nobody needs to send them.
        """
        self._check_task(k)
        feats = self.stages[k - 1](x)
        logits = self.heads[k - 1](feats)
        return feats, logits

    def encode(self, k: int, features: torch.Tensor) -> torch.Tensor:
        """Sender side of cut k (after task k): features -> wire tensor."""
        self._check_cut(k)
        return self.codecs[k - 1].encode(features)

    def decode(self, k: int, wire: torch.Tensor) -> torch.Tensor:
        """Receiver side of cut k (before task k+1): wire tensor -> fp32 features."""
        self._check_cut(k)
        return self.codecs[k - 1].decode(wire)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All K exit logits.  Each cut's codec round trip is applied, so training
        sees exactly what distributed inference will feed the next task."""
        outs = []
        for k in range(1, self.num_exits + 1):
            x, logits = self.run_task(k, x)
            outs.append(logits)
            if k < self.num_exits:
                x = self.codecs[k - 1](x)
        return outs

    def task_modules(self, k: int) -> list[nn.Module]:
        """Modules that task k runs (stage k, head k) - e.g. to check nothing else runs."""
        self._check_task(k)
        return [self.stages[k - 1], self.heads[k - 1]]

    @torch.no_grad()
    def infer_early_exit(
        self, x: torch.Tensor, thresholds: Sequence[float]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Single-process reference of the paper's rule on one batch: run tasks in
        order and stop each sample at the first exit whose max softmax > T_k (the
        last exit always stops).  Returns (predictions, exit index 1..K, confidence).
        Samples that exited are dropped from later tasks, so their compute is skipped.
        """
        n = x.shape[0]
        preds = torch.empty(n, dtype=torch.long)
        exits = torch.empty(n, dtype=torch.long)
        conf = torch.empty(n)
        alive = torch.arange(n)
        for k in range(1, self.num_exits + 1):
            x, logits = self.run_task(k, x)
            c, p = logits.softmax(dim=1).max(dim=1)
            last = k == self.num_exits
            done = torch.ones_like(c, dtype=torch.bool) if last else c > thresholds[k - 1]
            idx = alive[done]
            preds[idx], exits[idx], conf[idx] = p[done], k, c[done]
            keep = ~done
            if last or not bool(keep.any()):
                break
            alive = alive[keep]
            x = self.decode(k, self.encode(k, x[keep]))
        return preds, exits, conf


def identity_codecs(k: int) -> list[BoundaryCodec]:
    """K-1 identity codecs (the default)."""
    return [IdentityCodec() for _ in range(k - 1)]
