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
