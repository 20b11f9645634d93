"""Fashion-MNIST from the original idx files (gzip-compressed or not)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .arrays import ImageArrays

FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an idx file (magic 0x0000TTDD: type TT, DD dimensions, big-endian sizes)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header < count * dtype.itemsize:
        raise ValueError(f"{path}: truncated idx data ({len(raw) - header} bytes for {shape})")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)


def load_fashion_mnist(split: str, root: str | Path) -> ImageArrays:
    """Fashion-MNIST ``split`` ("train" or "test"; the files say "t10k") from ``root``."""
    if split not in ("train", "test"):
        raise ValueError(f"Fashion-MNIST split must be train or test, not {split!r}")
    prefix = "train" if split == "train" else "t10k"
    root = Path(root)

    def find(kind: str) -> Path:
        for name in (f"{prefix}-{kind}-ubyte.gz", f"{prefix}-{kind}-ubyte"):
            if (root / name).is_file():
                return root / name
        raise FileNotFoundError(f"{root}: no {prefix}-{kind}-ubyte[.gz]")

    images = read_idx(find("images-idx3"))
    labels = read_idx(find("labels-idx1"))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"{root}: images {images.shape} and labels {labels.shape} do not match")
    return ImageArrays(np.array(images[..., None], dtype=np.uint8),  # writable copy
                       labels.astype(np.int64), FMNIST_CLASSES, f"fmnist-{split}")
