"""The real datasets, when this machine has them (skipped otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from mdi_exit_ros.data import DatasetUnavailable, dataset_available, load_dataset
from mdi_exit_ros.data.registry import dataset_root


def _need(name: str) -> None:
    if not dataset_available(name):
        pytest.skip(f"{name} files not on this machine (see mdi_exit_ros/data/registry.py)")


def test_fashion_mnist_test_split():
    _need("fmnist")
    d = load_dataset("fmnist", "test")
    assert d.images.shape == (10000, 28, 28, 1) and d.images.dtype == np.uint8
    assert np.bincount(d.labels).tolist() == [1000] * 10
    assert d.classes[0] == "T-shirt/top"


def test_cifar10_test_split():
    _need("cifar10")
    d = load_dataset("cifar10", "test")
    assert d.images.shape == (10000, 32, 32, 3)
    assert np.bincount(d.labels).tolist() == [1000] * 10
    assert d.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                         "horse", "ship", "truck"]


def test_missing_dataset_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("MDI_EXIT_FMNIST_DIR", str(tmp_path))
    if dataset_root("fmnist") is None:
        with pytest.raises(DatasetUnavailable, match="MDI_EXIT_FMNIST_DIR"):
            load_dataset("fmnist", "test")
    else:  # found elsewhere too; the env var must at least not break it
        assert dataset_available("fmnist")


def test_the_data_root_is_a_setting(monkeypatch, tmp_path):
    """$MDI_EXIT_DATA (or --data-dir) names the root; without it, the per-user data folder."""
    from mdi_exit_ros.data.registry import DATA_ENV, apply_data_dir, data_root

    monkeypatch.setenv(DATA_ENV, "")  # restored after the test: apply_data_dir sets it
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "mdi_exit_ros"
    monkeypatch.delenv("MDI_EXIT_CIFAR10_DIR", raising=False)
    root = tmp_path / "data"
    (root / "cifar10-jpeg").mkdir(parents=True)
    (root / "cifar10-jpeg" / "test.tar").write_bytes(b"")  # what the lookup probes for
    apply_data_dir(str(root))
    assert data_root() == root.resolve()
    assert dataset_root("cifar10") == root / "cifar10-jpeg"
    monkeypatch.setenv("MDI_EXIT_CIFAR10_DIR", str(tmp_path / "own"))  # still checked first
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "test.tar").write_bytes(b"")
    assert dataset_root("cifar10") == tmp_path / "own"


def test_a_missing_dataset_names_the_data_root(monkeypatch, tmp_path):
    from mdi_exit_ros.data import registry

    monkeypatch.setenv(registry.DATA_ENV, str(tmp_path))
    monkeypatch.setenv("MDI_EXIT_CIFAR10_DIR", str(tmp_path / "nothing"))
    # as if installed away from any checkout: no shared/ folder beside it or the working dir
    monkeypatch.setattr(registry, "_REPO", tmp_path / "site" / "pkg")
    monkeypatch.chdir(tmp_path)
    assert dataset_root("cifar10") is None
    with pytest.raises(DatasetUnavailable, match=f"{tmp_path / 'cifar10-jpeg'}.*--data-dir"):
        load_dataset("cifar10", "test")
