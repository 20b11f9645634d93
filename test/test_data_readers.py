"""Dataset readers on tiny synthetic files written to tmp_path (no real datasets needed)."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from mdi_exit_ros.data import ImageArrays, iterate_batches, load_dataset, random_crop_flip
from mdi_exit_ros.data.cifar10 import CIFAR10_CLASSES, load_cifar10, read_class_tar
from mdi_exit_ros.data.fashion_mnist import load_fashion_mnist, read_idx
from mdi_exit_ros.data.folder import load_image_folder


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _write_class_tar(path, split: str, per_class: dict[str, list[np.ndarray]], ext="png"):
    with tarfile.open(path, "w") as tf:
        for cls, imgs in per_class.items():
            for i, a in enumerate(imgs):
                if ext == "png":
                    data = _png_bytes(a)
                else:
                    buf = io.BytesIO()
                    Image.fromarray(a).save(buf, format="JPEG", quality=95)
                    data = buf.getvalue()
                info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def test_read_class_tar_lossless(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {c: [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
            for c in ("cat", "airplane")}
    _write_class_tar(tmp_path / "test.tar", "test", imgs)
    d = read_class_tar(tmp_path / "test.tar", split="test")
    assert d.classes == ["airplane", "cat"]  # alphabetical = label order
    assert d.images.shape == (4, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(d.images[0], imgs["airplane"][0])
    np.testing.assert_array_equal(d.images[3], imgs["cat"][1])


def test_load_cifar10_with_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MDI_EXIT_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    imgs = {c: [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)] for c in CIFAR10_CLASSES}
    _write_class_tar(tmp_path / "train.tar", "train", imgs, ext="jpg")
    d1 = load_cifar10("train", tmp_path)
    assert len(d1) == 10 and d1.labels.tolist() == list(range(10))
    assert list((tmp_path / "cache").glob("cifar10-train-*.npz"))
    d2 = load_cifar10("train", tmp_path)  # from cache
    np.testing.assert_array_equal(d1.images, d2.images)
    np.testing.assert_array_equal(d1.labels, d2.labels)
    with pytest.raises(ValueError):
        load_cifar10("val", tmp_path)


def _cifar_record(label: int, img: np.ndarray) -> bytes:
    """One record of CIFAR-10's binary version, as its page describes it: the label byte,
    then the red, green and blue planes of the 32x32 image, each row by row."""
    return bytes([label]) + b"".join(img[:, :, c].tobytes() for c in range(3))


def _cifar_binary(root, split_sizes: dict[str, int], seed: int = 2):
    """A tiny cifar-10-batches-bin/ folder in the real layout; the arrays each file holds."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    written = {}
    for name, n in split_sizes.items():
        imgs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        (folder / name).write_bytes(b"".join(
            _cifar_record(int(y), x) for x, y in zip(imgs, labels, strict=True)))
        written[name] = (imgs, labels)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n")
    return folder, written


_ALL_BATCHES = {**{f"data_batch_{i}.bin": 2 for i in range(1, 6)}, "test_batch.bin": 3}


def test_cifar10_binary_layout_under_the_data_root(tmp_path, monkeypatch):
    from mdi_exit_ros.data import registry

    monkeypatch.setenv(registry.DATA_ENV, str(tmp_path / "data"))
    monkeypatch.delenv("MDI_EXIT_CIFAR10_DIR", raising=False)
    monkeypatch.setattr(registry, "_REPO", tmp_path / "site" / "pkg")  # no checkout's shared/
    monkeypatch.chdir(tmp_path)
    folder, written = _cifar_binary(tmp_path / "data", _ALL_BATCHES)
    assert registry.dataset_root("cifar10") == folder
    test = load_dataset("cifar10", "test")
    imgs, labels = written["test_batch.bin"]
    assert test.images.shape == (3, 32, 32, 3) and test.images.dtype == np.uint8
    np.testing.assert_array_equal(test.images, imgs)
    assert test.labels.tolist() == labels.tolist()
    assert test.classes == CIFAR10_CLASSES and test.name == "cifar10-test"
    # the red plane comes first: pixel (row 0, column 1) of image 0 is the record's byte 2
    raw = (folder / "test_batch.bin").read_bytes()
    assert test.images[0, 0, 1, 0] == raw[2] and test.images[0, 0, 0, 1] == raw[1 + 1024]
    train = load_dataset("cifar10", "train")  # the five batches, in order
    order = [f"data_batch_{i}.bin" for i in range(1, 6)]
    np.testing.assert_array_equal(train.images, np.concatenate([written[n][0] for n in order]))
    assert train.labels.tolist() == [int(y) for n in order for y in written[n][1]]


def test_cifar10_binary_folder_named_by_its_variable(tmp_path, monkeypatch):
    """$MDI_EXIT_CIFAR10_DIR may be the batches' folder or the one the archive unpacked into."""
    from mdi_exit_ros.data.registry import dataset_root

    folder, written = _cifar_binary(tmp_path, {"test_batch.bin": 1})
    for named in (folder, tmp_path):
        monkeypatch.setenv("MDI_EXIT_CIFAR10_DIR", str(named))
        assert dataset_root("cifar10") == folder
        d = load_dataset("cifar10", "test")
        np.testing.assert_array_equal(d.images, written["test_batch.bin"][0])
    with pytest.raises(FileNotFoundError, match="missing data_batch_1.bin, .*data_batch_5.bin"):
        load_cifar10("train", folder)


