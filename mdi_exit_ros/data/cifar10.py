"""CIFAR-10 from the JPEG tar files or from the official binary version.

Two layouts of a CIFAR-10 folder are read:

- the JPEG tars ``train.tar`` / ``test.tar`` (members ``<split>/<class>/NNNN.jpg``). The
  JPEGs (quality ~75) are not bit-identical to the original CIFAR arrays; the shipped models
  were trained and evaluated on these same files. Decoding 60k JPEGs takes a while, so the
  decoded arrays are cached as an ``.npz`` (loaded with ``allow_pickle=False``) keyed by the
  tar's size and modification time;
- the official binary version (``cifar-10-binary.tar.gz`` unpacks to
  ``cifar-10-batches-bin/``): ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train) and
  ``test_batch.bin`` (test), each a sequence of 3073-byte records: one label byte (0-9), then
  the 32x32 image as 1024 red, 1024 green and 1024 blue bytes, rows in order. Read directly
  (no cache needed), with the original pixels.

When a folder holds both, the JPEG tar is used (what the shipped models were measured on).
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


BINARY_DIR = "cifar-10-batches-bin"  # the official binary version's folder
BINARY_BATCHES = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
SIDE = 32
RECORD_BYTES = 1 + 3 * SIDE * SIDE  # label byte + R, G, B planes


def read_binary_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``*.bin`` batch of the official binary version: (images N x 32 x 32 x 3, labels).

    A file that is not a whole number of records (truncated, or another dataset such as
    CIFAR-100 with two label bytes) or holds a label outside 0-9 is refused with the reason.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise ValueError(f"{path}: empty file, not a CIFAR-10 binary batch")
    if raw.size % RECORD_BYTES:
        raise ValueError(
            f"{path}: {raw.size} bytes is not a whole number of {RECORD_BYTES}-byte records "
            f"(1 label byte + {RECORD_BYTES - 1} pixel bytes; {raw.size // RECORD_BYTES} "
            f"whole, {raw.size % RECORD_BYTES} bytes left over): truncated or not a "
            f"CIFAR-10 binary batch")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= len(CIFAR10_CLASSES))
    if bad.size:
        raise ValueError(f"{path}: record {int(bad[0])} has label {int(labels[bad[0]])}, "
                         f"not a CIFAR-10 class (0-9): not a CIFAR-10 binary batch")
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def binary_dir(root: str | Path) -> Path | None:
    """The folder of the binary batches in ``root``: root itself or its cifar-10-batches-bin."""
    for d in (Path(root), Path(root) / BINARY_DIR):
        if (d / BINARY_BATCHES["test"][0]).is_file():
            return d
    return None


def load_cifar10_binary(split: str, folder: str | Path) -> ImageArrays:
    """CIFAR-10 ``split`` from the official binary batches in ``folder`` (all of them)."""
    missing = [n for n in BINARY_BATCHES[split] if not (Path(folder) / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: CIFAR-10 binary {split} split incomplete, "
                                f"missing {', '.join(missing)}")
    parts = [read_binary_batch(Path(folder) / n) for n in BINARY_BATCHES[split]]
    return ImageArrays(np.concatenate([p[0] for p in parts]),
                       np.concatenate([p[1] for p in parts]), list(CIFAR10_CLASSES),
                       name=f"cifar10-{split}")


def load_cifar10(split: str, root: str | Path, use_cache: bool = True) -> ImageArrays:
    """CIFAR-10 ``split`` ("train" or "test") from ``root/<split>.tar``, else from the
    binary batches in ``root`` or ``root/cifar-10-batches-bin``."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be train or test, not {split!r}")
    tar = Path(root) / f"{split}.tar"
    if not tar.is_file():
        folder = binary_dir(root)
        if folder is None:
            raise FileNotFoundError(
                f"{root}: no CIFAR-10 here ({split}.tar, or {BINARY_BATCHES['test'][0]} "
                f"in it or in {BINARY_DIR}/)")
        return load_cifar10_binary(split, folder)
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
