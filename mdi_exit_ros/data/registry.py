"""``load_dataset("cifar10" | "fmnist" | "folder:<path>", split)`` and where data lives.

Where a built-in dataset is looked for, first match wins:
1. its own variable, ``$MDI_EXIT_CIFAR10_DIR`` / ``$MDI_EXIT_FMNIST_DIR`` (the folder itself);
2. the data root, ``$MDI_EXIT_DATA`` (``--data-dir`` of `mdi-exit train/eval/fleet` sets it),
   by default the per-user data folder ``$XDG_DATA_HOME/mdi_exit_ros`` (usually
   ``~/.local/share/mdi_exit_ros``), as ``<root>/cifar10-jpeg`` (the JPEG tars) or
   ``<root>/cifar-10-batches-bin`` (the official binary version, as its archive unpacks) /
   ``<root>/fashion-mnist``;
3. a ``shared/data/...`` folder beside the repository or the working directory (a checkout);
4. for Fashion-MNIST, Debian's ``dataset-fashion-mnist`` package.
Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from .arrays import ImageArrays
from .cifar10 import BINARY_BATCHES, BINARY_DIR, load_cifar10
from .fashion_mnist import load_fashion_mnist
from .folder import load_image_folder

DATA_ENV = "MDI_EXIT_DATA"
_REPO = Path(__file__).resolve().parents[2]
# name: (its own variable, folder names under the data root, further places, files that
# show the folder holds it: any one of them, in the folder or in the subfolder named by
# `_SUBFOLDER` for a variable's folder)
_CANDIDATES = {
    "cifar10": ("MDI_EXIT_CIFAR10_DIR", ["cifar10-jpeg", BINARY_DIR],
                ["shared/data/cifar10-jpeg", f"shared/data/{BINARY_DIR}"],
                ["test.tar", BINARY_BATCHES["test"][0]]),
    "fmnist": ("MDI_EXIT_FMNIST_DIR", ["fashion-mnist"],
               ["shared/data/fashion-mnist", "/usr/share/datasets/fashion-mnist"],
               ["t10k-labels-idx1-ubyte.gz"]),
}
# A variable may name the folder an archive was unpacked into (CIFAR-10's binary version
# unpacks to cifar-10-batches-bin/).
_SUBFOLDER = {"cifar10": BINARY_DIR}


def data_root() -> Path:
    """The data root: ``$MDI_EXIT_DATA``, else the per-user data folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mdi_exit_ros"


def _expand(rel: str) -> list[Path]:
    """A relative "shared/..." path is looked up beside the repository (and beside the
    working directory or its parent, for an installed package run from a checkout)."""
    if rel.startswith("/"):
        return [Path(rel)]
    cwd = Path.cwd()
    return [base.parent / rel for base in (_REPO, cwd, cwd.parent)]


def add_data_dir_argument(parser) -> None:
    """`--data-dir`: the data root for this run (and the processes it starts)."""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"data root (default: ${DATA_ENV}, else {data_root()})")


def apply_data_dir(data_dir: str | None) -> None:
    """Put `--data-dir` in force: the environment, so child processes see it too."""
    if data_dir:
        os.environ[DATA_ENV] = str(Path(data_dir).expanduser().resolve())


class DatasetUnavailable(FileNotFoundError):
    """The dataset's files are not on this machine."""


def dataset_root(name: str) -> Path | None:
    """Folder holding the files of a built-in dataset, or None."""
    env, folders, paths, probes = _CANDIDATES[name]
    cands = []
    if os.environ.get(env):
        own = Path(os.environ[env]).expanduser()
        cands.append(own)
        if name in _SUBFOLDER:
            cands.append(own / _SUBFOLDER[name])
    cands += [data_root() / folder for folder in folders]
    cands += [p for rel in paths for p in _expand(rel)]
    for c in cands:
        if any((c / probe).is_file() for probe in probes):
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
        env, folders = _CANDIDATES[spec][:2]
        places = " or ".join(str(data_root() / folder) for folder in folders)
        raise DatasetUnavailable(
            f"{spec} files not found: put them in {places} (the data root is "
            f"${DATA_ENV} or --data-dir), or set ${env} to their folder")
    if spec == "cifar10":
        return load_cifar10(split, root)
    return load_fashion_mnist(split, root)