def test_cifar10_prefers_the_jpeg_tar_when_both_are_there(tmp_path, monkeypatch):
    monkeypatch.setenv("MDI_EXIT_CACHE", str(tmp_path / "cache"))
    _cifar_binary(tmp_path, {"test_batch.bin": 4})
    imgs = {c: [np.zeros((32, 32, 3), dtype=np.uint8)] for c in CIFAR10_CLASSES[:2]}
    _write_class_tar(tmp_path / "test.tar", "test", imgs)
    assert len(load_cifar10("test", tmp_path, use_cache=False)) == 2  # the tar's two
    assert len(load_cifar10("test", tmp_path / "cifar-10-batches-bin")) == 4


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (_cifar_record(3, np.zeros((32, 32, 3), np.uint8))[:-5], "not a whole number of 3073-byte"),
    (_cifar_record(3, np.zeros((32, 32, 3), np.uint8)) * 2 + b"\x01",
     "2 whole, 1 bytes left over"),
    (_cifar_record(3, np.zeros((32, 32, 3), np.uint8)) + bytes([10]) + bytes(3072),
     "record 1 has label 10, not a CIFAR-10 class"),
    # CIFAR-100's binary version: two label bytes, 3074-byte records
    (b"\x01\x02" + bytes(3072), "not a whole number of 3073-byte records"),
])
def test_cifar10_binary_refuses_truncated_and_malformed_files(tmp_path, content, reason):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(content)
    with pytest.raises(ValueError, match=reason) as err:
        load_cifar10("test", tmp_path)
    assert "test_batch.bin" in str(err.value)


def test_cifar10_folder_without_either_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 here"):
        load_cifar10("test", tmp_path)


def _write_idx(path, arr: np.ndarray, gz: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(
        struct.pack(">I", s) for s in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def test_fashion_mnist_idx(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y)
    d = load_fashion_mnist("test", tmp_path)
    assert d.images.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(d.images[..., 0], x)
    assert d.labels.tolist() == [0, 9, 3, 3, 1]
    assert d.images.flags.writeable
    _write_idx(tmp_path / "raw-idx", x, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw-idx"), x)


def test_idx_rejects_garbage_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an idx"):
        read_idx(tmp_path / "bad")
    x = np.zeros((3, 4, 4), dtype=np.uint8)
    _write_idx(tmp_path / "ok", x, gz=False)
    data = (tmp_path / "ok").read_bytes()
    (tmp_path / "trunc").write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "trunc")


def _write_folder(root, classes=("a", "b"), n=12, size=(20, 16), mode="RGB"):
    rng = np.random.default_rng(3)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
                root / c / f"{i}.png")


def test_image_folder_hash_split_and_resize(tmp_path):
    _write_folder(tmp_path / "imgs", n=30)
    tr = load_image_folder(tmp_path / "imgs", "train", size=8)
    te = load_image_folder(tmp_path / "imgs", "test", size=8)
    assert tr.classes == te.classes == ["a", "b"]
    assert len(tr) + len(te) == 60 and len(te) >= 1
    assert tr.images.shape[1:] == (8, 8, 3)
    grey = load_image_folder(tmp_path / "imgs", "train", size=8, channels=1)
    assert grey.images.shape[1:] == (8, 8, 1)


def test_image_folder_explicit_splits_via_registry(tmp_path):
    _write_folder(tmp_path / "ds" / "train", n=3, size=(8, 8))
    _write_folder(tmp_path / "ds" / "test", n=2, size=(8, 8))
    d = load_dataset(f"folder:{tmp_path / 'ds'}", "test")
    assert len(d) == 4 and d.labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(FileNotFoundError):
        load_dataset(f"folder:{tmp_path / 'missing'}", "train")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", "train")


def test_iterate_batches_is_deterministic_and_resumable():
    x = torch.arange(10).view(10, 1, 1, 1).to(torch.uint8)
    y = torch.arange(10)
    full = [yb.tolist() for _, _, yb in iterate_batches(x, y, 3, shuffle_seed=5, drop_last=True)]
    again = [yb.tolist() for _, _, yb in iterate_batches(x, y, 3, shuffle_seed=5, drop_last=True)]
    tail = [yb.tolist() for _, _, yb in iterate_batches(x, y, 3, 5, start_batch=1, drop_last=True)]
    assert full == again and full[1:] == tail and len(full) == 3
    assert len(set(sum(full, []))) == 9  # distinct images
    assert len(list(iterate_batches(x, y, 3))) == 4  # last partial batch kept


def test_random_crop_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x, 2, True, g)
    assert out.shape == x.shape
    same = random_crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    assert torch.equal(random_crop_flip(x, 0, False, g), x)
    # every output row is a (possibly flipped, shifted) window of the padded input
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    windows = [padded[0, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
    assert any(torch.equal(out[0], w) or torch.equal(out[0], w.flip(2)) for w in windows)


def test_image_arrays_validation_and_split():
    with pytest.raises(ValueError):
        ImageArrays(np.zeros((2, 4, 4), np.uint8), np.zeros(2), ["a"])
    d = ImageArrays(np.zeros((10, 4, 4, 1), np.uint8), np.arange(10) % 2, ["a", "b"])
    tr, va = d.split(3, seed=0)
    assert len(tr) == 7 and len(va) == 3
    assert set(tr.labels.tolist() + va.labels.tolist()) <= {0, 1}
    assert d.tensor_nchw().shape == (10, 1, 4, 4)
