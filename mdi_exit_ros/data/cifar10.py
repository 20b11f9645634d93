"""CIFAR-10 from the JPEG tar files (``train/<class>/NNNN.jpg``, ``test/...``).

The JPEGs (quality ~75) are not bit-identical to the original CIFAR arrays;
models here are trained and evaluated on these same files.  Decoding 60k
JPEGs takes a while, so the decoded arrays are cached as an ``.npz`` (loaded
with ``allow_pickle=False``) keyed by the tar's size and modification time.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from .arrays import ImageArrays
from .cache import cache_dir

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def read_class_tar(path: str | Path, split: str | None = None,
                   classes: list[str] | None = None) -> ImageArrays:
    """Read ``<split>/<class>/<file>.jpg|png`` members of a tar into arrays.

    Class order is alphabetical (for CIFAR-10 that is the standard label order)
    unless ``classes`` is given.  Members are sorted by name so the order is
    reproducible.
    """
    items: list[tuple[str, str, bytes]] = []
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            if not m.isfile():
                continue
            parts = Path(m.name).parts
            if parts and parts[0] in (".", ""):
                parts = parts[1:]
            if len(parts) < 2 or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            if split is not None and (len(parts) < 3 or parts[-3] != split):
                continue
            f = tf.extractfile(m)
            if f is None:
                continue
            items.append((parts[-2], m.name, f.read()))
    if not items:
        raise ValueError(f"no images found in {path} (split {split!r})")
    names = classes if classes is not None else sorted({c for c, _, _ in items})
    lookup = {c: i for i, c in enumerate(names)}
    items.sort(key=lambda t: (lookup.get(t[0], -1), t[1]))
    imgs, labels = [], []
    for cls, name, data in items:
        if cls not in lookup:
            raise ValueError(f"{name}: class {cls!r} not in {names}")
        with Image.open(io.BytesIO(data)) as im:
            imgs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        labels.append(lookup[cls])
    shapes = {a.shape for a in imgs}
    if len(shapes) != 1:
        raise ValueError(f"images in {path} differ in size: {sorted(shapes)[:3]}")
    return ImageArrays(np.stack(imgs), np.asarray(labels, dtype=np.int64), list(names),
                       name=f"{Path(path).stem}")


def load_cifar10(split: str, root: str | Path, use_cache: bool = True) -> ImageArrays:
    """CIFAR-10 ``split`` ("train" or "test") from ``root/<split>.tar``."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be train or test, not {split!r}")
    tar = Path(root) / f"{split}.tar"
    st = os.stat(tar)
    cache = cache_dir() / f"cifar10-{split}-{st.st_size}-{int(st.st_mtime)}.npz"
    if use_cache and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return ImageArrays(z["images"], z["labels"], CIFAR10_CLASSES, f"cifar10-{split}")
    data = read_class_tar(tar, split=split, classes=CIFAR10_CLASSES)
    data.name = f"cifar10-{split}"
    if use_cache:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=data.images, labels=data.labels)
        os.replace(tmp, cache)
    return data
