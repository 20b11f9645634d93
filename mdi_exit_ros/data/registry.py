"""``load_dataset("cifar10" | "fmnist" | "folder:<path>", split)`` and where data lives.

Default locations (first that exists): ``$MDI_EXIT_CIFAR10_DIR`` /
``$MDI_EXIT_FMNIST_DIR``, then the project's ``shared/`` folder beside the
repository, then the machine-wide paths.
"""

from __future__ import annotations

import os
from pathlib import Path

from .arrays import ImageArrays
from .cifar10 import load_cifar10
from .fashion_mnist import load_fashion_mnist
from .folder import load_image_folder

_REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = {
    "cifar10": ("MDI_EXIT_CIFAR10_DIR", ["shared/data/cifar10-jpeg",
                                         "/work/shared/data/cifar10-jpeg"], "test.tar"),
    "fmnist": ("MDI_EXIT_FMNIST_DIR", ["shared/data/fashion-mnist",
                                       "/usr/share/datasets/fashion-mnist"],
               "t10k-labels-idx1-ubyte.gz"),
}


def _expand(rel: str) -> list[Path]:
    """A relative "shared/..." path is looked up beside the repository (and beside the
    working directory or its parent, for an installed package run from a checkout)."""
    if rel.startswith("/"):
        return [Path(rel)]
    cwd = Path.cwd()
    return [base.parent / rel for base in (_REPO, cwd, cwd.parent)]


class DatasetUnavailable(FileNotFoundError):
    """The dataset's files are not on this machine."""


def dataset_root(name: str) -> Path | None:
    """Folder holding the files of a built-in dataset, or None."""
    env, paths, probe = _CANDIDATES[name]
    cands = [Path(os.environ[env])] if os.environ.get(env) else []
    cands += [p for rel in paths for p in _expand(rel)]
    for c in cands:
        if (c / probe).is_file():
            return c
    return None


def dataset_available(spec: str) -> bool:
    if spec.startswith("folder:"):
        return Path(spec[len("folder:"):]).is_dir()
    return spec in _CANDIDATES and dataset_root(spec) is not None


def load_dataset(spec: str, split: str, size: int | None = None,
                 channels: int | None = None) -> ImageArrays:
    """Load a split as uint8 arrays.  ``size``/``channels`` only apply to folders
    (built-in datasets come at their native 32x32 RGB / 28x28 grey)."""
    if spec.startswith("folder:"):
        return load_image_folder(spec[len("folder:"):], split, size=size,
                                 channels=channels or 3)
    if spec in ("fashion-mnist", "fashion_mnist"):
        spec = "fmnist"
    if spec not in _CANDIDATES:
        raise ValueError(f"unknown dataset {spec!r}: use cifar10, fmnist or folder:<path>")
    root = dataset_root(spec)
    if root is None:
        env = _CANDIDATES[spec][0]
        raise DatasetUnavailable(f"{spec} files not found (set ${env} to their folder)")
    if spec == "cifar10":
        return load_cifar10(split, root)
    return load_fashion_mnist(split, root)
