"""In-memory image arrays and the batch helpers that train/evaluate use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ImageArrays:
    """A labelled image set: ``images`` uint8 (N, H, W, C), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("one label per image is needed")
        self.labels = self.labels.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def subset(self, idx: np.ndarray, name: str | None = None) -> ImageArrays:
        return ImageArrays(self.images[idx], self.labels[idx], self.classes,
                           name if name is not None else self.name)

    def split(self, n_holdout: int, seed: int = 0) -> tuple[ImageArrays, ImageArrays]:
        """Deterministic (rest, holdout) split, e.g. a validation set for calibration."""
        if n_holdout <= 0:
            return self, self.subset(np.arange(0), self.name + "-empty")
        perm = np.random.default_rng(seed).permutation(len(self))
        return (self.subset(np.sort(perm[n_holdout:]), self.name + "-train"),
                self.subset(np.sort(perm[:n_holdout]), self.name + "-val"))

    def tensor_nchw(self) -> torch.Tensor:
        """uint8 (N, C, H, W) torch view-friendly copy."""
        return torch.from_numpy(np.ascontiguousarray(self.images.transpose(0, 3, 1, 2)))


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle_seed: int | None = None,
    start_batch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(batch index, uint8 images, labels); the order is a pure function of the seed,
    so training can resume in the middle of an epoch."""
    n = images.shape[0]
    if shuffle_seed is None:
        order = torch.arange(n)
    else:
        g = torch.Generator().manual_seed(int(shuffle_seed))
        order = torch.randperm(n, generator=g)
    nb = n // batch_size if drop_last else (n + batch_size - 1) // batch_size
    for b in range(start_batch, nb):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield b, images[idx], labels[idx]


def random_crop_flip(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch (N, C, H, W): zero-pad, random crop
    back to H x W, random horizontal flip.  Deterministic given the generator."""
    n, _, h, w = x.shape
    out = x
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
        idx_r = rows.view(n, 1, h, 1).expand(n, x.shape[1], h, padded.shape[3])
        tmp = padded.gather(2, idx_r)
        idx_c = cols.view(n, 1, 1, w).expand(n, x.shape[1], h, w)
        out = tmp.gather(3, idx_c)
    if flip:
        f = torch.rand(n, generator=generator) < 0.5
        out = torch.where(f.view(n, 1, 1, 1), out.flip(3), out)
    return out
