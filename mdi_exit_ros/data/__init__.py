"""Dataset readers: CIFAR-10 (JPEG tars), Fashion-MNIST (idx.gz), image folders.

Everything is decoded once into in-memory uint8 arrays (N, H, W, C); training
and evaluation index those arrays directly, which on a small CPU is much faster
than a per-image DataLoader pipeline.
"""

from .arrays import ImageArrays, iterate_batches, random_crop_flip
from .registry import DatasetUnavailable, dataset_available, load_dataset

__all__ = [
    "DatasetUnavailable",
    "ImageArrays",
    "dataset_available",
    "iterate_batches",
    "load_dataset",
    "random_crop_flip",
]
