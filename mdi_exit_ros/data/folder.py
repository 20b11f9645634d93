"""Any folder of images with one subfolder per class (``root/<class>/*.png``).

If ``root/train`` and ``root/test`` exist they are the splits; otherwise every
image goes to "train" or "test" by a hash of its path (about 1 in 10 to test),
so the split is stable when images are added.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from .arrays import ImageArrays

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def _is_test(rel: str) -> bool:
    return hashlib.sha256(rel.encode()).digest()[0] < 26  # ~10 %


def load_image_folder(root: str | Path, split: str, size: int | None = None,
                      channels: int = 3, classes: list[str] | None = None) -> ImageArrays:
    """Decode a class-per-subfolder tree into arrays, resized to ``size`` if given.

    ``channels`` is 3 (RGB) or 1 (grey).  Images of different sizes need ``size``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, not {split!r}")
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    base = root / split if has_splits else root
    found = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    names = classes if classes is not None else found
    if not names:
        raise ValueError(f"{base}: no class subfolders")
    imgs, labels = [], []
    for label, cls in enumerate(names):
        cdir = base / cls
        if not cdir.is_dir():
            continue
        for p in sorted(cdir.rglob("*")):
            if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not has_splits and _is_test(p.relative_to(root).as_posix()) != (split == "test"):
                continue
            with Image.open(p) as im:
                im = im.convert("RGB" if channels == 3 else "L")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
            imgs.append(a if a.ndim == 3 else a[..., None])
            labels.append(label)
    if not imgs:
        raise ValueError(f"{base}: no images for split {split!r}")
    shapes = {a.shape for a in imgs}
    if len(shapes) != 1:
        raise ValueError(f"{base}: images differ in size {sorted(shapes)[:3]}; pass size=")
    return ImageArrays(np.stack(imgs), np.asarray(labels, dtype=np.int64), list(names),
                       name=f"folder-{root.name}-{split}")
